"""Notebook 02's "Break it" cell, measured: a one-image service under MLServer's adaptive
batching, with six callers at once. What each caller got back is named, so a student sees why."""

import json

import numpy as np
import pytest

from labkit.client import load_image
from labkit.measure import judge_concurrent_callers, pixels_body
from labkit.serving import ModelServer
from labkit.workspace import service_folder
from tests.helpers.lab import FREE_PORTS
from tests.helpers.solutions import solution_cell, written

pytestmark = pytest.mark.slow

BATCHING = {"max_batch_size": 6, "max_batch_time": 0.05}
DECORATED = "    @decode_args\n    async def predict(self, payload: np.ndarray) -> np.ndarray:\n"
# The same service without the course text's decorator: it decodes and encodes by hand.
UNDECORATED = ("    async def predict(self, request):\n"
               "        from mlserver.codecs import NumpyCodec\n"
               "        from mlserver.types import InferenceResponse\n"
               "        payload = NumpyCodec.decode_input(request.inputs[0])\n")
FORWARD = "            return self.model(batch).softmax(dim=-1).numpy()\n"
FORWARD_ENCODED = ("            probabilities = self.model(batch).softmax(dim=-1).numpy()\n"
                   "        return InferenceResponse(model_name=self.name,\n"
                   "                                 outputs=[NumpyCodec.encode_output('output-0', probabilities)])\n")


def one_image_service(folder, checkpoint, decorated: bool):
    """Notebook 01's solution: one [H, W, 3] image per request."""
    service_folder(folder, checkpoint)
    code = written(solution_cell("01_first_service.ipynb", "first-service"))
    assert DECORATED in code and FORWARD in code
    if not decorated:
        code = code.replace(DECORATED, UNDECORATED).replace(FORWARD, FORWARD_ENCODED)
    (folder / "serve-model.py").write_text(code)
    (folder / "model-settings.json").write_text(json.dumps({"name": folder.name,
                                                            "implementation": "serve-model.TinyViTModel"}))
    (folder / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 0}))
    return folder


@pytest.fixture(scope="module")
def callers(reference):
    images = [np.roll(load_image(), 60 * caller, axis=1) for caller in range(6)]
    return [pixels_body(image) for image in images], reference.probabilities(images)


def test_the_course_texts_decorated_predict_gets_a_400_from_adaptive_batching_that_names_why(
        tmp_path, checkpoint, callers):
    # MLServer 1.7.1: the batcher looks for the model behind predict() through __wrapped__,
    # which decode_args' functools.wraps points at the undecorated function, bound to nothing.
    folder = one_image_service(tmp_path / "decorated", checkpoint, decorated=True)
    bodies, expected = callers
    with ModelServer(folder, **BATCHING, **FREE_PORTS) as server:
        judged = judge_concurrent_callers(server.infer_url, bodies, expected)
    assert (judged["HTTP status"] == 400).all() and (judged.answer == "failed").all(), judged
    assert judged["came back"].str.contains("can't be used for adaptive batching: method is not bound").all()


def test_an_undecorated_one_image_predict_answers_200_with_rows_that_are_not_the_callers(
        tmp_path, checkpoint, callers):
    # The merged [6H, W, 3] array is one tall image: one row of probabilities comes back, and
    # MLServer splits it by the callers' first axis (their image heights), so no caller gets
    # its own answer and none is told.
    folder = one_image_service(tmp_path / "undecorated", checkpoint, decorated=False)
    bodies, expected = callers
    height = load_image().shape[0]
    with ModelServer(folder, **BATCHING, **FREE_PORTS) as server:
        judged = judge_concurrent_callers(server.infer_url, bodies, expected)
    assert (judged["HTTP status"] == 200).all() and (judged.answer == "wrong").all(), judged
    assert (judged["came back"] == f"output-0, shape [{height}, 21841]").all(), judged
