"""Notebook 01's file checks, notebook 02's request check and notebook 06's packaging
checks: a right answer passes, each plausible mistake fails with a message that names it."""

import json
import re
import shutil
import socket

import numpy as np
import pytest
import requests
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from labkit import checks
from labkit import checks as folder_checks
from labkit.serving import packaging
from labkit.serving.terminal import terminal
from labkit.workspace import lab_service_copy, service_folder
from tests.helpers.solutions import solution_cell, written


def mutate(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the solution"
    return text.replace(old, new)


@pytest.fixture
def folder(tmp_path, checkpoint):
    folder = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    for grade_id, name in (("model-settings", "model-settings.json"), ("server-settings", "settings.json"),
                           ("first-service", "serve-model.py")):
        (folder / name).write_text(written(solution_cell("01_first_service.ipynb", grade_id)))
    return folder


def test_the_solution_files_pass(folder, checkpoint, capsys):
    folder_checks.model_settings(folder)
    folder_checks.server_settings(folder)
    folder_checks.service(folder, checkpoint)
    assert capsys.readouterr().out.count("✔") == 3


@pytest.mark.parametrize("old, new, message", [
    ('"serve-model.TinyViTModel"\n', '"serve-model.TinyViTModel",\n', "trailing comma on line 3"),
    ('"serve-model.TinyViTModel"', '"serve-model.py.TinyViTModel"', "not a file path"),
    ('"serve-model.TinyViTModel"', '"serve-model"', "<python file>.<class>"),
    ('"name": "my-tinyvit",', '', 'no "name"'),
    ('"name": "my-tinyvit",', '"name": "tinyvit",', "this exercise's model is called 'my-tinyvit'"),
    # implementation must resolve: the file, the class, a subclass of MLModel.
    ("serve-model.TinyViTModel", "serve_model.TinyViTModel", "names serve_model.py"),
    ("serve-model.TinyViTModel", "serve-model.TinyVitModel", "defines no class TinyVitModel"),
    ("serve-model.TinyViTModel", "serve-model.Image", "not a subclass of mlserver.MLModel"),
    # a unit mistake that "works" under load: milliseconds written as seconds.
    ('"name": "my-tinyvit",', '"name": "my-tinyvit", "max_batch_size": 8, "max_batch_time": 10,',
     "wait 10 s for company"),
    ('"name": "my-tinyvit",', '"name": "my-tinyvit", "max_batch_size": 2.5,', "whole number"),
    # grades the same everywhere: a uri copied from runtimes/ works here and not where grading runs.
    ('"name": "my-tinyvit",', '"name": "my-tinyvit", "parameters": {"uri": "../../weights/tinyvit.safetensors"},',
     "points outside my-tinyvit/"),
])
def test_model_settings_mistakes_are_named(folder, old, new, message):
    path = folder / "model-settings.json"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message.replace("(", r"\(").replace(".", r"\.")):
        folder_checks.model_settings(folder)


@pytest.mark.parametrize("old, new, message", [
    ('"host": "127.0.0.1",', '', "0.0.0.0"),
    ('"host": "127.0.0.1",', '"host": "0.0.0.0",', "every network interface"),
    ('"debug": false', '"debug": false, "max_batch_size": 8, "max_batch_time": 0.01', "ignored, silently"),
    ('"parallel_workers": 0', '"parallel_workers": "two"', "whole number"),
])
def test_server_settings_mistakes_are_named(folder, old, new, message):
    path = folder / "settings.json"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message):
        folder_checks.server_settings(folder)


def test_an_empty_settings_file_says_so(folder):
    # What the released exercise cell writes when it is run untouched: its %%writefile line alone.
    (folder / "model-settings.json").write_text("")
    with pytest.raises(checks.CheckFailed, match="is empty"):
        folder_checks.model_settings(folder)


def test_settings_written_before_the_code_pass_the_write_check_but_not_the_graded_one(folder, capsys):
    (folder / "serve-model.py").unlink()
    folder_checks.model_settings(folder, require_code=False)
    assert "checked once serve-model.py exists" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match=r"names serve-model\.py"):
        folder_checks.model_settings(folder)


@pytest.mark.parametrize("batching, message", [
    (None, "adaptive batching stays off"),
    ('"max_batch_size": 1, "max_batch_time": 0.01,', "batching stays off"),
    ('"max_batch_size": 2, "max_batch_time": 0.5,', "the exercise asks for other values"),
    ('"max_batch_time": 0.010, "max_batch_size": 8,', None),  # another order, another spelling
])
def test_batching_as_the_exercise_asks(folder, batching, message):
    path = folder / "model-settings.json"
    if batching:
        path.write_text(mutate(path.read_text(), '"name": "my-tinyvit",', '"name": "my-tinyvit", ' + batching))
    if message is None:
        folder_checks.model_settings(folder, batching=(8, 0.01))
        return
    with pytest.raises(checks.CheckFailed, match=message):
        folder_checks.model_settings(folder, batching=(8, 0.01))


def test_a_service_that_does_not_import_costs_the_service_exercise_only(folder, checkpoint):
    path = folder / "serve-model.py"
    path.write_text(path.read_text().replace("import torch\n", "import torch\nimport no_such_module\n", 1))
    folder_checks.model_settings(folder)  # it names the class the file defines
    with pytest.raises(checks.CheckFailed, match="Importing serve-model.py failed"):
        folder_checks.service(folder, checkpoint)


