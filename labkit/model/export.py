"""Export TinyViT to ONNX for the optimized runtimes, and prove the file answers like PyTorch.

    python -m labkit export                       # weights/tinyvit.onnx (make onnx)
    python -m labkit export --out /tmp/tinyvit.onnx --max-abs-diff 1e-5
    python -m labkit export --force               # again, though it is up to date

A file verified for the same checkpoint, with the same torch and within the limit, is up to
date: the command says so and keeps it (``--force`` exports again). A graded notebook runs
the command once per student; they all share one verified file.

The export is ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch axis. Before the
file is written, ONNX Runtime runs it on the checks' images (a photo, noise, a flat colour,
stripes) as one batch and one by one, and the logits are compared with the PyTorch model
that MLServer serves: the largest absolute difference must stay below ``MAX_ABS_DIFF`` and
every image must get the same top-5 classes. A file that fails is not written; the command
says why and exits with 1. An engine can change the answers without any error: OpenVINO on
a CPU with bfloat16 support computes in bfloat16 unless told otherwise (logits off by about
0.03 here), so the runtimes are compared the same way (tests/runtimes/test_engines.py).

Next to the file, ``<name>.json`` records the comparison, the checkpoint it came from and
the preprocessing. The ONNX Runtime and OpenVINO runtimes (``labkit.runtimes.engines``) refuse an
ONNX file without it, changed since, or exported from another checkpoint than the one in
``weights/`` today.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from labkit.paths import DEFAULT_CHECKPOINT, REPO_ROOT, PathLike

if TYPE_CHECKING:  # imported where used: torch takes seconds to import
    import torch
    from mlserver import MLModel

DEFAULT_ONNX = REPO_ROOT / "weights" / "tinyvit.onnx"
# The exported graph's own tensors (normalized float pixels in, logits out), not the names a
# request uses: those are labkit.contract.INPUT_NAME and OUTPUT_NAME.
GRAPH_INPUT, GRAPH_OUTPUT = "pixels", "logits"
# Measured: the export differs from PyTorch by about 2e-6 in the logits; OpenVINO in
# bfloat16 (its default on CPUs that have it) by about 0.03.
MAX_ABS_DIFF = 1e-3
TOP = 5


class ExportRefused(RuntimeError):
    """The exported model does not answer like PyTorch (or cannot be used): nothing written."""


class NotVerified(RuntimeError):
    """An ONNX file that this module did not verify against today's checkpoint."""


@dataclass
class Comparison:
    max_abs_diff: float
    top5_identical: bool
    images: int
    batch_sizes: list[int]
    limit: float = MAX_ABS_DIFF

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.limit and self.top5_identical

    def describe(self) -> str:
        verdict = "matches" if self.passed else "does NOT match"
        top = "the same top-5 for every image" if self.top5_identical else "a different top-5 for some images"
        return (f"{verdict} PyTorch: largest logit difference {self.max_abs_diff:.2g} (limit {self.limit:g}), "
                f"{top} ({self.images} images, batch sizes {self.batch_sizes})")


def sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_path(onnx_path: PathLike) -> Path:
    """Where the verification record of ``onnx_path`` lives (``tinyvit.onnx.json``)."""
    return Path(f"{onnx_path}.json")


def comparison_batch(service: MLModel) -> torch.Tensor:
    """The checks' images through the service's own preprocessing: a ``[N, 3, 224, 224]`` tensor."""
    import torch
    from PIL import Image

    from labkit.images import check_images

    images = check_images(np.random.default_rng(7))  # a fixed draw: the record compares like with like
    return torch.stack([service.transform(Image.fromarray(image)) for _, image in images])


