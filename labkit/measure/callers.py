"""Several callers at once, each answer judged against the in-process model (notebook 02's
"break it, then fix it": what adaptive batching does to a service without a batch axis)."""

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import requests
from mlserver.types import InferenceRequest, InferenceResponse

from labkit.contract import INPUT_NAME

if TYPE_CHECKING:
    import pandas


def judge_concurrent_callers(url: str, bodies: list, expected: np.ndarray) -> "pandas.DataFrame":
    """POST ``bodies[i]`` (JSON text) from caller ``i``, all at once; one row per caller:
    HTTP status, whether the answer is ``right`` (this caller's own probabilities),
    ``wrong`` (a 200 that is not: someone else's row, an empty or malformed output) or
    ``failed`` (an error status), and what ``came back``: the output's name and declared shape,
    or the server's error message.

    Args:
        url: the model's ``.../infer`` URL.
        bodies: one request body per caller.
        expected: row ``i`` is caller ``i``'s right probabilities.
    """
    import pandas as pd

    def call(body: str) -> requests.Response:
        return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(call, bodies))
    rows = [{"caller": index, "HTTP status": answer.status_code, "answer": _judge(answer, expected[index]),
             "came back": _came_back(answer)}
            for index, answer in enumerate(answers)]
    return pd.DataFrame(rows).set_index("caller")


def _came_back(answer: requests.Response) -> str:
    try:
        content = answer.json()
    except ValueError:
        return answer.text[:120]
    if answer.status_code != 200:
        return str(content.get("error", content))[:120] if isinstance(content, dict) else str(content)[:120]
    outputs = content.get("outputs") or [{}]
    return f"{outputs[0].get('name')}, shape {outputs[0].get('shape')}"


def _judge(answer: requests.Response, expected: np.ndarray) -> str:
    if answer.status_code != 200:
        return "failed"
    from mlserver.codecs import NumpyCodec

    try:
        output = InferenceResponse.model_validate(answer.json()).outputs[0]
        probabilities = NumpyCodec.decode_output(output)
    except ValueError:
        return "wrong"  # a shape that its own data does not fill
    if probabilities.size != expected.size:
        return "wrong"
    return "right" if np.allclose(probabilities.reshape(-1), expected, rtol=1e-3, atol=1e-6) else "wrong"


def pixels_body(image: np.ndarray) -> str:
    """The JSON body of a NumpyCodec request for ``image`` as it is (any shape)."""
    from mlserver.codecs import NumpyCodec

    return InferenceRequest(inputs=[NumpyCodec.encode_input(INPUT_NAME, image)]).model_dump_json()
