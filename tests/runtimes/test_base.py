"""What the checks say the timm runtime reads of ``parameters.extra`` is what it reads (helper
session 8: the check's list named "threads", which nothing reads, and refused "torch_threads",
which tinyvit/cpu_threads.py reads). In process: the runtime's options, no server."""

from mlserver.settings import ModelParameters, ModelSettings

from labkit.checks.settings_files import TIMM_EXTRA


class Recording(dict):
    """A dict that notes every key asked of it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)


def test_the_timm_keys_the_check_knows_are_the_ones_the_runtime_reads(monkeypatch):
    from labkit.runtimes import base

    extra = Recording(model="tiny_vit_5m_224.dist_in22k", top_k=3, parallel_workers=2)
    monkeypatch.setattr(base, "extra_parameters", lambda settings: extra)
    settings = ModelSettings(name="top3", implementation="labkit.runtimes.timm.TimmClassifier",
                             parameters=ModelParameters(uri="tinyvit.safetensors"))
    # In a worker process the worker count is read as well: ask as one.
    monkeypatch.setattr(base.torch_threads.__globals__["multiprocessing"], "current_process",
                        lambda: type("Worker", (), {"name": "Worker-1"})())
    options = base.RuntimeOptions.from_settings(settings)
    assert options.top_k == 3 and options.threads >= 1
    assert extra.asked == set(TIMM_EXTRA)
