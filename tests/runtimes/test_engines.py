"""The ONNX export (labkit.model.export) and the ONNX Runtime and OpenVINO runtimes (labkit.runtimes.engines):
the exported model answers like PyTorch, a model that does not is refused, and both runtimes
serve the TinyViT contract on a real MLServer."""

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from mlserver.codecs import NumpyCodec
from mlserver.context import model_context
from mlserver.errors import MLServerError

from labkit.model import export, weights
from labkit.images import check_images
from labkit.client import encode_jpeg, files_request, infer_grpc, infer_outputs, load_image, pixels_request
from labkit.runtimes import openvino_forward
from labkit.runtimes.engines import ENGINES, engine_model
from labkit.serving import ModelServer
from labkit.model.service import loaded_service
from tests.helpers.lab import FREE_PORTS, REPO, reload_with
from tests.helpers.network import answer_encoding
from tests.helpers.answers import decode_jpeg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exporting_twice_at_once(checkpoint, tmp_path_factory):
    """The test checkpoint exported and verified once (about 45 s), by two commands started
    at once, as hand-ins graded side by side run it: the path and what each printed."""
    path = tmp_path_factory.mktemp("onnx") / "tinyvit.onnx"
    command = [sys.executable, "-m", "labkit", "export", "--checkpoint", str(checkpoint), "--out", str(path)]
    running = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    printed = [process.communicate(timeout=400) for process in running]
    assert [process.returncode for process in running] == [0, 0], printed
    return path, [out for out, _ in printed]


@pytest.fixture(scope="module")
def onnx_model(exporting_twice_at_once):
    return exporting_twice_at_once[0]


def test_two_exports_at_once_export_once_and_the_other_finds_it_up_to_date(exporting_twice_at_once):
    _, printed = exporting_twice_at_once
    assert sorted(out.split(" ", 1)[0] for out in printed) == sorted(["Wrote", str(exporting_twice_at_once[0])]), \
        printed
    assert sum("is up to date" in out for out in printed) == 1


@pytest.fixture(scope="module")
def images():
    return [image for _, image in check_images()]


def test_the_export_is_verified_and_recorded(onnx_model, checkpoint):
    record = json.loads(export.record_path(onnx_model).read_text())
    assert record["onnx_sha256"] == export.sha256(onnx_model)
    assert record["checkpoint_sha256"] == export.sha256(checkpoint)
    comparison = record["comparison"]
    assert comparison["max_abs_diff"] < 1e-4 and comparison["top5_identical"]
    assert comparison["batch_sizes"] == [4, 1]
    assert record["data_config"]["input_size"] == [3, 224, 224]
    assert export.verified_record(onnx_model) == record


def test_the_command_says_up_to_date_for_a_verified_export_of_the_same_checkpoint(onnx_model, checkpoint, tmp_path,
                                                                                     capsys):
    written = onnx_model.stat().st_mtime_ns
    assert export.main(["--checkpoint", str(checkpoint), "--out", str(onnx_model)]) == 0
    out = capsys.readouterr().out
    assert "is up to date" in out and "--force" in out
    assert onnx_model.stat().st_mtime_ns == written
    other = tmp_path / "other.safetensors"
    weights.write_random_checkpoint(other, seed=7)
    assert export.up_to_date(other, onnx_model) is None  # another checkpoint: export again
    assert export.up_to_date(checkpoint, onnx_model, limit=1e-9) is None  # a stricter limit: compare again


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_answers_like_the_pytorch_service(engine, onnx_model, reference, images):
    answer = engine_model(engine, onnx_model).classify(images)
    expected = reference.probabilities(images)
    assert answer.shape == expected.shape == (4, 21841)
    np.testing.assert_allclose(answer, expected, atol=1e-6)
    assert (np.argsort(-answer)[:, :5] == np.argsort(-expected)[:, :5]).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_runtime_predicts_probabilities_in_process(engine, onnx_model, reference, images):
    # predict() as MLServer calls it: the service's own path when no top_k is asked (a load()
    # of its own must leave the service's attributes usable: a 500 on every request otherwise).
    model = engine_model(engine, onnx_model)
    same_size = [images[1], np.ascontiguousarray(images[1][::-1])]
    with model_context(model.settings):
        response = asyncio.run(model.predict(pixels_request(same_size)))
    np.testing.assert_allclose(NumpyCodec.decode_output(response.outputs[0]), reference.probabilities(same_size),
                               atol=1e-6)


def test_a_model_that_does_not_answer_like_pytorch_is_not_installed(onnx_model, checkpoint, reference, tmp_path):
    """A stale export (the ONNX file of one checkpoint, compared with the model of another), and
    a limit stricter than the export meets: refused, nothing written, the old file kept."""
    other_checkpoint = weights.write_random_checkpoint(tmp_path / "other.safetensors", seed=1)
    other = loaded_service(other_checkpoint)
    candidate, out = tmp_path / "candidate.onnx", tmp_path / "out" / "tinyvit.onnx"
    shutil.copy(onnx_model, candidate)
    with pytest.raises(export.ExportRefused, match=r"does NOT match PyTorch: largest logit difference .*Not written"):
        export.install(candidate, other, other_checkpoint, out)
    assert not out.parent.exists() and candidate.is_file()

    out.parent.mkdir()
    out.write_bytes(b"the student's previous export")
    with pytest.raises(export.ExportRefused, match=r"limit 1e-12"):
        export.install(candidate, reference.service, checkpoint, out, limit=1e-12)
    assert out.read_bytes() == b"the student's previous export" and not export.record_path(out).exists()

    comparison = export.install(candidate, reference.service, checkpoint, out)
    assert comparison.passed and not candidate.exists()
    assert export.verified_record(out)["comparison"]["max_abs_diff"] == comparison.max_abs_diff