def test_a_service_that_ignores_its_image_fails(folder, checkpoint):
    # A fixed image instead of the payload: right for one image, wrong for the next.
    path = folder / "serve-model.py"
    path.write_text(mutate(path.read_text(), "Image.fromarray(payload)", "Image.fromarray(np.zeros((224, 224, 3), "
                                                                           "np.uint8))"))
    with pytest.raises(checks.CheckFailed, match="differ from TinyViT's|does not classify the image"):
        folder_checks.service(folder, checkpoint)


def test_01s_server_settings_ask_for_debug_off(folder):
    path = folder / "settings.json"
    folder_checks.server_settings(folder, expected_workers=0, debug_off=True)
    path.write_text('{"parallel_workers": 0, "host": "localhost", "debug": false}')
    folder_checks.server_settings(folder, expected_workers=0, debug_off=True)
    path.write_text('{"host": "127.0.0.1", "parallel_workers": 0}')
    with pytest.raises(checks.CheckFailed, match="defaults to true"):
        folder_checks.server_settings(folder, expected_workers=0, debug_off=True)
    path.write_text('{"host": "127.0.0.1", "debug": false}')  # workers left at MLServer's default
    with pytest.raises(checks.CheckFailed, match="sets no parallel_workers, so MLServer runs its default, 1"):
        folder_checks.server_settings(folder, expected_workers=0, debug_off=True)


@pytest.mark.parametrize("implementation", ["serve_model.TinyViTModel", "serve-model.TinyVitModel"])
def test_a_wrong_implementation_costs_the_settings_exercise_only(folder, checkpoint, implementation):
    # One mistake, one exercise: the service check loads the class the exercise names.
    path = folder / "model-settings.json"
    path.write_text(mutate(path.read_text(), "serve-model.TinyViTModel", implementation))
    with pytest.raises(checks.CheckFailed):
        folder_checks.model_settings(folder)
    folder_checks.service(folder, checkpoint)
    path.write_text(path.read_text().replace('"implementation"', '"implementation",'))  # not even JSON
    folder_checks.service(folder, checkpoint)


def test_a_class_renamed_in_the_service_file_costs_the_service_exercise_only(folder, checkpoint, capsys):
    # helper session 5: `class TinyVitModel` in serve-model.py failed model-settings-check too, whose
    # hint said to change "implementation", which was right.
    path = folder / "serve-model.py"
    path.write_text(mutate(path.read_text(), "class TinyViTModel(", "class TinyVitModel("))
    folder_checks.model_settings(folder)
    assert "defines no class of that name" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="defines no class TinyViTModel") as caught:
        folder_checks.service(folder, checkpoint)
    assert "The exercise's class is called TinyViTModel" in caught.value.hint and "implementation" not in \
        caught.value.hint


def test_a_settings_file_that_does_not_read_stops_the_start_with_its_name_and_a_check_starts_without_it(folder):
    # helper session 5: a trailing comma in settings.json raised a bare JSONDecodeError from the
    # lab's code at the start, and crashed Exercise 4's check, which starts the service itself.
    from labkit.serving.runcopy import ServerOptions, run_server_settings
    from labkit.serving.server import ModelServer, ServerStartError

    path = folder / "settings.json"
    path.write_text(mutate(path.read_text(), "\"debug\": false", "\"debug\": false,"))
    with pytest.raises(ServerStartError, match="my-tinyvit/settings.json is not valid JSON: .*line 5"):
        ModelServer(folder, http_port=0, grpc_port=0, metrics_port=0).start(progress=False)
    given = ServerOptions(model_settings={"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel"})
    assert run_server_settings(folder, given, {"http_port": 1})["host"] == "127.0.0.1"
    assert "not a server" in repr(ModelServer(folder)) or "stopped" in repr(ModelServer(folder))


