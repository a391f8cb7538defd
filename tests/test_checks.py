"""labkit.checks: a correct exercise passes, a subtly wrong one fails with a hint."""

import nbformat
import pytest

from labkit import checks
from labkit.notebooks import SOLUTIONS
from labkit.server import ModelServer
from labkit.workspace import prepare_service_folder
from tests.conftest import FREE_PORTS

pytestmark = pytest.mark.slow


def solution_service_code() -> str:
    """The top-5 service as the solution notebook writes it (minus the %%writefile line)."""
    notebook = nbformat.read(SOLUTIONS / "03_top5_labels.ipynb", as_version=4)
    cell = next(cell for cell in notebook.cells if cell.source.startswith("%%writefile top5/serve-model.py"))
    return cell.source.split("\n", 1)[1]


def serve(tmp_path, checkpoint, code):
    folder = prepare_service_folder(tmp_path / "top5", name="tinyvit-top5",
                                    implementation="serve-model.TopFiveModel", checkpoint=checkpoint)
    (folder / "serve-model.py").write_text(code)
    return ModelServer(folder, parallel_workers=0, **FREE_PORTS)


def test_the_solution_passes_every_check(tmp_path, checkpoint, capsys):
    with serve(tmp_path, checkpoint, solution_service_code()) as server:
        checks.top5_service(server, checkpoint=checkpoint)
        checks.top5_batch(server, checkpoint=checkpoint)
        checks.top5_under_adaptive_batching(server, checkpoint=checkpoint)
    assert capsys.readouterr().out.count("✔") == 6


def test_a_service_that_answers_only_the_first_image_fails_the_batch_checks(tmp_path, checkpoint):
    code = solution_service_code().replace("self.classify(decode_images(payload))",
                                           "self.classify(decode_images(payload)[:1])")
    with serve(tmp_path, checkpoint, code) as server:
        checks.top5_service(server, checkpoint=checkpoint)
        with pytest.raises(checks.CheckFailed, match="expected \\(3, 5\\)"):
            checks.top5_batch(server, checkpoint=checkpoint)
        with pytest.raises(checks.CheckFailed):
            checks.top5_under_adaptive_batching(server, checkpoint=checkpoint)


def test_top5_ordered_by_label_fails_with_a_hint(tmp_path, checkpoint):
    code = solution_service_code().replace(
        "        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n",
        "        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n"
        "        order = np.argsort(labels, axis=1)\n"
        "        labels = np.take_along_axis(labels, order, axis=1)\n"
        "        scores = np.take_along_axis(scores, order, axis=1)\n")
    with serve(tmp_path, checkpoint, code) as server:
        with pytest.raises(checks.CheckFailed, match="not in descending order") as caught:
            checks.top5_service(server, checkpoint=checkpoint)
    assert "Hint:" in str(caught.value)


def test_an_unwritten_predict_fails_with_the_server_message(tmp_path, checkpoint):
    code = solution_service_code()
    start, end = code.index("        ### BEGIN SOLUTION"), code.index("### END SOLUTION") + len("### END SOLUTION")
    code = code[:start] + "        # YOUR CODE HERE\n        raise NotImplementedError()" + code[end:]
    with serve(tmp_path, checkpoint, code) as server:
        with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
            checks.top5_service(server, checkpoint=checkpoint)


def test_top_class_index_accepts_the_argmax_and_explains_a_wrong_answer(checkpoint):
    from labkit.client import CAT, load_image
    from labkit.weights import in_process_model

    right = int(in_process_model(checkpoint).probabilities([load_image(CAT)])[0].argmax())
    checks.top_class_index(right, checkpoint=checkpoint)
    with pytest.raises(checks.CheckFailed, match="argmax"):
        checks.top_class_index(right + 1, checkpoint=checkpoint)
    with pytest.raises(checks.CheckFailed, match="not an integer"):
        checks.top_class_index("7", checkpoint=checkpoint)


def scaling_table():
    import pandas as pd

    return pd.DataFrame({"configuration": ["w1", "w2", "w2+b"], "concurrency": [8, 8, 8],
                         "throughput_rps": [10.0, 17.0, 12.0], "p95_ms": [800.0, 600.0, 300.0]})


def test_scaling_choice_explains_over_budget_and_not_best():
    table = scaling_table()
    checks.scaling_choice(table, 1, budget_ms=700)
    with pytest.raises(checks.CheckFailed, match="over the 500 ms budget"):
        checks.scaling_choice(table, 1, budget_ms=500)
    with pytest.raises(checks.CheckFailed, match="Row 1 also meets the budget"):
        checks.scaling_choice(table, 2, budget_ms=700)
    with pytest.raises(checks.CheckFailed, match="not a row"):
        checks.scaling_choice(table, 7, budget_ms=700)


def test_hidden_scaling_check_catches_a_hard_coded_or_budget_blind_pick():
    def correct(results, budget_ms):
        within = results[results.p95_ms <= budget_ms]
        return None if within.empty else within.throughput_rps.idxmax()

    checks.pick_configuration_function(correct)
    with pytest.raises(checks.CheckFailed):
        checks.pick_configuration_function(lambda results, budget_ms: 1)
    with pytest.raises(checks.CheckFailed, match="budget"):
        checks.pick_configuration_function(lambda results, budget_ms: results.throughput_rps.idxmax())
