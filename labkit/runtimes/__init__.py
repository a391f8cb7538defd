"""Only what MLServer imports by ``implementation``: the timm runtime configured in JSON
(``timm.TimmClassifier``) and the ONNX Runtime and OpenVINO runtimes of the exported model
(``engines``). They depend on ``labkit.model`` and nothing above it."""

from typing import TYPE_CHECKING

from labkit.faces import lazy_face

# The face: each name is imported from its module when first read (labkit/faces.py).
_WHERE = {
    "openvino_forward": "engines",
    "TimmClassifier": "timm",
    "OnnxRuntimeTinyViT": "engines",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_face(__name__, _WHERE)

if TYPE_CHECKING:  # what the names are, for readers and mypy
    from labkit.runtimes.engines import OnnxRuntimeTinyViT, openvino_forward  # noqa: F401 (names of the face)
    from labkit.runtimes.timm import TimmClassifier  # noqa: F401 (names of the face)