@pytest.mark.parametrize("file, old, new, message", [
    ("serve-model.py", "class TinyViTModel(", "class MyModel(", "asks for a class TinyViTModel"),
    ("serve-model.py", ".softmax(dim=-1)", "", "logits, not probabilities"),
    # helper session 5: these were all called logits, or blamed on the preprocessing.
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).mul(100)", "percentages, not probabilities"),
    ("serve-model.py", ".softmax(dim=-1)", ".sigmoid()", "a probability per class on its own"),
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).softmax(dim=-1)", "changed after the network"),
    # helper session 5: named as predict()'s TypeError, and as a ValueError load() never raised
    ("serve-model.py", "await load_tinyvit(", "load_tinyvit(", r"load\(\) kept a coroutine in self.model"),
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).half()", "float16 probabilities"),
    # helper session 8: passed, and charged to 01's declaration check
    ("serve-model.py", ".softmax(dim=-1).numpy()", ".softmax(dim=-1).numpy()[None]",
     r"returned shape \[1, 1, 21841\] for one image"),
    # helper session 6: named as changed after the network (its top ten ranks are TinyViT's)
    ("serve-model.py", "resolve_data_config({}, model=self.model)",
     "{**resolve_data_config({}, model=self.model), 'interpolation': 'bilinear'}",
     "differ from TinyViT's for the same image"),
    ("serve-model.py", "    async def load(self) -> bool:\n        ### BEGIN SOLUTION\n"
     "        self.model = await load_tinyvit(self.settings)\n",
     "    def load(self) -> bool:\n        ### BEGIN SOLUTION\n"
     "        self.model = __import__('asyncio').run(load_tinyvit(self.settings))\n",
     r"load\(\) is a plain function \(def\) that returned True"),
    ("serve-model.py", "        return True\n", "", "returned None"),
    # helper session 6: an answer kept by the payload's shape passed (the two images always
    # differed in size).
    ("serve-model.py", "    async def predict(self, payload: np.ndarray) -> np.ndarray:\n",
     "    async def predict(self, payload: np.ndarray) -> np.ndarray:\n"
     "        if payload.shape in getattr(self, 'kept', {}):\n            return self.kept[payload.shape]\n"
     "        self.kept = getattr(self, 'kept', {})\n        self.kept[payload.shape] = await self.answer(payload)\n"
     "        return self.kept[payload.shape]\n\n    async def answer(self, payload: np.ndarray) -> np.ndarray:\n",
     r"same probabilities as for image 1 \(an image of the same size, whose border"),
    # helper session 7: caches keyed by a fragment of the image, and a crop before the
    # transform, passed (the twin was cut to the smaller image's size, the photo's crop too).
    ("serve-model.py", "    async def predict(self, payload: np.ndarray) -> np.ndarray:\n",
     "    async def predict(self, payload: np.ndarray) -> np.ndarray:\n"
     "        key = payload[0].tobytes()\n        self.kept = getattr(self, 'kept', {})\n"
     "        if key not in self.kept:\n            self.kept[key] = await self.answer(payload)\n"
     "        return self.kept[key]\n\n    async def answer(self, payload: np.ndarray) -> np.ndarray:\n",
     r"same probabilities as for image 1 \(an image of the same size, whose border"),
    ("serve-model.py", "    async def predict(self, payload: np.ndarray) -> np.ndarray:\n",
     "    async def predict(self, payload: np.ndarray) -> np.ndarray:\n"
     "        key = tuple(payload[0, 0])\n        self.kept = getattr(self, 'kept', {})\n"
     "        if key not in self.kept:\n            self.kept[key] = await self.answer(payload)\n"
     "        return self.kept[key]\n\n    async def answer(self, payload: np.ndarray) -> np.ndarray:\n",
     r"same probabilities as for image 1 \(an image of the same size, whose border"),
    ("serve-model.py", "Image.fromarray(payload)", "Image.fromarray(payload[:224, :224])",
     "differ from TinyViT's for the same image"),
    ("serve-model.py", "from model_weights import load_tinyvit", "from model_weight import load_tinyvit",
     "Importing serve-model.py failed"),
    # helper session 7: sent to the preprocessing, and called logits
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).sort(dim=-1, descending=True).values",
     "TinyViT's probabilities in another order"),
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).topk(1).values.new_zeros(1, 21841).scatter(1, "
     "self.model(batch).softmax(dim=-1).topk(1).indices, self.model(batch).softmax(dim=-1).topk(1).values)",
     "1 of them are not 0"),
    # helper session 6: only Python's words about the request
    ("serve-model.py", "    @decode_args\n", "", "was given MLServer's InferenceRequest itself"),
    # helper session 6: told to check the import lines
    ("serve-model.py", "async def predict(self, payload: np.ndarray) -> np.ndarray:",
     "async def predict(self, payload: np.ndarray) -> list:", r"failed on line \d+ \(@decode_args\): MLServer's "
     "@decode_args found no codec"),
])
def test_service_mistakes_are_named(folder, checkpoint, file, old, new, message):
    path = folder / file
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message):
        folder_checks.service(folder, checkpoint)


def test_a_load_that_returns_a_true_value_other_than_true_passes(folder, checkpoint, capsys):
    # helper session 6: `return self.model` was refused as "never ready" with the network's
    # 17 kB repr; MLServer asks only whether the value is true, and served it.
    path = folder / "serve-model.py"
    path.write_text(mutate(path.read_text(), "        return True\n", "        return self.model\n"))
    folder_checks.service(folder, checkpoint)
    assert "✔" in capsys.readouterr().out
    path.write_text(mutate(path.read_text(), "        return self.model\n", "        return []\n"))
    with pytest.raises(checks.CheckFailed, match=r"load\(\) returned \[\], so MLServer would never mark"):
        folder_checks.service(folder, checkpoint)


def test_an_untouched_service_says_it_is_not_written(folder, checkpoint):
    code = (folder / "serve-model.py").read_text()
    start, end = code.index("        ### BEGIN SOLUTION"), code.index("### END SOLUTION") + len("### END SOLUTION")
    (folder / "serve-model.py").write_text(code[:start] + "        raise NotImplementedError()" + code[end:])
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        folder_checks.service(folder, checkpoint)


# ---------------------------------------------------------------- notebook 02's request check