def compare(forward: Callable[[np.ndarray], np.ndarray], model: torch.nn.Module, batch: torch.Tensor,
            limit: float = MAX_ABS_DIFF) -> Comparison:
    """``forward`` (numpy ``[N, 3, H, W]`` -> logits) against the PyTorch ``model`` on ``batch``,
    as one batch and one image at a time (a wrong dynamic batch axis shows in one of them).

    Args:
        forward, model, batch: as above.
        limit: the largest difference in logits that counts as the same.
    """
    import torch

    with torch.inference_mode():
        expected = model(batch).numpy()
    pixels = batch.numpy()
    together = np.asarray(forward(pixels))
    alone = np.concatenate([np.asarray(forward(pixels[i:i + 1])) for i in range(len(pixels))])
    worst = max(float(np.abs(answer - expected).max()) for answer in (together, alone))
    top = np.argsort(-expected, axis=1)[:, :TOP]
    identical = all(np.array_equal(np.argsort(-answer, axis=1)[:, :TOP], top) for answer in (together, alone))
    return Comparison(worst, identical, len(pixels), [len(pixels), 1], limit)


def onnx_runtime_forward(path: PathLike, threads: int = 0,
                         spinning: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A callable numpy pixels -> numpy logits running ``path`` in ONNX Runtime on the CPU.

    ``spinning=False``: ONNX Runtime's threads otherwise busy-wait for work between calls, and
    in an MLServer worker they take the cores from the processes that decode requests and
    send answers. Measured served over gRPC, 4 callers, 2 cores: 15.2 req/s spinning, 19.5 not."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default (every core)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda pixels: session.run([GRAPH_OUTPUT], {GRAPH_INPUT: pixels})[0]


def openvino_forward(path: PathLike, threads: int = 0,
                     precision: str | None = "f32") -> Callable[[np.ndarray], np.ndarray]:
    """A callable numpy pixels -> numpy logits running ``path`` in OpenVINO on the CPU.

    ``precision="f32"`` because OpenVINO's CPU default on processors with bfloat16 support is
    bfloat16: logits off by about 0.03 from PyTorch here (``labkit.model.export.compare`` shows it).
    ``None`` keeps OpenVINO's default.

    Args:
        path: the ONNX (or OpenVINO IR) file.
        threads: inference threads (0: OpenVINO's default).
        precision: see above.
    """
    import openvino

    config: dict[str, str | int] = {"PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    return lambda pixels: compiled({GRAPH_INPUT: pixels})[0]


def up_to_date(checkpoint: PathLike = DEFAULT_CHECKPOINT, out: PathLike = DEFAULT_ONNX,
               limit: float = MAX_ABS_DIFF) -> Comparison | None:
    """The recorded comparison of ``out`` if it is a verified export of ``checkpoint`` by this
    torch within ``limit``, else None (export it)."""
    import torch

    try:
        record = verified_record(out)
    except NotVerified:
        return None
    comparison = Comparison(**record["comparison"])
    same = (record.get("checkpoint_sha256") == sha256(checkpoint) and record.get("torch") == torch.__version__
            and comparison.passed and comparison.max_abs_diff <= limit)
    return comparison if same else None


def export(checkpoint: PathLike = DEFAULT_CHECKPOINT, out: PathLike = DEFAULT_ONNX,
           limit: float = MAX_ABS_DIFF) -> Comparison:
    """Export, compare with PyTorch, and only if it matches write ``out`` and its record."""
    from labkit.model.service import loaded_service

    out = Path(out)
    service = loaded_service(checkpoint)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.is_dir() else None) as scratch:
        candidate = Path(scratch) / out.name
        export_file(service.model, comparison_batch(service)[:2], candidate)
        return install(candidate, service, checkpoint, out, limit)


def install(candidate: Path, service: MLModel, checkpoint: PathLike, out: PathLike,
            limit: float = MAX_ABS_DIFF) -> Comparison:
    """Compare the ONNX file ``candidate`` with the PyTorch model of ``service`` (loaded from
    ``checkpoint``); if it matches, move it to ``out`` and write its record, otherwise raise
    :class:`ExportRefused` and leave ``out`` as it was."""
    import torch

    out, checkpoint = Path(out), Path(checkpoint)
    comparison = compare(onnx_runtime_forward(candidate), service.model, comparison_batch(service), limit)
    if not comparison.passed:
        raise ExportRefused(f"The export {comparison.describe()}. Not written: {out}.")
    record = {"onnx_sha256": sha256(candidate), "checkpoint": str(checkpoint.resolve()),
              "checkpoint_sha256": sha256(checkpoint), "torch": torch.__version__,
              "comparison": asdict(comparison), "data_config": data_config(service.model)}
    out.parent.mkdir(parents=True, exist_ok=True)
    record_path(out).unlink(missing_ok=True)  # no moment where a new file has the old record
    shutil.move(candidate, out)
    record_path(out).write_text(json.dumps(record, indent=2) + "\n")
    return comparison


def export_file(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ``model`` as ONNX to ``path`` with torch's dynamo exporter, batch axis dynamic."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=256)
    with torch.no_grad(), warnings.catch_warnings():
        # timm's TinyViT caches its attention biases in a plain attribute during a forward;
        # torch warns that the export sees it assigned. The comparison below is what counts.
        warnings.filterwarnings("ignore", message="The tensor attributes .*attention_bias_cache")
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False,
                                    input_names=[GRAPH_INPUT], output_names=[GRAPH_OUTPUT])
    program.save(str(path))  # type: ignore[union-attr]  # typed Optional; dynamo=True returns the program


def data_config(model: torch.nn.Module) -> dict:
    """timm's preprocessing settings for ``model`` (what the runtimes rebuild the transform from)."""
    from timm.data import resolve_data_config

    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in resolve_data_config({}, model=model).items()}


