"""TinyViT (timm ``tiny_vit_5m_224.dist_in22k``, 21,841 ImageNet-22k classes) on MLServer.

Request: one input ``payload``, a batch of images: UINT8 pixels ``[N, H, W, 3]`` (NumpyCodec)
or BYTES ``[N]`` of PNG/JPEG files. Response: ``probabilities``, FP32 ``[N, 21841]``.

MLServer puts this folder on ``sys.path`` while it imports this file, so the plumbing lives
next to it: ``image_batch`` decodes and checks the request, ``model_weights`` finds the
checkpoint, ``cpu_threads`` splits the cores, ``freed_memory`` returns a batch's freed memory.

Why no ``@decode_args`` and why the batch axis: with adaptive batching, MLServer
concatenates the requests of several callers along axis 0 before ``predict()`` sees them.
A batch axis keeps each caller's images apart, and decoding by hand turns a request that
does not fit into a 400 that says what to send, instead of a 500.

Why torch and timm are imported inside the methods: with ``parallel_workers`` 1 or more,
MLServer's main process imports this file too, only to find the class, and never runs the
model. An import at the top would give that process a torch of its own, in memory and in the
time until the server is ready (``benchmarks/starts.py`` measures both).
"""

import logging

import mlserver
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from PIL import Image

from cpu_threads import torch_threads
from freed_memory import return_freed_memory, wanted as freed_memory_wanted
from image_batch import decode_images
from model_weights import extra_parameters, load_tinyvit

OUTPUT_NAME = "probabilities"
BATCH_SIZE_METRIC = "tinyvit_batch_size"
logger = logging.getLogger("mlserver.tinyvit")


class TinyViTModel(MLModel):
    async def load(self) -> bool:
        """Build the network once per worker, with its preprocessing."""
        import torch  # where the model runs (see the top of this file)
        from timm.data import create_transform, resolve_data_config

        extra = extra_parameters(self.settings)
        threads, self.return_freed_memory = torch_threads(extra), freed_memory_wanted(extra)
        torch.set_num_threads(threads)
        logger.info("TinyViT uses %d torch thread(s) in this process", threads)
        self.model = await load_tinyvit(self.settings)
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        # Shown on /metrics (only with parallel_workers > 0: MLServer issue #1151).
        mlserver.register(BATCH_SIZE_METRIC, "Images per predict() call, after adaptive batching")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Probabilities for every image of the (possibly merged) batch."""
        images = decode_images(payload)
        mlserver.log(**{BATCH_SIZE_METRIC: len(images)})
        probabilities = self.classify(images)
        if self.return_freed_memory:  # else glibc keeps a large batch's activations (freed_memory)
            return_freed_memory()
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(OUTPUT_NAME, probabilities)],
        )

    def classify(self, images: list[np.ndarray]) -> np.ndarray:
        """Probabilities ``[N, 21841]`` for a list of ``[H, W, 3]`` uint8 images."""
        import torch  # where the model runs (see the top of this file)

        batch = torch.stack([self.transform(Image.fromarray(image)) for image in images])
        with torch.inference_mode():
            return self.model(batch).softmax(dim=-1).numpy()

    async def unload(self) -> bool:
        """Drop the network when MLServer unloads the model (also after a failed load)."""
        self.model = None  # type: ignore[assignment]  # released; MLServer calls no predict() after unload
        return True
