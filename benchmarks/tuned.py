"""The lab's tuned serving settings, which the benchmarks measure and notebook 05 recommends, and
the verified ONNX export that the engine rows serve.

Tuned (``benchmarks/results/breakdown-2026-12-06.md`` and ``docs/performance.md`` give the
measurements): one process serves (``parallel_workers: 0``), and adaptive batching takes up to 8
requests within 2 ms. With the model in MLServer's main process, a forward pass holds its event
loop, so the requests that arrive meanwhile wait in the socket and form the next batch by
themselves; the 2 ms window only matters when the server was idle, and then it costs a single
caller at most 2 ms instead of 5 to 10.
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
