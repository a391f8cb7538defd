"""labkit.serving.commands: the course text's commands from a cell; what it refuses, said plainly
(the commands that start servers are tested with them: test_server, test_fail_fast)."""

import pytest

from labkit.serving import terminal


def test_a_command_given_as_a_list_is_named_not_a_crash_inside_labkit():
    # helper session 9: AttributeError "'list' object has no attribute 'read'" from shlex
    with pytest.raises(TypeError, match="one line of text, as typed in a terminal"):
        terminal(["mlserver", "dockerfile", "shipped"])  # type: ignore[arg-type]


def test_a_command_that_is_not_mlserver_or_python_is_refused():
    with pytest.raises(ValueError, match="starts with 'mlserver' or 'python'"):
        terminal("ls shipped")
