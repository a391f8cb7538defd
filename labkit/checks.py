"""Exercise checks with feedback.

Each check compares what a student built with the in-process TinyViT (same
checkpoint), prints a line per passed check, and raises :class:`CheckFailed`
(an ``AssertionError``, so nbgrader counts it) that says what is wrong and how
to fix it.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from . import weights
from .paths import PathLike
from .reference import in_process_model
from .server import last_exception
from .client import CAT, InferenceFailed, encode_jpeg, files_request, infer_outputs, load_image, pixels_request

if TYPE_CHECKING:
    import pandas as pd
    import requests
    from mlserver.types import InferenceRequest

    from .server import ModelServer


class CheckFailed(AssertionError):
    def __init__(self, what: str, hint: str):
        super().__init__(f"{what}\nHint: {hint}")
        self.what, self.hint = what, hint

    def _render_traceback_(self) -> list:
        # IPython shows these lines instead of a traceback through the check's code (which
        # would show how the expected answer is computed); nbgrader still sees the error.
        return [f"\x1b[1;31m✘ Check failed:\x1b[0m {self.what}", f"\x1b[1mHint:\x1b[0m {self.hint}"]


def passed(message: str) -> None:
    print(f"✔ {message}")


def check_images() -> list:
    """(name, image) pairs the checks use: a photo, noise, a flat colour and stripes, of
    different sizes. Their answers differ also under the random offline weights (crops of
    one photo do not), so an answer for the wrong image, a constant or a hard-coded
    answer fails."""
    rng = np.random.default_rng(7)
    stripes = ((np.indices((192, 256)).sum(axis=0) // 16) % 2 * 255).astype(np.uint8)
    return [
        ("the cat photo", load_image(CAT)),
        ("random noise", rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)),
        ("a flat red image", np.full((160, 200, 3), (200, 30, 40), np.uint8)),
        ("black and white stripes", np.repeat(stripes[..., None], 3, axis=2)),
    ]


def distinct_reference(images: Sequence[np.ndarray], checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> np.ndarray:
    """The in-process model's probabilities for ``images``, after asserting that no two
    images share a top class (else a check could not tell their answers apart)."""
    probabilities = in_process_model(checkpoint).probabilities(images)
    top = probabilities.argmax(axis=1)
    assert len(set(top.tolist())) == len(images), f"check images share a top class: {top}"
    return probabilities


def remote_classifier(classify_remote: Callable[[np.ndarray], np.ndarray],
                      checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 02: ``classify_remote(image)`` sends one ``[H, W, 3]`` image to the server
    and returns its 21841 probabilities. Called with images the student did not choose;
    what it sent is recorded to name a mistake."""
    named = check_images()[:3]
    expected = distinct_reference([image for _, image in named], checkpoint)
    exchanges, answers = [], []
    with _recording_http(exchanges), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, image in named:
            try:
                answers.append(classify_remote(image.copy()))
            except Exception as error:
                raise _diagnose(exchanges, f"classify_remote({name}) raised {type(error).__name__}: {error}")
    if not exchanges:
        raise CheckFailed("classify_remote sent no request to the server.",
                          "POST the request to server.infer_url inside the function: a stored answer "
                          "cannot know which image the check passes in.")
    if any("`dict` method is deprecated" in str(warning.message) for warning in caught):
        raise CheckFailed("The request body was built with .dict(), which is deprecated in MLServer 1.7 "
                          "(pydantic 2) and will go away.",
                          "Serialise the InferenceRequest with its model_dump_json() method (send it as data=, "
                          "with the header Content-Type: application/json).")
    rows = []
    for (name, _), answer in zip(named, answers):
        row = np.asarray(answer, dtype=np.float64)
        if row.size != expected.shape[1]:
            raise CheckFailed(f"For {name} classify_remote returned shape {list(row.shape)}; expected "
                              f"{expected.shape[1]} probabilities (shape [21841] or [1, 21841]).",
                              "Decode the first output with NumpyCodec.decode_output; for one image it has "
                              "one row.")
        rows.append(row.reshape(-1))
    rows = np.stack(rows)
    if np.allclose(rows, rows[0]):
        raise CheckFailed(f"classify_remote returned the same probabilities for {len(named)} different images.",
                          "Build the request from the function's argument `image`, not from a variable "
                          "defined outside the function.")
    for (name, _), row, reference in zip(named, rows, expected):
        if not np.allclose(row, reference, rtol=1e-3, atol=1e-6):
            raise CheckFailed(f"For {name} the probabilities differ from TinyViT's for that image.",
                              "Send the image's pixels unchanged (uint8, with a batch axis in front) and "
                              "return the server's answer as it is.")
    passed(f"classify_remote answered {len(named)} images the check chose, each like the model")