def verified_record(onnx_path: PathLike) -> dict:
    """The record of a verified export, or :class:`NotVerified` saying what to run."""
    onnx_path = Path(onnx_path)
    again = "Run `make onnx` (python -m labkit export) to export and verify it again."
    if not onnx_path.is_file():
        raise NotVerified(f"No ONNX model at {onnx_path}. Run `make onnx` (python -m labkit export) first.")
    try:
        record = json.loads(record_path(onnx_path).read_text())
    except (OSError, ValueError):
        raise NotVerified(f"{onnx_path} has no verification record ({record_path(onnx_path).name}): "
                          f"nobody compared it with PyTorch. {again}") from None
    if sha256(onnx_path) != record.get("onnx_sha256"):
        raise NotVerified(f"{onnx_path} changed after it was verified. {again}")
    checkpoint = Path(record.get("checkpoint", ""))
    if checkpoint.is_file() and sha256(checkpoint) != record.get("checkpoint_sha256"):
        raise NotVerified(f"{onnx_path} was exported from another version of {checkpoint} "
                          f"(the weights changed since). {again}")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out", type=Path, default=DEFAULT_ONNX)
    parser.add_argument("--max-abs-diff", type=float, default=MAX_ABS_DIFF,
                        help="largest logit difference from PyTorch accepted (default %(default)g)")
    parser.add_argument("--force", action="store_true", help="export again even if the file is up to date")
    args = parser.parse_args(argv)
    shown = _shown(args.out)
    # Hand-ins graded side by side run this command at once: one exports, the others wait
    # and find the file up to date (instead of replacing it under a running engine).
    with _exclusive(args.out):
        recorded = None if args.force else up_to_date(args.checkpoint, args.out, args.max_abs_diff)
        if recorded is not None:
            print(f"{shown} is up to date: exported from this checkpoint with this torch, and the export "
                  f"{recorded.describe()} when it was verified. (--force exports again.)")
            return 0
        try:
            comparison = export(args.checkpoint, args.out, args.max_abs_diff)
        except ExportRefused as error:
            print(error, file=sys.stderr)
            return 1
    print(f"Wrote {shown}: the export {comparison.describe()}.")
    return 0


@contextlib.contextmanager
def _exclusive(out: Path):
    """An exclusive lock on ``.<name>.lock`` next to ``out``, held while the block runs."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _shown(path: Path) -> str:
    """``path`` as the student knows it: relative to the lab's folder when inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
