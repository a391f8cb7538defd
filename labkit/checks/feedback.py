"""What every check shares: the feedback a student sees (:class:`CheckFailed`, :func:`passed`),
check images whose answers differ, and the row-by-row comparison of top-k answers."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import ArrayLike

from labkit.checks.label_names import classes_at_an_end, cut_short, scores_right_names_wrong
from labkit.client import encode_jpeg, load_image
from labkit.images import check_images
from labkit.model import weights
from labkit.model.reference import reference_model
from labkit.paths import PathLike


class CheckFailed(AssertionError):
    """A check's verdict: ``what`` went wrong, a ``hint`` that does not hand over the fix, and
    for a wrong answer (not an error or a missing one) its ``kind``: rows, scores, order,
    names, indices (a later stage of notebook 03 that meets a wrong answer at an earlier
    stage leaves it to that stage's check: :mod:`labkit.checks.live`)."""

    def __init__(self, what: str, hint: str, kind: str = ""):
        super().__init__(f"{what}\nHint: {hint}")
        self.what, self.hint, self.kind = what, hint, kind

    def _render_traceback_(self) -> list:
        # IPython shows these lines instead of a traceback through the check's code (which
        # would show how the expected answer is computed); nbgrader still sees the error.
        return [f"\x1b[1;31m✘ Check failed:\x1b[0m {self.what}", f"\x1b[1mHint:\x1b[0m {self.hint}"]


def passed(message: str) -> None:
    print(f"✔ {message}")


SAME_SIZE = 150  # pixels: every check image is at least this high and wide
# Why float16 probabilities are a wrong answer, in 01's service and 02's client alike.
FLOAT16_LOSS = ("most of TinyViT's 21,841 probabilities are smaller than float16 keeps exactly (6.1e-5), so they "
                "lose their digits or become 0.")


def distinct_images(count: int, checkpoint: PathLike = weights.DEFAULT_CHECKPOINT,
                    jpeg: bool = False, same_size: bool = False, twin: bool = False,
                    rng: np.random.Generator | None = None) -> tuple[list, list, list]:
    """``count`` check images (names, images, JPEG files or []) drawn for this call whose
    top classes all differ in the in-process model, so an answer for the wrong image, a
    constant or a cached answer fails. With ``jpeg`` the images are the decoded files (what
    the server sees); ``same_size`` crops them all to one size (one pixels array); ``twin``
    makes the last image the first's twin: its size and its border of ``TWIN_EDGE`` pixels, with
    the last image's content inside (an answer kept by the image's size, its first row or its
    corner fails: helper sessions 6 and 7); ``rng`` draws them (default: a fresh generator, new
    images on every call).

    Args:
        count: how many images.
        checkpoint: the weights of the in-process model that tells their top classes apart.
        jpeg, same_size, twin, rng: as above.

    Returns:
        (names, images, JPEG files or []), one entry per image.
    """
    rng = rng or np.random.default_rng()
    for _ in range(10):
        named = check_images(rng)[:count]
        if same_size:
            named = [(name, np.ascontiguousarray(image[:SAME_SIZE, :SAME_SIZE])) for name, image in named]
        if twin and count > 2:
            named[-1] = (f"{named[-1][0]} inside the border of {named[0][0]}", _twin(named[0][1], named[-1][1]))
        files = [encode_jpeg(image) for _, image in named] if jpeg else []
        images = [load_image(io.BytesIO(data)) for data in files] if jpeg else [image for _, image in named]
        top = reference_model(checkpoint).probabilities(images).argmax(axis=1)
        if len(set(top.tolist())) == count:
            return [name for name, _ in named], images, files
    raise AssertionError(f"ten draws of check images shared a top class ({top}): the checkpoint answers alike")


TWIN_EDGE = 8  # pixels of the first image's border that its twin shares
TWINS = (f" (an image of the same size, whose border of {TWIN_EDGE} pixels is the same: only what lies "
         "inside differs)")


def _twin(first: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """An image of ``first``'s size and border, ``inside`` (tiled to fit) within it: the first
    image's size is kept (a crop of the photo stays larger than the model's 224 pixels, so a
    service that crops before its transform fails on it: helper session 7)."""
    height, width = first.shape[:2]
    tiled = np.tile(inside, (-(-height // inside.shape[0]), -(-width // inside.shape[1]), 1))
    twin = first.copy()
    twin[TWIN_EDGE:, TWIN_EDGE:] = tiled[:height - TWIN_EDGE, :width - TWIN_EDGE]
    return twin



def check_shapes(labels: np.ndarray, scores: np.ndarray, images: int, k: int = 5) -> None:
    """CheckFailed unless labels and scores are ``[images, k]`` each, named by how they differ."""
    if labels.shape == scores.shape and labels.ndim == 2 and labels.shape[1] == k and len(labels) > images:
        # helper session 12: rows kept across requests (self.rows) were told to keep the batch axis
        raise CheckFailed(f"For {images} image(s) the service returned {len(labels)} rows of labels and scores: rows "
                          "that are not this request's images' (kept from earlier requests?).",
                          "Each answer holds one row per image of its own request.", kind="rows")
    if labels.shape != (images, k) or scores.shape != (images, k):
        rows_right = labels.ndim == scores.ndim == 2 and len(labels) == len(scores) == images
        raise CheckFailed(f"For {images} image(s) the service returned labels {labels.shape} and scores "
                          f"{scores.shape}; expected ({images}, {k}) for both.",
                          f"Each row holds the {k} best classes of its image, no more and no fewer." if rows_right
                          else f"Keep the batch axis: one row per image, the {k} best classes of that row.",
                          kind="rows")


TIE = 1e-5  # relative: scores this close are a tie (the reference and the service differ by ~1e-6)


def same_values_in_another_order(values: np.ndarray, expected: np.ndarray) -> bool:
    """Whether each row holds the reference's values, reordered: its sorted values within 2e-5 of
    each (the reference's own difference from torch is at most 2.3e-6 of a value). Far tighter
    than :func:`same_probabilities`: a distribution's sorted values barely move when every value
    moves a little (CI, stop 48: bilinear resizing matched within 0.1 % once sorted)."""
    return bool(np.allclose(np.sort(values, axis=-1), np.sort(expected, axis=-1), rtol=2e-5, atol=1e-12))


def how_rounded(values: ArrayLike, expected: ArrayLike) -> str | None:
    """How ``values`` are ``expected`` with digits lost ("rounded to 2 decimal(s)", "rounded to 3
    significant digits", "cut to 2 decimal(s)", "through float16"), the finest reading that gives
    them (0.0 is 0.0002 rounded to 3 decimals and to 0); None when they are not (helper sessions
    12-14: each was named as another mistake)."""
    values, expected = np.asarray(values, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if values.shape != expected.shape or np.allclose(values, expected, rtol=1e-6, atol=1e-12):
        return None

    def gives(candidate: np.ndarray, share: float = 1.0) -> bool:
        return bool(np.isclose(values, candidate, rtol=1e-6, atol=1e-12).mean() >= share)

    for decimals in range(8, -1, -1):  # the likelier cause first where two give one number (15.0)
        if gives(np.round(expected, decimals)):
            return f"rounded to {decimals} decimal(s)"
        if gives(np.trunc(expected * 10.0 ** decimals) / 10.0 ** decimals):
            return f"cut to {decimals} decimal(s)"
    # float16's steps are 1e-3 of a value apart: the reference's 1e-6 from torch puts about one
    # value in a thousand on the other side of one (decimal steps are rarely met that close).
    if gives(expected.astype(np.float16).astype(np.float64), share=0.99):
        return "through float16"
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(expected != 0, np.floor(np.log10(np.abs(expected))), 0)
    for digits in range(6, 0, -1):
        scale = 10.0 ** (digits - 1 - magnitude)
        if gives(np.round(expected * scale) / scale):
            return f"rounded to {digits} significant digit(s)"
    return None


def why_not_probabilities(row: np.ndarray, expected: np.ndarray | None = None) -> str | None:
    """Why one image's values are not a distribution over the classes (they do not sum to 1),
    in the student's terms; None when they sum to 1. With ``expected`` (the model's row), values
    that are it rounded are named so (helper session 13: zeros were "read as whole numbers?")."""
    if np.isclose(row.sum(), 1, atol=1e-3):
        return None
    if (row == 0).all():
        # helper session 8: an answer decoded as whole numbers was called an answer kept; helper
        # session 13: probabilities rounded to 3 decimals are zeros too where every one is small
        return "every one of them is 0: the numbers were lost on the way (rounded, or read as whole numbers?)"
    rounded = None if expected is None else how_rounded(row, expected)
    if rounded is not None:
        return (f"each is the model's {rounded}, which most of TinyViT's 21,841 probabilities (about 1/21841 "
                "each) do not survive")
    if np.allclose(row, 1):
        return "every one of them is 1: a softmax over an axis of length 1 (the batch axis), not over the classes"
    if (row <= 0).all() and np.isclose(np.exp(row).sum(), 1, atol=1e-3):
        return "they are log-probabilities (their exponentials sum to 1), not probabilities"
    if np.isclose(row.sum(), 100, rtol=1e-3) and (row >= 0).all():
        return "they sum to 100: percentages, not probabilities (fractions of 1)"
    if (row == 0).mean() > 0.99:
        # helper session 7: the best class's probability alone was called logits
        return f"{int((row != 0).sum())} of them are not 0: the rest of the distribution was dropped after the network"
    for decimals in range(1, 7):
        if (row >= 0).all() and np.allclose(row, np.round(row, decimals), rtol=1e-6, atol=1e-12):
            # helper session 9: probabilities rounded to 4 decimals were called logits
            return (f"each is rounded to {decimals} decimal(s), which most of TinyViT's 21,841 probabilities "
                    "(about 1/21841 each) do not survive")
    if (row > 0).all() and np.isclose(row.max(), 1, rtol=1e-6):
        # helper session 12: p / p.max() was called logits (the largest, exactly 1, is not below 1)
        return "the largest is exactly 1: each divided by the largest (scaled), not one distribution over the classes"
    if ((row > 0) & (row < 1)).all():
        return (f"each lies between 0 and 1, but together they sum to {row.sum():.4g}: a probability per class on "
                "its own (a sigmoid, say), not one distribution over the classes")
    return "they are logits, not probabilities"


def same_probabilities(values: ArrayLike, expected: ArrayLike) -> bool:
    """Whether each value is within 0.1 % of the reference's (which differs from torch by about
    2e-6 of a value). The absolute floor is tiny on purpose: a random checkpoint's probabilities
    lie near 1/21841 (4.6e-5), where a floor of 1e-6 let another resize interpolation pass on
    some drawn images (CI, stop 47)."""
    return bool(np.allclose(values, expected, rtol=1e-3, atol=1e-9))


def compare_best_labels(labels: np.ndarray, scores: np.ndarray, expected_labels: np.ndarray,
                        expected_scores: np.ndarray, what: str = "images of the request", k: int | None = None) -> None:
    """Row by row, the labels and the scores of a top-k answer against the reference
    model's for the same images (labels of tied scores may come in either order); each
    kind of mistake gets its own message. With ``k`` one less than the expected columns, the
    last column is the next best: where it ties the k-th, either of the two may end the row
    (the reference runs on ONNX Runtime, whose scores differ from torch's by about 1e-6)."""
    labels = np.vectorize(lambda label: label.decode() if isinstance(label, bytes) else label,
                          otypes=[object])(np.asarray(labels, dtype=object))
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        shown = [str(value) for value in np.asarray(scores, dtype=object).ravel()[:3]]
        raise CheckFailed(f"The scores are not numbers ({shown}...).",
                          "A score is the probability of its label's class: a number, in the output named "
                          "scores.", kind="scores") from None
    sums = scores.sum(axis=1) if scores.ndim == 2 else np.zeros(1)
    if ((scores >= 0) & (scores <= 1 + 1e-6)).all() and (sums > 1 + 1e-3).any():
        row = int(np.argmax(sums > 1 + 1e-3))
        raise CheckFailed(f"The scores of row {row} add up to {sums[row]:.4g}: they are not the probabilities of one "
                          "image's classes, which add up to at most 1.",
                          "A score is a softmax probability: taken over the classes of each image.", kind="scores")
    k = k or expected_labels.shape[1]
    ranked = expected_labels  # every column the reference gave: the next best after the k-th too
    expected_labels, expected_scores = _boundary_tie_for(labels, expected_labels, expected_scores, k)
    if all(isinstance(label, (int, np.integer)) or str(label).strip().isdigit() for label in labels.ravel()):
        raise CheckFailed(f"The labels are numbers ({labels.ravel()[:3].tolist()}...): class indices, not names.",
                          "A client wants the class names; timm's ImageNetInfo maps an index to its name.",
                          kind="indices")
    known = set(weights.labels())
    detailed = [label for label in labels.ravel() if label not in known and str(label).split(":")[0] in known]
    if detailed and len(detailed) == labels.size:
        raise CheckFailed(f"The labels carry a definition after the class name ({str(detailed[0])[:60]!r}...).",
                          "A label is the class's short name, as ImageNetInfo gives it by default.", kind="names")
    unknown = [label for label in labels.ravel() if label not in known]
    if unknown and all(str(label).strip() in known for label in unknown):
        # helper session 15: a space added at an end was sent back to ImageNetInfo
        raise CheckFailed(f"{unknown[:3]} are ImageNet-22k class names with a space at an end.",
                          "A label is the class's name exactly as ImageNetInfo gives it.", kind="names")
    folded = {str(label).casefold() for label in known}
    if unknown and all(str(label).casefold() in folded for label in unknown):
        # helper session 15: names in upper case were sent back to ImageNetInfo
        raise CheckFailed(f"{unknown[:3]} are ImageNet-22k class names in another case than ImageNetInfo's.",
                          "A label is the class's name exactly as ImageNetInfo gives it.", kind="names")
    cut = cut_short(labels, expected_labels)
    if unknown and cut:
        # helper session 17: a fixed-width string type, or the first synonym only, was called "not
        # class names" and sent back to ImageNetInfo, which the student had used
        raise CheckFailed(f"The labels are the right classes' names cut short: {cut[0]!r} is the start of "
                          f"{cut[1]!r}.", "A label is the class's whole name, as ImageNetInfo gives it.",
                          kind="names")
    if unknown:
        raise CheckFailed(f"{unknown[:3]} are not ImageNet-22k class names.",
                          "Map each class index to its description with timm's ImageNetInfo('imagenet-22k').",
                          kind="names")
    renamed = scores_right_names_wrong(labels, scores, expected_labels, expected_scores)
    if renamed:
        # helper session 17: names of the class next to each one (index + 1), or of another class
        # list, were blamed on the preprocessing or the ranking, which the scores show right
        raise CheckFailed(f"The scores are each image's {k} best probabilities, best first, but the labels are not "
                          f"those classes' names{renamed}.",
                          "A label is the name of the class whose probability is its score.", kind="names")
    for row in range(len(labels)):
        repeated = [label for label in set(labels[row]) if list(labels[row]).count(label) > 1]
        if repeated and len(set(expected_labels[row])) == len(expected_labels[row]):
            raise CheckFailed(f"Row {row} holds {repeated[0]!r} {list(labels[row]).count(repeated[0])} times: its "
                              f"{k} labels are {k} different classes.",
                              f"Take the {k} most probable classes of each row, each once.", kind="rows")
    if len(labels) > 1 and (labels == labels[0]).all() and not (expected_labels == expected_labels[0]).all():
        separate = what == "requests"  # one image per request: the answer ignores the request it is given
        edge = classes_at_an_end(labels[0])
        if edge:
            # helper session 8: probabilities sorted in place before the ranking were sent to the request
            raise CheckFailed(f"All {len(labels)} {what} got the same labels, those of the {edge} classes of the "
                              "list, whatever the image: the ranking read positions that hold the same classes for "
                              "every image, not this image's probabilities (were they sorted before the ranking?).",
                              "Rank the classes by the probabilities as the network returns them, class i at "
                              "position i.", kind="rows")
        raise CheckFailed(f"All {len(labels)} {what} got the same labels, though the images differ (the model "
                          "gives each a different top class): "
                          + ("each answer must come from its own request." if separate else
                             "every row holds one image's answer."),
                          "Read the images from the request predict() is given, on every call." if separate else
                          "Each image of the request goes through the model, and each row of the answer comes from "
                          "its own image's probabilities.", kind="rows")
    for row in range(len(labels)):
        if set(labels[row]) != set(expected_labels[row]):
            other = [index for index in range(len(expected_labels)) if set(labels[row]) == set(expected_labels[index])]
            if other and what == "requests" and other[0] < row:
                # helper session 8: an answer kept by the request's shape in 03 (the twin image of
                # the same size) was told to keep the rows in order
                raise CheckFailed(f"Request {row + 1} got the labels of request {other[0] + 1}, whose image differs "
                                  f"from it{TWINS if other[0] == 0 and row == len(labels) - 1 else ''}: an answer "
                                  "kept from an earlier request.",
                                  "Each request's answer comes from the images it carries, on every call.",
                                  kind="rows")
            if other:
                raise CheckFailed(f"Row {row} of the {what} holds labels that are not image {row}'s {k} best (they "
                                  f"are image {other[0]}'s).",
                                  f"Take the {k} most probable classes of each row of the probabilities, and keep "
                                  "the rows in the order of the images.", kind="rows")
            if ranked.shape[1] > k and set(labels[row]) == set(ranked[row][1:k + 1]):
                # helper session 6: [:, 1:6] was sent to look at the preprocessing
                raise CheckFailed(f"Row {row} of the {what} holds image {row}'s 2nd to {k + 1}th best labels: its "
                                  "most probable class is missing.",
                                  "Count where the sorted classes begin: the first position holds the best.",
                                  kind="rows")
            # No image's best: the model saw another picture than this image (a crop, a stretch,
            # swapped axes or colours), or the row was taken from something else than its probabilities.
            # helper session 7: the worst classes, other positions, the next class's names
            # were all sent to the preprocessing; either end may be the cause.
            raise CheckFailed(f"Row {row} of the {what} holds labels that are not image {row}'s {k} best, nor any "
                              f"other image's: either the model did not see image {row} as it is, or the row was "
                              "not taken from the image's most probable classes.",
                              "Check both ends for one image: what predict() does to it before the model (its size, "
                              "axes, colours), and which classes it takes from the probabilities and the names it "
                              "gives them.", kind="rows")
    if scores.shape == expected_scores.shape and same_probabilities(scores, 100 * expected_scores):
        # helper session 7: named only as scores that are not the model's
        raise CheckFailed("The labels are right, and the scores are the model's probabilities in percent (100 times "
                          "each).", "A score is a probability: a fraction of 1, as the softmax gives it.",
                          kind="scores")
    for row in range(len(labels)):
        # The model's scores, best first, beside labels in another order (sorted by name, say):
        # the labels moved, not the scores (helper session 5: named as scores that are wrong).
        if scores.shape != expected_scores.shape or not same_probabilities(scores[row], expected_scores[row]):
            continue
        tied = np.isclose(expected_scores[row][:, None], expected_scores[row][None, :], rtol=TIE).sum(axis=1) > 1
        moved = [column for column in range(k) if labels[row][column] != expected_labels[row][column]
                 and not tied[column]]
        if moved:
            raise CheckFailed(f"Row {row}'s scores are the model's {k} best, best first, but its labels are in another "
                              f"order: {labels[row][moved[0]]!r} stands beside the score of "
                              f"{expected_labels[row][moved[0]]!r}.",
                              "Each label must stand next to its own score, in score order.", kind="order")
    for row in range(len(labels)):  # each label's own score, wherever it stands in the row
        # (label, score) pairs, not a dict: some ImageNet-22k classes share a name.
        unmatched = list(zip(expected_labels[row], expected_scores[row]))
        for column, label in enumerate(labels[row]):
            match = next((pair for pair in unmatched if pair[0] == label
                          and same_probabilities(scores[row, column], pair[1])), None)
            if match is None:
                model = [float(score) for name, score in unmatched if name == label]
                if model and scores[row, column] <= 0 and np.isclose(np.exp(scores[row, column]), model[0],
                                                                       rtol=1e-3, atol=1e-7):
                    raise CheckFailed(f"The labels are right but the scores are log-probabilities: in row {row}, "
                                      f"{label!r} has score {scores[row, column]:.6g}, the logarithm of the "
                                      f"model's {model[0]:.6g}.", "A score is the probability itself.",
                                      kind="scores")
                top = expected_scores[row][:scores.shape[1]]
                if np.isclose(scores[row].sum(), 1, atol=1e-4) and np.allclose(
                        np.sort(scores[row])[::-1], top / top.sum(), rtol=1e-3, atol=1e-9):
                    # helper session 15: a softmax over the five alone was told "the scores are not"
                    raise CheckFailed(f"The labels are right but the scores of row {row} sum to 1: they are the "
                                      f"model's {scores.shape[1]} best divided by their own sum (a softmax over "
                                      f"those {scores.shape[1]} alone), not their probabilities among all classes.",
                                      "A score is the probability of its class among all of them.", kind="scores")
                rounded = how_rounded(scores, expected_scores[:, :scores.shape[1]]) \
                    if scores.shape[1] <= expected_scores.shape[1] else None
                if rounded is not None:  # helper session 13: told to look at rows and classes
                    raise CheckFailed(f"The labels are right but the scores are the model's {rounded}: in row "
                                      f"{row}, {label!r} has score {scores[row, column]:.6g}; "
                                      f"the model gives it {model[0] if model else float('nan'):.6g}.",
                                      "A score is the probability as the model gives it.", kind="scores")
                columns = scores.shape[1]
                if columns <= expected_scores.shape[1] and np.allclose(
                        scores, expected_scores[:, :columns], rtol=0.05, atol=0) and (~np.isclose(
                        scores, expected_scores[:, :columns], rtol=1e-5, atol=1e-9)).mean() > 0.8:
                    # helper session 17: an image squashed to 224x224 before the transform was sent to
                    # how a label's score is taken
                    raise CheckFailed(f"The labels are right but every score is a little off the model's: in row "
                                      f"{row}, {label!r} has score {scores[row, column]:.6g}; the model gives it "
                                      f"{model[0] if model else float('nan'):.6g}. The network saw an image a "
                                      "little unlike the one the request carries.",
                                      "What reaches the network is the image after the model's own transform, "
                                      "and nothing else.", kind="scores")
                raise CheckFailed(f"The labels are right but the scores are not: in row {row}, {label!r} has score "
                                  f"{scores[row, column]:.6g}; the model gives it "
                                  f"{model[0] if model else float('nan'):.6g}.",
                                  "A score is the softmax probability of its label's class, in that label's own "
                                  "row.", kind="scores")
            unmatched.remove(match)
    if (np.diff(scores, axis=1) >= -1e-7).all() and not (np.diff(scores, axis=1) <= 1e-7).all():
        raise CheckFailed("Within each row the scores go up: the worst of the five comes first.",
                          "Best first: sort by probability from the largest down.", kind="order")
    if not (np.diff(scores, axis=1) <= 1e-7).all():
        raise CheckFailed("Scores are not in descending order within a row.",
                          "Sort by probability, not by label or class index.", kind="order")
    ties = np.isclose(expected_scores[:, :, None], expected_scores[:, None, :], rtol=TIE).sum(axis=2) > 1
    mismatched = (labels != expected_labels) & ~ties
    if mismatched.any():
        row, column = np.argwhere(mismatched)[0]
        raise CheckFailed(f"Image {row}, rank {column + 1}: the service says {labels[row, column]!r}, "
                          f"the model says {expected_labels[row, column]!r}.",
                          "Each label must stand next to its own score, in score order.", kind="order")


def _boundary_tie_for(labels: np.ndarray, expected_labels: np.ndarray, expected_scores: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """The expected top ``k`` of each row; where the next best ties the k-th and the answer's
    row holds the next best instead, that row with the two swapped."""
    top_labels = np.array(expected_labels[:, :k], dtype=object)
    top_scores = np.array(expected_scores[:, :k], dtype=np.float64)
    if expected_labels.shape[1] <= k:
        return top_labels, top_scores
    for row in range(min(len(labels), len(top_labels))):
        next_label, next_score = expected_labels[row, k], expected_scores[row, k]
        tied = np.isclose(next_score, top_scores[row, -1], rtol=TIE)
        if tied and next_label in set(labels[row]) and top_labels[row, -1] not in set(labels[row]):
            top_labels[row, -1], top_scores[row, -1] = next_label, next_score
    return top_labels, top_scores