def remote(server, batch_axis=True, name="payload", dtype=None, use_dict=False, fixed_image=None, pydantic1=False):
    """classify_remote as a student might write it, right or with one mistake."""
    def classify_remote(image):
        image = fixed_image if fixed_image is not None else image
        array = image[None] if batch_axis else image
        if dtype is not None:
            array = array.astype(dtype)
        request = InferenceRequest(inputs=[NumpyCodec.encode_input(name, array)])
        if use_dict:
            answer = requests.post(server.infer_url, json=request.dict(), timeout=60)
        elif pydantic1:  # pydantic 1's other methods, deprecated alike (helper session 5: they passed)
            answer = requests.post(server.infer_url, data=request.json(), timeout=60,
                                   headers={"Content-Type": "application/json"})
            answer.raise_for_status()
            return NumpyCodec.decode_output(InferenceResponse.parse_obj(answer.json()).outputs[0])
        else:
            answer = requests.post(server.infer_url, data=request.model_dump_json(), timeout=60,
                                   headers={"Content-Type": "application/json"})
        answer.raise_for_status()
        return NumpyCodec.decode_output(InferenceResponse.model_validate(answer.json()).outputs[0])
    return classify_remote


@pytest.mark.slow
def test_the_request_check(server, checkpoint, cat, capsys):
    checks.remote_classifier(remote(server), checkpoint)
    assert "✔" in capsys.readouterr().out
    cases = [(dict(batch_axis=False), "without the batch axis"), (dict(name="image"), "named 'image'"),
             (dict(dtype=np.float32), "datatype is FP32"), (dict(use_dict=True), "deprecated"),
             (dict(pydantic1=True), r"uses \.json\(\), which is deprecated"),
             (dict(fixed_image=cat), "same probabilities for 3 different images")]
    for mistake, message in cases:
        with pytest.raises(checks.CheckFailed, match=message) as caught:
            checks.remote_classifier(remote(server, **mistake), checkpoint)
        # Feedback names the mistake; it does not hand over the line that fixes it.
        assert not any(code in str(caught.value) for code in ("[None]", "np.newaxis", "image["))
    stored = remote(server)(cat)
    with pytest.raises(checks.CheckFailed, match="sent no request"):
        checks.remote_classifier(lambda image: stored, checkpoint)
    # helper session 8: named as an answer kept, and sent to the pixels
    right = remote(server)
    with pytest.raises(checks.CheckFailed, match="do not sum to 1: every one of them is 0"):
        checks.remote_classifier(lambda image: right(image).astype(np.uint8), checkpoint)
    with pytest.raises(checks.CheckFailed, match="do not sum to 1: they are log-probabilities"):
        checks.remote_classifier(lambda image: np.log(right(image)), checkpoint)
    with pytest.raises(checks.CheckFailed, match=r"returned shape \[21841, 1\]"):
        checks.remote_classifier(lambda image: right(image).reshape(-1, 1), checkpoint)
    # helper session 7: an answer kept by the image's first row passed (no two drawn images shared one)
    kept = {}

    def by_first_row(image):
        key = image[0].tobytes()
        if key not in kept:
            kept[key] = remote(server)(image)
        return kept[key]

    with pytest.raises(checks.CheckFailed, match=r"the answer it gave for .*\(an image of the same size, whose border"):
        checks.remote_classifier(by_first_row, checkpoint)


