"""What a student's cell calls: checks with feedback, behind one small face.

* files (``files.py``): the files of a service folder, read the way MLServer reads them,
  and in-process smoke calls of the student's class, right after a ``%%writefile`` cell
  (:func:`check_each_write`) and in graded cells;
* live (``live.py``): what a running server or a student's function answers;
* common (``common.py``): the feedback (:class:`CheckFailed`), the images the checks draw
  and the row-by-row comparison of top-k answers.

Every check prints one line per passed step or raises :class:`CheckFailed`, an
``AssertionError`` (nbgrader counts it) whose message names the mistake.
"""

from labkit.checks.common import CheckFailed
from labkit.checks.files import (check_each_write, image_folder, metric_file, model_settings, requirements,
                                 server_settings, service, top5_file)
from labkit.checks.live import (custom_metric, remote_classifier, runtime_top_k, scaling_choice, scaling_turned_on,
                                top5_batch, top5_service)

__all__ = ["CheckFailed", "check_each_write", "model_settings", "server_settings", "service", "top5_file",
           "metric_file", "requirements", "image_folder", "remote_classifier", "top5_service", "top5_batch",
           "runtime_top_k", "scaling_turned_on", "scaling_choice", "custom_metric"]
