"""Smoke calls of a student's service class: it is imported and loaded
(:mod:`labkit.checks.student_code`), called on images drawn for this run, and its answers are
compared with the reference model row by row. Seconds, no server; each runs in a child
process (:mod:`labkit.checks.isolated`), so the torch the student's file imports stays out of
the notebook's kernel:

* :func:`service`: notebook 01's single-image service (its probabilities);
* :func:`top5_file`: notebook 03's top-5 service (labels and scores of each row);
* :func:`lab_service`: the lab's own service in notebook 05's folders (probabilities of a batch);
* :func:`metric_file`: notebook 07's custom metric (each value it logs per image)."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from labkit.checks.feedback import (FLOAT16_LOSS, CheckFailed, check_shapes, compare_best_labels, distinct_images,
                                    how_rounded,
                                    TWINS, passed, same_probabilities, same_values_in_another_order,
                                    why_not_probabilities)
from labkit.checks.isolated import in_child
from labkit.checks.student_code import call, load_service
from labkit.client import decode_output
from labkit.contract import CONFIDENCE_METRIC, INPUT_NAME
from labkit.paths import DEFAULT_CHECKPOINT, PathLike

if TYPE_CHECKING:  # at run time imported inside the checks, which run in a child process
    import numpy as np
    from mlserver.types import ResponseOutput


@in_child
def service(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
            implementation: str = "serve-model.TinyViTModel") -> None:
    """Notebook 01: the course text's single-image service answers one ``[H, W, 3]`` image
    (NumpyCodec, no batch axis) with the model's probabilities: one instance, called with two
    images drawn for this run whose answers differ (an answer that ignores its image, or
    repeats the first, fails).

    Args:
        folder: the student's service folder (``serve-model.py`` and its settings).
        checkpoint: the weights the reference answers and the service load.
        implementation: ``module.Class`` of the service, as ``model-settings.json`` names it.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse

    from labkit.model.reference import reference_model

    model = load_service(folder, implementation)
    _, images, _ = distinct_images(3, checkpoint, twin=True)  # the last: the first's size and border
    expected = reference_model(checkpoint).probabilities(images)
    answered: list = []
    for number, (image, reference) in enumerate(zip(images, expected), start=1):
        request = InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, image)])
        try:
            response = call(model.predict(request), "predict()")
        except CheckFailed as failure:
            if "InferenceRequest" in failure.what and not hasattr(type(model).predict, "__wrapped__"):
                # helper session 6: @decode_args removed; only Python's words about the request
                raise CheckFailed(f"{failure.what}\npredict() was given MLServer's InferenceRequest itself: nothing "
                                  "above it turns the request into the array its code works on.",
                                  "The template's predict() has a decorator that decodes the request's input and "
                                  "encodes the array it returns.") from None
            raise
        if not isinstance(response, InferenceResponse) or not response.outputs:
            raise CheckFailed(f"predict() returned {type(response).__name__}, not an answer with an output.",
                              "With @decode_args on predict(), the array you return becomes the output.")
        probabilities = _decoded(response.outputs[0])
        if getattr(probabilities, "dtype", None) == np.float16:
            # Most of 21,841 probabilities lie below float16's smallest normal number (6.1e-5): they
            # lose their digits or become 0, within the comparison's tolerance (helper session 5).
            raise CheckFailed(f"predict() returned float16 probabilities: {FLOAT16_LOSS}",
                              "Keep the precision the network computes in.")
        if probabilities.size != reference.size:
            raise CheckFailed(f"predict() returned {probabilities.size} values of shape {list(probabilities.shape)} "
                              f"for one image; TinyViT has {reference.size} classes.",
                              "Return the network's output for the image: one row of class probabilities.")
        shape = list(np.shape(probabilities))
        if len(shape) > 2:
            # helper session 8: passed here, and charged to the declaration that describes the
            # right answer in Exercise 4
            raise CheckFailed(f"predict() returned shape {shape} for one image: its 21,841 probabilities with "
                              f"{len(shape) - 2} axis more than the network's output, [1, 21841], has; a client "
                              "reads the answer by its shape.",
                              "One row of probabilities per image of the batch, as the network gives them.")
        row = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        what = why_not_probabilities(row, reference)
        rounded = None if same_probabilities(row, reference) else how_rounded(row, reference)
        if what:
            raise CheckFailed(f"The values predict() returned do not sum to 1: {what}.",
                              "Return the probabilities as the network computes them." if rounded else
                              "The network returns logits; probabilities come from a softmax over the classes.")
        if rounded:  # helper session 14: float16, 5 decimals, '.2e' were "changed after the network"
            raise CheckFailed(f"For image {number} of {len(images)}, predict() returned TinyViT's probabilities "
                              f"{rounded}, which most of its 21,841 probabilities (about 1/21841 each) do not "
                              "survive.", "Return the probabilities as the network computes them.")
        if not same_probabilities(row, reference) and (row == row[0]).all():  # exactly: a second softmax is not
            # helper session 12: a uniform answer (an error caught and replaced) was told it
            # "ranks the classes as TinyViT does" (a constant row ties every class).
            raise CheckFailed(f"For image {number} of {len(images)}, every one of the {row.size:,} values predict() "
                              f"returned is {row[0]:.3g}: the same for every class, so the answer does not depend on "
                              "the image (an error caught and replaced by a made-up answer?).",
                              "Let an error show: the traceback names the line that fails.")
        if not same_probabilities(row, reference):
            earlier = next((index for index, before in enumerate(answered, start=1)
                            if np.allclose(row, before, rtol=1e-6)), None)
            if earlier is not None:
                twins = earlier == 1 and number == len(images)
                raise CheckFailed(f"For image {number} of {len(images)}, predict() returned the same probabilities as "
                                  f"for image {earlier}{TWINS if twins else ''}, though "
                                  "the model tells them apart: it does not classify the image it is given.",
                                  "Preprocess the payload it gets with the transform from load(), and run the model "
                                  "that load() built, on every call.")
            if same_values_in_another_order(row, reference):
                # helper session 7: sorted probabilities were sent to the preprocessing
                raise CheckFailed(f"For image {number} of {len(images)}, predict() returned TinyViT's probabilities "
                                  "in another order: each value belongs to another class now (sorted?).",
                                  "Position i of the answer is class i's probability, as the network's output "
                                  "has it.")
            if _same_order(row, reference):
                # The network saw the image right (its whole ranking is TinyViT's); the numbers
                # were changed after it (helper session 5: a second softmax, a temperature). A
                # change before it (helper session 6: another resize interpolation) keeps the top
                # ten and moves the thousands of classes below.
                raise CheckFailed(f"For image {number} of {len(images)}, predict() ranks the classes as TinyViT "
                                  "does, but its probabilities differ from the model's: they were changed after "
                                  "the network.", "A softmax over the classes of the network's logits, as they come.")
            raise CheckFailed(f"For image {number} of {len(images)}, predict() returned probabilities that differ "
                              "from TinyViT's for the same image.",
                              "Check both ends: the image as the transform from load() prepares it for the model "
                              "load() built, and the softmax returned as it comes, for this call's image alone.")
        answered.append(row)
    passed(f"serve-model.py imports, load() builds TinyViT, predict() answers {len(images)} different images "
           "like the model")