@pytest.mark.slow
def test_the_request_check_passes_right_clients_that_do_not_use_requests(server, checkpoint, capsys):
    # helper session 4: a gRPC client built as notebook 02's own gRPC cell, and a urllib client,
    # got 0 of 3 ("sent no request"): only requests' calls were recorded. The server's own
    # count of inference requests sees every client.
    import urllib.request

    import grpc
    from mlserver.grpc import dataplane_pb2_grpc
    from mlserver.grpc.converters import ModelInferRequestConverter, ModelInferResponseConverter

    def over_grpc(image):
        """Sends the image over gRPC (no localhost:8080 typed here: server.grpc_address)."""
        request = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", image[None])])
        message = ModelInferRequestConverter.from_types(request, model_name="tinyvit", model_version=None)
        with grpc.insecure_channel(server.grpc_address) as channel:
            reply = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=60)
        return NumpyCodec.decode_output(ModelInferResponseConverter.to_types(reply).outputs[0])

    def over_urllib(image):
        assert not server.infer_url.endswith(":8080")  # checks an address, does not send to it
        body = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", image[None])]).model_dump_json()
        call = urllib.request.Request(server.infer_url, data=body.encode(),
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(call, timeout=60) as answer:
            return NumpyCodec.decode_output(InferenceResponse.model_validate_json(answer.read()).outputs[0])

    for client in (over_grpc, over_urllib):
        checks.remote_classifier(client, checkpoint)
        assert "✔ classify_remote answered 3 images" in capsys.readouterr().out


@pytest.mark.slow
def test_the_request_check_names_what_the_client_did(server, checkpoint):
    # helper session 4: each was named as something the function did not do ("build the request
    # from the argument", "input is named None" with the name handed over, "before any request
    # was sent", "send model_dump_json() as the body" to a student who did).
    def post(body, **kwargs):
        answer = requests.post(server.infer_url, timeout=60, **kwargs, data=body) if body is not None else \
            requests.post(server.infer_url, timeout=60, **kwargs)
        answer.raise_for_status()
        return NumpyCodec.decode_output(InferenceResponse.model_validate(answer.json()).outputs[0])

    def request_of(array):
        return InferenceRequest(inputs=[NumpyCodec.encode_input("payload", array)])

    def softmax_again(image):
        probabilities = post(request_of(image[None]).model_dump_json())
        shifted = np.exp(probabilities - probabilities.max())
        return shifted / shifted.sum()

    def scaled_pixels(image):
        return post(request_of((image[None] / 255).astype(np.uint8)).model_dump_json())

    def encoded_twice(image):
        return post(None, json=request_of(image[None]).model_dump_json())

    def one_tensor(image):
        return post(None, json=request_of(image[None]).inputs[0].model_dump())

    def said_plain_text(image):  # helper session 8: the server's pydantic text alone
        return post(request_of(image[None]).model_dump_json(), headers={"Content-Type": "text/plain"})

    def times_out(image):  # waits a millisecond for an answer that takes longer
        return requests.post(server.infer_url, data=request_of(image[None]).model_dump_json(), timeout=0.001)

    kept = {}

    def kept_by_shape(image):  # helper session 6: passed, the images always differed in size
        if image.shape not in kept:
            kept[image.shape] = post(request_of(image[None]).model_dump_json())
        return kept[image.shape]

    def percent(image):
        return 100 * post(request_of(image[None]).model_dump_json())

    def half_precision(image):  # helper session 7: passed here, refused in 01's service
        return post(request_of(image[None]).model_dump_json()).astype(np.float16)

    def mirrored(image):
        return post(request_of(np.ascontiguousarray(image[None, :, ::-1])).model_dump_json())

    def grpc_to(model, address=None):
        import grpc
        from mlserver.grpc import dataplane_pb2_grpc
        from mlserver.grpc.converters import ModelInferRequestConverter

        def over_grpc(image):
            message = ModelInferRequestConverter.from_types(request_of(image[None]), model_name=model,
                                                            model_version=None)
            with grpc.insecure_channel(address or server.grpc_address) as channel:
                dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=60)
        return over_grpc

    def urllib_to(path):
        import urllib.request

        def over_urllib(image):
            urllib.request.urlopen(urllib.request.Request(
                server.infer_url.replace("/v2/models/tinyvit/infer", path),
                data=request_of(image[None]).model_dump_json().encode(),
                headers={"Content-Type": "application/json"}), timeout=60)
        return over_urllib

    # helper session 6: each was blamed on a request body ("send model_dump_json()"): the
    # check's own read of /metrics, through requests, was taken for the student's request.
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    nobody = f"127.0.0.1:{free.getsockname()[1]}"
    cases = [(grpc_to("my-tinyvit"), "gRPC NOT_FOUND"), (grpc_to(server.name, nobody), "gRPC UNAVAILABLE"),
             (urllib_to("/v2/models/my-tinyvit/infer"), "The server answered 404")]
    try:
        for client, message in cases:
            with pytest.raises(checks.CheckFailed, match=re.escape(message)) as caught:
                checks.remote_classifier(client, checkpoint)
            assert "model_dump_json" not in caught.value.hint, caught.value.hint
    finally:
        free.close()

    cases = [(softmax_again, "a softmax of the server's probabilities"),
             (scaled_pixels, "carried other pixels than the image"), (encoded_twice, "encoded twice"),
             (one_tensor, 'The body has no "inputs"'), (times_out, "was sent and no answer came back"),
             (kept_by_shape, "returned the answer it gave for"), (percent, "returned percentages"),
             (mirrored, "the same values in another order"), (half_precision, "float16 probabilities"),
             (said_plain_text, "said its body is 'text/plain'")]
    for client, message in cases:
        with pytest.raises(checks.CheckFailed, match=re.escape(message)) as caught:
            checks.remote_classifier(client, checkpoint)
        assert "'payload'" not in caught.value.hint, caught.value.hint


def test_the_request_check_refuses_an_address_written_into_the_code(checkpoint):
    # Right at home, where the server got port 8080; wrong in grading, which uses free ports.
    def classify_remote(image):
        body = InferenceRequest(inputs=[NumpyCodec.encode_input("payload", image[None])]).model_dump_json()
        answer = requests.post("http://127.0.0.1:8080/v2/models/tinyvit/infer", data=body, timeout=60)
        return NumpyCodec.decode_output(InferenceResponse.model_validate(answer.json()).outputs[0])

    with pytest.raises(checks.CheckFailed, match="'127.0.0.1:8080' written into it"):
        checks.remote_classifier(classify_remote, checkpoint)


@pytest.fixture
def shipped(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "requirements.txt").write_text(written(solution_cell("06_packaging.ipynb", "requirements")))
    return folder


@pytest.mark.parametrize("old, new, message", [
    ("torch==2.14.1", "torch=2.14.1=py311_cuda", "conda's format"),
    ("torch==2.14.1", "torch>=2.0", "admits torch releases before 2.14 (from 2.0)"),
    ("torch==2.14.1", "torch", "torch has no version"),
    ("torch==2.14.1", "torch<2.15", "admits torch releases before 2.14"),
    ("torch==2.14.1", "torch>=2.13.1,<2.15", "admits torch releases before 2.14 (from 2.13.1)"),
    ("timm==1.0.31", "timm>=0.9.16,<1.1", "admits timm releases before 1.0"),
    ("pillow==13.0.0", "pillow>=12.1,<13.1", "admits pillow releases before 13.0"),
    ("torch==2.14.1", "torch>=2.14,<2.16", "admits torch 2.15.0"),
    ("timm==1.0.31", "timm==0.9.16", "does not admit timm 1.0.31"),
    ("pillow==13.0.0\n", "", "lists no package for the module PIL"),
    ("pillow==13.0.0\n", "pillow==13.0.0; python_version < '3.0'\n", "marker leaves pillow out of the image"),
    ("numpy==2.4.6", "numpy==2.4.6 --hash=sha256:" + "0" * 64, "with one, pip checks a hash for every package"),
    ("uvloop==0.21.0\n", "", "does not list uvloop"),
    ("uvloop==0.21.0", "uvloop>=0.21", "admits uvloop 0.22.0"),
    ("uvloop==0.21.0", "uvloop~=0.21", "admits uvloop 0.22.0"),
    ("uvloop==0.21.0", "uvloop<0.21", "does not admit uvloop 0.21.0"),
    ("numpy==2.4.6", "numpy==", "not a pip requirement"),
    ("numpy==2.4.6", "-r ../requirements.txt", "the build folder does not have"),
])
def test_requirements_mistakes_are_named(shipped, old, new, message):
    path = shipped / "requirements.txt"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        folder_checks.requirements(shipped)


