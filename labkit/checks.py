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
import re
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


def check_images(rng: np.random.Generator | None = None) -> list:
    """(name, image) pairs the checks use: a crop of the photo, noise, a flat colour and
    stripes, of different sizes, drawn anew on every call (``rng``: a fresh one from the
    operating system's entropy), so they are not a list a hand-in could look up. Their
    answers differ also under the random offline weights (crops of one photo do not)."""
    rng = rng or np.random.default_rng()
    photo = load_image(CAT)
    top, left = (int(value) for value in rng.integers(0, 48, 2))
    photo = photo[top:, left:][:, ::-1] if rng.integers(2) else photo[top:, left:]
    height, width = (int(value) for value in rng.integers(150, 240, 2))
    period = int(rng.integers(8, 32))
    stripes = ((np.indices((height, width)).sum(axis=0) // period) % 2 * 255).astype(np.uint8)
    colour = rng.integers(0, 256, 3)
    return [
        ("a crop of the cat photo", np.ascontiguousarray(photo)),
        ("random noise", rng.integers(0, 256, (width, height, 3), dtype=np.uint8)),
        ("a flat colour image", np.full((height, width, 3), colour, np.uint8)),
        ("black and white stripes", np.repeat(stripes[..., None], 3, axis=2)),
    ]


SAME_SIZE = 150  # pixels: every check image is at least this high and wide


def distinct_images(count: int, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT,
                    jpeg: bool = False, same_size: bool = False) -> tuple[list, list, list]:
    """``count`` check images (names, images, JPEG files or []) drawn for this call whose
    top classes all differ in the in-process model, so an answer for the wrong image, a
    constant or a cached answer fails. With ``jpeg`` the images are the decoded files (what
    the server sees); ``same_size`` crops them all to one size (one pixels array)."""
    for _ in range(10):
        named = check_images()[:count]
        if same_size:
            named = [(name, np.ascontiguousarray(image[:SAME_SIZE, :SAME_SIZE])) for name, image in named]
        files = [encode_jpeg(image) for _, image in named] if jpeg else []
        images = [load_image(io.BytesIO(data)) for data in files] if jpeg else [image for _, image in named]
        top = in_process_model(checkpoint).probabilities(images).argmax(axis=1)
        if len(set(top.tolist())) == count:
            return [name for name, _ in named], images, files
    raise AssertionError(f"ten draws of check images shared a top class ({top}): the checkpoint answers alike")


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
    _refuse_a_written_address(classify_remote)
    names, images, _ = distinct_images(3, checkpoint)
    named = list(zip(names, images))
    expected = in_process_model(checkpoint).probabilities(images)
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
                          "pydantic 2 models have their own methods to turn a model into JSON text.")
    rows = []
    for (name, _), answer in zip(named, answers):
        try:
            row = np.asarray(answer, dtype=np.float64)
        except (TypeError, ValueError):
            raise CheckFailed(f"For {name} classify_remote returned a {type(answer).__name__}, not an array of "
                              "probabilities.",
                              "Return the decoded output, a NumPy array, not the response or its JSON.") from None
        if row.size != expected.shape[1]:
            raise CheckFailed(f"For {name} classify_remote returned shape {list(row.shape)}; expected "
                              f"{expected.shape[1]} probabilities (shape [21841] or [1, 21841]).",
                              "Decode the answer's first output with the codec that encoded the input; for "
                              "one image it has one row.")
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


WRITTEN_ADDRESS = re.compile(r"(localhost|127\.0\.0\.1|0\.0\.0\.0)(:\d+)?|:80[0-9]{2}\b")


def _refuse_a_written_address(function: Callable) -> None:
    """An address typed into the code works where the server got the default ports and
    fails where it did not (in grading, or beside another notebook's server): refuse it here,
    where the student can still fix it."""
    import inspect

    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    written = WRITTEN_ADDRESS.search(code)
    if written:
        raise CheckFailed(f"classify_remote has the address {written.group(0)!r} written into it. It works while "
                          "this server has that port, and fails where it gets another: when your notebook is "
                          "graded, or when a second notebook's server holds the port.",
                          "The server object knows the address it really got.")


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
    """Notebook 03, one image per request: two requests with different images to the same
    server, each answered with 5 valid labels and their scores, ordered, as the model says
    (an answer that ignores its image, or repeats the first one, fails)."""
    _not_stale(server)
    names, images, _ = distinct_images(2, checkpoint)
    answers = [ask_top5(server, pixels_request([image]), name) for name, image in zip(names, images)]
    for labels, scores in answers:
        check_shapes(labels, scores, images=1)
    passed("one row of 5 labels and 5 scores per image")
    labels, scores = np.concatenate([a[0] for a in answers]), np.concatenate([a[1] for a in answers])
    compare_top_k(labels, scores, *in_process_model(checkpoint).top_k(images), what="requests")
    passed(f"{len(images)} requests with different images: each answered with its image's own top 5, labels "
           "and scores, best first")


def top5_batch(server: ModelServer, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 03, a batch: 3 different JPEG images of different sizes in one request,
    3 right rows, labels and scores (a first-row-only or a constant answer fails)."""
    _not_stale(server)
    _, decoded, files = distinct_images(3, checkpoint, jpeg=True)
    labels, scores = ask_top5(server, files_request(files), "a batch of 3 different JPEG images of different sizes")
    check_shapes(labels, scores, images=3)
    compare_top_k(labels, scores, *in_process_model(checkpoint).top_k(decoded))
    passed("a batch of 3 images of different sizes gets 3 correct rows, labels and scores")


def _not_stale(server: ModelServer) -> None:
    changed = server.changed_since_start()
    if changed:
        raise CheckFailed(f"{', '.join(changed)} changed after this server started: it still runs the old "
                          "version, so checking it would tell you nothing about your edit.",
                          "Run the cell that starts this server again (it replaces the old one), then the "
                          "checks again.")


def ask_top5(server: ModelServer, request: InferenceRequest, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        outputs = infer_outputs(server.infer_url, request)
    except requests_errors() as error:
        raise CheckFailed(f"The server did not answer {what} ({type(error).__name__}): it is not running.",
                          "Run the cell that starts it and read what it printed.") from None
    except InferenceFailed as error:
        cause = last_exception(server.log) if error.status >= 500 else ""
        cause = f"\nThe server log ends with: {cause}" if cause else ""
        raise CheckFailed(f"The service answered {what} with HTTP {error.status}: {error.message}{cause}",
                          f"The traceback is in this server's log (its .log_tail()); fix {_service_file(server)}, "
                          "then start the server again.") from None
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
                          f"Keep the batch axis: one row per image, the {k} best classes of that row.")


def compare_top_k(labels: np.ndarray, scores: np.ndarray, expected_labels: np.ndarray,
                  expected_scores: np.ndarray, what: str = "images of the request") -> None:
    """Row by row, the labels and the scores of a top-k answer against the in-process
    model's for the same images (labels of tied scores may come in either order); each
    kind of mistake gets its own message."""
    labels = np.vectorize(lambda label: label.decode() if isinstance(label, bytes) else label,
                          otypes=[object])(np.asarray(labels, dtype=object))
    scores = np.asarray(scores, dtype=np.float64)
    k = expected_labels.shape[1]
    if all(isinstance(label, (int, np.integer)) or str(label).strip().isdigit() for label in labels.ravel()):
        raise CheckFailed(f"The labels are numbers ({labels.ravel()[:3].tolist()}...): class indices, not names.",
                          "A client wants the class names; timm's ImageNetInfo maps an index to its name.")
    known = set(weights.labels())
    unknown = [label for label in labels.ravel() if label not in known]
    if unknown:
        raise CheckFailed(f"{unknown[:3]} are not ImageNet-22k class names.",
                          "Map each class index to its description with timm's ImageNetInfo('imagenet-22k').")
    if len(labels) > 1 and (labels == labels[0]).all() and not (expected_labels == expected_labels[0]).all():
        raise CheckFailed(f"All {len(labels)} {what} got the same labels, though the images differ (the model "
                          "gives each a different top class): every row holds one image's answer.",
                          "Compute the top of each row of the probabilities, one row per image.")
    for row in range(len(labels)):
        if set(labels[row]) != set(expected_labels[row]):
            other = [index for index in range(len(expected_labels)) if set(labels[row]) == set(expected_labels[index])]
            where = f" (they are image {other[0]}'s)" if other else ""
            raise CheckFailed(f"Row {row} of the {what} holds labels that are not image {row}'s {k} best{where}.",
                              f"Take the {k} most probable classes of each row of the probabilities, and keep the "
                              "rows in the order of the images.")
    for row in range(len(labels)):  # each label's own score, wherever it stands in the row
        # (label, score) pairs, not a dict: some ImageNet-22k classes share a name.
        unmatched = list(zip(expected_labels[row], expected_scores[row]))
        for column, label in enumerate(labels[row]):
            match = next((pair for pair in unmatched if pair[0] == label
                          and np.isclose(scores[row, column], pair[1], rtol=1e-3, atol=1e-6)), None)
            if match is None:
                model = [float(score) for name, score in unmatched if name == label]
                raise CheckFailed(f"The labels are right but the scores are not: in row {row}, {label!r} has score "
                                  f"{scores[row, column]:.6g}; the model gives it "
                                  f"{model[0] if model else float('nan'):.6g}.",
                                  "A score is the softmax probability of its label's class, in that label's own "
                                  "row.")
            unmatched.remove(match)
    if (np.diff(scores, axis=1) >= -1e-7).all() and not (np.diff(scores, axis=1) <= 1e-7).all():
        raise CheckFailed("Within each row the scores go up: the worst of the five comes first.",
                          "Best first: sort by probability from the largest down.")
    if not (np.diff(scores, axis=1) <= 1e-7).all():
        raise CheckFailed("Scores are not in descending order within a row.",
                          "Sort by probability, not by label or class index.")
    ties = np.isclose(expected_scores[:, :, None], expected_scores[:, None, :], rtol=1e-5).sum(axis=2) > 1
    mismatched = (labels != expected_labels) & ~ties
    if mismatched.any():
        row, column = np.argwhere(mismatched)[0]
        raise CheckFailed(f"Image {row}, rank {column + 1}: the service says {labels[row, column]!r}, "
                          f"the model says {expected_labels[row, column]!r}.",
                          "Each label must stand next to its own score, in score order.")


def runtime_top_k(server: ModelServer, name: str = "top3", k: int = 3,
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 04: a model served by the timm runtime from model-settings.json alone, under
    ``name``, answering the ``k`` best labels of each image of a batch of different images."""
    _not_stale(server)
    if server.name != name:
        raise CheckFailed(f"The server serves a model named {server.name!r}; the exercise asks for {name!r}.",
                          "Clients address a model by the \"name\" in model-settings.json.")
    from .folder_checks import read_model_settings

    # The file as MLServer reads it, and a uri inside the folder: it must grade the same elsewhere.
    read_model_settings(server.model_dir)
    _, images, files = distinct_images(3, checkpoint, jpeg=True)  # images: what the server decodes
    labels, scores = ask_top5(server, files_request(files), "3 different JPEG images")
    if labels.shape[1:] != (k,) and labels.shape[:1] == (3,):
        raise CheckFailed(f"The model answers {labels.shape[1]} labels per image; the exercise asks for {k}.",
                          "The timm runtime reads how many labels to return from parameters.extra.top_k.")
    check_shapes(labels, scores, images=3, k=k)
    try:
        compare_top_k(labels, scores, *in_process_model(checkpoint).top_k(images, k))
    except CheckFailed as failure:
        raise CheckFailed(f"{failure.what} (The runtime computes what its configuration says.)",
                          "parameters.uri must name the lab's checkpoint (tinyvit.safetensors in the folder) "
                          "and parameters.extra.model the TinyViT architecture.") from None
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
                          "Parallel workers are a server setting; after changing it, start the server again.")
    row = measure(server, concurrency, duration=3)
    if row["errors"]:
        raise CheckFailed(f"{row['errors']} of {row['requests']} requests under {concurrency} concurrent callers "
                          "failed.", "The tracebacks are in this server's log (its .log_tail()).")
    if not row["avg_batch"] > 1.2:
        what = (f"Under {concurrency} concurrent callers the model got {row['avg_batch']:.1f} image(s) per "
                "predict() call (the server's own tinyvit_batch_size metric): no batches formed.")
        if misplaced:
            raise CheckFailed(f"{what} settings.json sets {misplaced}, and MLServer reads adaptive batching per "
                              "model, from model-settings.json only: in settings.json it ignores them, so "
                              "nothing changed.",
                              "Move them to model-settings.json, restart the server, run the check again.")
        raise CheckFailed(what, "Adaptive batching is a model setting, and needs a batch size above 1 and a wait "
                                "long enough for requests to meet.")
    passed(f"{workers} parallel workers, and {row['avg_batch']:.1f} images per predict() call on average "
           f"under {concurrency} concurrent callers")


def scaling_choice(results: pd.DataFrame, pick: Callable[[pd.DataFrame, float], object], budget_ms: float) -> None:
    """Notebook 05: ``pick(results, budget_ms)`` returns a row label of ``results`` that meets
    the p95 budget with the highest throughput among the rows that do (a stricter choice that
    also leaves out rows with failed requests is right too)."""
    try:
        choice = pick(results, budget_ms)
    except NotImplementedError:
        raise CheckFailed("pick_configuration is not written yet (it raises NotImplementedError).",
                          "Replace the placeholder lines of its cell with your code, then run that cell.") from None
    except Exception as error:
        raise CheckFailed(f"pick_configuration(results, budget_ms) raised {type(error).__name__}: {error}",
                          "It gets the table and the budget as arguments; read the error above.") from None
    import pandas as pd

    if isinstance(choice, (pd.Series, pd.DataFrame)):
        raise CheckFailed(f"pick_configuration returned a {type(choice).__name__} (a row or rows of the table), not "
                          "a row label.", "Return the label that names the row, as the table shows it on the left.")
    feasible = results[results.p95_ms <= budget_ms]
    if choice is None:
        clean = feasible[feasible.errors == 0] if "errors" in feasible else feasible
        if clean.empty:  # a stricter pick may leave out rows with failed requests
            passed("no row meets the budget, and pick_configuration says so (None)")
            return
        raise CheckFailed(f"pick_configuration returned None, but {len(feasible)} row(s) meet the budget.",
                          "None is for a table in which no row meets the budget.")
    if choice not in results.index:
        position = isinstance(choice, (int, np.integer)) and 0 <= choice < len(results)
        what = (f"choice is {choice!r}: a position in the table, not one of its row labels "
                f"({list(results.index)})." if position else
                f"choice is {choice!r}, which is not a row label of the results table.")
        raise CheckFailed(what, "Return the row's label, as the table shows it on the left.")
    row = results.loc[choice]
    if not row.p95_ms <= budget_ms:
        raise CheckFailed(f"Row {choice} ({row.configuration}, concurrency {row.concurrency}) has p95 "
                          f"{row.p95_ms:.0f} ms, over the {budget_ms:.0f} ms budget.",
                          "Only rows whose p95_ms is within budget_ms qualify.")
    better = feasible[feasible.throughput_rps > row.throughput_rps]
    if "errors" in better:
        better = better[better.errors == 0]  # leaving out rows with failed requests is stricter, not wrong
    if not better.empty:
        best = better.throughput_rps.idxmax()
        raise CheckFailed(f"Row {best} also meets the budget and serves more requests per second "
                          f"({better.throughput_rps[best]:.1f} vs {row.throughput_rps:.1f}).",
                          "Among the rows within budget, the one with the highest throughput wins.")
    passed(f"row {choice} ({row.configuration}, concurrency {row.concurrency}) meets the "
           f"{budget_ms:.0f} ms p95 budget with the best throughput")


def custom_metric(server: ModelServer, metric: str = "tinyvit_top1_confidence",
                  checkpoint: PathLike = weights.DEFAULT_CHECKPOINT) -> None:
    """Notebook 07: the service logs ``metric`` once per image it serves, each value that
    image's top-1 probability. Batches of different sizes and different images: a value
    logged once per call, a constant, or one image's value for all fails."""
    from . import metrics

    _not_stale(server)
    _, decoded_images, files = distinct_images(4, checkpoint, jpeg=True)
    batches = [[files[0], files[1]], [files[2]], [files[3], files[0], files[1]]]
    before = _scrape(server)
    for batch in batches:
        _ask_probabilities(server, batch)
    after = _scrape(server)
    images = sum(len(batch) for batch in batches)
    count = metrics.total(after, f"{metric}_count") - metrics.total(before, f"{metric}_count")
    if count <= 0:
        raise CheckFailed(f"{metric} did not appear on /metrics after {len(batches)} requests.",
                          "Log it with mlserver.log from predict(), and run the server with parallel_workers > 0 "
                          "(MLServer issue #1151).")
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
                          "Each image's own top-1 probability, from its own row.")
    passed(f"{metric}: one observation per image ({images}) on /metrics, their mean the images' top-1 "
           "probability")
    from .folder_checks import metric_file

    # /metrics keeps a count, a sum and buckets too coarse for these probabilities: each value
    # is compared in this process, where every call of mlserver.log is seen.
    metric_file(server.model_dir, metric, checkpoint=checkpoint)


