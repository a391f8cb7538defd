"""The lab's tuned serving settings, which the benchmarks measure and notebook 05 recommends, and
the verified ONNX export that the engine rows serve.

Tuned (``docs/performance.md`` gives the measurements, ``benchmarks/results/`` the records): one
process serves (``parallel_workers: 0``), and adaptive batching takes up to 8 requests within
4 ms. With the model in MLServer's main process, a forward pass holds its event loop, so the
requests that arrive meanwhile wait (over REST in the socket, over gRPC in the gRPC layer) and
reach the batcher together when it ends. Over gRPC they arrive a few milliseconds apart: a 2 ms
window made batches of 1.5 images at 8 callers, 4 to 10 ms about the engine's best; at one
caller every request waits the whole window, so 4 ms, not 10. One worker instead adds the hop
to it and back, and its batches stay small because the main process sends each one as soon as
its window closes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from labkit.model import export

TUNED = {"parallel_workers": 0, "max_batch_size": 8, "max_batch_time": 0.004}


def verified_onnx(checkpoint) -> Path:
    """weights/tinyvit.onnx when it is a verified export of ``checkpoint``; otherwise a fresh
    export (verified) in a temp folder."""
    try:
        record = export.verified_record(export.DEFAULT_ONNX)
        if record["checkpoint_sha256"] == export.sha256(checkpoint):
            return export.DEFAULT_ONNX
    except export.NotVerified:
        pass
    path = Path(tempfile.mkdtemp()) / "tinyvit.onnx"
    export.export(checkpoint, path)
    return path