def _diagnose(exchanges: list, what: str) -> CheckFailed:
    """Name the mistake from the last request the student's code sent and its answer."""
    if not exchanges:
        return CheckFailed(what, "The error came before any request was sent: read its message above.")
    body, status, answer = exchanges[-1]
    if status == 404:
        return CheckFailed(f"{what}\nThe server answered 404: no such model or address.",
                           "POST to server.infer_url (/v2/models/tinyvit/infer).")
    try:
        request_input = (json.loads(body).get("inputs") or [{}])[0]
    except (ValueError, AttributeError, TypeError):
        request_input = None
    if request_input is None:
        return CheckFailed(f"{what}\nThe server answered {status}: the body was not an inference request.",
                           "Send request.model_dump_json() as the body.")
    if request_input.get("name") != "payload":
        return CheckFailed(f"{what}\nThe request's input is named {request_input.get('name')!r}.",
                           "The service reads the input named 'payload' (see the model's metadata).")
    if len(request_input.get("shape") or []) == 3:
        return CheckFailed(f"{what}\nThe request's shape is {request_input.get('shape')}: one image without the "
                           "batch axis.",
                           "The service takes a batch [N, H, W, 3]; add the leading axis before encoding.")
    if request_input.get("datatype") != "UINT8":
        return CheckFailed(f"{what}\nThe request's datatype is {request_input.get('datatype')}.",
                           "Send the pixels as they are, uint8 (NumpyCodec reads the datatype off the array).")
    return CheckFailed(f"{what}\nThe server answered {status}: {answer[:300]}",
                       "Read the server's message; it says what it expected.")


@contextlib.contextmanager
def _recording_http(exchanges: list):
    """Record (body, status, text) of every HTTP request sent through ``requests``."""
    import requests

    original = requests.Session.send

    def send(session: requests.Session, prepared: requests.PreparedRequest, **kwargs) -> requests.Response:
        response = original(session, prepared, **kwargs)
        body = prepared.body.decode() if isinstance(prepared.body, bytes) else prepared.body
        exchanges.append((body, response.status_code, response.text if response.status_code != 200 else ""))
        return response

    requests.Session.send = send
    try:
        yield
    finally:
        requests.Session.send = original