@in_child
def top5_file(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
              implementation: str = "serve-model.TopFiveModel") -> None:
    """Notebook 03: the top-5 service answers a batch of two different images in this
    process: ``labels`` and ``scores`` ``[2, 5]``, each row that image's own top 5.

    Args:
        folder: the student's service folder.
        checkpoint: the weights the reference answers and the service load.
        implementation: ``module.Class`` of the top-5 service.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    from labkit.model.reference import reference_model

    model = load_service(folder, implementation)
    _, drawn, _ = distinct_images(4, checkpoint, same_size=True)
    first: np.ndarray | None = None
    # Two calls with two other images each (helper session 15: a service that keeps its first
    # answer for every later call passed one call, and failed only the graded check).
    for call_number, images in enumerate((drawn[:2], drawn[2:4]), 1):
        request = InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, np.stack(images))])
        response = call(model.predict(request), "predict()")
        outputs = {output.name: output for output in getattr(response, "outputs", None) or []}
        if not {"labels", "scores"} <= set(outputs):  # more outputs are fine: a client reads the two it needs
            raise CheckFailed(f"predict() returned outputs {sorted(outputs)}; a client reads two, 'labels' and "
                              "'scores'.", "Return an InferenceResponse with an output of each of those names.")
        labels = _decoded(outputs["labels"])
        scores = _decoded(outputs["scores"])
        check_shapes(labels, scores, images=2)
        if first is not None and labels.shape == first.shape and (labels == first).all():
            raise CheckFailed("predict() answered a second call, with 2 other images, with the labels of the first "
                              "call: an answer kept from an earlier call.",
                              "Each call's answer comes from the images of the request it is given.")
        compare_best_labels(labels, scores, *reference_model(checkpoint).best_labels(images, 6),
                            what=f"images of call {call_number}", k=5)
        first = labels
    passed("serve-model.py answers two batches of 2 different images with each image's own top 5, labels and scores")


@in_child
def lab_service(folder: PathLike, checkpoint: PathLike = DEFAULT_CHECKPOINT,
                implementation: str = "serve-model.TinyViTModel") -> None:
    """Notebook 05's folders: the lab's own service (``tinyvit/serve-model.py``, copied there, or
    the student's change of it) answers a batch of pixels ``[N, H, W, 3]`` with each image's
    probabilities, as the lab's clients call it (helper session 16: 01's check of a single
    ``[H, W, 3]`` image called the lab's unchanged file wrong, and told the student to fix it).

    Args:
        folder: the folder with the service.
        checkpoint: the weights the reference answers and the service load.
        implementation: ``module.Class`` of the service.

    Raises:
        CheckFailed: the first mistake found.
    """
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    from labkit.contract import OUTPUT_NAME
    from labkit.model.reference import reference_model

    _, images, _ = distinct_images(2, checkpoint, same_size=True)
    request = InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, np.stack(images))])
    with recorded_metrics([]):  # the lab's service logs each batch's size, as MLServer's metric
        model = load_service(folder, implementation)
        response = call(model.predict(request), "predict()")
    outputs = {output.name: output for output in getattr(response, "outputs", None) or []}
    if OUTPUT_NAME not in outputs:
        raise CheckFailed(f"predict() returned outputs {sorted(outputs)}; the lab's clients read "
                          f"{OUTPUT_NAME!r}.", "The lab's service answers every class's probability.")
    rows = np.asarray(_decoded(outputs[OUTPUT_NAME]), dtype=np.float64)
    expected = reference_model(checkpoint).probabilities(images)
    if rows.shape != expected.shape:
        raise CheckFailed(f"predict() answered a batch of 2 images with shape {list(rows.shape)}; the model's "
                          f"answer has {list(expected.shape)}: one row per image.",
                          "The lab's service answers one row of probabilities per image.")
    for number, (row, reference) in enumerate(zip(rows, expected), start=1):
        if not same_probabilities(row, reference):
            raise CheckFailed(f"Row {number} of predict()'s answer for a batch of 2 images is not TinyViT's "
                              "probabilities for that image.", "Compare it with the lab's tinyvit/serve-model.py.")
    passed(f"{Path(folder).name}/serve-model.py answers a batch of 2 images with each image's probabilities")


def _same_order(row: object, reference: object) -> bool:
    """Whether ``row`` ranks every class as ``reference`` does: read in the reference's order,
    it never rises (ties allowed: a second softmax makes thousands of values equal)."""
    import numpy as np

    ordered = np.asarray(row, dtype=np.float64)[np.argsort(-np.asarray(reference), kind="stable")]
    # A rise counts when it is more than the reference's own rounding (ONNX Runtime's against
    # torch's, about 1e-6 of a value) could make of a near tie.
    rises = ordered[1:] > ordered[:-1] * (1 + 1e-4) + 1e-12
    return bool(rises.mean() < 0.001)


def _decoded(output: ResponseOutput) -> np.ndarray:
    """An output of the student's response as an array, the way a client would read it."""
    try:
        return decode_output(output)
    except Exception as error:
        raise CheckFailed(f"The output {output.name!r} cannot be read back ({type(error).__name__}: {error}).",
                          "Encode each output from a NumPy array with NumpyCodec.encode_output.") from None


METRIC_MODULES = ("mlserver", "mlserver.metrics", "mlserver.metrics.context")


@contextlib.contextmanager
def recorded_metrics(observations: list) -> Iterator[list]:
    """``mlserver.log`` and ``mlserver.register`` (under every name a service may import them
    by) record ``(metric, value)`` into ``observations`` instead of needing a running server."""
    modules = [importlib.import_module(name) for name in METRIC_MODULES]
    originals = [(module, name, getattr(module, name)) for module in modules for name in ("log", "register")]

    def log(**metrics: float) -> None:
        observations.extend(metrics.items())

    for module in modules:
        setattr(module, "log", log)
        setattr(module, "register", lambda *args, **kwargs: None)
    try:
        yield observations
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


@in_child
def metric_file(folder: PathLike, metric: str = CONFIDENCE_METRIC,
                implementation: str = "confidence.ConfidenceModel",
                checkpoint: PathLike = DEFAULT_CHECKPOINT) -> None:
    """Notebook 07: the service logs ``metric`` once per image, each value that image's own
    top-1 probability: called in this process on a batch of 3 different images, every value
    it logs is compared with the model's (in any order), so a batch's mean logged once per
    image, one value per call or one image's value for all fails.

    Args:
        folder: the student's service folder.
        metric: the name the service passes to ``mlserver.log``.
        implementation: ``module.Class`` of the service that logs it.
        checkpoint: the weights the reference answers and the service load.

    Raises:
        CheckFailed: the first mistake found, named in the student's terms (never its fix).
    """
    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest

    from labkit.model.reference import reference_model

    _, images, _ = distinct_images(3, checkpoint, same_size=True)
    observations: list = []
    with recorded_metrics(observations):
        model = load_service(folder, implementation)
        request = InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, np.stack(images))])
        response = call(model.predict(request), "predict()")
    logged = [value for name, value in observations if name == metric]
    # Text parses as a float here and fails in MLServer's histogram (helper session 12: str(c)).
    kinds = sorted({type(value).__name__ for value in logged if isinstance(value, (str, bytes, bool, np.bool_))
                    or not isinstance(value, (int, float, np.number))})
    if kinds:
        raise CheckFailed(f"predict() logged {metric} values of type {kinds}: a histogram observes one number at a "
                          "time.", "One plain number per image.")
    values = sorted(float(value) for value in logged)
    probabilities = reference_model(checkpoint).probabilities(images)
    expected = np.sort(probabilities.max(axis=1))
    others = sorted({name for name, _ in observations} - {metric})
    if not values:
        source = Path(folder) / f"{implementation.rpartition('.')[0]}.py"
        named = source.is_file() and metric in source.read_text(errors="replace")
        if named and not others and "mlserver.log" not in source.read_text(errors="replace") \
                and "prometheus_client" in source.read_text(errors="replace"):
            # helper session 12: a prometheus_client Histogram of its own was told "did not run".
            raise CheckFailed(f"predict() passed no {metric} to mlserver.log for a batch of 3 images: "
                              f"{source.name} observes it with prometheus_client itself, on a registry MLServer "
                              "does not serve on /metrics.",
                              "Log it with mlserver.log, once per image.")
        if named and not others:
            # The name is in the file, and nothing was logged: the line did not run for these
            # images (helper session 5: a log under `if confidence > 0.5` was told to log the metric).
            raise CheckFailed(f"predict() logged no {metric} for a batch of 3 images, though {source.name} names "
                              "it: the line that logs it did not run for them.",
                              "Every image's value is logged, whatever it is.")
        raise CheckFailed(f"predict() logged no {metric} for a batch of 3 images"
                          + (f" (it logged {others})." if others else "."),
                          "Log the metric by that name, with mlserver.log, inside predict().")
    if len(values) != len(images):
        raise CheckFailed(f"predict() logged {len(values)} value(s) of {metric} for a batch of {len(images)} "
                          "images.", "One value per image of the batch: a request, or a merged batch, holds "
                          "several.")
    _answers_unchanged(response, probabilities)
    if np.allclose(values, 100 * expected, rtol=1e-4, atol=1e-9):
        # helper session 6: named only as "not their top-1 probabilities"
        raise CheckFailed(f"The {len(values)} values predict() logged are the images' top-1 probabilities in percent "
                          "(100 times each).", "A probability is a fraction of 1, as the model gives it.")
    rounding = "" if np.allclose(values, expected, rtol=1e-4, atol=1e-9) else _rounding(values, expected)
    if rounding:
        # helper session 12: round(c, 2) and int(c * 100) were told "all three are the same value".
        raise CheckFailed(f"The {len(values)} values predict() logged are the images' top-1 probabilities {rounding}, "
                          f"which they do not survive (these are {', '.join(f'{value:.3g}' for value in expected)}).",
                          "Log the probability as the model gives it.")
    again = np.exp(probabilities - probabilities.max(axis=1, keepdims=True))
    if np.allclose(values, np.sort((again / again.sum(axis=1, keepdims=True)).max(axis=1)), rtol=1e-4, atol=1e-12):
        # helper session 15: a softmax of the probabilities was told "all three are the same value"
        raise CheckFailed(f"The {len(values)} values predict() logged are each about 1/21841 ({values[0]:.3g}): the "
                          "probabilities went through a second softmax, which flattens them.",
                          "The service's probabilities already come out of a softmax.")
    if not np.allclose(values, expected, rtol=1e-4, atol=1e-9):
        same = np.allclose(values, values[0], rtol=1e-6)
        raise CheckFailed(f"The {len(values)} values predict() logged for 3 different images are not their top-1 "
                          "probabilities" + (": all three are the same value." if same else "."),
                          "Each image's own value, from its own row of the probabilities.")
    passed(f"{metric}: one value per image, each image's own top-1 probability (a batch of 3, in this process)")


