"""Reading a failed start's log: the student's file and line first, with its own exception."""
from pathlib import Path

from labkit.serving.startlog import first_error_in, last_exception

FOLDER = Path("/tmp/run/my-tinyvit")

# As a CI run logged it: the load's traceback, then (no header of its own, from another
# task) a cancelled queue's frames and exception before the next log line.
INTERLEAVED = f"""\
2026-12-01 10:00:00,000 [mlserver] ERROR - Couldn't load model
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/mlserver/registry.py", line 155, in _load_model
    await model.load()
  File "{FOLDER}/serve-model.py", line 6, in load
    scale = 1 / 0
            ~~^~~
ZeroDivisionError: division by zero
  File "/usr/lib/python3.11/asyncio/queues.py", line 158, in get
    await getter
asyncio.exceptions.CancelledError
"""

DEEPER = f"""\
Traceback (most recent call last):
  File "{FOLDER}/serve-model.py", line 12, in load
    self.model = timm.create_model("nope")
  File "/venv/lib/python3.11/site-packages/timm/models/_factory.py", line 114, in create_model
    raise RuntimeError('Unknown model (%s)' % model_name)
RuntimeError: Unknown model (nope)
"""


def test_the_exception_is_the_one_raised_through_the_students_frame():
    assert first_error_in(INTERLEAVED, FOLDER) == (
        "serve-model.py, line 6: scale = 1 / 0\n  ZeroDivisionError: division by zero")


def test_a_deeper_library_frame_keeps_the_students_line_and_the_raised_exception():
    assert first_error_in(DEEPER, FOLDER) == (
        'serve-model.py, line 12: self.model = timm.create_model("nope")\n  RuntimeError: Unknown model (nope)')


def test_a_log_without_the_students_file_names_nothing():
    assert first_error_in(DEEPER, Path("/elsewhere")) == ""
    assert last_exception(DEEPER) == "RuntimeError: Unknown model (nope)"
