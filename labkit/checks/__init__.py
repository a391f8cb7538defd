"""What a student's cell calls: checks with feedback, behind one small face.

* the files of a service folder: its two JSON files (``settings_files.py``, read by ``json_file.py``; also notebook
  04's Hugging Face model settings), notebook 06's
  requirements (``requirements_file.py``) and build folder (``build_folder.py``, its ignore file read by
  ``dockerignore.py``);
* in-process smoke calls of the student's class (``service_calls.py``), imported and run the
  way MLServer does (``student_code.py``);
* the ``%%writefile`` hook that checks each file right after a cell writes it (``on_write.py``);
* notebook 05's pick of a configuration within a latency budget, on the student's table and
  on tables drawn per call (``budget_pick.py``);
* live (``live.py``): what a running server answers, found and asked by ``students_server.py``;
  notebook 02's client against a live server (``remote_client.py``); the
  declared inputs and outputs against what the server does (``metadata.py``); the rate and
  p95 a student reads off two scrapes of ``/metrics`` (``server_numbers.py``); notebook 05's
  challenge, the student's tuned server against its engine alone (``tuned.py``);
* feedback (``feedback.py``): the feedback (:class:`CheckFailed`), the images the checks draw
  and the row-by-row comparison of top-k answers.

Every check prints one line per passed step or raises :class:`CheckFailed`, an
``AssertionError`` (nbgrader counts it) whose message names the mistake.
"""

from labkit.checks.feedback import CheckFailed, distinct_images
from labkit.checks.metadata import declared_metadata
from labkit.checks.on_write import check_each_write
from labkit.checks.server_numbers import served_rate_and_p95
from labkit.checks.build_folder import image_folder
from labkit.checks.requirements_file import requirements
from labkit.checks.service_calls import lab_service, metric_file, service, top5_file
from labkit.checks.settings_files import hf_model_settings, model_settings, server_settings
from labkit.checks.budget_pick import scaling_choice, sweep_for_grading
from labkit.checks.live import (custom_metric, runtime_top_k, scaling_turned_on, top5_batch, top5_service,
                                top5_under_batching)
from labkit.checks.remote_client import remote_classifier
from labkit.checks.tuned import tuned_model_settings, tuned_service
from labkit.checks.tuned_records import tuned_record

__all__ = ["CheckFailed", "check_each_write", "model_settings", "server_settings", "service", "top5_file",
           "lab_service", "metric_file", "requirements", "image_folder", "remote_classifier", "top5_service",
           "top5_batch",
           "top5_under_batching", "runtime_top_k", "hf_model_settings", "scaling_turned_on", "scaling_choice",
           "custom_metric", "declared_metadata", "served_rate_and_p95", "distinct_images", "sweep_for_grading",
           "tuned_service", "tuned_model_settings", "tuned_record"]