CORRECT_BUT_DIFFERENT_REQUIREMENTS = """\
# the service's packages, as tested in the lab
--extra-index-url https://download.pytorch.org/whl/cpu
MLServer==1.7.1            # any spelling of a name
uvloop>=0.21,<0.22  # 0.22 breaks MLServer 1.7.1's workers
torch ~= 2.14.1
timm[hf]==1.0.31 ; python_version >= "3.10"
safetensors==0.8.*
NumPy>=2.4.6,<2.5
Pillow==13.0.0 \\
    ; platform_system != "Nowhere"
safetensors==0.8.0
"""


def test_any_valid_requirements_file_that_admits_only_tested_versions_passes(shipped):
    (shipped / "requirements.txt").write_text(CORRECT_BUT_DIFFERENT_REQUIREMENTS)
    folder_checks.requirements(shipped)


def test_requirements_in_any_encoding_pip_reads_pass_and_others_are_named(shipped):
    # helper session 8: a file Windows Notepad saved as "Unicode" (UTF-16, with its byte order
    # mark) crashed the check with a UnicodeDecodeError; pip reads it.
    text = CORRECT_BUT_DIFFERENT_REQUIREMENTS
    for encoding in ("utf-16", "utf-8-sig", "utf-32"):
        (shipped / "requirements.txt").write_bytes(text.encode(encoding))
        folder_checks.requirements(shipped)
    (shipped / "requirements.txt").write_bytes(("# caf\u00e9\n" + text).encode("latin-1"))
    with pytest.raises(checks.CheckFailed, match="is not text pip can read: byte 5 is not utf-8"):
        folder_checks.requirements(shipped)


def test_the_image_folder_needs_the_dockerfile_mlserver_writes(shipped, checkpoint, capsys):
    folder_checks.requirements(shipped)
    service = lab_service_copy(shipped.parent / "service", checkpoint=checkpoint, with_settings=True)
    shutil.copy(shipped / "requirements.txt", service / "requirements.txt")
    context = packaging.build_context(service, target=shipped.parent / "context", checkpoint=checkpoint,
                                      dockerfile=False)
    assert not (context / packaging.WEIGHTS_NAME).is_symlink()
    with pytest.raises(checks.CheckFailed, match="has no Dockerfile"):
        folder_checks.image_folder(context)
    terminal(f"mlserver dockerfile {context}")
    assert "Successfully written Dockerfile" in capsys.readouterr().out
    folder_checks.image_folder(context)
    # Exercise 1's mistake costs Exercise 1 only: the build folder is still right.
    (context / "requirements.txt").write_text("torch\n")
    folder_checks.image_folder(context)
    (context / packaging.WEIGHTS_NAME).unlink()
    with pytest.raises(checks.CheckFailed, match="no weights"):
        folder_checks.image_folder(context)


def test_the_image_folder_check_wants_mlservers_dockerfile_and_spares_exercise_1s_mistake(tmp_path, checkpoint,
                                                                                         monkeypatch, capsys):
    # helper session 5: a hand-written Dockerfile with MLServer's base image passed; a requirements
    # file written to the wrong place cost this check too. As notebook 06: the student's shipped/
    # next to the notebook, the build folder a copy of it elsewhere, under the same name.
    notebook = tmp_path / "notebook"
    service = lab_service_copy(notebook / "shipped", checkpoint=checkpoint, with_settings=True)
    monkeypatch.chdir(notebook)
    context = packaging.build_context(service, target=tmp_path / "build" / "shipped", checkpoint=checkpoint,
                                      dockerfile=False)
    (context / "Dockerfile").write_text("FROM seldonio/mlserver:1.7.1-slim\nCOPY requirements.txt .\n"
                                        "RUN pip install -r requirements.txt\n")
    with pytest.raises(checks.CheckFailed, match="not the one MLServer 1.7.1 writes: the copy of the build folder "
                       "into the image, the command that starts MLServer on the models are missing"):
        folder_checks.image_folder(context)
    (context / "Dockerfile").unlink()
    terminal(f"mlserver dockerfile {context}")
    assert not (service / "requirements.txt").exists() and not (context / "requirements.txt").exists()
    folder_checks.image_folder(context)  # Exercise 1's file was never written: its own check counts it
    assert "not charged here" in capsys.readouterr().out
    (service / "requirements.txt").write_text(written(solution_cell("06_packaging.ipynb", "requirements")))
    with pytest.raises(checks.CheckFailed, match="the folder was built before it"):
        folder_checks.image_folder(context)


