"""The instructor's grading pipeline with the real nbgrader, for the exercises of notebooks
01-07: a correct hand-in written differently from the solution (alice), an untouched one
(bob), plausible mistakes (carol: one per exercise, each costing its own exercise only;
dave and fay: mistakes that must not cost the exercise after them), the solutions as run
at home (gus), a crashing one and one that hangs; idempotence, untouched originals, no
servers left.

Each graded notebook starts MLServer: the smaller hand-ins hold only the notebooks whose
mistakes the pipeline must report (tests/checks/ covers every mistake of each check)."""

import time

import csv
import hashlib
import re
import shutil

import nbformat
import pytest

from labkit.instructor import grade
from labkit.instructor import release
from labkit.instructor.build import SOLUTIONS
from labkit.measure import challenge
from tests.helpers.lab import REPO, lab_servers

pytestmark = pytest.mark.slow
NOTEBOOKS = ["01_first_service", "02_inference_requests", "03_top5_labels", "04_inference_runtimes",
             "05_scaling", "06_packaging", "07_monitoring"]
LATER = ["04_inference_runtimes", "05_scaling", "07_monitoring"]


def solution(notebook: str, grade_id: str) -> str:
    cells = nbformat.read(SOLUTIONS / f"{notebook}.ipynb", as_version=4).cells
    return next(cell.source for cell in cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def mutate(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the solution"
    return text.replace(old, new)


METADATA_LINES = ('declaration["inputs"] = [{"name": "payload", "datatype": "UINT8", "shape": [-1, -1, 3]}]\n'
                  'declaration["outputs"] = [{"name": "output-0", "datatype": "FP32", "shape": [1, 21841]}]\n')


SERVER_NUMBERS_HEADER = (
    "import math\n\nimport pandas as pd\n\n\n"
    "def served_rate_and_p95(before: pd.DataFrame, after: pd.DataFrame, seconds: float) -> tuple[float, float]:\n")


def correct_but_different() -> dict:
    """Right answers that are not the solution's text."""
    return {
        ("04_inference_runtimes", "hf-settings"):
            '%%writefile tinyvit-hf/model-settings.json\n'
            '{"parameters": {"extra": {"framework": "pt", "task": "image-classification"}},\n'
            ' "implementation": "labkit.runtimes.huggingface.HuggingFaceRuntime", "name": "tinyvit-hf"}',
        ("01_first_service", "model-settings"):
            '%%writefile my-tinyvit/model-settings.json\n{"implementation": "serve-model.TinyViTModel",\n'
            ' "name": "my-tinyvit"}',
        ("01_first_service", "server-settings"):
            '%%writefile my-tinyvit/settings.json\n{"parallel_workers": 0, "debug": false, "host": "127.0.0.1"}',
        ("01_first_service", "first-service"): mutate(
            mutate(solution("01_first_service", "first-service"),
                   "batch = self.transform(Image.fromarray(payload))[None]",
                   "batch = self.transform(Image.fromarray(payload)).unsqueeze(0)"),
            "with torch.inference_mode():", "with torch.no_grad():"),
        # 01's declaration: one dict update, any colour axis, a batch axis of any length out.
        ("01_first_service", "metadata"): mutate(
            solution("01_first_service", "metadata"), METADATA_LINES,
            'declaration.update(inputs=[dict(name="payload", datatype="UINT8", shape=[-1, -1, -1])],\n'
            '                   outputs=[dict(name="output-0", shape=[-1, 21841], datatype="FP32")])\n'),
        ("03_top5_labels", "top5-settings"):
            '%%writefile top5/model-settings.json\n{"implementation": "serve-model.TopFiveModel", "name": "top5"}\n',
        ("03_top5_labels", "top5-service"): mutate(
            solution("03_top5_labels", "top5-service"),
            '        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]\n'
            "        scores = np.take_along_axis(probabilities, top, axis=1)\n",
            "        best = torch.from_numpy(probabilities).topk(5, dim=1)\n"
            "        top, scores = best.indices.numpy(), best.values.numpy()\n"),
        # Any valid pip file that admits only the tested versions (06).
        ("06_packaging", "requirements"): "%%writefile shipped/requirements.txt\n# tested with the lab\n"
            "--extra-index-url https://download.pytorch.org/whl/cpu\nMLServer==1.7.1\nuvloop>=0.21,<0.22\n"
            "torch~=2.14.1\ntimm==1.0.31\nsafetensors==0.8.*\nNumPy>=2.4.6,<2.5\nPillow==13.0.0\n",
        ("06_packaging", "dockerfile"):
            'command = "mlserver dockerfile " + str(context)\nterminal(command)',
        # 02: the JSON body built by hand, the answer read off its "outputs", a [1, 21841] row.
        ("02_inference_requests", "remote-classifier"):
            "def classify_remote(image: np.ndarray) -> np.ndarray:\n"
            '    body = {"inputs": [{"name": "payload", "shape": [1, *image.shape], "datatype": "UINT8",\n'
            '                        "data": image.ravel().tolist()}]}\n'
            "    reply = requests.post(server.infer_url, json=body, timeout=60)\n"
            "    reply.raise_for_status()\n"
            '    first = reply.json()["outputs"][0]\n'
            '    return np.asarray(first["data"], dtype=np.float32).reshape(first["shape"])\n',
        # 04: keys in another order, a "./" path, top_k before the model.
        ("04_inference_runtimes", "runtime-settings"):
            '%%writefile top3/model-settings.json\n{"parameters": {"extra": {"top_k": 3, "model": '
            '"tiny_vit_5m_224.dist_in22k"}, "uri": "./tinyvit.safetensors"},\n "implementation": '
            '"labkit.runtimes.timm.TimmClassifier", "name": "top3"}\n',
        # 05: debug stated, 10 ms written as 0.010, and a stricter pick (no failed requests).
        ("05_scaling", "scaled-settings"):
            '%%writefile scaled/settings.json\n{"parallel_workers": 2, "debug": false, "host": "127.0.0.1"}\n',
        ("05_scaling", "scaled-model-settings"):
            '%%writefile scaled/model-settings.json\n{"max_batch_time": 0.010, "max_batch_size": 8,\n'
            ' "implementation": "serve-model.TinyViTModel", "name": "scaled"}\n',
        ("05_scaling", "scaling-choice"):
            "def pick_configuration(results, budget_ms):\n"
            '    fits = results.query("p95_ms <= @budget_ms and errors == 0")\n'
            "    if len(fits) == 0:\n        return None\n"
            "    return fits.throughput_rps.sort_values(ascending=False).index[0]\n",
        # 05's challenge: ONNX Runtime (not the lab's OpenVINO), keys in another order, a "./" path,
        # gzip left on (the client uses gRPC, which it does not touch), 5 ms for 4.
        ("05_scaling", "tuned-settings"):
            '%%writefile tuned/settings.json\n{"parallel_workers": 0, "host": "127.0.0.1"}\n',
        ("05_scaling", "tuned-model-settings"):
            '%%writefile tuned/model-settings.json\n{"implementation": "labkit.runtimes.engines.OnnxRuntimeTinyViT",\n'
            ' "name": "tuned", "parameters": {"uri": "./tinyvit.onnx"},\n'
            ' "max_batch_time": 0.005, "max_batch_size": 8}\n',
        ("05_scaling", "tuned-transport"): "transport = 'grpc'\n",
        # 07: NumPy on the cumulative counts, the bucket's upper bound as the p95.
        ("07_monitoring", "server-numbers"): SERVER_NUMBERS_HEADER + (
            "    def counts(samples):\n"
            '        rows = metrics.labelled(samples, "rest_server_request_duration_seconds_bucket")\n'
            "        mine = rows.query(\"path == '/v2/models/{model_name}/infer' and status_code == '200'\")\n"
            '        return mine.assign(bound=mine["le"].astype(float)).groupby("bound")["value"].sum()\n'
            "    new = counts(after) - counts(before)\n"
            "    bounds, cumulative = new.index.to_numpy(), new.to_numpy()\n"
            "    first = int((cumulative >= 0.95 * cumulative[-1]).argmax())\n"
            "    upper = bounds[first] if math.isfinite(bounds[first]) else bounds[first - 1]\n"
            "    return cumulative[-1] / seconds, 1000 * float(upper)\n"),
        # 07: every image's value, as a list, logged by keyword expansion.
        ("07_monitoring", "custom-metric"): mutate(
            solution("07_monitoring", "custom-metric"),
            "        for confidence in probabilities.max(axis=1):\n"
            "            mlserver.log(tinyvit_top1_confidence=float(confidence))\n",
            "        values = np.max(probabilities, axis=-1).tolist()\n"
            '        [mlserver.log(**{"tinyvit_top1_confidence": value}) for value in values]\n'),
    }


def wrong_a() -> dict:
    """The course text's trailing comma (01); the address written into the client, which
    works at home on the default port (02); a top 5 of the first image only (03); uvloop
    left open to 0.22 (06); a uri copied from runtimes/, which leaves the folder, and the course
    text's hub model for the Hugging Face runtime (04); the
    course text's batching keys in settings.json, 10 written for 10 ms, a position for a
    label (05); a batch's mean logged once per image (07)."""
    return {
        ("02_inference_requests", "remote-classifier"): mutate(solution("02_inference_requests", "remote-classifier"),
                                                               "requests.post(server.infer_url,",
                                                               'requests.post("http://localhost:8080/v2/models/'
                                                               'tinyvit/infer",'),
        ("04_inference_runtimes", "runtime-settings"): mutate(solution("04_inference_runtimes", "runtime-settings"),
                                                              '"uri": "tinyvit.safetensors"',
                                                              '"uri": "../../weights/tinyvit.safetensors"'),
        ("04_inference_runtimes", "hf-settings"): mutate(solution("04_inference_runtimes", "hf-settings"),
                                                         '"optimum_model": false',
                                                         '"pretrained_model": "timm/tiny_vit_5m_224.dist_in22k"'),
        ("05_scaling", "scaled-settings"): mutate(solution("05_scaling", "scaled-settings"), '"parallel_workers": 2',
                                                  '"parallel_workers": 2,\n  "max_batch_size": 8,\n'
                                                  '  "max_batch_time": 0.01'),
        ("05_scaling", "scaled-model-settings"): mutate(solution("05_scaling", "scaled-model-settings"),
                                                        '"max_batch_time": 0.01', '"max_batch_time": 10'),
        ("05_scaling", "scaling-choice"): mutate(solution("05_scaling", "scaling-choice"),
                                                 "return within_budget.throughput_rps.idxmax()",
                                                 "return int(within_budget.throughput_rps.to_numpy().argmax())"),
        # 05's challenge as the course text sets a server up: the PyTorch service, batching keys in
        # settings.json (ignored there), REST with MLServer's defaults (gzip on).
        ("05_scaling", "tuned-settings"):
            '%%writefile tuned/settings.json\n{"host": "127.0.0.1", "parallel_workers": 1, '
            '"max_batch_size": 8, "max_batch_time": 0.01}\n',
        ("05_scaling", "tuned-model-settings"):
            '%%writefile tuned/model-settings.json\n{"name": "tuned", "implementation": "serve-model.TinyViTModel"}\n',
        ("05_scaling", "tuned-transport"): 'transport = "rest"\n',
        ("07_monitoring", "server-numbers"): mutate(solution("07_monitoring", "server-numbers"),
                                                    "return count / seconds, 1000 * (lower",
                                                    "return count / seconds, (lower"),
        ("07_monitoring", "custom-metric"): mutate(
            solution("07_monitoring", "custom-metric"),
            "        for confidence in probabilities.max(axis=1):\n"
            "            mlserver.log(tinyvit_top1_confidence=float(confidence))\n",
            "        for _ in probabilities:\n"
            "            mlserver.log(tinyvit_top1_confidence=float(probabilities.max(axis=1).mean()))\n"),
        ("01_first_service", "model-settings"): mutate(solution("01_first_service", "model-settings"),
                                                       '"serve-model.TinyViTModel"', '"serve-model.TinyViTModel",'),
        ("01_first_service", "server-settings"): solution("01_first_service", "server-settings"),
        ("01_first_service", "first-service"): solution("01_first_service", "first-service"),
        ("01_first_service", "metadata"): solution("01_first_service", "metadata"),
        ("03_top5_labels", "top5-settings"): solution("03_top5_labels", "top5-settings"),
        ("03_top5_labels", "top5-service"): mutate(solution("03_top5_labels", "top5-service"),
                                                   "images = decode_images(payload)",
                                                   "images = decode_images(payload)[:1]"),
        ("06_packaging", "requirements"): mutate(solution("06_packaging", "requirements"),
                                                 "uvloop==0.21.0", "uvloop>=0.21"),
        ("06_packaging", "dockerfile"): solution("06_packaging", "dockerfile"),
    }


def wrong_c() -> dict:
    """A class name that does not resolve (01, 03): the settings exercise's mistake only (03's
    server checks start the service themselves when the student's start cell failed)."""
    return {
        ("01_first_service", "model-settings"): mutate(solution("01_first_service", "model-settings"),
                                                       "serve-model.TinyViTModel", "serve-model.TinyVitModel"),
        ("03_top5_labels", "top5-settings"): mutate(solution("03_top5_labels", "top5-settings"),
                                                    "serve-model.TopFiveModel", "serve-model.Top5Model"),
        ("03_top5_labels", "top5-service"): solution("03_top5_labels", "top5-service"),
        ("01_first_service", "server-settings"): solution("01_first_service", "server-settings"),
        ("01_first_service", "first-service"): solution("01_first_service", "first-service"),
        ("01_first_service", "metadata"): solution("01_first_service", "metadata"),
    }


TOP5_ANSWER = ("        return InferenceResponse(\n", "        )\n        ### END SOLUTION")


def wrong_b() -> dict:
    """Batching keys in settings.json and logits (01); a predict() that keeps its first answer
    and returns it for every later request (03: it ignores its input from then on); a
    confidence.py whose indentation stops its server from starting (07: the custom metric's
    check only, and the cells after the failed start still run)."""
    caching = mutate(solution("03_top5_labels", "top5-service"), "        images = decode_images(payload)\n",
                     "        if hasattr(self, 'first_answer'):\n            return self.first_answer\n"
                     "        images = decode_images(payload)\n")
    caching = mutate(caching, TOP5_ANSWER[0], "        self.first_answer = InferenceResponse(\n")
    caching = mutate(caching, TOP5_ANSWER[1], "        )\n        return self.first_answer\n        ### END SOLUTION")
    return {
        ("03_top5_labels", "top5-settings"): solution("03_top5_labels", "top5-settings"),
        ("03_top5_labels", "top5-service"): caching,
        ("01_first_service", "model-settings"): solution("01_first_service", "model-settings"),
        ("01_first_service", "server-settings"): mutate(solution("01_first_service", "server-settings"),
                                                        '"debug": false', '"debug": false,\n  "max_batch_size": 8'),
        ("01_first_service", "first-service"): mutate(solution("01_first_service", "first-service"),
                                                      ".softmax(dim=-1)", ""),
        ("01_first_service", "metadata"): mutate(solution("01_first_service", "metadata"), '"name": "output-0"',
                                                 '"name": "probabilities"'),
        ("07_monitoring", "server-numbers"): solution("07_monitoring", "server-numbers"),
        ("07_monitoring", "custom-metric"): mutate(solution("07_monitoring", "custom-metric"),
                                                   "        for confidence in", "       for confidence in"),
    }


def wrong_d() -> dict:
    """Labels right, scores of the first image's row on every row (03): one image per
    request is right, a batch is not."""
    return {
        ("03_top5_labels", "top5-settings"): solution("03_top5_labels", "top5-settings"),
        ("03_top5_labels", "top5-service"): mutate(solution("03_top5_labels", "top5-service"),
                                                   "scores = np.take_along_axis(probabilities, top, axis=1)",
                                                   "scores = probabilities[0][top]"),
    }


def catalogued(exercise: str, kind: str, index: int = 0) -> str:
    """The answer of the catalogue's ``index``-th entry of ``kind`` for ``exercise``
    (tests/checks/mistakes.py), so that the proof grades the very answers the catalogue holds."""
    from tests.checks.mistakes import CATALOGUE

    return [m.answer for m in CATALOGUE if m.exercise == exercise and m.kind == kind][index]


def wrong_k() -> dict:
    """Catalogue entries of the classes no other hand-in carries: a misspelt key (01's
    settings.json), batching keys one level too deep (05's model-settings.json), the budget
    read off the p50 (05's pick)."""
    return {
        ("01_first_service", "server-settings"): "%%writefile my-tinyvit/settings.json\n"
                                                 + catalogued("01 settings.json", "misspelt key"),
        ("01_first_service", "model-settings"): solution("01_first_service", "model-settings"),
        ("01_first_service", "first-service"): solution("01_first_service", "first-service"),
        ("01_first_service", "metadata"): solution("01_first_service", "metadata"),
        ("05_scaling", "scaled-settings"): solution("05_scaling", "scaled-settings"),
        ("05_scaling", "scaled-model-settings"): "%%writefile scaled/model-settings.json\n"
                                                 + catalogued("05 model-settings.json", "wrong level"),
        ("05_scaling", "scaling-choice"): catalogued("05 pick_configuration", "mean for quantile"),
        ("05_scaling", "tuned-settings"): solution("05_scaling", "tuned-settings"),
        ("05_scaling", "tuned-model-settings"): '%%writefile tuned/model-settings.json\n{"name": "tuned", '
                                                '"implementation": "serve-model.TinyViTModel", "max_batch_size": 8, '
                                                '"max_batch_time": 0.004}\n',
        ("05_scaling", "tuned-transport"): solution("05_scaling", "tuned-transport"),
    }


def fast_and_wrong(notebook):
    """05's challenge: the lab's service in tuned/ edited to answer every request with the first
    image's probabilities, computed once (fast, and wrong for every other image)."""
    ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells]
    if "tuned-model-settings" not in ids:
        return
    service = (REPO / "tinyvit" / "serve-model.py").read_text()
    service = mutate(service, "        probabilities = self.classify(images)\n",
                     "        if not hasattr(self, 'kept'):\n            self.kept = self.classify(images[:1])\n"
                     "        probabilities = np.repeat(self.kept, len(images), axis=0)\n")
    notebook.cells.insert(ids.index("tuned-model-settings") + 1,
                          nbformat.v4.new_code_cell("%%writefile tuned/serve-model.py\n" + service))


# Each class of the mistake catalogue, and the hand-in and check of this proof that carry a
# sample of it through the real `make grade` pipeline (its points: EXPECTED).
CLASS_SAMPLES = {
    "misspelt key": ("kim", "server-settings-check"), "wrong level": ("kim", "scaled-model-settings-check"),
    "mean for quantile": ("kim", "scaling-choice-check"), "wrong file": ("carol", "scaled-settings-check"),
    "case or type": ("fay", "model-settings-check"), "unit": ("carol", "scaled-model-settings-check"),
    "ignores input": ("carol", "remote-classifier-check"), "stale state": ("dave", "top5-check"),
    "first row": ("carol", "top5-batch-check"), "position for label": ("carol", "scaling-choice-check"),
    "wrong path": ("carol", "runtime-check"), "wrong value": ("dave", "first-service-check"),
    "format": ("carol", "model-settings-check"), "correct, written differently": ("alice", "top5-check"),
}


def hand_in(released, folder, answers=None, edit=None, notebooks=NOTEBOOKS):
    """The released notebooks with ``answers[(notebook, grade_id)]`` in the exercise cells."""
    folder.mkdir(parents=True)
    for name in notebooks:
        notebook = nbformat.read(released / f"{name}.ipynb", as_version=4)
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if answers and (name, grade_id) in answers:
                cell.source = answers[(name, grade_id)]
        if edit:
            edit(notebook)
        nbformat.write(notebook, folder / f"{name}.ipynb")


def crash_the_kernel(notebook):
    notebook.cells.insert(3, nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))


