"""labkit.checks.live, students_server and remote_client: the checks that ask a running server (03's top-5
service in stages, 05's scaling check, 02's client), on real MLServer processes: a correct service passes,
a subtly wrong one fails with its own message."""

import json
import re
import socket
import time

import nbformat
from pathlib import Path

import numpy as np
import pytest
import requests
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from labkit import checks, contract
from labkit.checks import distinct_images
from tests.checks.mistakes import SERVICE_03
from labkit.instructor import hidden_checks
from labkit.model import reference
from labkit.instructor.build import SOLUTIONS
from labkit.serving import ModelServer
from labkit.workspace import service_folder
from tests.helpers.lab import FREE_PORTS, reload_with
from tests.helpers.solutions import mutate

pytestmark = pytest.mark.slow



def solution_service_code() -> str:
    """The top-5 service as the solution notebook writes it (minus the %%writefile line)."""
    notebook = nbformat.read(SOLUTIONS / "03_top5_labels.ipynb", as_version=4)
    cell = next(cell for cell in notebook.cells if cell.source.startswith("%%writefile top5/serve-model.py"))
    return cell.source.split("\n", 1)[1]


def top5_folder(tmp_path, checkpoint, code):
    folder = service_folder(tmp_path / "top5", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text(
        json.dumps({"name": "top5", "implementation": "serve-model.TopFiveModel"}))
    (folder / "serve-model.py").write_text(code)
    return folder


@pytest.fixture(scope="module")
def top5_server(tmp_path_factory, checkpoint):
    """One server for every variant of the top-5 service: each test writes its code and
    reloads the model (seconds) instead of starting a server (10-20 s)."""
    folder = top5_folder(tmp_path_factory.mktemp("top5"), checkpoint, solution_service_code())
    with ModelServer(folder, parallel_workers=0, **FREE_PORTS) as server:
        yield server


def serve(server, code):
    """``server`` running ``code`` as serve-model.py, with the folder's own settings."""
    return reload_with(server, {"serve-model.py": code}, max_batch_size=None, max_batch_time=None)




FIRST_IMAGE_ONLY = ("images = decode_images(payload)", "images = decode_images(payload)[:1]")
BY_LABEL = ("        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n",
            "        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n"
            "        order = np.argsort(labels, axis=1)\n"
            "        labels = np.take_along_axis(labels, order, axis=1)\n"
            "        scores = np.take_along_axis(scores, order, axis=1)\n")


def test_the_solution_passes_every_check(top5_server, checkpoint, capsys):
    server = serve(top5_server, solution_service_code())
    checks.top5_service(server, checkpoint=checkpoint)
    checks.top5_batch(server, checkpoint=checkpoint)
    hidden_checks.top5_under_adaptive_batching(server, checkpoint=checkpoint)
    assert capsys.readouterr().out.count("✔") == 4


@pytest.mark.parametrize("old, new, failure", [
    # only the first image's row: a batch gets one row for three images
    (*FIRST_IMAGE_ONLY, "expected \\(3, 5\\)"),
], ids=["first image only"])  # more in the service catalogue (SERVICE_03)
def test_a_service_right_for_one_image_and_wrong_for_a_batch_is_charged_once_by_the_batch_check(
        top5_server, checkpoint, capsys, old, new, failure):
    from labkit.checks import live

    server = serve(top5_server, mutate(solution_service_code(), old, new))
    checks.top5_service(server, checkpoint=checkpoint)
    with pytest.raises(checks.CheckFailed, match=failure):
        checks.top5_batch(server, checkpoint=checkpoint)
    # The hidden check meets a service already wrong at a batch: one mistake costs once, in the
    # batch check. Read from the service's answers, not from which checks ran before: the same
    # verdict in a fresh kernel, in any order.
    capsys.readouterr()
    hidden_checks.top5_under_adaptive_batching(server, checkpoint=checkpoint)
    assert "not charged here: with a batch of images in one request" in capsys.readouterr().out
    assert not hasattr(live, "_CHARGED")


def test_a_service_that_answers_every_request_as_its_first_is_charged_once(top5_server, checkpoint, capsys):
    # A predict() that keeps its first answer and returns it to every later request.
    code = mutate(solution_service_code(), "        images = decode_images(payload)\n",
                  "        if hasattr(self, 'first_answer'):\n            return self.first_answer\n"
                  "        images = decode_images(payload)\n")
    code = mutate(code, "        return InferenceResponse(\n", "        self.first_answer = InferenceResponse(\n")
    code = mutate(code, "        )\n        ### END SOLUTION",
                  "        )\n        return self.first_answer\n        ### END SOLUTION")
    server = serve(top5_server, code)
    with pytest.raises(checks.CheckFailed, match="got the same labels"):
        checks.top5_service(server, checkpoint=checkpoint)
    # The same mistake again in the later checks, whichever ran before: counted once, by the
    # one-image check (the grading proof's dave lost these points in one run and kept them in
    # another while the verdict was read from which kinds of mistake earlier checks met).
    for check in (checks.top5_batch, hidden_checks.top5_under_adaptive_batching):
        capsys.readouterr()
        check(server, checkpoint=checkpoint)
        assert "not charged here: with one image per request" in capsys.readouterr().out


def test_a_mistake_that_shows_on_some_images_only_gets_one_verdict_and_is_charged_once(top5_server, checkpoint,
                                                                                       capsys):
    # helper session 3: scores sorted across the rows (nothing changes for one image) were
    # charged 0, 1 or 2 times in 8 runs: each check and its silent run of the earlier stage drew
    # their own images. Now a stage's images are drawn from the service's code: one verdict.
    code = mutate(solution_service_code(), "        scores = np.take_along_axis(probabilities, top, axis=1)\n",
                  "        scores = np.take_along_axis(probabilities, top, axis=1)\n"
                  "        scores = np.sort(scores, axis=0)[::-1]\n")
    server = serve(top5_server, code)
    from labkit.checks import students_server

    draws = [distinct_images(3, checkpoint, rng=students_server.draws(server, "a batch"))[1] for _ in range(2)]
    assert all(np.array_equal(first, again) for first, again in zip(*draws)), "one stage, one service: one draw"
    checks.top5_service(server, checkpoint=checkpoint)
    verdicts = []
    for _ in range(2):
        charged = 0
        for check in (checks.top5_batch, hidden_checks.top5_under_adaptive_batching):
            capsys.readouterr()
            try:
                check(server, checkpoint=checkpoint)
            except checks.CheckFailed:
                charged += 1
            else:
                assert "not charged here" in capsys.readouterr().out or check is checks.top5_batch
        verdicts.append(charged)
    assert verdicts == [1, 1], verdicts


def test_outputs_under_other_names_are_charged_by_the_first_check_only(top5_server, checkpoint, capsys):
    # helper session 3: outputs named "label" and "score" cost all three checks (7 points).
    code = mutate(solution_service_code(), 'NumpyCodec.encode_output("labels", labels)',
                  'NumpyCodec.encode_output("label", labels)')
    server = serve(top5_server, code)
    with pytest.raises(checks.CheckFailed, match=r"no output named \['labels'\]") as failure:
        checks.top5_service(server, checkpoint=checkpoint)
    assert "encode_output" not in failure.value.hint  # the line is not handed over
    capsys.readouterr()
    checks.top5_batch(server, checkpoint=checkpoint)
    hidden_checks.top5_under_adaptive_batching(server, checkpoint=checkpoint)
    out = capsys.readouterr().out
    assert out.count("your outputs read by their types") == 2 and "batch of 3 images" in out


def test_a_softmax_over_the_wrong_axis_is_named(top5_server, checkpoint):
    # helper session 3: every score 1.0 made the first five classes every image's answer, and
    # the check said the service ignored its request.
    code = mutate(solution_service_code(), "softmax(dim=-1)", "softmax(dim=0)")
    with pytest.raises(checks.CheckFailed, match="add up to 5: they are not the probabilities"):
        checks.top5_service(serve(top5_server, code), checkpoint=checkpoint)


@pytest.mark.parametrize("mistake", SERVICE_03, ids=[f"{m.kind}: {m.note}" for m in SERVICE_03])
def test_the_service_catalogue_each_entry_costs_its_one_check(top5_server, checkpoint, capsys, mistake):
    server = serve(top5_server, mutate(solution_service_code(), mistake.old, mistake.new))
    verdicts = {}
    for check in (checks.top5_service, checks.top5_batch, hidden_checks.top5_under_adaptive_batching):
        name = "top5_under_batching" if check is hidden_checks.top5_under_adaptive_batching else check.__name__
        try:
            check(server, checkpoint=checkpoint)
            verdicts[name] = None
        except checks.CheckFailed as failure:
            verdicts[name] = failure.what
    charged = {name: what for name, what in verdicts.items() if what is not None}
    assert list(charged) == ([mistake.charged] if mistake.charged else []), charged
    if mistake.charged:
        assert any(words in charged[mistake.charged] for words in mistake.says), charged[mistake.charged]


def test_scores_that_are_not_numbers_are_named_not_a_crash_of_the_check(top5_server, checkpoint):
    # helper session 3: scores written as text ("0.0%") crashed the check with a ValueError.
    code = mutate(solution_service_code(), "NumpyCodec.encode_output(\"scores\", scores.astype(np.float32))",
                  "NumpyCodec.encode_output(\"scores\", np.char.add(np.round(100 * scores, 1).astype(str), \"%\"))")
    server = serve(top5_server, code)
    with pytest.raises(checks.CheckFailed, match="The scores are not numbers"):
        checks.top5_service(server, checkpoint=checkpoint)


def test_a_predict_that_never_returns_is_named_as_such_not_as_a_server_that_is_not_running(monkeypatch):
    # helper session 3: "it is not running" after the timeout, for a server that runs.
    import socket
    from types import SimpleNamespace

    from labkit.checks import students_server
    from labkit.client import pixels_request

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # takes the connection, never answers
    monkeypatch.setattr(students_server, "ANSWER_TIMEOUT", 1.0)
    server = SimpleNamespace(infer_url=f"http://127.0.0.1:{listener.getsockname()[1]}/v2/models/top5/infer",
                             model_settings={"implementation": "serve-model.TopFiveModel"},
                             model_dir=Path("top5"))
    try:
        with pytest.raises(checks.CheckFailed, match="predict\\(\\) did not return") as caught:
            students_server.ask_top5(server, pixels_request([np.zeros((8, 8, 3), np.uint8)]), "one image")
        # The next check on the same server does not wait again: its worker is still busy.
        started = time.monotonic()
        with pytest.raises(checks.CheckFailed, match="still busy with an earlier request") as again:
            students_server.ask_top5(server, pixels_request([np.zeros((8, 8, 3), np.uint8)]), "a batch")
        assert time.monotonic() - started < 0.5 and again.value.hint == caught.value.hint
    finally:
        listener.close()
        students_server._UNANSWERED.clear()
    assert "not running" not in str(caught.value) and "serve-model.py" in caught.value.hint


def test_top5_ordered_by_label_fails_with_a_hint(top5_server, checkpoint):
    code = mutate(solution_service_code(), *BY_LABEL)
    server = serve(top5_server, code)
    with pytest.raises(checks.CheckFailed, match="not in descending order") as caught:
        checks.top5_service(server, checkpoint=checkpoint)
    assert "Hint:" in str(caught.value)


def test_an_unwritten_predict_fails_with_the_server_message(top5_server, checkpoint):
    code = solution_service_code()
    start, end = code.index("        ### BEGIN SOLUTION"), code.index("### END SOLUTION") + len("### END SOLUTION")
    code = code[:start] + "        # YOUR CODE HERE\n        raise NotImplementedError()" + code[end:]
    server = serve(top5_server, code)
    with pytest.raises(checks.CheckFailed, match="NotImplementedError") as caught:
        checks.top5_service(server, checkpoint=checkpoint)
    assert "serve-model.py" in caught.value.hint


class Notebook:
    """What IPython's get_ipython() gives a check: the student's variables."""

    def __init__(self, **variables):
        self.user_ns = variables


def test_the_error_hint_names_the_students_own_server_and_following_it_shows_the_traceback(
        top5_server, checkpoint, monkeypatch):
    import IPython

    code = mutate(solution_service_code(), "images = decode_images(payload)",
                  "images = decode_images(payload)\n        raise ValueError('a mistake of mine')")
    server = serve(top5_server, code)
    monkeypatch.setattr(IPython, "get_ipython", lambda: Notebook(my_top5=server, _=server, other=object()))
    with pytest.raises(checks.CheckFailed) as caught:
        checks.top5_service(server, checkpoint=checkpoint)
    assert "run my_top5.log_tail()" in caught.value.hint and "fix serve-model.py" in caught.value.hint
    # Following the advice as written shows the student's own mistake.
    assert "a mistake of mine" in eval("my_top5.log_tail()", {}, {"my_top5": server})


def test_a_folder_check_uses_the_students_running_server(top5_server, checkpoint, capsys):
    server = serve(top5_server, solution_service_code())
    checks.top5_service(server.model_dir, checkpoint=checkpoint)
    assert "This check starts" not in capsys.readouterr().out


def test_a_settings_mistake_does_not_cost_the_service_checks(tmp_path, checkpoint, capsys):
    # The start cell failed on the course text's trailing comma: no server of the folder runs.
    folder = top5_folder(tmp_path, checkpoint, solution_service_code())
    (folder / "model-settings.json").write_text('{"name": "top5", "implementation": "serve-model.TopFiveModel",}')
    (folder / "settings.json").write_text('{"parallel_workers": 0}')
    try:
        checks.top5_service(folder, checkpoint=checkpoint)
        checks.top5_batch(folder, checkpoint=checkpoint)
        hidden_checks.top5_under_adaptive_batching(folder, checkpoint=checkpoint)
        out = capsys.readouterr().out
        assert out.count("This check starts top5/serve-model.py itself") == 1, out  # one server for the three
        assert out.count("✔") == 4
        assert "TopFiveModel" not in out  # the exercise's answer is not printed
    finally:
        for server in list(checks.students_server._started_by_checks.values()):
            server.stop()
        checks.students_server._started_by_checks.clear()


def test_a_folder_check_names_the_line_where_the_service_fails(tmp_path, checkpoint):
    code = mutate(solution_service_code(), "class TopFiveModel(MLModel):",
                  "scale = 1 / 0\n\n\nclass TopFiveModel(MLModel):")
    folder = top5_folder(tmp_path, checkpoint, code)
    (folder / "settings.json").write_text('{"parallel_workers": 0}')
    failure = r"(?s)did not start in MLServer.*serve-model.py, line \d+: scale = 1 / 0"
    with pytest.raises(checks.CheckFailed, match=failure):
        checks.top5_service(folder, checkpoint=checkpoint)
    assert not checks.students_server._started_by_checks


def test_a_check_refuses_a_server_that_runs_older_code(top5_server, checkpoint):
    server = serve(top5_server, solution_service_code())
    (server.model_dir / "serve-model.py").write_text(solution_service_code() + "\n# edited\n")
    with pytest.raises(checks.CheckFailed, match="serve-model.py changed after this server started"):
        checks.top5_service(server, checkpoint=checkpoint)


def test_the_top5_smoke_call_catches_a_first_row_only_service(tmp_path, checkpoint, capsys):

    checks.top5_file(top5_folder(tmp_path / "right", checkpoint, solution_service_code()), checkpoint)
    assert "each image's own top 5" in capsys.readouterr().out
    wrong = top5_folder(tmp_path / "wrong", checkpoint, mutate(solution_service_code(), *FIRST_IMAGE_ONLY))
    with pytest.raises(checks.CheckFailed, match="expected \\(2, 5\\)"):
        checks.top5_file(wrong, checkpoint)


TOP = '        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]\n'
SCORES = "        scores = np.take_along_axis(probabilities, top, axis=1)\n"
LABELS_LINE = "        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n"


@pytest.mark.parametrize("old, new, message", [
    (TOP, '        top = np.argsort(probabilities, axis=1, kind="stable")[:, -5:]\n', "the scores go up"),
    (LABELS_LINE, "        labels = top\n", "class indices, not names"),
    (TOP, '        top = np.argsort(-probabilities[:1], axis=1, kind="stable")[:, :5].repeat(len(images), 0)\n',
     "got the same labels, though the images differ"),
    (SCORES, "        scores = np.take_along_axis(probabilities[::-1], top, axis=1)\n",
     "labels are right but the scores"),
    ("probabilities = self.model(batch).softmax(dim=-1).numpy()", "probabilities = self.model(batch).numpy()",
     "labels are right but the scores"),
    (LABELS_LINE, LABELS_LINE + "        labels = labels[::-1]\n", "Row 0 of the images of call 1 holds labels "
     "that are not image 0's 5 best (they are image 1's)"),
    # helper session 15: the first call's answer kept for every later call passed the one call made
    ("        return InferenceResponse(\n", "        if getattr(self, 'kept', None) is not None:\n"
     "            return self.kept\n        self.kept = InferenceResponse(\n", "with the labels of the first call"),
    # helper session 3: each named by what it did (before: "not image 0's 5 best", "not class names", and a
    # hint to keep the batch axis for six columns)
    (TOP, '        top = np.repeat(probabilities.argmax(axis=1)[:, None], 5, axis=1)\n', "times: its 5 labels are 5"),
    (LABELS_LINE, "        labels = np.vectorize(lambda i: LABELS.index_to_description(i, detailed=True), "
     "otypes=[object])(top)\n", "carry a definition after the class name"),
    (TOP, '        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :6]\n', "no more and no fewer"),
])
def test_the_top5_smoke_call_names_each_mistake(tmp_path, checkpoint, old, new, message):
    code = mutate(solution_service_code(), old, new)
    if "self.kept = " in code:
        end = "        )\n        ### END SOLUTION"
        code = mutate(code, end, end.replace(")\n", ")\n        return self.kept\n"))
    folder = top5_folder(tmp_path, checkpoint, code)
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        checks.top5_file(folder, checkpoint)


def test_the_top5_smoke_call_accepts_an_extra_output_as_the_graded_checks_do(tmp_path, checkpoint, capsys):
    # helper session 3: a third output got ✘ when written and full points when graded.
    code = mutate(solution_service_code(), 'NumpyCodec.encode_output("labels", labels),',
                  'NumpyCodec.encode_output("labels", labels), NumpyCodec.encode_output("indices", top),')

    checks.top5_file(top5_folder(tmp_path, checkpoint, code), checkpoint)
    assert "each image's own top 5" in capsys.readouterr().out


def test_the_top5_smoke_call_accepts_labels_as_a_numpy_string_array(tmp_path, checkpoint, capsys):
    # Right, and written unlike the solution: a fixed-width str array (NumPy's "<U" dtype).
    code = mutate(solution_service_code(), LABELS_LINE,
                  "        labels = np.array([[LABELS.index_to_description(i) for i in row] for row in top])\n")

    checks.top5_file(top5_folder(tmp_path, checkpoint, code), checkpoint)
    assert "each image's own top 5" in capsys.readouterr().out


def test_check_images_are_drawn_per_call_and_have_distinct_answers_under_the_test_weights(checkpoint):
    names, images, _ = distinct_images(4, checkpoint)
    probabilities = reference.in_process_model(checkpoint).probabilities(images)
    assert len(set(probabilities.argmax(axis=1).tolist())) == 4, "two check images share a top class"
    assert len({tuple(row) for row in reference.in_process_model(checkpoint).best_labels(images)[0]}) == len(images)
    assert probabilities.shape == (4, 21841) and len(set(names)) == 4
    _, again, _ = distinct_images(4, checkpoint)
    assert not all(np.array_equal(first, second) for first, second in zip(images, again)), "the same draw twice"


def test_scaling_check_names_batching_keys_put_in_settings_json(two_workers_server):
    # The course text's mistake: two workers, and the batching keys in the server's settings.
    server = two_workers_server
    settings = server.model_dir / "settings.json"
    assert "max_batch_size" in json.loads(settings.read_text())
    assert server.log.count(contract.MODEL_LOAD_LINE) == 2
    with pytest.raises(checks.CheckFailed, match=r"model-settings.json only.*nothing changed") as failure:
        checks.scaling_turned_on(server)
    assert "1.0 image(s) per predict()" in str(failure.value)
    original = settings.read_text()
    settings.write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 2}))
    try:
        with pytest.raises(checks.CheckFailed, match="changed after this server started"):
            checks.scaling_turned_on(server)
    finally:
        settings.write_text(original)  # the server is shared: its folder as it started