def test_the_runtime_check_given_a_folder_whose_start_failed_names_the_settings_not_a_name_error(tmp_path):
    # Notebook 04 passes its folder: when the start cell failed, top3_server is never defined.
    folder = tmp_path / "top3"
    folder.mkdir()
    settings = '{"name": "top3", "implementation": "labkit.runtimes.timm.TimmClassifier"'
    (folder / "model-settings.json").write_text(settings + ",}")
    with pytest.raises(checks.CheckFailed, match="trailing comma"):
        checks.runtime_top_k(folder)
    (folder / "model-settings.json").write_text(settings + "}")
    with pytest.raises(checks.CheckFailed, match="No server of top3/ runs in this kernel"):
        checks.runtime_top_k(folder)


def test_the_cpu_build_of_the_tested_torch_passes_and_another_release_does_not(shipped):
    # 06's prose: for a CPU-only image, torch from PyTorch's CPU index, "2.14.1+cpu".
    path = shipped / "requirements.txt"
    text = path.read_text()
    path.write_text("--extra-index-url https://download.pytorch.org/whl/cpu\n"
                    + mutate(text, "torch==2.14.1", "torch==2.14.1+cpu"))
    folder_checks.requirements(shipped)
    path.write_text(mutate(text, "torch==2.14.1", "torch==2.13.0+cpu"))
    with pytest.raises(checks.CheckFailed, match=re.escape("does not admit torch 2.14.1")):
        folder_checks.requirements(shipped)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, checkpoint):
    from labkit.model import hf_runtime

    return hf_runtime.artifact_folder(tmp_path_factory.mktemp("04") / "tinyvit-hf", checkpoint)


HF_SETTINGS = written(solution_cell("04_inference_runtimes.ipynb", "hf-settings"))


def test_04s_hugging_face_settings_pass_as_the_solution_and_written_differently(hf_folder, capsys):
    (hf_folder / "model-settings.json").write_text(HF_SETTINGS)
    folder_checks.hf_model_settings(hf_folder)
    # Keys in another order, PyTorch named, Optimum left at its default, a device set.
    (hf_folder / "model-settings.json").write_text(
        '{"parameters": {"extra": {"framework": "pt", "device": "cpu", "task": "image-classification"}},\n'
        ' "implementation": "labkit.runtimes.huggingface.HuggingFaceRuntime", "name": "tinyvit-hf"}')
    folder_checks.hf_model_settings(hf_folder)
    assert capsys.readouterr().out.count("✔ model-settings.json: model 'tinyvit-hf', the Hugging Face runtime") == 2


@pytest.mark.parametrize("old, new, message", [
    ('"task": "image-classification"', '"task": "image-classification", '
                                       '"pretrained_model": "timm/tiny_vit_5m_224.dist_in22k"',
     "a model on the Hugging Face hub"),
    ('"task": "image-classification"', '"task": "image-classification", "pretrained_model": "."',
     "read from where MLServer runs"),
    ('"extra"', '"uri": "./config.json", "extra"', "parameters.uri is './config.json'"),
    ('labkit.runtimes.huggingface.HuggingFaceRuntime', 'mlserver_huggingface.HuggingFaceRuntime',
     "cannot import name 'Conversation'"),
    ('labkit.runtimes.huggingface.HuggingFaceRuntime', 'labkit.runtimes.timm.TimmClassifier',
     "not the Hugging Face runtime"),
    ('"image-classification"', '"image_classification"', "task is 'image_classification'"),
    ('"optimum_model": false', '"optimum_model": true', "serves the model with PyTorch"),
    ('"optimum_model": false', '"optimum_model": "yes"', "lower case and unquoted"),
    ('"optimum_model": false', '"optimum_model": false, "framework": "tf"', "are PyTorch's"),
    ('"name": "tinyvit-hf"', '"name": "tinyvit"', "called 'tinyvit-hf', like its folder"),
    ('    "extra": {"task": "image-classification", "optimum_model": false}\n', '', "no parameters.extra"),
])
def test_04s_hugging_face_settings_mistakes_are_named(hf_folder, old, new, message):
    (hf_folder / "model-settings.json").write_text(mutate(HF_SETTINGS, old, new))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        folder_checks.hf_model_settings(hf_folder)


def test_04s_hugging_face_check_needs_the_folder_the_lab_made(tmp_path):
    (tmp_path / "tinyvit-hf").mkdir()
    (tmp_path / "tinyvit-hf" / "model-settings.json").write_text(HF_SETTINGS)
    with pytest.raises(checks.CheckFailed, match="holds no model"):
        folder_checks.hf_model_settings(tmp_path / "tinyvit-hf")


