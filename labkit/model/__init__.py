"""TinyViT in this process: the lab's service imported as MLServer imports it, the reference
answers the checks compare with, the weights, the ONNX export and the Hugging Face folder.
With ``runtimes/``, the only place that imports torch or timm (lazily, where a model runs)."""

from typing import TYPE_CHECKING

from labkit.faces import lazy_face

# The face: each name is imported from its module when first read (labkit/faces.py).
_WHERE = {
    "reference_model": "reference",
    "in_process_model": "reference",
    "labels": "weights",
    "DEFAULT_ONNX": "export",
    "compare": "export",
    "comparison_batch": "export",
    "hf_service": "hf_service",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_face(__name__, _WHERE)

if TYPE_CHECKING:  # what the names are, for readers and mypy
    from labkit.model import hf_service  # noqa: F401 (names of the face)
    from labkit.model.export import DEFAULT_ONNX, compare, comparison_batch  # noqa: F401 (names of the face)
    from labkit.model.reference import in_process_model, reference_model  # noqa: F401 (names of the face)
    from labkit.model.weights import labels  # noqa: F401 (names of the face)
