"""labkit.checks.service_calls: notebook 01's service called in process; a right answer passes, each plausible
mistake fails with a message that names it, and costs the service exercise only."""

import pytest
from labkit import checks
from tests.helpers.lab import REPO
from tests.helpers.solutions import mutate


def test_a_service_that_does_not_import_costs_the_service_exercise_only(folder, checkpoint):
    path = folder / "serve-model.py"
    path.write_text(path.read_text().replace("import torch\n", "import torch\nimport no_such_module\n", 1))
    checks.model_settings(folder)  # it names the class the file defines
    with pytest.raises(checks.CheckFailed, match="Importing serve-model.py failed"):
        checks.service(folder, checkpoint)


def test_a_service_that_ignores_its_image_fails(folder, checkpoint):
    # A fixed image instead of the payload: right for one image, wrong for the next.
    path = folder / "serve-model.py"
    path.write_text(mutate(path.read_text(), "Image.fromarray(payload)", "Image.fromarray(np.zeros((224, 224, 3), "
                                                                           "np.uint8))"))
    with pytest.raises(checks.CheckFailed, match="differ from TinyViT's|does not classify the image"):
        checks.service(folder, checkpoint)


def test_a_class_renamed_in_the_service_file_costs_the_service_exercise_only(folder, checkpoint, capsys):
    # helper session 5: `class TinyVitModel` in serve-model.py failed model-settings-check too, whose
    # hint said to change "implementation", which was right.
    path = folder / "serve-model.py"
    path.write_text(mutate(path.read_text(), "class TinyViTModel(", "class TinyVitModel("))
    checks.model_settings(folder)
    assert "defines no class of that name" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="defines no class TinyViTModel") as caught:
        checks.service(folder, checkpoint)
    assert "The exercise's class is called TinyViTModel" in caught.value.hint and "implementation" not in \
        caught.value.hint


@pytest.mark.parametrize("file, old, new, message", [
    ("serve-model.py", "class TinyViTModel(", "class MyModel(", "asks for a class TinyViTModel"),
    ("serve-model.py", ".softmax(dim=-1)", "", "logits, not probabilities"),
    # helper session 5: these were all called logits, or blamed on the preprocessing.
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).mul(100)", "percentages, not probabilities"),
    ("serve-model.py", ".softmax(dim=-1)", ".sigmoid()", "a probability per class on its own"),
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).softmax(dim=-1)", "changed after the network"),
    # helper session 13: named "read as whole numbers?" alone (random weights: every value rounds to 0)
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).mul(1000).round().div(1000)",
     r"every one of them is 0: the numbers were lost on the way \(rounded"),
    # helper session 14: told "changed after the network"
    ("serve-model.py", ".softmax(dim=-1).numpy()", ".softmax(dim=-1).half().float().numpy()",
     "TinyViT's probabilities through float16"),
    # helper session 12: a uniform answer (an error caught and replaced) was told "changed after the network"
    ("serve-model.py", ".softmax(dim=-1)", ".softmax(dim=-1).mul(0).add(1 / 21841)",
     "the same for every class, so the answer does not depend on the image"),
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
    # helper session 17: MLServer's words read backwards, Python's words, and no line of the file
    ("serve-model.py", "    async def predict(self, payload: np.ndarray) -> np.ndarray:\n",
     "    async def predict(self, image: np.ndarray) -> np.ndarray:\n        payload = image\n",
     "predict\\(\\)'s argument is named 'image': @decode_args hands predict\\(\\) the request's input of the same "
     "name, and the requests carry 'payload'"),
    ("serve-model.py", "    async def predict(self, payload: np.ndarray) -> np.ndarray:",
     "    def predict(self, payload: np.ndarray) -> np.ndarray:",
     r"predict\(\) is a plain function \(def\) and returned its answer"),
    ("serve-model.py", "Image.fromarray(payload))[None]", "Image.fromarray(payload).convert('RGBA'))[None]",
     r"In your code: serve-model.py, line \d+: batch = self.transform\(Image.fromarray\(payload\).convert"),
    # helper session 6: told to check the import lines
    ("serve-model.py", "async def predict(self, payload: np.ndarray) -> np.ndarray:",
     "async def predict(self, payload: np.ndarray) -> list:", r"failed on line \d+ \(@decode_args\): MLServer's "
     "@decode_args found no codec"),
])
def test_service_mistakes_are_named(folder, checkpoint, file, old, new, message):
    path = folder / file
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=message):
        checks.service(folder, checkpoint)


def test_a_load_that_returns_a_true_value_other_than_true_passes(folder, checkpoint, capsys):
    # helper session 6: `return self.model` was refused as "never ready" with the network's
    # 17 kB repr; MLServer asks only whether the value is true, and served it.
    path = folder / "serve-model.py"
    path.write_text(mutate(path.read_text(), "        return True\n", "        return self.model\n"))
    checks.service(folder, checkpoint)
    assert "✔" in capsys.readouterr().out
    path.write_text(mutate(path.read_text(), "        return self.model\n", "        return []\n"))
    with pytest.raises(checks.CheckFailed, match=r"load\(\) returned \[\], so MLServer would never mark"):
        checks.service(folder, checkpoint)


def test_an_untouched_service_says_it_is_not_written(folder, checkpoint):
    code = (folder / "serve-model.py").read_text()
    start, end = code.index("        ### BEGIN SOLUTION"), code.index("### END SOLUTION") + len("### END SOLUTION")
    (folder / "serve-model.py").write_text(code[:start] + "        raise NotImplementedError()" + code[end:])
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        checks.service(folder, checkpoint)


def test_the_lab_s_own_service_in_05_s_folders_passes_its_check_and_a_wrong_change_of_it_fails(tmp_path, checkpoint,
                                                                                                capsys):
    # helper session 16: the lab's unchanged serve-model.py written again into tuned/ was checked
    # as 01's single-image service ("UINT8 input shape [294, 429, 3] is not [N, H, W, 3]"), and
    # the student was told to fix the code.
    from labkit.workspace import lab_service_copy

    folder = lab_service_copy(tmp_path / "tuned", checkpoint)
    with pytest.raises(checks.CheckFailed, match=r"is not \[N, H, W, 3\]"):
        checks.service(folder, checkpoint)  # 01's check: the wrong one for this file
    checks.lab_service(folder, checkpoint)
    assert "tuned/serve-model.py answers a batch of 2 images with each image's probabilities" in \
        capsys.readouterr().out
    path = folder / "serve-model.py"
    path.unlink()  # a copy of the lab's file (lab_service_copy may link it)
    path.write_text(mutate((REPO / "tinyvit" / "serve-model.py").read_text(),
                           "        probabilities = self.classify(images)",
                           "        probabilities = self.classify(images[:1] * len(images))"))
    with pytest.raises(checks.CheckFailed, match="Row 2 of predict"):
        checks.lab_service(folder, checkpoint)