def test_an_address_typed_into_a_module_level_name_is_refused_at_home_as_in_grading(checkpoint):
    # The address kept in a name outside the function: right at home on port 8080, wrong in
    # grading on free ports. Found in the kernel's own input history, which grading has too.
    from IPython.core.interactiveshell import InteractiveShell

    from labkit.checks.live import _address_kept_in_a_name

    shell = InteractiveShell.instance()
    try:
        shell.run_cell('INFER_URL = "http://127.0.0.1:8080/v2/models/tinyvit/infer"\n'
                       "def classify_remote(image):\n    return requests.post(INFER_URL, json={}).json()\n",
                       store_history=True)
        with pytest.raises(checks.CheckFailed, match="reads the address 'http://127.0.0.1:8080/v2/models/tinyvit/"
                                                     "infer' from INFER_URL"):
            checks.remote_classifier(shell.user_ns["classify_remote"], checkpoint)
        # Computed from the server object: the address it really got, at home and in grading.
        shell.run_cell("class Server:\n    infer_url = 'http://127.0.0.1:40123/v2/models/tinyvit/infer'\n"
                       "ADDRESS = Server.infer_url\n"
                       "def classify_remote(image):\n    return requests.post(ADDRESS, json={}).json()\n",
                       store_history=True)
        assert _address_kept_in_a_name(shell.user_ns["classify_remote"]) is None
    finally:
        InteractiveShell.clear_instance()


TOP3 = {"name": "top3", "implementation": "labkit.runtimes.timm.TimmClassifier",
        "parameters": {"uri": "tinyvit.safetensors", "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": 3}}}


@pytest.mark.parametrize("change, message", [
    # helper session 4: each passed when written, and failed only at the server's start
    ({"parameters": {"extra": TOP3["parameters"]["extra"]}}, 'parameters has no "uri"'),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": "3"}}},
     "top_k is '3'"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k", "top_k": 3.0}}},
     "top_k is 3.0"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model_name": "tiny_vit_5m_224.dist_in22k", "top_k": 3}}},
     'parameters.extra has no "model"'),
    ({"parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "topk": 3}}},
     'did you mean "top_k"'),
    # helper session 5: the course text's hub name, ✔ when written, then "check your connection" after 30 s
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "hf_hub:timm/tiny_vit_5m_224.dist_in22k",
                                                     "top_k": 3}}}, "a model on the Hugging Face hub"),
    # helper session 6: ✔ when written, then a state_dict mismatch, an invalid tag or a bare
    # FileNotFoundError at the server's start
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k_ft_in1k", "top_k": 3}}},
     "the '.dist_in22k_ft_in1k' version of TinyViT has other classes"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_11m_224.dist_in22k", "top_k": 3}}},
     "'tiny_vit_11m_224' is another network"),
    ({"parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224.dist_in22k ", "top_k": 3}}},
     "it has a space at one end"),
    ({"parameters": {**TOP3["parameters"], "uri": "."}}, "parameters.uri is '.', a folder"),
    # helper session 8: "threads" passed (nothing reads it) and torch_threads was refused
    ({"parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "threads": 2}}},
     'parameters.extra.threads is not a field the timm runtime reads; it ignores it (did you mean "torch_threads"?)'),
    ({"parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "torch_threads": "two"}}},
     "parameters.extra.torch_threads is 'two'"),
    # helper session 8: the space unseen ("defines no class X (it defines ['X'])"), the module
    # called "not a subclass", an installed package taken for a file still to be written
    ({"implementation": "labkit.runtimes.timm.TimmClassifier "}, "names the class 'TimmClassifier ', with a space"),
    ({"implementation": "labkit.runtimes.timm"}, "ends with timm, which is a module (labkit.runtimes.timm)"),
    ({"implementation": "timm.TimmClassifier"}, "MLServer would import the installed package timm instead"),
])
def test_the_timm_runtimes_settings_are_checked_when_written(tmp_path, checkpoint, change, message):
    from labkit.workspace import runtime_folder

    folder = runtime_folder(tmp_path / "top3", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps(TOP3))
    folder_checks.model_settings(folder, require_code=False)  # the solution passes
    # and the architecture alone (timm's default version of it), helper session 6
    (folder / "model-settings.json").write_text(json.dumps(
        {**TOP3, "parameters": {**TOP3["parameters"], "extra": {"model": "tiny_vit_5m_224", "top_k": 3}}}))
    folder_checks.model_settings(folder, require_code=False)
    # and the threads the runtime reads, set (helper session 8: refused)
    (folder / "model-settings.json").write_text(json.dumps(
        {**TOP3, "parameters": {**TOP3["parameters"], "extra": {**TOP3["parameters"]["extra"], "torch_threads": 1}}}))
    folder_checks.model_settings(folder, require_code=False)
    (folder / "model-settings.json").write_text(json.dumps({**TOP3, **change}))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        folder_checks.model_settings(folder, require_code=False)


def test_03s_class_renamed_in_the_file_is_named_before_any_start_and_spares_the_settings(tmp_path, checkpoint,
                                                                                          capsys):
    # helper session 5: `class TopFiveModels` failed top5-settings-check too, and each service check
    # waited 15-20 s for MLServer's "Invalid python path: No module named 'serve-model.TopFiveModel'".
    from labkit.checks import live

    folder = service_folder(tmp_path / "top5", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(json.dumps({"name": "top5",
                                                            "implementation": "serve-model.TopFiveModel"}))
    code = written(solution_cell("03_top5_labels.ipynb", "top5-service"))
    (folder / "serve-model.py").write_text(mutate(code, "class TopFiveModel(", "class TopFiveModels("))
    folder_checks.model_settings(folder)
    assert "as the exercise asks" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match=r"defines no class TopFiveModel \(it defines \['TopFiveModels'\]\)"):
        live.service_server(folder)
    assert "No server of top5/ runs" not in capsys.readouterr().out  # named before any start
