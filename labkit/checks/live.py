"""Checks of what a student's running server does (notebooks 03-07): 03's top-5 service in
stages (one image per request, a batch, under adaptive batching), 04's runtime, 05's scaling,
07's custom metric. The server is found and asked by :mod:`labkit.checks.students_server`;
notebook 02's client is :mod:`labkit.checks.remote_client`.

Each check compares what a student built with the reference TinyViT (same checkpoint), prints
a line per passed check, and raises :class:`CheckFailed` (an ``AssertionError``, so nbgrader
counts it) that says what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.checks.feedback import (CheckFailed, check_shapes, compare_best_labels, distinct_images,
                                    passed)
from labkit.checks.service_calls import metric_file
from labkit.checks.json_file import read_json
from labkit.checks.settings_files import BATCHING_KEYS, read_model_settings
from labkit.checks.students_server import (ask_probabilities, ask_top5, draws, log_of, not_stale, scrape,
                                            service_server)
from labkit.contract import BATCH_SIZE_METRIC, CONFIDENCE_METRIC, MODEL_LOAD_LINE
from labkit.client import files_request, pixels_request
from labkit.model import weights
from labkit.model.reference import reference_model
from labkit.paths import PathLike
from labkit.serving.server import ModelServer, running_server

if TYPE_CHECKING:
    pass



def _one_image_per_request(server: ModelServer, checkpoint: PathLike, by_type: bool = False) -> list[str]:
    # The last image: the first's twin (its size and border), so an answer kept by the request's
    # shape fails here (helper session 8: it passed this stage and the batch's).
    names, images, _ = distinct_images(3, checkpoint, twin=True, rng=draws(server, "one image per request"))
    answers = [ask_top5(server, pixels_request([image]), name, by_type) for name, image in zip(names, images)]
    for labels, scores in answers:
        check_shapes(labels, scores, images=1)
    labels, scores = np.concatenate([a[0] for a in answers]), np.concatenate([a[1] for a in answers])
    compare_best_labels(labels, scores, *reference_model(checkpoint).best_labels(images, 6), what="requests", k=5)
    return ["one row of 5 labels and 5 scores per image",
            f"{len(images)} requests with different images: each answered with its image's own top 5, labels and "
            "scores, best first"]


def _one_batch(server: ModelServer, checkpoint: PathLike, by_type: bool = False) -> list[str]:
    _, decoded, files = distinct_images(3, checkpoint, jpeg=True, rng=draws(server, "a batch"))
    labels, scores = ask_top5(server, files_request(files), "a batch of 3 different JPEG images of different sizes",
                              by_type)
    check_shapes(labels, scores, images=3)
    compare_best_labels(labels, scores, *reference_model(checkpoint).best_labels(decoded, 6), k=5)
    return ["a batch of 3 images of different sizes gets 3 correct rows, labels and scores"]


_STAGES = {"one image per request": _one_image_per_request, "a batch of images in one request": _one_batch}


def _wrong_at_an_earlier_stage(server: ModelServer, checkpoint: PathLike, stages: int) -> bool | None:
    """Whether the service gives a wrong answer, or an error, at one of the first ``stages``
    stages after the first it passes: True (then this check passes, saying where it is
    counted); False when it passes them all; None when it passes them with its outputs read by
    their types (their names are counted by the first stage). A service that fails the first
    stage without an answer to judge (no server, an error on every request) fails this check
    too: raised."""
    by_type = False
    for index, (what, stage) in enumerate(list(_STAGES.items())[:stages]):
        try:
            try:
                stage(server, checkpoint, by_type)
            except CheckFailed as failure:
                if failure.kind != "output names" or by_type:
                    raise
                by_type = True  # the first stage counts the names; grade what the outputs carry
                stage(server, checkpoint, by_type)
        except CheckFailed as failure:
            if not failure.kind and index == 0 or failure.kind == "output names":
                raise  # no right answer at all (an error on every request, no outputs to read): nothing to spare
            passed(f"not charged here: with {what} your service already goes wrong, and the check of "
                   f"{what} counts that mistake (it names it). Once that check passes, this one grades what it "
                   "adds.")
            return True
    if by_type:
        passed("your outputs read by their types (the labels are text, the scores numbers): their names are "
               "counted by the check of one image per request")
        return None
    return False


def _say_the_batching_wait(server: ModelServer) -> None:
    """A server that holds a lone request for seconds (max_batch_time, a unit mistake its
    settings check names) makes each request of a check wait that long: said before the
    wait, not left to a silent cell (helper session 5: about 2 minutes for 03's checks)."""
    try:
        scaling = server.scaling
    except Exception:  # a folder whose settings do not read: its own check says so
        return
    if scaling.get("max_batch_size", 0) > 1 and scaling.get("max_batch_time", 0) >= 1:
        print(f"This server holds each request up to {scaling['max_batch_time']:g} s for others to join a batch "
              "(max_batch_time): each request of this check waits that long.")


def top5_service(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 03, one image per request: three requests with different images to the same
    server (the third of the first's size and border), each answered with 5 valid labels and
    their scores, ordered, as the model says (an answer that ignores its image, or repeats an
    earlier one, fails). ``server``: the
    student's server, or their folder (see :func:`service_server`).

    Args:
        server: the student's running server, or their folder.
        checkpoint: the weights of the reference answers.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    server = service_server(server)
    not_stale(server)
    _say_the_batching_wait(server)
    for line in _one_image_per_request(server, checkpoint):
        passed(line)


def top5_batch(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 03, a batch: 3 different JPEG images of different sizes in one request,
    3 right rows, labels and scores (a first-row-only or a constant answer fails). A service
    that answers one image per request wrong is charged by :func:`top5_service` only.

    Args:
        server: the student's running server, or their folder.
        checkpoint: the weights of the reference answers.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    server = service_server(server)
    not_stale(server)
    _say_the_batching_wait(server)
    earlier = _wrong_at_an_earlier_stage(server, checkpoint, stages=1)
    if earlier:
        return
    for line in _one_batch(server, checkpoint, by_type=earlier is None):
        passed(line)


def top5_under_batching(server: ModelServer | PathLike, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT,
                        callers: int = 8) -> None:
    """Load the service again with adaptive batching (same process, MLServer's model
    repository API) and send two rounds of concurrent requests of 1 or 2 images, each round
    with images drawn for it: every caller must get exactly its own rows, labels and scores
    (a service that answers every round as it answered the first, one merged batch, fails
    the second). A service already wrong without batching is charged by the checks of those
    stages only. Notebook 03's self-check; the hidden check runs it again when grading.

    Args:
        server: the student's running server, or their folder.
        checkpoint: the weights of the reference answers.
        callers: concurrent callers per round.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    from concurrent.futures import ThreadPoolExecutor

    server = service_server(server)
    not_stale(server)
    earlier = _wrong_at_an_earlier_stage(server, checkpoint, stages=2)
    if earlier:
        return
    by_type = earlier is None
    # helper session 10: 11-17 s with no word before the verdict
    print(f"Loading {server.name} again with adaptive batching, then 2 rounds of {callers} callers at once "
          "(10-20 s)...", flush=True)
    server.reload(max_batch_size=callers, max_batch_time=0.1)
    groups = [[index % 4] if index % 2 == 0 else [index % 4, (index + 1) % 4] for index in range(callers)]
    for round_ in range(2):
        _, images, files = distinct_images(4, checkpoint, jpeg=True, rng=draws(server, f"batching round {round_}"))
        with ThreadPoolExecutor(len(groups)) as pool:
            answers = list(pool.map(lambda group: ask_top5(server, files_request([files[i] for i in group]),
                                                           "concurrent requests", by_type), groups))
        expected_labels, expected_scores = reference_model(checkpoint).best_labels(images, 6)
        for group, (labels, scores) in zip(groups, answers):
            check_shapes(labels, scores, images=len(group))
            compare_best_labels(labels, scores, expected_labels[group], expected_scores[group],
                                what="rows of a caller's answer under adaptive batching", k=5)
    passed(f"2 rounds of {len(groups)} concurrent callers under adaptive batching, each caller got its own "
           "rows, labels and scores")



def runtime_top_k(server: ModelServer | PathLike, name: str = "top3", k: int = 3,
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 04: a model served by the timm runtime from model-settings.json alone, under
    ``name``, answering the ``k`` best labels of each image of a batch of different images.
    ``server``: the student's server, or their folder, whose server this kernel runs.

    Args:
        server: the student's running server, or their folder.
        name: the model's name in the server.
        k: labels per image.
        checkpoint: the weights of the reference answers.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    if not isinstance(server, ModelServer):
        folder = Path(server).resolve()
        running = running_server(folder)
        if running is None:
            # The configuration is the whole exercise: its file says what is wrong, if it can.
            read_model_settings(folder)
            raise CheckFailed(f"No server of {folder.name}/ runs in this kernel: its start cell failed or has not "
                              "run.", "Run the cell that starts it and read what it printed: MLServer names the "
                              "setting it could not use.")
        server = running
    not_stale(server)
    if server.name != name:
        raise CheckFailed(f"The server serves a model named {server.name!r}; the exercise asks for {name!r}.",
                          "Clients address a model by the \"name\" in model-settings.json.")
    # The file as MLServer reads it, and a uri inside the folder: it must grade the same elsewhere.
    read_model_settings(server.model_dir)
    _, images, files = distinct_images(3, checkpoint, jpeg=True)  # images: what the server decodes
    labels, scores = ask_top5(server, files_request(files), "3 different JPEG images")
    if labels.shape[1:] != (k,) and labels.shape[:1] == (3,):
        raise CheckFailed(f"The model answers {labels.shape[1]} labels per image; the exercise asks for {k}.",
                          "The timm runtime reads how many labels to return from parameters.extra.top_k.")
    check_shapes(labels, scores, images=3, k=k)
    try:
        compare_best_labels(labels, scores, *reference_model(checkpoint).best_labels(images, k + 1), k=k)
    except CheckFailed as failure:
        raise CheckFailed(f"{failure.what} (The runtime computes what its configuration says.)",
                          "parameters.uri must name the lab's checkpoint (tinyvit.safetensors in the folder) "
                          "and parameters.extra.model the TinyViT architecture.") from None
    passed(f"model {name!r}, served by configuration alone, answers the {k} best labels of each image")




def scaling_turned_on(server: ModelServer, concurrency: int = 8) -> None:
    """Notebook 05: the student's server runs at least two parallel workers and, under
    ``concurrency`` callers, forms batches: both read off the running server (its log and its
    own batch-size metric), not off the files."""
    from labkit.measure.scaling import measure

    not_stale(server)
    settings = read_json(server.model_dir / "settings.json")
    misplaced = [key for key in BATCHING_KEYS if key in settings]
    workers = server.log.count(MODEL_LOAD_LINE)
    if workers < 2:
        raise CheckFailed(f"The server runs the model in {workers} process(es): one at a time, whatever the "
                          "load.",
                          "Parallel workers are a server setting; after changing it, start the server again.")
    try:
        row = measure(server, concurrency, duration=3)
    except OSError as error:  # requests' ConnectionError is one: the metrics endpoint is off or moved
        raise CheckFailed(f"The server's metrics ({server.metrics_url}) did not answer ({type(error).__name__}): the "
                          f"check reads the batch sizes there, from the server's own {BATCH_SIZE_METRIC} metric.",
                          "Leave the metrics settings out of settings.json, and start the server again.") from None
    if row["errors"]:
        raise CheckFailed(f"{row['errors']} of {row['requests']} requests under {concurrency} concurrent callers "
                          "failed.", f"The tracebacks are in {log_of(server)}.")
    if not row["avg_batch"] > 1.2:
        what = (f"Under {concurrency} concurrent callers the model got {row['avg_batch']:.1f} image(s) per "
                f"predict() call (the server's own {BATCH_SIZE_METRIC} metric): no batches formed.")
        if misplaced:
            raise CheckFailed(f"{what} settings.json sets {misplaced}, and MLServer reads adaptive batching per "
                              "model, from model-settings.json only: in settings.json it ignores them, so "
                              "nothing changed.",
                              "Move them to model-settings.json, restart the server, run the check again.")
        raise CheckFailed(what, "Adaptive batching is a model setting, and needs a batch size above 1 and a wait "
                                "long enough for requests to meet.")
    passed(f"{workers} parallel workers, and {row['avg_batch']:.1f} images per predict() call on average "
           f"under {concurrency} concurrent callers")


def custom_metric(server: ModelServer, metric: str = CONFIDENCE_METRIC,
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 07: the service logs ``metric`` once per image it serves, each value that
    image's top-1 probability. Batches of different sizes and different images: a value
    logged once per call, a constant, or one image's value for all fails.

    Args:
        server: the student's running server.
        metric: the metric's name as ``/metrics`` shows it.
        checkpoint: the weights of the reference answers.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    from labkit.measure import metrics

    not_stale(server)
    _, decoded_images, files = distinct_images(4, checkpoint, jpeg=True)
    # 2, 1 and 4 images: one value per call (3), one short of each batch (4) and one too many (10) all
    # differ from the 7 images (helper session 10: with 2, 1 and 3, a call's first image skipped gave 3).
    batches = [[files[0], files[1]], [files[2]], [files[3], files[0], files[1], files[2]]]
    before = scrape(server)
    for batch in batches:
        ask_probabilities(server, batch)
    after = scrape(server)
    images = sum(len(batch) for batch in batches)
    count = metrics.total(after, f"{metric}_count") - metrics.total(before, f"{metric}_count")
    if count <= 0:
        others = sorted(name for name in metrics.custom_histograms(server.metrics_url) if name != metric
                        and metrics.total(after, f"{name}_count") > metrics.total(before, f"{name}_count"))
        if others:
            raise CheckFailed(f"{metric} did not appear on /metrics after {len(batches)} requests; your service "
                              f"logged {others} instead.",
                              "The metric's name is the keyword you give mlserver.log: use the name the exercise "
                              "gives.")
        workers = server.scaling["parallel_workers"]
        raise CheckFailed(f"{metric} did not appear on /metrics after {len(batches)} requests.",
                          "Log it with mlserver.log from predict(), once per image."
                          if workers else "Log it with mlserver.log from predict(), and run the server with "
                          "parallel_workers > 0 (MLServer issue #1151).")
    if count != images:
        sizes = [len(batch) for batch in batches]
        raise CheckFailed(f"{metric} got {count:g} observations for {images} images sent in {len(batches)} "
                          f"requests of {', '.join(map(str, sizes[:-1]))} and {sizes[-1]} images.",
                          "Log one value per image of the batch (per row of the probabilities), not one per "
                          "predict() call." if count == len(batches) else
                          "Log one value per image of the batch: one per row of the probabilities.")
    top1 = reference_model(checkpoint).probabilities(decoded_images).max(axis=1)
    expected = np.mean([top1[files.index(data)] for batch in batches for data in batch])
    mean = metrics.histogram_mean(before, after, metric)
    if np.isclose(mean, 100 * expected, rtol=1e-3, atol=0):
        raise CheckFailed(f"The mean of the {images} values of {metric} is {mean:.6g}: the images' top-1 "
                          "probabilities in percent (100 times each).",
                          "A probability is a fraction of 1, as the model gives it.")
    if not np.isclose(mean, expected, rtol=1e-3, atol=0):
        raise CheckFailed(f"The mean of the {images} values of {metric} is {mean:.6g}, which is not the mean "
                          "top-1 probability of the images sent.",
                          "Each image's own top-1 probability, from its own row.")
    passed(f"{metric}: one observation per image ({images}) on /metrics, their mean the images' top-1 "
           "probability")
    # /metrics keeps a count, a sum and buckets too coarse for these probabilities: each value
    # is compared in this process, where every call of mlserver.log is seen.
    metric_file(server.model_dir, metric, checkpoint=checkpoint)

