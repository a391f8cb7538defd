"""A Python server with batching a user might pick instead of MLServer: LitServe, serving the same
engine, images and answer as the lab's OpenVINO runtime (``make peers`` builds its environment,
``.venv-litserve``; ``benchmarks/peers.py`` starts this script with that environment's Python).

    .venv-litserve/bin/python benchmarks/litserve_peer.py --onnx weights/tinyvit.onnx --port P

Why LitServe among the Python servers with batching (issue 27 names LitServe, BentoML and Ray
Serve): it installs here in about a minute into a small environment (FastAPI and uvicorn, like
MLServer's REST side), it batches requests like MLServer's adaptive batching (``max_batch_size``,
``batch_timeout``) and runs the model in a separate process like a parallel worker; BentoML and
Ray Serve bring a much larger runtime (Ray's cluster processes) for the same one-model case.

REST only (LitServe has no gRPC): ``POST /v2/models/tinyvit/infer`` takes the body the lab's
load generator sends MLServer, the Open Inference Protocol's JSON with input ``payload``, BYTES
of base64-encoded JPEG/PNG files, and answers that protocol's JSON with output
``probabilities``, FP32 ``[N, 21841]``: the lab's clients need no change for this route (only
this route: LitServe speaks no other part of the protocol). The model: the verified ONNX export
in OpenVINO (f32, latency hint, ``labkit.model.export.openvino_forward``), timm's preprocessing
(``labkit.model.pixels``: this environment has no torch) and the softmax, as in
``benchmarks/triton_peer.py``. A body that is not such a request gets a 400.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import sys
from pathlib import Path

import litserve
import numpy as np
from fastapi import HTTPException
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # labkit's light modules (no MLServer, no torch in this environment)

from labkit.model.export import openvino_forward  # noqa: E402
from labkit.model.pixels import check_config, pixels  # noqa: E402

ROUTE = "/v2/models/tinyvit/infer"


class TinyViT(litserve.LitAPI):
    """At module level: LitServe pickles it into its inference worker (a spawned process)."""

    def __init__(self, onnx: Path, threads: int, **options: object):
        super().__init__(**options)
        self.onnx, self.threads = onnx, threads
        self.config = json.loads(Path(f"{onnx}.json").read_text())["data_config"]  # written by the export
        check_config(self.config)

    def setup(self, device: str) -> None:
        self.forward = openvino_forward(self.onnx, self.threads)

    def decode_request(self, request: dict) -> np.ndarray:
        try:
            [payload] = request["inputs"]
            files = [base64.b64decode(data, validate=True) for data in payload["data"]]
            if len(files) != 1:
                raise ValueError(f"one image per request, not {len(files)}")
            return pixels(np.asarray(Image.open(io.BytesIO(files[0])).convert("RGB")), self.config)
        except (KeyError, TypeError, ValueError, binascii.Error, OSError) as error:
            raise HTTPException(400, "expected an Open Inference Protocol request with one base64 image in "
                                     f"input 'payload': {error}") from None

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        logits = self.forward(batch)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, probabilities: np.ndarray) -> dict:
        return {"model_name": "tinyvit", "outputs": [{
            "name": "probabilities", "datatype": "FP32", "shape": [1, len(probabilities)],
            "data": probabilities.tolist()}]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, help="a verified export (labkit.model.export)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-batch-time", type=float, default=0.004, help="seconds")
    parser.add_argument("--threads", type=int, default=0, help="OpenVINO threads (0: its default)")
    args = parser.parse_args(argv)
    api = TinyViT(args.onnx, args.threads, max_batch_size=args.max_batch_size, batch_timeout=args.max_batch_time,
                  api_path=ROUTE)
    server = litserve.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1)
    print("LitServe serves tinyvit", flush=True)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