def top5_service(server: ModelServer, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 03, one image: 5 valid labels, ordered by score, as the model says."""
    _not_stale(server)
    name, image = check_images()[1]
    labels, scores = ask_top5(server, pixels_request([image]), name)
    check_shapes(labels, scores, images=1)
    passed("one row of 5 labels and 5 scores per image")
    _check_names(labels)
    passed("every label is an ImageNet-22k class name")
    _check_order(scores)
    passed("labels are ordered by score, best first")
    _check_same_as_reference(labels, scores, *in_process_model(checkpoint).top_k([image]))
    passed("same top-5 as the in-process model")


def top5_batch(server: ModelServer, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 03, a batch: 3 different JPEG images of different sizes in one request,
    3 right rows (a first-row-only or a constant answer fails)."""
    _not_stale(server)
    files = [encode_jpeg(image) for _, image in check_images()[:3]]
    decoded = [load_image(io.BytesIO(data)) for data in files]
    distinct_reference(decoded, checkpoint)
    labels, scores = ask_top5(server, files_request(files), "a batch of 3 different JPEG images of different sizes")
    check_shapes(labels, scores, images=3)
    check_same_labels(labels, in_process_model(checkpoint).top_k(decoded)[0])
    passed("a batch of 3 images of different sizes gets 3 correct rows")


def _not_stale(server: ModelServer) -> None:
    changed = server.changed_since_start()
    if changed:
        raise CheckFailed(f"{', '.join(changed)} changed after this server started: it still runs the old "
                          "version, so checking it would tell you nothing about your edit.",
                          "Run the cell that restarts the server (server.restart()), then the checks again.")


def check_same_labels(labels: np.ndarray, expected_labels: np.ndarray) -> None:
    for row, (got, expected) in enumerate(zip(labels, expected_labels)):
        if set(got) != set(expected):
            raise CheckFailed(f"Image {row} of the request got labels {sorted(got)[:2]}..., which are not "
                              "its own best labels.",
                              "Compute the top 5 per row of the probabilities (axis=1) and return one row per "
                              "image, in the order the images came.")


def ask_top5(server: ModelServer, request: InferenceRequest, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        outputs = infer_outputs(server.infer_url, request)
    except InferenceFailed as error:
        cause = last_exception(server.log) if error.status >= 500 else ""
        cause = f"\nThe server log ends with: {cause}" if cause else ""
        raise CheckFailed(f"The service answered {what} with HTTP {error.status}: {error.message}{cause}",
                          "Read the server log (print(server.log_tail())) for the traceback, fix "
                          "serve-model.py, then restart the server.") from None
    except ValueError as error:
        raise CheckFailed(f"The answer to {what} does not fit its own shape ({error}).",
                          "Return exactly one row per image of the request: under adaptive batching "
                          "MLServer splits your rows between the callers.") from None
    missing = {"labels", "scores"} - set(outputs)
    if missing:
        raise CheckFailed(f"The response has no output named {sorted(missing)} (it has {sorted(outputs)}).",
                          "Return two outputs: NumpyCodec.encode_output('labels', ...) and "
                          "NumpyCodec.encode_output('scores', ...).")
    return outputs["labels"], outputs["scores"]


def check_shapes(labels: np.ndarray, scores: np.ndarray, images: int, k: int = 5) -> None:
    if labels.shape != (images, k) or scores.shape != (images, k):
        raise CheckFailed(f"For {images} image(s) the service returned labels {labels.shape} and scores "
                          f"{scores.shape}; expected ({images}, {k}) for both.",
                          f"Keep the batch axis: one row per image, np.argsort(...)[:, :{k}] per row.")


def _check_names(labels: np.ndarray) -> None:
    known = set(weights.labels())
    unknown = [label for label in labels.ravel() if label not in known]
    if unknown:
        raise CheckFailed(f"{unknown[:3]} are not ImageNet-22k class names.",
                          "Map class indices to names with timm's ImageNetInfo('imagenet-22k')"
                          ".index_to_description(index).")


def _check_order(scores: np.ndarray) -> None:
    if not (np.diff(scores, axis=1) <= 1e-7).all():
        raise CheckFailed("Scores are not in descending order within a row.",
                          "Sort by probability (np.argsort(-probabilities, axis=1)), not by label or index.")


def _check_same_as_reference(labels: np.ndarray, scores: np.ndarray, expected_labels: np.ndarray,
                             expected_scores: np.ndarray) -> None:
    if not np.allclose(scores, expected_scores, rtol=1e-3, atol=1e-7):
        raise CheckFailed("The scores differ from the in-process model's top-5 probabilities.",
                          "Return the softmax probabilities of the top-5 classes, taken from the "
                          "same row as their labels.")
    ties = np.isclose(expected_scores[:, :, None], expected_scores[:, None, :], rtol=1e-5).sum(axis=2) > 1
    mismatched = (labels != expected_labels) & ~ties
    if mismatched.any():
        row, column = np.argwhere(mismatched)[0]
        raise CheckFailed(f"Image {row}, rank {column + 1}: the service says {labels[row, column]!r}, "
                          f"the model says {expected_labels[row, column]!r}.",
                          "Each row must hold the labels of that image's own 5 best classes, in score order.")


def runtime_top_k(server: ModelServer, name: str = "top3", k: int = 3,
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 04: a model served by the timm runtime from model-settings.json alone, under
    ``name``, answering the ``k`` best labels of each image of a batch of different images."""
    _not_stale(server)
    if server.name != name:
        raise CheckFailed(f"The server serves a model named {server.name!r}; the exercise asks for {name!r}.",
                          "Clients address a model by the \"name\" in model-settings.json.")
    files = [encode_jpeg(image) for _, image in check_images()[:3]]
    labels, scores = ask_top5(server, files_request(files), "3 different JPEG images")
    images = [load_image(io.BytesIO(data)) for data in files]  # what the server decodes
    if labels.shape[1:] != (k,) and labels.shape[:1] == (3,):
        raise CheckFailed(f"The model answers {labels.shape[1]} labels per image; the exercise asks for {k}.",
                          "The timm runtime reads how many labels to return from parameters.extra.top_k.")
    check_shapes(labels, scores, images=3, k=k)
    expected_labels, expected_scores = in_process_model(checkpoint).top_k(images, k)
    check_same_labels(labels, expected_labels)
    if not np.allclose(scores, expected_scores, rtol=1e-3, atol=1e-7):
        raise CheckFailed("The scores differ from the lab's TinyViT on the same checkpoint.",
                          "parameters.uri must name the lab's checkpoint (tinyvit.safetensors in the folder) "
                          "and parameters.extra.model the TinyViT architecture.")
    passed(f"model {name!r}, served by configuration alone, answers the {k} best labels of each image")


MODEL_LOAD_LINE = "torch thread(s) in this process"  # the service logs it once per process that loads TinyViT


def scaling_turned_on(server: ModelServer, concurrency: int = 8) -> None:
    """Notebook 05: the student's server runs at least two parallel workers and, under
    ``concurrency`` callers, forms batches: both read off the running server (its log and its
    own batch-size metric), not off the files."""
    from .folder_checks import BATCHING_KEYS, read_json
    from .panel import measure

    _not_stale(server)
    settings = read_json(server.model_dir / "settings.json")
    misplaced = [key for key in BATCHING_KEYS if key in settings]
    workers = server.log.count(MODEL_LOAD_LINE)
    if workers < 2:
        raise CheckFailed(f"The server runs the model in {workers} process(es): one at a time, whatever the "
                          "load.",
                          "Parallel workers are a server setting: parallel_workers in settings.json (2 on this "
                          "machine), then restart.")
    row = measure(server, concurrency, duration=3)
    if row["errors"]:
        raise CheckFailed(f"{row['errors']} of {row['requests']} requests under {concurrency} concurrent callers "
                          "failed.", "Read the server log (print(server.log_tail())).")
    if not row["avg_batch"] > 1.2:
        what = (f"Under {concurrency} concurrent callers the model got {row['avg_batch']:.1f} image(s) per "
                "predict() call (the server's own tinyvit_batch_size metric): no batches formed.")
        if misplaced:
            raise CheckFailed(f"{what} settings.json sets {misplaced}, and MLServer reads adaptive batching per "
                              "model, from model-settings.json only: in settings.json it ignores them, so "
                              "nothing changed.",
                              "Move them to model-settings.json, restart the server, run the check again.")
        raise CheckFailed(what, "Adaptive batching is a model setting: max_batch_size above 1 and max_batch_time "
                                "(seconds, long enough for requests to meet: try 0.01) in model-settings.json.")
    passed(f"{workers} parallel workers, and {row['avg_batch']:.1f} images per predict() call on average "
           f"under {concurrency} concurrent callers")


def scaling_choice(results: pd.DataFrame, choice: object, budget_ms: float) -> None:
    """Notebook 05: ``choice`` (a row label of ``results``) meets the p95 budget and
    has the highest throughput among the rows that do."""
    if choice not in results.index:
        raise CheckFailed(f"choice is {choice!r}, which is not a row of the results table.",
                          "Set choice to a row label (the number on the left of the table), e.g. with idxmax().")
    row = results.loc[choice]
    if not row.p95_ms <= budget_ms:
        raise CheckFailed(f"Row {choice} ({row.configuration}, concurrency {row.concurrency}) has p95 "
                          f"{row.p95_ms:.0f} ms, over the {budget_ms:.0f} ms budget.",
                          "First keep only the rows with p95_ms <= budget_ms, then pick among them.")
    feasible = results[results.p95_ms <= budget_ms]
    best = feasible.throughput_rps.idxmax()
    if feasible.throughput_rps[best] > row.throughput_rps:
        raise CheckFailed(f"Row {best} also meets the budget and serves more requests per second "
                          f"({feasible.throughput_rps[best]:.1f} vs {row.throughput_rps:.1f}).",
                          "Among the rows within budget, take the one with the highest throughput_rps.")
    passed(f"row {choice} ({row.configuration}, concurrency {row.concurrency}) meets the "
           f"{budget_ms:.0f} ms p95 budget with the best throughput")


def custom_metric(server: ModelServer, metric: str = "tinyvit_top1_confidence",
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 07: the service logs ``metric`` once per image it serves, each value that
    image's top-1 probability. Batches of different sizes and different images: a value
    logged once per call, a constant, or one image's value for all fails."""
    from . import metrics

    _not_stale(server)
    files = [encode_jpeg(image) for _, image in check_images()]
    batches = [[files[0], files[1]], [files[2]], [files[3], files[0], files[1]]]
    before = metrics.scrape(server.metrics_url)
    for batch in batches:
        _ask_probabilities(server, batch)
    after = metrics.scrape(server.metrics_url)
    images = sum(len(batch) for batch in batches)
    count = metrics.total(after, f"{metric}_count") - metrics.total(before, f"{metric}_count")
    if count <= 0:
        raise CheckFailed(f"{metric} did not appear on /metrics after {len(batches)} requests.",
                          f"Call mlserver.log({metric}=value) in predict(), and run the server with "
                          "parallel_workers > 0 (MLServer issue #1151).")
    if count != images:
        raise CheckFailed(f"{metric} got {count:g} observations for {images} images sent in {len(batches)} "
                          "requests of 2, 1 and 3 images.",
                          "Log one value per image of the batch (per row of the probabilities), not one per "
                          "predict() call.")
    decoded = [load_image(io.BytesIO(data)) for batch in batches for data in batch]
    distinct_reference(decoded[:4], checkpoint)
    expected = in_process_model(checkpoint).probabilities(decoded).max(axis=1).mean()
    mean = metrics.histogram_mean(before, after, metric)
    if not np.isclose(mean, expected, rtol=1e-3, atol=0):
        raise CheckFailed(f"The mean of the {images} values of {metric} is {mean:.6g}, which is not the mean "
                          "top-1 probability of the images sent.",
                          "Log each image's own top-1 probability: the largest value of its row, as a float.")
    passed(f"{metric}: one observation per image ({images}), each the image's top-1 probability")


def _ask_probabilities(server: ModelServer, files: list[bytes]) -> None:
    from .client import infer

    try:
        infer(server.infer_url, files_request(files))
    except InferenceFailed as error:
        raise CheckFailed(f"The service answered HTTP {error.status}: {error.message}",
                          "Read print(server.log_tail()) for the traceback and fix serve-model.py.") from None
