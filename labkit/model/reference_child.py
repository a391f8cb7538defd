"""The checks' reference, asked once: ``python -m labkit.model.reference_child ONNX``.

Reads images as an ``.npz`` file on stdin (uint8 ``[H, W, 3]`` arrays, in order), writes their
probabilities ``[N, 21841]`` float32 as an ``.npy`` file on stdout, and exits: ONNX Runtime and
its session live only as long as one question (:class:`labkit.model.reference.ChildReference`).
"""

from __future__ import annotations

import io
import sys

import numpy as np

from labkit.model.reference import OnnxReference


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m labkit.model.reference_child ONNX < images.npz > probabilities.npy",
              file=sys.stderr)
        return 2
    with np.load(io.BytesIO(sys.stdin.buffer.read())) as received:
        images = [received[f"arr_{index}"] for index in range(len(received.files))]
    answer = io.BytesIO()
    np.save(answer, OnnxReference(argv[0]).probabilities(images).astype(np.float32))
    sys.stdout.buffer.write(answer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