def digest(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*.ipynb")}


def read_points(out):
    with open(out / "grades_by_check.csv") as handle:
        return {(row["student"], row["check"]): float(row["points"]) for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    folder = tmp_path_factory.mktemp("released")
    release(target=folder)
    return folder


HANDED_IN = {"alice": NOTEBOOKS, "bob": NOTEBOOKS, "carol": NOTEBOOKS,
             "dave": ["01_first_service", "03_top5_labels", "07_monitoring"], "eve": ["01_first_service"],
             "fay": ["01_first_service", "03_top5_labels"],
             "gus": ["01_first_service", "03_top5_labels", "06_packaging"],
             "hal": ["03_top5_labels"], "kim": ["01_first_service", "05_scaling"]}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released):
    submissions = tmp_path_factory.mktemp("submissions")
    hand_in(released, submissions / "alice", correct_but_different(), notebooks=HANDED_IN["alice"])
    hand_in(released, submissions / "bob")
    hand_in(released, submissions / "carol", wrong_a(), notebooks=HANDED_IN["carol"])
    hand_in(released, submissions / "dave", wrong_b(), notebooks=HANDED_IN["dave"])
    hand_in(released, submissions / "eve", correct_but_different(), edit=crash_the_kernel,
            notebooks=["01_first_service"])
    hand_in(released, submissions / "fay", wrong_c(), notebooks=HANDED_IN["fay"])
    hand_in(released, submissions / "hal", wrong_d(), notebooks=HANDED_IN["hal"])
    hand_in(released, submissions / "kim", wrong_k(), edit=fast_and_wrong, notebooks=HANDED_IN["kim"])
    # Passed at home: the solution notebooks as nbval ran them, in notebooks/solutions/ on the
    # default ports, 03 on the my-tinyvit/ folder that 01 wrote there; graded in another folder
    # on free ports, they keep every point.
    (submissions / "gus").mkdir()
    for name in HANDED_IN["gus"]:
        shutil.copy(SOLUTIONS / f"{name}.ipynb", submissions / "gus" / f"{name}.ipynb")
    before = digest(submissions)
    out = tmp_path_factory.mktemp("grading")
    grade(submissions, out, notebooks=NOTEBOOKS, cell_timeout=180, jobs=2)
    return submissions, out, before


FULL = {"model-settings-check": 1, "server-settings-check": 1, "first-service-check": 2, "metadata-check": 2,
        "remote-classifier-check": 3, "top5-settings-check": 1, "top5-check": 3, "top5-batch-check": 2,
        "top5-batching-check": 2, "hf-settings-check": 1, "runtime-check": 2, "scaled-settings-check": 2,
        "scaled-model-settings-check": 2, "scaling-choice-check": 2, "scaling-function-check": 2,
        "server-numbers-check": 2, "custom-metric-check": 2, "requirements-check": 2, "dockerfile-check": 1,
        "tuned-check": 4}
ONLY_01 = {check: 0 for check in FULL if check not in ("model-settings-check", "server-settings-check",
                                                        "first-service-check", "metadata-check")}
OF_03 = ("top5-settings-check", "top5-check", "top5-batch-check", "top5-batching-check")
EXPECTED = {
    "alice": FULL,
    "bob": dict.fromkeys(FULL, 0),
    # trailing comma: the file only (the service check does not need it, nor the declaration that
    # Exercise 4 adds to it); 02's written address; first image only (its one-image requests are
    # right; the batch check charges it, the hidden batching check meets it again and does not);
    # uvloop open: the requirements only, not the Dockerfile; 04's uri leaves the folder,
    # its Hugging Face model is the hub's; 05's batching keys in settings.json and 10 s for 10 ms:
    # each its own file's points; a position: the pick's visible check (the hidden one does not
    # charge the same function again); 07's p95 in seconds.
    "carol": {**FULL, "model-settings-check": 0, "remote-classifier-check": 0,
              "top5-batch-check": 0, "requirements-check": 0, "runtime-check": 0,
              "hf-settings-check": 0,
              "scaled-settings-check": 0, "scaled-model-settings-check": 0, "scaling-choice-check": 0,
              "server-numbers-check": 0, "custom-metric-check": 0, "tuned-check": 0},
    # batching keys in settings.json; logits; the lab's output name declared for 01's service;
    # 03's service answers its first request to all (charged by the one-image check only: the
    # batch check and the hidden batching check find the service wrong one image at a time and
    # leave it there); 07's metric file does not start.
    "dave": {**FULL, **ONLY_01, "server-settings-check": 0, "first-service-check": 0, "metadata-check": 0,
             "top5-settings-check": 1, "top5-check": 0, "top5-batch-check": 2, "top5-batching-check": 2,
             "server-numbers-check": 2},
    # 03's scores of the first row on every row: the one-image check passes, the batch check
    # charges it, the hidden batching check meets the same scores again and does not.
    "hal": {**dict.fromkeys(FULL, 0), "top5-settings-check": 1, "top5-check": 3, "top5-batching-check": 2},
    "eve": dict.fromkeys(FULL, 0),
    # catalogue entries: "paralel_workers" (01's settings.json only), batching under "parameters"
    # (05's model-settings.json only), the p50 for the p95 (the pick's visible check only).
    "kim": {**dict.fromkeys(FULL, 0), "model-settings-check": 1, "server-settings-check": 0, "first-service-check": 2,
            "metadata-check": 2, "scaled-settings-check": 2, "scaled-model-settings-check": 0,
            "scaling-choice-check": 0, "scaling-function-check": 2},
    # a class name that does not resolve: the settings exercise only, in 01 and in 03.
    "fay": {**FULL, **ONLY_01, "model-settings-check": 0, **{check: FULL[check] for check in OF_03},
            "top5-settings-check": 0},
    "gus": {**FULL, **ONLY_01, **{check: FULL[check] for check in OF_03}, "requirements-check": 2,
            "dockerfile-check": 1},
}


def test_points_per_check(graded):
    _, out, _ = graded
    points = read_points(out)
    wrong = {(student, check): (points.get((student, check)), value)
             for student, checks in EXPECTED.items() for check, value in checks.items()
             if points.get((student, check)) != value}
    assert not wrong, wrong


def test_every_class_of_the_catalogue_has_a_sample_graded_through_make_grade(graded):
    from tests.checks.mistakes import KINDS

    _, out, _ = graded
    points = read_points(out)
    assert set(CLASS_SAMPLES) == set(KINDS)
    for kind, (student, check) in CLASS_SAMPLES.items():
        expected = FULL[check] if kind == "correct, written differently" else 0
        assert points[(student, check)] == expected == EXPECTED[student][check], (kind, student, check)


def test_gradebook_csv_and_feedback_files(graded):
    _, out, _ = graded
    with open(out / "grades.csv") as handle:
        totals = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert totals == {student: sum(checks.values()) for student, checks in EXPECTED.items()}
    for student, notebooks in HANDED_IN.items():
        for name in NOTEBOOKS:
            assert (out / "feedback" / student / f"{name}.html").is_file() == (name in notebooks), (student, name)


def test_feedback_names_the_mistake(graded):
    _, out, _ = graded
    carol = (out / "feedback" / "carol" / "01_first_service.html").read_text()
    assert "trailing comma" in carol
    assert "has the address" in (out / "feedback" / "carol" / "02_inference_requests.html").read_text()
    assert "admits uvloop 0.22.0" in (out / "feedback" / "carol" / "06_packaging.html").read_text()
    assert "defines no class TinyVitModel" in (out / "feedback" / "fay" / "01_first_service.html").read_text()
    bob = (out / "feedback" / "bob" / "01_first_service.html").read_text()
    # Released with its %%writefile line and a body that runs: the check, not IPython, answers.
    assert re.search(r"has no (&quot;|&#34;|\")name", bob) and "UsageError" not in bob
    dave = (out / "feedback" / "dave" / "01_first_service.html").read_text()
    assert "MLServer reads adaptive batching per model" in dave
    assert re.search(r"outputs\[0\]\.name is (&#39;|')probabilities", dave)
    dave_03 = (out / "feedback" / "dave" / "03_top5_labels.html").read_text()
    assert re.search(r"got the same labels|holds labels that are not image", dave_03), "a cached answer passed"
    hal = (out / "feedback" / "hal" / "03_top5_labels.html").read_text()
    assert "The labels are right but the scores are not: in row 1" in hal
    carol_of = {name: (out / "feedback" / "carol" / f"{name}.html").read_text() for name in LATER}
    assert "points outside top3/" in carol_of["04_inference_runtimes"]
    assert "a model on the Hugging Face hub" in carol_of["04_inference_runtimes"]
    assert "MLServer reads adaptive batching per model" in carol_of["05_scaling"]
    assert "MLServer reads it in seconds" in carol_of["05_scaling"]
    assert "not their top-1 probabilities" in carol_of["07_monitoring"]
    assert "right latency in seconds, and the exercise asks for milliseconds" in carol_of["07_monitoring"]
    # 02's break-it cell serves bob's untouched 01 service: it says what to finish, no traceback.
    bob_02 = (out / "feedback" / "bob" / "02_inference_requests.html").read_text()
    assert "does not work yet" in bob_02 and "Finish Exercise 3 of notebook 01" in bob_02
    assert "ServerStartError" not in bob_02
    # 07: dave's confidence.py does not start; the feedback shows his file's error first, and the
    # cells after the failed start run (the last one printed a NameError once).
    dave_07 = (out / "feedback" / "dave" / "07_monitoring.html").read_text()
    assert "IndentationError" in dave_07 and "confidence.py" in dave_07
    assert "running: False False" in dave_07 and "NameError" not in dave_07
    fay = (out / "feedback" / "fay" / "03_top5_labels.html").read_text()
    assert "defines no class Top5Model" in fay and "This check starts top5/serve-model.py itself" in fay
    # 05's challenge: the course text's server is over the latency budget (its answers are JSON,
    # compressed); a fast service that answers every image with the first one's rows gets nothing;
    # a sound configuration other than the lab's earns what its measured ratio earns.
    # (the budget: 25 ms, or three tenths of the engine's own time for one image on a busy machine)
    assert re.search(r"ms later than the engine alone, over the budget of \d+ ms", carol_of["05_scaling"])
    kim_05 = (out / "feedback" / "kim" / "05_scaling.html").read_text()
    assert "is not the model&#39;s" in kim_05 or "is not the model's" in kim_05
    alice_05 = (out / "feedback" / "alice" / "05_scaling.html").read_text()
    ratio = float(re.search(r"Served over the engine alone at 8 callers: ([0-9.]+)", alice_05).group(1))
    assert read_points(out)[("alice", "tuned-check")] == 4 * challenge.points(ratio)


def test_feedback_pages_keep_hidden_checks_hidden(graded):
    # Every page of every student: no hidden check's code, name, data or message; its points
    # and verdict in general terms only.
    _, out, _ = graded
    pages = {page: page.read_text() for page in (out / "feedback").rglob("*.html")}
    assert pages
    for page, text in pages.items():
        # (03's hidden check has a visible twin, whose own pass line the student sees anyway.)
        for secret in ("BEGIN HIDDEN TESTS", "hidden_checks", "pick_configuration_function",
                       "top5_under_adaptive_batching", "On another table", "the right row is"):
            assert secret not in text, (page, secret)
    bob = pages[out / "feedback" / "bob" / "03_top5_labels.html"]  # his service is not written
    assert "This hidden check failed: under adaptive batching, concurrent callers" in bob
    hal = pages[out / "feedback" / "hal" / "03_top5_labels.html"]  # the batch check took his points
    assert "This hidden check passed" in hal
    assert "This hidden check passed" in pages[out / "feedback" / "alice" / "05_scaling.html"]


def test_two_hand_ins_are_graded_side_by_side_and_timed(graded):
    _, out, _ = graded
    with open(out / "timing.csv") as handle:
        timing = {row["student"]: (float(row["started_s"]), float(row["seconds"]), row["graded"])
                  for row in csv.DictReader(handle)}
    assert sorted(timing) == sorted(EXPECTED) and timing["eve"][2] == "no" and timing["alice"][2] == "yes"
    intervals = sorted((start, start + seconds) for start, seconds, _ in timing.values())
    assert any(later[0] < earlier[1] for earlier, later in zip(intervals, intervals[1:])), intervals
    # The longest hand-ins first: the three of seven notebooks start before any hand-in of one
    # (in name order, eve and hal came before the last of them, and a class ended on one long
    # hand-in alone on the machine).
    assert max(timing[student][0] for student in ("alice", "bob", "carol")) \
        <= min(timing[student][0] for student in ("eve", "hal")), timing


def test_submissions_untouched_and_no_server_left(graded):
    submissions, _, before = graded
    assert digest(submissions) == before
    assert lab_servers() == []


def test_grading_again_gives_the_same_grades(graded, tmp_path):
    # Carol's 06 again, alone, into another folder: a course set up anew gives the same points,
    # each check's own (her requirements lose their 2 points, her Dockerfile keeps its 1). 06
    # starts no server: a notebook with servers took 52 s here, this one takes seconds.
    submissions, out, _ = graded
    only_carol = tmp_path / "submissions"
    (only_carol / "carol").mkdir(parents=True)
    name = "06_packaging.ipynb"
    (only_carol / "carol" / name).write_bytes((submissions / "carol" / name).read_bytes())
    grade(only_carol, tmp_path / "again", notebooks=["06_packaging"], cell_timeout=120)
    checks_of_06 = ("requirements-check", "dockerfile-check")
    first = {key: value for key, value in read_points(out).items() if key[0] == "carol" and key[1] in checks_of_06}
    assert read_points(tmp_path / "again") == first == {("carol", "requirements-check"): 0.0,
                                                         ("carol", "dockerfile-check"): 1.0}


def test_the_lab_s_tuned_settings_get_every_point_of_the_challenge_also_beside_a_busy_core(tmp_path):
    # 05's challenge must grade the same on a busy machine: the solution notebook (the lab's tuned
    # settings: OpenVINO in MLServer's own process, batches of 8 within 4 ms, gRPC) graded while
    # another program keeps one of the two cores busy gets all 4 points, and says it was busy.
    import subprocess
    import sys

    (tmp_path / "submissions" / "gus").mkdir(parents=True)
    shutil.copy(SOLUTIONS / "05_scaling.ipynb", tmp_path / "submissions" / "gus" / "05_scaling.ipynb")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        grade(tmp_path / "submissions", tmp_path / "out", notebooks=["05_scaling"], cell_timeout=300, jobs=1)
    finally:
        hog.kill()
        hog.wait()
    assert read_points(tmp_path / "out")[("gus", "tuned-check")] == 4
    feedback = (tmp_path / "out" / "feedback" / "gus" / "05_scaling.html").read_text()
    assert "measured again: other programs took the CPU" in feedback
    assert lab_servers() == []


def test_a_hand_in_that_hangs_costs_its_points_after_the_bound(released, tmp_path):
    # An endless loop in predict(): the first request to the service never returns.
    first_service = mutate(correct_but_different()[("01_first_service", "first-service")],
                           "        with torch.no_grad():", "        while True:\n            pass\n"
                                                            "        with torch.no_grad():")
    answers = {**correct_but_different(), ("01_first_service", "first-service"): first_service}
    hand_in(released, tmp_path / "submissions" / "frank", answers, notebooks=["01_first_service"])
    started = time.monotonic()
    # 35 s: the notebook reaches the service's check in about 15 s when graded alone.
    grade(tmp_path / "submissions", tmp_path / "out", notebooks=["01_first_service"], cell_timeout=600,
          hand_in_timeout=35)
    # The bound, plus setting up the course and writing the gradebook.
    assert time.monotonic() - started < 35 + 60
    assert set(read_points(tmp_path / "out").values()) == {0.0}
    feedback = (tmp_path / "out" / "feedback" / "frank" / "01_first_service.html").read_text()
    assert "took longer than 35 s" in feedback and "endless loop" in feedback
    assert lab_servers() == []


def test_a_hand_in_that_grows_without_end_is_stopped_at_the_memory_bound_and_costs_only_its_own_points(
        released, tmp_path):
    # A predict() that keeps what it allocates, without end (about 1 GB/s): the grader stops that
    # hand-in's kernel and servers at the bound; the hand-in graded beside it keeps its points.
    first_service = mutate(correct_but_different()[("01_first_service", "first-service")],
                           "        with torch.no_grad():",
                           "        import time\n        kept = []\n        while True:\n"
                           "            kept.append(b'x' * 50_000_000)\n            time.sleep(0.05)\n"
                           "        with torch.no_grad():")
    answers = {**correct_but_different(), ("01_first_service", "first-service"): first_service}
    hand_in(released, tmp_path / "submissions" / "ivy", answers, notebooks=["01_first_service"])
    hand_in(released, tmp_path / "submissions" / "jay", correct_but_different(), notebooks=["01_first_service"])
    grade(tmp_path / "submissions", tmp_path / "out", notebooks=["01_first_service"], cell_timeout=600,
          jobs=2, hand_in_memory_gib=2.5)
    points = read_points(tmp_path / "out")
    checks_of_01 = ["model-settings-check", "server-settings-check", "first-service-check", "metadata-check"]
    assert {check: value for (student, check), value in points.items() if student == "ivy"} \
        == dict.fromkeys(checks_of_01, 0.0)
    assert sum(value for (student, _), value in points.items() if student == "jay") == 6
    feedback = (tmp_path / "out" / "feedback" / "ivy" / "01_first_service.html").read_text()
    assert "grew past 2.5 GiB of memory" in feedback and "keeps every batch" in feedback
    with open(tmp_path / "out" / "timing.csv") as handle:
        timing = {row["student"]: row for row in csv.DictReader(handle)}
    assert timing["ivy"]["graded"] == "no" and timing["jay"]["graded"] == "yes"
    assert 0 < float(timing["jay"]["peak_memory_mb"]) < 2.5 * 1024
    assert lab_servers() == []


def test_grading_skips_the_demonstrations_and_the_feedback_says_so(graded):
    # The points of every hand-in above are the ones they got with every cell run (the same
    # EXPECTED, from before the demonstrations were skipped); here: that they were skipped.
    from labkit.instructor.demonstrations import SKIPPED

    _, out, _ = graded
    feedback = (out / "feedback" / "alice" / "05_scaling.html").read_text()
    assert feedback.count(SKIPPED) >= 10
    # The student's own source, shown as handed in (highlighted: one span per name).
    assert '<span class="n">sweep</span>' in feedback and "sweep_for_grading" not in feedback
    assert (out / "feedback" / "alice" / "06_packaging.html").read_text().count(SKIPPED) == 0


def test_a_hand_in_graded_with_its_demonstrations_run_gets_the_same_points(graded, released, tmp_path, monkeypatch):
    # Skipping the demonstrations changes no grade: alice's 05 (its sweep skipped when graded,
    # its table then drawn by the grading form) graded again with every cell run, in quick
    # mode (the sweep's short form, as nbval runs it), gets the points the proof gave it.
    _, out, _ = graded
    monkeypatch.setenv("LAB_QUICK", "1")
    hand_in(released, tmp_path / "submissions" / "alice", correct_but_different(), notebooks=["05_scaling"])
    grade(tmp_path / "submissions", tmp_path / "out", notebooks=["05_scaling"], cell_timeout=600, jobs=1,
          run_demonstrations=True)
    every_cell = read_points(tmp_path / "out")
    skipped = read_points(out)
    checks_of_05 = [check for (student, check) in every_cell if student == "alice"]
    # the five autograded cells of 05 and the written answer (0 until a human grades it)
    assert len(checks_of_05) == 6
    assert {check: every_cell[("alice", check)] for check in checks_of_05} == \
        {check: skipped[("alice", check)] for check in checks_of_05}
    feedback = (tmp_path / "out" / "feedback" / "alice" / "05_scaling.html").read_text()
    from labkit.instructor.demonstrations import SKIPPED

    assert SKIPPED not in feedback  # every cell ran
