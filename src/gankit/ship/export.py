"""``gankit export``: a run's sampling generator as an ONNX file that runs without gankit.

Inputs: ``z`` (N, latent) standard normal noise; ``label`` (N,) int64 for class- or
cluster-conditioned runs; ``condition`` (N, C) float32 one-hot condition vectors for conditioned
tables. Outputs, in the run's own form: ``images`` uint8 (N, H, W, C) and ``raw`` (N, C, H, W)
in the generator's value range; ``points`` float32 (N, D); ``rows`` float32 (N, width), the
encoded rows a table's codec (stored in the metadata as ``gankit.codec``) decodes. The batch
axis is dynamic. Metadata (``metadata_props``) describes all of it: see ``metadata``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import GankitError, RunError
from ..fileio import atomic_write_bytes
from ..kinds.base import View
from ..run import Run, load_run

INSTALL = "pip install 'gankit[export]'"
CHECK_TOLERANCE = 1e-4  # export refuses a file whose raw output strays further from PyTorch's


class Sampler(nn.Module):
    """A run's generator with its output in the run's own form (its kind's ``View.finish``)."""

    def __init__(self, generator: nn.Module, view: View) -> None:
        super().__init__()
        self.generator = generator
        self.view = view

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.view.finish(self.generator(z, y))


def condition_input(run: Run) -> tuple[str, int] | None:
    """(name, width) of the generator's second input: ("label", 0) for class or cluster
    labels, ("condition", C) for a table's condition vectors, None when unconditioned."""
    if run.num_classes:
        return "label", 0
    if run.conditioning is not None:
        return "condition", run.conditioning.vector_dim
    return None


def example_inputs(run: Run, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs for ``n`` samples as the exported model takes them, reproducible from ``seed``:
    the noise, then the labels or condition vectors drawn at their share of the data."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, run.generator.latent_dim, generator=gen)
    cond = condition_input(run)
    if cond is None:
        return (z,)
    if cond[0] == "label":
        return z, run.draw_labels(n, seed)
    assert run.conditioning is not None
    return z, run.conditioning.sample(n, gen)


def metadata(run: Run) -> dict[str, str]:
    """The ``metadata_props`` of the exported model: strings, JSON where structured."""
    from .. import __version__

    g = run.generator
    cond = condition_input(run)
    inputs: dict[str, Any] = {"z": ["N", int(g.latent_dim)]}
    if cond is not None:
        inputs[cond[0]] = ["N"] if cond[0] == "label" else ["N", cond[1]]
    meta: dict[str, str] = {
        "gankit.version": __version__,
        "gankit.run": run.path.resolve().name,
        "gankit.step": str(run.step),
        "gankit.kind": run.kind.name,
        "gankit.family": run.config.model.family,
        "gankit.ema": json.dumps(run.config.train.ema > 0),
        "gankit.noise": "z: independent standard normal draws",
        "gankit.sample_shape": json.dumps(list(g.image_shape)),
        "gankit.inputs": json.dumps(inputs),
    }
    if cond is not None and cond[0] == "label":
        meta["gankit.labels"] = "clusters" if run.self_conditioned else "classes"
        meta["gankit.num_labels"] = str(run.num_classes)
        share = (run.label_share if run.label_share is not None
                 else torch.full((run.num_classes,), 1.0 / run.num_classes))
        meta["gankit.label_share"] = json.dumps([round(float(s), 8) for s in share])
    return meta | run.kind.view(run).describe()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's warnings and log lines silenced (they are about torch, not the run)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _require() -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as e:
        raise GankitError(f"gankit export needs onnx and onnxscript ({e.name} is missing): "
                          f"{INSTALL}") from None
    return onnx


def check_out(out: Path) -> None:
    """Refuse an output path that is not a writable ``.onnx`` file in an existing folder."""
    if out.suffix.lower() != ".onnx":
        raise GankitError(f"--out must end in .onnx, got '{out.name}'")
    if out.is_dir():
        raise GankitError(f"--out {out} is a folder")
    if not out.parent.is_dir():
        raise GankitError(f"folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists()
                                                        and not os.access(out, os.W_OK)):
        raise GankitError(f"cannot write {out}: permission denied")


def to_onnx(run: Run) -> bytes:
    """The ONNX model (bytes) of ``run``'s sampling generator, metadata included."""
    onnx = _require()
    view = run.kind.view(run)
    sampler = Sampler(run.generator, view).eval()
    args = example_inputs(run, 2)
    cond = condition_input(run)
    names = ["z"] + ([cond[0]] if cond is not None else [])
    batch = torch.export.Dim("batch")
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(sampler, args, dynamo=True, input_names=names,
                                    output_names=list(view.outputs),
                                    dynamic_shapes=tuple({0: batch} for _ in args),
                                    external_data=False, verbose=False)
    model = program.model_proto
    for key, value in metadata(run).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = (f"gankit {run.kind.name} generator of run {run.path.resolve().name} "
                        f"at step {run.step}; see metadata_props")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def check_against_torch(data: bytes, run: Run, n: int = 4, seed: int = 0) -> float | None:
    """Max |ONNX Runtime - PyTorch| of the generator's output on ``n`` samples (None when
    onnxruntime is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    args = example_inputs(run, n, seed)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args, strict=True)}
    got = session.run(None, feed)[-1]  # raw for images, the only output otherwise
    with torch.no_grad():
        want = run.generator(*args).numpy()
    return float(np.abs(got - want).max())


def export(run_path: str | Path, out: str | Path, ema: bool = True) -> tuple[Run, float | None]:
    """Export run ``run_path``'s sampling generator (its EMA when it has one and ``ema``) to
    ``out``; returns the run and the check against PyTorch (see ``check_against_torch``).

    GankitError for an unusable ``out`` (checked before anything is loaded) or a missing onnx,
    RunError for a run without a checkpoint or a file that strays from PyTorch.
    """
    out = Path(out)
    check_out(out)
    run = load_run(run_path, ema=ema)
    data = to_onnx(run)
    diff = check_against_torch(data, run)
    if diff is not None and not diff <= CHECK_TOLERANCE:
        raise RunError(f"the exported model differs from PyTorch by {diff:.3g} "
                       f"(more than {CHECK_TOLERANCE}); nothing written")
    atomic_write_bytes(out, data)
    return run, diff


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    onnx = _require()
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
