"""The TinyViT service in this process, as MLServer's own tests exercise a runtime: request
decoding and validation, and load()/predict(), in milliseconds (the edit-test loop:
`make test-fast`). The same contract over real HTTP/gRPC is in tests/tinyvit/test_service.py."""

import asyncio
import io
import sys

import numpy as np
import pytest
from mlserver.codecs import Base64Codec, NumpyCodec
from mlserver.context import model_context
from mlserver.settings import ModelParameters, ModelSettings
from mlserver.types import InferenceRequest

from labkit.client import CAT, encode_jpeg, files_request, load_image, pixels_request
from tests.helpers.bad_inputs import BAD_INPUTS, PARSE_ERRORS
from labkit.model.service import service_module


@pytest.fixture(scope="module")
def service():
    """tinyvit/serve-model.py imported as MLServer imports it (the folder on sys.path)."""
    return service_module()


@pytest.fixture(scope="module")
def model(service, checkpoint):
    settings = ModelSettings(name="tinyvit", implementation=service.TinyViTModel,
                             parameters=ModelParameters(uri=str(checkpoint)))
    model = service.TinyViTModel(settings)
    assert asyncio.run(model.load()) is True
    return model


def predict(model, request: InferenceRequest) -> np.ndarray:
    # mlserver.log() needs the model's context, which MLServer sets around predict().
    with model_context(model.settings):
        response = asyncio.run(model.predict(request))
    assert [output.name for output in response.outputs] == ["probabilities"]
    return NumpyCodec.decode_output(response.outputs[0])


@pytest.mark.parametrize("case", [case for case in BAD_INPUTS if case not in PARSE_ERRORS])
def test_a_bad_request_is_a_400_with_a_message(service, case):
    body, expected_text = BAD_INPUTS[case]
    request = InferenceRequest.model_validate(body)
    batch = sys.modules["image_batch"]
    with pytest.raises(batch.BadRequest) as caught:
        batch.decode_images(request)
    assert caught.value.status_code == 400
    assert expected_text in str(caught.value)


def test_pixels_and_files_decode_to_the_same_images(service, cat):
    batch = sys.modules["image_batch"]
    pixels = batch.decode_images(pixels_request([cat, cat[:, ::-1]]))
    assert [image.shape for image in pixels] == [cat.shape, cat.shape] and pixels[0].dtype == np.uint8
    files = batch.decode_images(files_request([encode_jpeg(cat), encode_jpeg(cat[:100, :50])]))
    assert [image.shape for image in files] == [cat.shape, (100, 50, 3)]
    raw = InferenceRequest(inputs=[Base64Codec.encode_input("payload", [encode_jpeg(cat)], use_bytes=True)])
    assert batch.decode_images(raw)[0].shape == cat.shape


def test_too_many_images_in_one_request(service):
    batch = sys.modules["image_batch"]
    tiny = np.zeros((batch.MAX_IMAGES + 1, 2, 2, 3), np.uint8)
    with pytest.raises(batch.BadRequest, match="the limit is"):
        batch.decode_images(pixels_request(tiny))


def test_predict_answers_one_row_per_image_like_the_reference(model, reference, cat):
    images = [cat, np.full((120, 90, 3), 200, np.uint8), load_image()[::2, ::2]]
    answer = predict(model, files_request([encode_jpeg(image) for image in images]))
    assert answer.shape == (3, 21841) and answer.dtype == np.float32
    decoded = [load_image(io.BytesIO(encode_jpeg(image))) for image in images]
    np.testing.assert_allclose(answer, reference.probabilities(decoded), rtol=1e-4, atol=1e-7)