def _scrape(server: ModelServer) -> pd.DataFrame:
    from . import metrics

    try:
        return metrics.scrape(server.metrics_url)
    except requests_errors() as error:
        raise CheckFailed(f"The server's /metrics did not answer ({type(error).__name__}): it is not running.",
                          "Run the cell that starts it and read what it printed.") from None


def _ask_probabilities(server: ModelServer, files: list[bytes]) -> None:
    from .client import infer

    try:
        infer(server.infer_url, files_request(files))
    except requests_errors() as error:
        raise CheckFailed(f"The server did not answer ({type(error).__name__}): it is not running.",
                          "Run the cell that starts it and read what it printed.") from None
    except InferenceFailed as error:
        raise CheckFailed(f"The service answered HTTP {error.status}: {error.message}",
                          f"The traceback is in this server's log (its .log_tail()); fix {_service_file(server)}, "
                          "then start the server again.") from None


def requests_errors() -> tuple:
    """What ``requests`` raises when nothing listens (a server that failed to start or died)."""
    import requests

    return (requests.ConnectionError, requests.Timeout)


def _service_file(server: ModelServer) -> str:
    """The Python file the server's model-settings.json names (``confidence.py`` in 07)."""
    try:
        implementation = json.loads((server.model_dir / "model-settings.json").read_text())["implementation"]
    except (OSError, ValueError, KeyError, TypeError):
        return "your service's file"
    return f"{implementation.rpartition('.')[0]}.py"