def _rounding(values: list[float], expected: np.ndarray) -> str:
    """How ``values`` are ``expected`` with digits lost (:func:`how_rounded`, or "in whole percent"),
    or "" when they are not (or are the values themselves: nothing was lost)."""
    import numpy as np

    rounded = how_rounded(values, expected)
    if rounded:
        return rounded
    for percent in (np.floor(100 * expected), np.round(100 * expected)):
        if np.allclose(values, percent, rtol=1e-6, atol=1e-12):
            return "in whole percent"
    return ""


def _answers_unchanged(response: object, expected: np.ndarray) -> None:
    """The service still answers every image with the model's probabilities: measuring must
    not change what the clients get (helper session 6: probabilities sorted in place to read
    the largest logged the right values and sent every client its row sorted)."""
    import numpy as np

    outputs = getattr(response, "outputs", None) or []
    answer = np.asarray(_decoded(outputs[0]), dtype=np.float64) if outputs else None
    if answer is None or answer.shape != expected.shape:
        raise CheckFailed(f"predict() answered {'nothing' if answer is None else f'shape {list(answer.shape)}'} "
                          f"for a batch of {len(expected)} images; the lab's service answers their probabilities "
                          f"{list(expected.shape)}.", "Logging a metric leaves the service's answer as it was.")
    if not same_probabilities(answer, expected):
        in_order = same_values_in_another_order(answer, expected)
        raise CheckFailed("predict() no longer answers with the model's probabilities"
                          + (": each row holds them in another order (sorted?), so a client reads the wrong "
                             "classes." if in_order else ": the code that logs the metric changed them."),
                          "Logging a metric leaves the service's answer as it was: read the probabilities without "
                          "changing the array the answer is made of.")