def test_threads_are_split_between_workers(service, monkeypatch):
    threads = sys.modules["cpu_threads"]
    cores = threads.os.sched_getaffinity(0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # make test sets it (tools/run_tests.py)
    assert threads.torch_threads({"torch_threads": 3}) == 3
    # In the main process the model only runs with parallel_workers: 0, so it takes every core.
    assert threads.torch_threads({"parallel_workers": 2}) == len(cores)
    assert threads.parallel_workers({"parallel_workers": 4}) == 4
    # OpenMP's variable caps the share (a busy machine's runs ask for one thread); extra still wins.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.torch_threads({}) == 1 and threads.torch_threads({"torch_threads": 2}) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert threads.torch_threads({}) == len(cores)


@pytest.mark.parametrize("files, cap", [
    ({"cpu.max": "200000 100000\n"}, 2.0),
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_a_cgroups_cap_on_cpu_time_is_read_as_cores(service, tmp_path, files, cap):
    # A JupyterHub pod with cpu.limit 2 on a 32-core node saw 32 cores: torch took a thread per
    # visible core and the pod's quota throttled them all.
    threads = sys.modules["cpu_threads"]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cpu_cap(str(tmp_path)) == cap
    visible = len(threads.os.sched_getaffinity(0))
    expected = visible if cap is None else max(1, min(visible, -(-cap // 1)))
    assert threads.usable_cores(str(tmp_path)) == expected


def test_the_threads_follow_the_cgroups_cap(service, tmp_path, monkeypatch):
    threads = sys.modules["cpu_threads"]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # one core's worth of time
    monkeypatch.setattr(threads, "CGROUP_ROOT", str(tmp_path))
    assert threads.torch_threads({}) == 1 and threads.torch_threads({"torch_threads": 2}) == 2


def test_unload_drops_the_network(service, checkpoint):
    settings = ModelSettings(name="tinyvit", implementation=service.TinyViTModel,
                             parameters=ModelParameters(uri=str(checkpoint)))
    model = service.TinyViTModel(settings)
    asyncio.run(model.load())
    assert asyncio.run(model.unload()) is True and model.model is None
    # MLServer also unloads a model whose load() failed: that must not raise.
    assert asyncio.run(service.TinyViTModel(settings).unload()) is True


def test_one_inference_path_for_the_service_the_reference_and_the_runtime(service, reference):
    from labkit.runtimes import timm as runtime

    # The reference is the service's own class, loaded here; the runtime extends it.
    assert isinstance(reference.service, service.TinyViTModel)
    assert issubclass(runtime.TimmClassifier, service.TinyViTModel)
    assert runtime.TimmClassifier.classify is service.TinyViTModel.classify


def batch_of(size: int) -> InferenceRequest:
    cat = load_image(CAT)
    return pixels_request(np.stack([np.roll(cat[:224, :224], 9 * k, axis=1) for k in range(size)]))


def loaded_model(service, checkpoint, return_freed_memory: bool):
    settings = ModelSettings(name="tinyvit", implementation=service.TinyViTModel,
                             parameters=ModelParameters(uri=str(checkpoint),
                                                        extra={"return_freed_memory": return_freed_memory}))
    model = service.TinyViTModel(settings)
    asyncio.run(model.load())
    return model


def growth_by_arm(checkpoint: str) -> dict:
    """Resident memory the same large batches left behind with freed memory handed back (True)
    and kept (False), measured in the calling process, which must be fresh (see below)."""
    service = service_module()
    freed = sys.modules["freed_memory"]
    if freed._LIBC is None:
        return {}
    # Mixed sizes, nine calls: kept memory 114-222 MB in 8 fresh processes (five calls: 44-178).
    grown, sizes = {}, (8, 3, 8, 5, 8, 2, 8, 6, 8)
    warm = loaded_model(service, checkpoint, False)
    for size in sizes:  # first calls' one-off growth (lazy initialisation) counts against neither arm
        predict(warm, batch_of(size))
    residual = 0
    for returned in (False, True):
        model = loaded_model(service, checkpoint, returned)
        freed._LIBC.malloc_trim(0)
        before = freed.resident_bytes()
        for number, size in enumerate(sizes):
            assert predict(model, batch_of(size)).shape == (size, 21841)
            if returned and number == 0 and freed._after_last_trim[0] is not None:
                # The service's first trim leaves what the first call keeps for good (caches, a
                # new arena): its limit counts from there, not from this test's baseline.
                residual = max(0, freed._after_last_trim[0] - before)
        grown[str(returned)] = freed.resident_bytes() - before
    return {"grown": grown, "limit": freed.GROWTH_LIMIT, "residual": residual}


@pytest.mark.slow  # fresh processes that import torch, up to three: 30-90 s
def test_after_large_batches_resident_memory_is_back_within_the_limit(checkpoint):
    """Issue 25: glibc keeps what a batch of 8 freed (about 0.1 GB a call, more over mixed
    batches); the service hands it back once resident memory grew by more than GROWTH_LIMIT.
    The same calls with ``return_freed_memory: false`` keep more: the check can fail.
    Measured in a process of its own: in the test run's process, the heap the earlier tests
    left behind absorbs part of the growth (one run measured 53 MB kept, not over 199)."""
    import json
    import subprocess

    from tests.helpers.lab import REPO

    # What glibc keeps varies from process to process (44-222 MB seen with the trim off): up to
    # three fresh processes. Handed back, every one stays within the limit; kept, one is enough
    # to show the difference.
    seen = []
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", "import json, sys\n"
                               "from tests.tinyvit.test_service_inprocess import growth_by_arm\n"
                               "print(json.dumps(growth_by_arm(sys.argv[1])))", str(checkpoint)],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        if not measured:
            pytest.skip("not glibc: the service leaves memory to the allocator")
        grown, limit = measured["grown"], measured["limit"]
        seen.append({**{key: value >> 20 for key, value in grown.items()}, "residual": measured["residual"] >> 20})
        # CI once measured 74 MB handed back against a 64 MB limit: the limit counts from the
        # service's first trim, which keeps what the first call holds for good (the residual).
        assert grown["True"] <= limit + measured["residual"], seen
        if grown["False"] > limit:
            return
    raise AssertionError(f"with the trim off, no process kept more than {limit >> 20} MB: {seen}")


def test_without_glibc_returning_freed_memory_does_nothing(service, monkeypatch):
    freed = sys.modules["freed_memory"]
    monkeypatch.setattr(freed, "_LIBC", None)
    assert freed.return_freed_memory() is False


def test_by_default_only_a_parallel_worker_returns_freed_memory(service, monkeypatch):
    # In one process (the tuned settings) it cost more rate than in a worker (make bench-memory).
    freed, threads = sys.modules["freed_memory"], sys.modules["cpu_threads"]
    assert freed.wanted({}) is False and freed.wanted({"return_freed_memory": True}) is True
    monkeypatch.setattr(threads.multiprocessing, "current_process", lambda: type("Worker", (), {"name": "Worker-1"}))
    assert freed.wanted({}) is True and freed.wanted({"return_freed_memory": False}) is False
