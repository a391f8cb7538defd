"""NVIDIA Triton, through PyTriton, serving TinyViT with the lab's OpenVINO engine: what
:mod:`labkit.serving.triton` starts, with the Python of ``.venv-triton`` (``make triton``).

    .venv-triton/bin/python labkit/runtimes/triton_model.py --onnx weights/tinyvit.onnx \\
        --http-port P --grpc-port Q --metrics-port R

Two models, both answering ``probabilities``, FP32 ``[N, 21841]``, over the Open Inference Protocol:

* ``tinyvit``: input ``payload``, UINT8 ``[N, H, W, 3]`` pixels, the request notebook 02's clients
  send to the lab's ``tinyvit`` service, so they talk to Triton unchanged (notebook 05). Triton
  checks the datatype and shape itself (a wrong one gets a 400).
* ``tinyvit-jpeg``: input ``payload``, BYTES ``[N, 1]`` of base64-encoded JPEG/PNG files, the body
  the lab's load generator sends to MLServer over gRPC and REST alike (the benchmark's peer rows).
  It marks them ``content_type: base64``, an MLServer convention that MLServer decodes before
  ``predict()``; Triton passes parameters on and decodes nothing, so the function below decodes
  them, as MLServer does.

The same answer as the lab's OpenVINO runtime (``labkit.runtimes.engines``): the verified ONNX
export in OpenVINO (f32, latency hint, ``labkit.model.export.openvino_forward``), timm's
preprocessing (``labkit.model.pixels``, equal to timm's transform bit for bit: this environment
has no torch) and the softmax. Triton's dynamic batcher gets the tuned MLServer's batching
settings (``--max-batch-size``, ``--max-batch-time``); it batches only requests of one shape.

Why its own environment: ``nvidia-pytriton`` pins numpy below 2; the lab pins 2.4. Triton's
Python backend runs a stub linked against ``libpython3.X.so``; the dynamic linker finds the
system's copy first, whose version differs from this interpreter's standard library (here:
Debian's 3.11.2 against pyenv's 3.11.7, and every model failed to load with ``'_thread.RLock'
object has no attribute '_recursion_count'``), so this script restarts itself with its own
interpreter's library folder first on ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import signal
import sys
import tempfile
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Run as a script, this folder comes first on sys.path, where timm.py would stand in for the
# real `timm`: labkit's light modules (no MLServer, no torch here) come from the repository.
sys.path[:] = [str(REPO), *(path for path in sys.path if Path(path or ".").resolve() != HERE)]


def own_libpython_first() -> None:
    """Run again with this interpreter's libpython ahead of the system's (see above)."""
    folder = sysconfig.get_config_var("LIBDIR") or ""
    paths = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    if folder and paths[0] != folder:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([folder, *filter(None, paths)])
        os.execv(sys.executable, [sys.executable, *sys.argv])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, help="a verified export (labkit.model.export)")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-batch-time", type=float, default=0.004, help="seconds")
    parser.add_argument("--threads", type=int, default=0, help="OpenVINO threads (0: its default)")
    args = parser.parse_args(argv)
    own_libpython_first()

    import numpy as np
    from PIL import Image
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    from labkit.model.export import NotVerified, openvino_forward, verified_record
    from labkit.model.pixels import check_config, probabilities

    try:
        record = verified_record(args.onnx)  # written by the export, with timm's config
    except NotVerified as error:
        print(error, file=sys.stderr, flush=True)
        return 2
    config = record["data_config"]
    check_config(config)
    forward = openvino_forward(args.onnx, args.threads)

    @batch
    def classify_pixels(payload: np.ndarray) -> dict:
        return {"probabilities": probabilities(forward, list(payload), config)}

    @batch
    def classify_files(payload: np.ndarray) -> dict:
        files = [base64.b64decode(bytes(data), validate=True) for data in payload[:, 0]]
        images = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in files]
        return {"probabilities": probabilities(forward, images, config)}

    triton_config = TritonConfig(http_address="127.0.0.1", http_port=args.http_port, grpc_address="127.0.0.1",
                                 grpc_port=args.grpc_port, metrics_port=args.metrics_port)
    batcher = DynamicBatcher(max_queue_delay_microseconds=int(args.max_batch_time * 1e6))
    # SIGTERM ends serve() through SystemExit, so that the block below stops Triton and its stub;
    # PyTriton's workspace (the model store it writes) goes to a temp folder, not ~/.cache.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory(prefix="triton-peer-") as workspace, \
            Triton(config=triton_config, workspace=Path(workspace) / "pytriton") as triton:
        for name, function, payload in (("tinyvit", classify_pixels, Tensor(name="payload", dtype=np.uint8,
                                                                             shape=(-1, -1, 3))),
                                        ("tinyvit-jpeg", classify_files, Tensor(name="payload", dtype=np.bytes_,
                                                                                shape=(1,)))):
            triton.bind(model_name=name, infer_func=function, inputs=[payload],
                        outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(-1,))],
                        config=ModelConfig(max_batch_size=args.max_batch_size, batcher=batcher))
        print("Triton serves tinyvit and tinyvit-jpeg", flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