def test_scaling_check_wants_two_workers(batching_server):
    with pytest.raises(checks.CheckFailed, match=r"in 1 process\(es\)"):
        checks.scaling_turned_on(batching_server)


def test_the_function_that_is_not_written_yet_is_named_not_its_caller():
    # 07: predict() is written, the log_confidence() it calls is not.
    from labkit.checks import CheckFailed
    from labkit.checks.student_code import call

    def log_confidence(probabilities):
        raise NotImplementedError()

    async def predict(payload):
        log_confidence(payload)

    async def unwritten_predict(payload):
        raise NotImplementedError

    with pytest.raises(CheckFailed, match=r"^log_confidence\(\) is not written yet"):
        call(predict(None), "predict()")
    with pytest.raises(CheckFailed, match=r"^unwritten_predict\(\) is not written yet"):
        call(unwritten_predict(None), "predict()")


def test_a_check_says_when_the_server_holds_each_request_for_seconds(capsys):
    # helper session 5: 03's checks waited about 2 minutes in silence on max_batch_time 10.
    from types import SimpleNamespace

    from labkit.checks import live

    live._say_the_batching_wait(SimpleNamespace(scaling={"max_batch_size": 8, "max_batch_time": 10}))
    assert "holds each request up to 10 s" in capsys.readouterr().out
    live._say_the_batching_wait(SimpleNamespace(scaling={"max_batch_size": 8, "max_batch_time": 0.01}))
    assert capsys.readouterr().out == ""


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
    # helper session 17: a client that changed the caller's array passed (the check gave it a copy)

    def batch_axis_in_place(image):
        image.shape = (1, *image.shape)
        return right(image[0])

    def channels_swapped_after(image):
        answer = right(image)
        image[...] = image[..., ::-1]
        return answer

    with pytest.raises(checks.CheckFailed, match=r"changed the shape of the array it was given, from \(\d+, \d+, 3\) "
                                                 r"to \(1, \d+, \d+, 3\)"):
        checks.remote_classifier(batch_axis_in_place, checkpoint)
    with pytest.raises(checks.CheckFailed, match="changed the pixels of the array it was given"):
        checks.remote_classifier(channels_swapped_after, checkpoint)


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

    def rounded(image):  # helper session 9: called logits
        return np.round(post(request_of(image[None]).model_dump_json()), 4)

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

    def hides_the_error(image):  # helper session 12: named "a second softmax" (no batch axis, refused)
        answer = requests.post(server.infer_url, data=request_of(image).model_dump_json(), timeout=60,
                               headers={"Content-Type": "application/json"})
        if not answer.ok:
            return np.full(21841, 1 / 21841, dtype=np.float32)
        return NumpyCodec.decode_output(InferenceResponse.model_validate(answer.json()).outputs[0])[0]

    def zeros_on_404(image):  # helper session 12: named "read as whole numbers?"
        try:
            answer = requests.post(server.infer_url.replace(server.name, "my-tinyvit"), timeout=60,
                                   data=request_of(image[None]).model_dump_json())
            answer.raise_for_status()
            return NumpyCodec.decode_output(InferenceResponse.model_validate(answer.json()).outputs[0])
        except Exception:
            return np.zeros(21841, dtype=np.float32)

    def grayscale(image):  # helper session 12: named "without the batch axis"
        gray = image.mean(axis=2).astype(np.uint8)
        return post(request_of(gray[None]).model_dump_json())

    def scaled_by_the_largest(image):  # helper session 12: named "logits"
        probabilities = post(request_of(image[None]).model_dump_json())
        return probabilities / probabilities.max()

    cases = [(hides_the_error, "although the server answered 400 to a request it sent: the error was caught and "
                               "hidden.\nThe request's shape is"),
             (zeros_on_404, "although the server answered 404"), (grayscale, "no colour axis (grayscale?)"),
             (scaled_by_the_largest, "the largest is exactly 1: each divided by the largest"),
             (softmax_again, "a softmax of the server's probabilities"),
             (scaled_pixels, "carried other pixels than the image"), (encoded_twice, "encoded twice"),
             (one_tensor, 'The body has no "inputs"'), (times_out, "was sent and no answer came back"),
             (kept_by_shape, "returned the answer it gave for"), (percent, "returned percentages"),
             (mirrored, "the same values in another order"), (half_precision, "float16 probabilities"),
             (said_plain_text, "said its body is 'text/plain'"), (rounded, "rounded to 4 decimal(s)")]
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


