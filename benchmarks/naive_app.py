"""The naive way to serve TinyViT: PyTorch behind a FastAPI endpoint.

What the course text argues against, written the way a first attempt looks: one
process, one request at a time through the model, probabilities returned as a
JSON list. It takes the same body as the tuned MLServer (Open Inference Protocol
JSON with base64 JPEG files), so a comparison measures the serving design, not
the payload.  Run: ``TINYVIT_WEIGHTS=... uvicorn benchmarks.naive_app:app``.
"""

import base64
import io
import os

import torch
from fastapi import FastAPI, HTTPException, Request
from PIL import Image

from labkit.model import weights

app = FastAPI()
model = weights.load_model(os.environ.get("TINYVIT_WEIGHTS", str(weights.DEFAULT_CHECKPOINT)))
transform = weights.preprocess(model)


@app.post("/v2/models/tinyvit/infer")
async def infer(request: Request):
    body = await request.json()
    try:
        files = [base64.b64decode(item) for item in body["inputs"][0]["data"]]
        images = [Image.open(io.BytesIO(data)).convert("RGB") for data in files]
    except Exception as error:
        raise HTTPException(400, f"send base64 JPEG/PNG files: {error}") from None
    batch = torch.stack([transform(image) for image in images])
    with torch.inference_mode():
        probabilities = model(batch).softmax(dim=-1)
    return {"outputs": [{"name": "probabilities", "shape": list(probabilities.shape), "datatype": "FP32",
                         "data": probabilities.ravel().tolist()}]}
