"""Running MLServer from a notebook or a test: ``server`` (``ModelServer``), ``commands`` (``terminal``: the
course text's commands from a cell: ``terminal("mlserver start <folder>")``), ``processes``
(groups, pid files, ports), ``supervisor`` (the process that stops MLServer when it hangs or its
kernel dies), ``packaging`` (build folders), ``prometheus``. Light: no torch.

Its face is lazy (``labkit/faces.py``): the supervisor starts with every server and imports only
what it needs.
"""

from typing import TYPE_CHECKING

from labkit.faces import lazy_face

# The face: each name is imported from its module when first read (labkit/faces.py).
_WHERE = {
    "ModelServer": "server",
    "ServerStartError": "server",
    "running_server": "server",
    "terminal": "commands",
    "ApiDocs": "docs_page",
    "packaging": "packaging",
    "prometheus": "prometheus",
    "triton": "triton",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_face(__name__, _WHERE)

if TYPE_CHECKING:  # what the names are, for readers and mypy
    from labkit.serving import packaging, prometheus, triton  # noqa: F401 (names of the face)
    from labkit.serving.docs_page import ApiDocs  # noqa: F401 (names of the face)
    from labkit.serving.server import ModelServer, ServerStartError, running_server  # noqa: F401 (names of the face)
    from labkit.serving.commands import terminal  # noqa: F401 (names of the face)