def test_an_address_typed_into_a_module_level_name_is_refused_at_home_as_in_grading(checkpoint):
    # The address kept in a name outside the function: right at home on port 8080, wrong in
    # grading on free ports. Found in the kernel's own input history, which grading has too.
    from IPython.core.interactiveshell import InteractiveShell

    from labkit.checks.remote_client import _address_kept_in_a_name

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
        # helper session 9: the hand-typed INFER_URL fixed as the hint says stayed refused until
        # the kernel restarted (any cell of the history that ever typed it counted)
        shell.run_cell("INFER_URL = Server.infer_url\n"
                       "def classify_remote(image):\n    return requests.post(INFER_URL, json={}).json()\n",
                       store_history=True)
        assert _address_kept_in_a_name(shell.user_ns["classify_remote"]) is None
    finally:
        InteractiveShell.clear_instance()


def test_an_async_client_is_named_before_any_request(checkpoint):
    # helper session 9: named as "sent no request" with a hint about stored answers
    async def classify_remote(image):
        return requests.post(SERVER_URL, json={}, timeout=1)  # noqa: F821 (never run)

    with pytest.raises(checks.CheckFailed, match="written with async def") as failure:
        checks.remote_classifier(classify_remote, checkpoint)
    assert "stored answer" not in failure.value.hint


def test_a_host_written_with_the_servers_own_port_and_an_address_in_a_message_are_no_written_address():
    # helper session 9: each was refused as "the address written into it" (0 of 3), though the
    # port comes from the server, or the address is only text the function shows.
    from labkit.checks.remote_client import _refuse_a_written_address

    server = type("Server", (), {"ports": {"http_port": 40123}})()

    def from_its_port(image):
        url = f"http://127.0.0.1:{server.ports['http_port']}/v2/models/tinyvit/infer"
        answer = requests.post(url, json={}, timeout=60)
        if answer.status_code != 200:
            raise RuntimeError(f"the server on localhost answered {answer.status_code}")
        print("asked the server on 127.0.0.1")
        return answer

    def typed(image):
        return requests.post(f"http://localhost:8080/v2/models/{server}/infer", json={}, timeout=60)

    _refuse_a_written_address(from_its_port)
    with pytest.raises(checks.CheckFailed, match="'localhost:8080' written into it"):
        _refuse_a_written_address(typed)
