"""The fused step captured once as a CUDA graph and replayed every step: one launch for the
step's few hundred kernels, which on a GPU otherwise wait on the host launching them
(BENCHMARKS.md, "GPU": every preset at 0-1.4% of an H100's peak, bound by launches).

A step is staged, then replayed. Staging copies the step's random inputs, drawn on the host from
the trainer's generators exactly as the eager step draws them, into static device buffers
(through pinned memory, without waiting for the GPU), and writes the step's learning rates and
EMA weight into device scalars the graph reads. So a graphed run trains the same run as the
eager fused step, to float rounding.

The graph is captured at the first step, after two warm-up passes on a side stream (CUDA's
libraries allocate their workspaces there); every tensor the step writes is saved before and
restored after them, so the warm-up trains nothing. The captured step is then checked once
against the eager step on the same inputs: both from the same saved state, they must agree to
float tolerance, else the graph is dropped, the eager step runs, and the trainer is told why.
Steps with R1 (every ``reg.r1_every`` steps, a double backward through autograd) run eagerly on
the staged inputs, between replays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .fused import FusedStep

Capture = Callable[[Callable[[], Any]], Callable[[], None]]
WARMUP = 2  # passes before capture (the PyTorch documentation's advice: a few)
# the check: the replayed step's tensors within this of the eager step's, relative to each
# tensor's norm (the same kernels on the same inputs; only reduction order may differ)
TOLERANCE = 1e-4


def cuda_capture(fn: Callable[[], Any]) -> Callable[[], None]:
    """Capture ``fn`` (after ``WARMUP`` runs on a side stream) as a CUDA graph; returns its
    replay. ``fn``'s tensors must stay allocated while the replay is used."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARMUP):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        fn()
    return graph.replay


def _stage(host: torch.Tensor, static: torch.Tensor) -> None:
    """Copy ``host`` into the device buffer ``static``, queued behind the GPU's work."""
    if static.device.type == "cuda":
        host = host.pin_memory()
    static.copy_(host, non_blocking=True)


def _differ(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest difference of two lists of tensors, each relative to its tensor's norm."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        scale = max(float(torch.linalg.vector_norm(x.float())), 1e-12)
        worst = max(worst, float(torch.linalg.vector_norm((x - y).float())) / scale)
    return worst


class GraphedStep:
    """``step`` (a sync-free ``FusedStep``) trained by replaying one captured graph.

    ``capture`` turns the step's arithmetic into a replay (``cuda_capture`` on CUDA; tests pass
    a stand-in that records the operations once and replays them on the CPU).
    """

    def __init__(self, step: FusedStep, capture: Capture = cuda_capture) -> None:
        self.step = step
        self.capture = capture
        self.kind = "fused, CUDA graph"
        self.refused: str | None = None  # why the graph was dropped, once it was
        tr = step.trainer
        dev = tr.device
        self.inputs = [torch.empty(x.shape, dtype=x.dtype, device=dev)
                       for x in step.draw(shapes_only=True)]
        self.lr_g = torch.zeros((), device=dev)
        self.lr_d = torch.zeros((), device=dev)
        self.ema_weight = torch.zeros((), device=dev)
        self.stats = torch.zeros(4, device=dev)  # the step's statistics, written by each step
        self.replay: Callable[[], None] | None = None
        self.modes: list[bool] = []  # spectral norm's training flags the graph was captured in

    def _stage(self) -> None:
        """This step's inputs and scalars into the static buffers the graph reads, and the
        optimizers' state into the flat moments (after a checkpoint or rollback replaced it)."""
        st = self.step
        for flat in (st.flat_g, st.flat_d):  # (an optimizer's loaded state into the buffers)
            flat.bind()
        for host, static in zip(st.draw(), self.inputs, strict=True):
            _stage(host, static)
        self.lr_g.fill_(st.flat_g.opt.param_groups[0]["lr"])
        self.lr_d.fill_(st.flat_d.opt.param_groups[0]["lr"])
        if st.ema is not None:
            self.ema_weight.fill_(1.0 - st.ema_decay())

    def _bind(self, on: bool) -> None:
        """Make the step read its rates and EMA weight from the device scalars (``on``), or
        from the optimizers and the step count (off)."""
        st = self.step
        st.flat_g.lr, st.flat_d.lr = (self.lr_g, self.lr_d) if on else (None, None)
        st.ema_weight = self.ema_weight if on and st.ema is not None else None

    def _modes(self) -> list[bool]:
        """The training flags of the spectral norms the step runs (a captured step runs the
        power iteration or not, as at capture)."""
        return [layer.sn.training for flat in (self.step.flat_g, self.step.flat_d)
                for layer in flat.dense if layer.sn is not None]

    def _captured(self) -> str | None:
        """Capture the staged step and check one replay against the eager step; None when it
        agrees, else why not (the state is then the eager step's, as if it had run)."""
        st = self.step
        saved = [x.clone() for x in st.state()]

        def restore(values: list[torch.Tensor]) -> None:
            for x, v in zip(st.state(), values, strict=True):
                x.copy_(v)

        def fn() -> None:
            st.compute(self.inputs, r1=False, out=self.stats)

        try:
            replay = self.capture(fn)
        except Exception as e:  # noqa: BLE001 - any failure to capture: the eager step runs
            restore(saved)
            fn()
            return f"capture failed: {type(e).__name__}: {(str(e) or '?').splitlines()[0][:200]}"
        restore(saved)
        fn()
        eager = [x.clone() for x in [*st.state(), self.stats]]
        restore(saved)
        replay()
        worst = _differ(eager, [*st.state(), self.stats])
        if not worst <= TOLERANCE:  # (NaN too)
            restore(eager[:-1])
            self.stats.copy_(eager[-1])
            return f"its replay differed from the eager step by {worst:.2g} of a norm"
        self.replay, self.modes = replay, self._modes()
        return None

    @torch.no_grad()
    def __call__(self) -> None:
        """Train one step, as ``FusedStep.__call__`` does."""
        st = self.step
        tr = st.trainer
        if self.refused is not None:
            return st()
        if tr.cfg.train.lr_decay > 0:
            tr.set_rates()
        self._stage()
        self._bind(True)
        if self.replay is not None and self._modes() != self.modes:
            self.replay = None  # captured again, in the modes of now
        try:
            if st.r1_due():
                st.compute(self.inputs, r1=True, out=self.stats)
            elif self.replay is not None:
                self.replay()
            else:
                why = self._captured()
                if why is not None:
                    self.refused = why
                    self.kind = tr.step_kind = "fused"
                    tr.notices.append(f"the CUDA graph of the fused step was dropped ({why}); "
                                      "the fused step runs without it")
        finally:
            self._bind(False)
        tr._acc += self.stats
        tr._acc_steps += 1
        tr.step += 1