def test_openvino_is_compared_at_the_precision_it_serves(onnx_model, reference):
    import openvino

    service = reference.service
    batch = export.comparison_batch(service)
    served = export.compare(openvino_forward(onnx_model), service.model, batch)
    assert served.passed, served.describe()
    if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        # OpenVINO's own default on this CPU: bfloat16, which the comparison must catch.
        default = export.compare(openvino_forward(onnx_model, precision=None), service.model, batch)
        assert default.max_abs_diff > 100 * served.max_abs_diff and not default.passed, default.describe()


def test_an_unverified_changed_or_stale_onnx_file_is_refused(onnx_model, checkpoint, tmp_path):
    copy = tmp_path / "tinyvit.onnx"
    shutil.copy(onnx_model, copy)
    with pytest.raises(export.NotVerified, match="no verification record"):
        export.verified_record(copy)
    with pytest.raises(MLServerError, match="ONNX Runtime: .* no verification record"):
        engine_model("onnxruntime", copy)

    record = json.loads(export.record_path(onnx_model).read_text())
    export.record_path(copy).write_text(json.dumps(record))
    export.verified_record(copy)  # the same bytes, verified
    with open(copy, "ab") as file:
        file.write(b"\0")
    with pytest.raises(export.NotVerified, match="changed after it was verified"):
        export.verified_record(copy)

    shutil.copy(onnx_model, copy)
    moved = tmp_path / "tinyvit.safetensors"
    weights.write_random_checkpoint(moved, seed=1)  # the weights changed since the export
    export.record_path(copy).write_text(json.dumps({**record, "checkpoint": str(moved)}))
    with pytest.raises(export.NotVerified, match="exported from another version"):
        export.verified_record(copy)


@pytest.fixture(scope="module")
def engine_server(tmp_path_factory, onnx_model):
    """One server for both engines: each test writes its runtime's model settings into the
    folder and reloads the model (seconds) instead of starting a server."""
    folder = tmp_path_factory.mktemp("engine") / "tinyvit-engine"
    shutil.copytree(REPO / "runtimes" / "tinyvit-onnxruntime", folder)  # settings.json as shipped
    (folder / "model-settings.json").write_text(engine_settings("onnxruntime"))
    with ModelServer(folder, weights=onnx_model, parallel_workers=0, **FREE_PORTS) as server:
        yield server


def engine_settings(engine: str, **extra) -> str:
    """The shipped runtime folder's model settings (``engine``'s implementation) with
    ``extra``, under the one model name the shared server keeps."""
    settings = json.loads((REPO / "runtimes" / f"tinyvit-{engine}" / "model-settings.json").read_text())
    settings["name"] = "tinyvit-engine"
    settings["parameters"]["extra"] = extra
    return json.dumps(settings)


def test_onnx_runtime_serves_probabilities_over_rest_and_grpc(engine_server, reference, images):
    server = reload_with(engine_server, {"model-settings.json": engine_settings("onnxruntime")})
    files = [encode_jpeg(image) for image in images[:3]]
    rest = infer_outputs(server.infer_url, files_request(files))["probabilities"]
    assert rest.shape == (3, 21841)
    # JPEG is lossy: the reference sees the decoded files.
    np.testing.assert_allclose(rest, reference.probabilities([decode_jpeg(data) for data in files]), atol=1e-6)
    same_size = [images[1], np.ascontiguousarray(images[1][::-1])]
    grpc = infer_grpc(server.grpc_address, server.name, pixels_request(same_size), "probabilities")
    np.testing.assert_allclose(grpc, reference.probabilities(same_size), atol=1e-6)
    bad = requests.post(server.infer_url, json={"inputs": [{"name": "payload", "shape": [8, 8, 3],
                                                            "datatype": "UINT8", "data": [0] * 192}]})
    assert bad.status_code == 400 and "[N, H, W, 3]" in bad.text
    # The runtime folders' settings.json turns gzip off as tinyvit/ does (measured in the
    # benchmark before it did: 6.2 images/s over REST at C=8 against 10.4 over gRPC).
    assert answer_encoding(server) == "identity"


def test_openvino_serves_top_5_labels(engine_server, reference, images):
    server = reload_with(engine_server, {"model-settings.json": engine_settings("openvino", top_k=5)})
    files = [encode_jpeg(image) for image in images[:3]]
    outputs = infer_outputs(server.infer_url, files_request(files))
    labels, scores = reference.best_labels([decode_jpeg(data) for data in files], k=5)
    assert outputs["labels"].shape == (3, 5) and (outputs["labels"] == labels).all()
    np.testing.assert_allclose(outputs["scores"], scores, rtol=1e-4)
    # gRPC too: labels are BYTES, which MLServer's gRPC converter takes only as bytes.
    grpc_labels = infer_grpc(server.grpc_address, server.name, files_request(files), "labels")
    assert (grpc_labels == labels).all()
    assert "TinyViT on OpenVINO with" in server.log


def test_an_engine_server_imports_no_torch(engine_server):
    """Its preprocessing runs in NumPy and PIL (labkit.model.pixels): no process of the server maps
    torch's library (before 2026-12-06 the runtime imported torch for timm's transform)."""
    import psutil

    server = reload_with(engine_server, {"model-settings.json": engine_settings("openvino")})
    assert infer_outputs(server.infer_url, pixels_request([load_image()]))["probabilities"].shape == (1, 21841)
    tree = [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]
    mapped = {process.pid: {Path(region.path).name for region in process.memory_maps()} for process in tree}
    assert any("libopenvino.so" in " ".join(names) for names in mapped.values()), "OpenVINO is not loaded"
    assert not [pid for pid, names in mapped.items() if any(name.startswith("libtorch") for name in names)], mapped
