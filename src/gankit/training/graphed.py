"""A training step captured once as a CUDA graph and replayed every step: one launch for the
step's hundreds of kernels, which on a GPU otherwise wait on the host launching them
(BENCHMARKS.md, "GPU": every preset at 0-1.4% of an H100's peak, bound by launches).

Two steps are captured: the fully connected family's fused step (``FusedSource``), and the
generic step, autograd and Adam included, where its recipe draws nothing of its own
(``GenericSource``: no augmentation, instance noise or gradient penalty; fp32; one process).

A step is staged, then replayed. Staging copies the step's random inputs, drawn on the host from
the trainer's generators exactly as the eager step draws them, into static device buffers
(through pinned memory, without waiting for the GPU), and writes the step's learning rates and
EMA weight into device scalars the graph reads. So a graphed run trains the same run as the
eager step, to float rounding.

The graph is captured at the first step, after two warm-up passes on a side stream (CUDA's
libraries allocate their workspaces there); every tensor the step writes is saved before and
restored after them, so the warm-up trains nothing. The captured step is then checked once
against the eager step on the same inputs: both from the same saved state, they must agree to
float tolerance, else the graph is dropped, the eager step runs, the trainer is told why, and
no other graph is captured in that run (``Trainer.graph_refused``).
Steps with R1 or R2 (every ``reg.r1_every`` steps, a double backward) run eagerly on the staged
inputs, between replays; a change of a module's training mode captures again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ..conditioning import Conditioning, Labels
from .fused import FusedStep, draws

Capture = Callable[[Callable[[], Any]], Callable[[], None]]
WARMUP = 2  # passes before capture (the PyTorch documentation's advice: a few)
# the check: the replayed step's tensors within this of the eager step's, relative to each
# tensor's norm (the same kernels on the same inputs; only reduction order may differ)
TOLERANCE = 1e-4


def cuda_capture(fn: Callable[[], Any]) -> Callable[[], None]:
    """Capture ``fn`` (after ``WARMUP`` runs on a side stream) as a CUDA graph; returns its
    replay. ``fn``'s tensors must stay allocated while the replay is used.

    The last warm-up runs with torch's sync debug mode set to raise, so a wait for the GPU
    (which would break the capture) fails before the capture starts; the first warm-up is left
    free for the libraries' one-time set-up. Whatever happens, the caller's stream and sync
    debug mode are theirs again on return.
    """
    home = torch.cuda.current_stream()
    mode = torch.cuda.get_sync_debug_mode()
    stream = torch.cuda.Stream()
    stream.wait_stream(home)
    try:
        with torch.cuda.stream(stream):
            for k in range(WARMUP):
                torch.cuda.set_sync_debug_mode("error" if k == WARMUP - 1 else mode)
                fn()
        torch.cuda.set_sync_debug_mode(mode)
        home.wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            fn()
    finally:
        torch.cuda.set_sync_debug_mode(mode)
        torch.cuda.set_stream(home)  # (a failed capture can leave the side stream current)
        home.wait_stream(stream)
    return graph.replay


def generic_unsupported(trainer: Any) -> str | None:
    """Why the generic step of ``trainer`` is not captured as a CUDA graph; None when it is."""
    t = trainer.cfg.train
    reasons = (
        (trainer.device.type != "cuda", "not on CUDA"),
        (not t.cuda_graph, "train.cuda_graph is off"),
        (trainer.precision != "fp32", f"train.precision={trainer.precision}"),
        (trainer.world.size > 1, "several processes"),
        (t.pretrain_steps > 0 or trainer._anneal is not None, "a generator with a schedule"),
        (type(trainer.cond) not in (Conditioning, Labels),
         f"conditioning by {type(trainer.cond).__name__}"),
        (not all(opt.param_groups[0]["fused"] for opt in (trainer.opt_g, trainer.opt_d)),
         "an Adam without a fused kernel"),
        (trainer.graph_refused is not None, "a CUDA graph of this run was dropped"),
    )
    return next((why for failed, why in reasons if failed), None) or recipe_unsupported(trainer)


def recipe_unsupported(trainer: Any) -> str | None:
    """What in ``trainer``'s recipe (which the guard's remedies may change) draws random numbers
    of its own inside the step, so that no graph can replay it; None when nothing does."""
    r = trainer.recipe.reg
    reasons = ((r.gp_weight > 0, "a gradient penalty"), (r.instance_noise > 0, "instance noise"),
               (bool(r.augment), "augmentation"))
    return next((why for failed, why in reasons if failed), None)


def build_generic(trainer: Any) -> GraphedStep | None:
    """The generic step of ``trainer`` as a CUDA graph, where it can be captured, else None."""
    if generic_unsupported(trainer) is not None:
        return None
    return GraphedStep(GenericSource(trainer))


class Source(Protocol):
    """A step as ``GraphedStep`` stages, captures and replays it."""

    kind: str  # the step's name while its graph is replayed
    eager_kind: str  # and once the graph was dropped
    trainer: Any

    def compute(self, inputs: list[torch.Tensor], r1: bool, out: torch.Tensor) -> None:
        """The step's arithmetic on ``inputs`` (on the device), statistics into ``out``."""

    def state(self) -> list[torch.Tensor]:
        """Every tensor the step writes that outlives it."""

    def prepare(self) -> None:
        """Before staging: state loaded since the last step into the tensors the graph uses."""

    def bind(self, lr: tuple[torch.Tensor, torch.Tensor] | None,
             ema_weight: torch.Tensor | None) -> None:
        """Read G's and D's rates and the EMA weight from these device scalars (None: from the
        optimizers and the step count, as an eager step does)."""

    def modes(self) -> list[bool]:
        """The training flags the captured arithmetic depends on."""

    def eager(self) -> None:
        """One whole step run eagerly (the graph dropped)."""


class FusedSource:
    """The fused step (sync-free) as ``GraphedStep`` captures it."""

    kind = "fused, CUDA graph"
    eager_kind = "fused"

    def __init__(self, step: FusedStep) -> None:
        self.step = step
        self.trainer = step.trainer

    def compute(self, inputs: list[torch.Tensor], r1: bool, out: torch.Tensor) -> None:
        self.step.compute(inputs, r1, out)

    def state(self) -> list[torch.Tensor]:
        return self.step.state()

    def prepare(self) -> None:
        for flat in (self.step.flat_g, self.step.flat_d):  # an optimizer's loaded state
            flat.bind()

    def bind(self, lr: tuple[torch.Tensor, torch.Tensor] | None,
             ema_weight: torch.Tensor | None) -> None:
        st = self.step
        st.flat_g.lr, st.flat_d.lr = lr if lr is not None else (None, None)
        st.ema_weight = ema_weight

    def modes(self) -> list[bool]:
        return [layer.sn.training for flat in (self.step.flat_g, self.step.flat_d)
                for layer in flat.dense if layer.sn is not None]

    def eager(self) -> None:
        self.step()


class GenericSource:
    """The generic step (autograd over the modules, gankit's fused Adam) as ``GraphedStep``
    captures it: batches and noise from the static buffers, in the order they are drawn."""

    kind = "generic, CUDA graph"
    eager_kind = "generic (its CUDA graph dropped)"

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self._rates: list[float] = []
        # each parameter's Adam state as the graph was captured with it (see ``prepare``)
        self._home: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def compute(self, inputs: list[torch.Tensor], r1: bool, out: torch.Tensor) -> None:
        # (R1 and R2 are the recipe's, by the step count: a captured step has none)
        tr = self.trainer
        it = iter(inputs)

        def batch() -> tuple[torch.Tensor, torch.Tensor | None]:
            idx = next(it)
            return idx, tr.cond.of(idx)

        stats = tr.generic_step(batch, lambda: next(it))
        out.copy_(stats)

    def _optimizers(self) -> tuple[Any, Any]:
        return self.trainer.opt_g, self.trainer.opt_d

    def state(self) -> list[torch.Tensor]:
        tr = self.trainer
        out: list[torch.Tensor] = []
        for net in (tr.G, tr.D, tr.G_ema):
            if net is not None:
                out += [x.data for x in net.parameters()] + list(net.buffers())
        for opt in self._optimizers():
            for p in opt.param_groups[0]["params"]:
                home = self._home.setdefault(p, opt._state(p, True))  # (zeros, as a first step)
                out += list(home.values())
        return out

    def prepare(self) -> None:
        # a checkpoint or rollback loaded since replaces the optimizers' state tensors: their
        # values go into the tensors the graph updates, which become the state again; and
        # every parameter has a gradient tensor, zeroed in place by each step
        for opt in self._optimizers():
            for p in opt.param_groups[0]["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                home, now = self._home.get(p), opt.state.get(p)
                if home is None or now is home:
                    continue
                for key, value in home.items():
                    if now:
                        value.copy_(now[key])
                    else:
                        value.zero_()
                opt.state[p] = home

    def bind(self, lr: tuple[torch.Tensor, torch.Tensor] | None,
             ema_weight: torch.Tensor | None) -> None:
        groups = [opt.param_groups[0] for opt in self._optimizers()]
        if lr is not None:
            self._rates = [g["lr"] for g in groups]
            for g, rate in zip(groups, lr, strict=True):
                g["lr"] = rate
        elif self._rates:
            for g, rate in zip(groups, self._rates, strict=True):
                g["lr"] = rate
            self._rates = []
        self.trainer._ema_weight = ema_weight
        self.trainer._static_grads = lr is not None

    def modes(self) -> list[bool]:
        tr = self.trainer
        return [m.training for net in (tr.G, tr.D) for m in net.modules()]

    def eager(self) -> None:
        self.trainer.eager_step()


def _stage(host: torch.Tensor, static: torch.Tensor) -> None:
    """Copy ``host`` into the device buffer ``static``, queued behind the GPU's work."""
    if static.device.type == "cuda":
        host = host.pin_memory()
    static.copy_(host, non_blocking=True)


def apart(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest difference of two lists of tensors, each relative to its tensor's norm."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        scale = max(float(torch.linalg.vector_norm(x.float())), 1e-12)
        worst = max(worst, float(torch.linalg.vector_norm((x - y).float())) / scale)
    return worst


class GraphedStep:
    """A step (``FusedSource`` or ``GenericSource``) trained by replaying one captured graph.

    ``capture`` turns the step's arithmetic into a replay (``cuda_capture`` on CUDA; tests pass
    a stand-in that records the operations once and replays them on the CPU).
    """

    def __init__(self, source: Source, capture: Capture = cuda_capture) -> None:
        self.source = source
        self.capture = capture
        self.kind = source.kind
        self.refused: str | None = None  # why the graph was dropped, once it was
        dev = source.trainer.device
        self.inputs = [torch.empty(x.shape, dtype=x.dtype, device=dev)
                       for x in draws(source.trainer, shapes_only=True)]
        self.lr = (torch.zeros((), device=dev), torch.zeros((), device=dev))
        self.ema_weight = torch.zeros((), device=dev)
        self.stats = torch.zeros(4, device=dev)  # the step's statistics, written by each step
        self.replay: Callable[[], None] | None = None
        self.modes: list[bool] = []  # the modules' modes the graph was captured in

    def _stage(self) -> None:
        """This step's inputs and scalars into the static buffers the graph reads."""
        src = self.source
        src.prepare()
        tr = src.trainer
        for host, static in zip(draws(tr), self.inputs, strict=True):
            _stage(host, static)
        for scalar, opt in zip(self.lr, (tr.opt_g, tr.opt_d), strict=True):
            scalar.fill_(opt.param_groups[0]["lr"])
        if tr.G_ema is not None:
            self.ema_weight.fill_(1.0 - tr.ema_decay())

    def _captured(self) -> str | None:
        """Capture the staged step and check one replay against the eager step; None when it
        agrees, else why not (the state is then the eager step's, as if it had run)."""
        src = self.source
        saved = [x.clone() for x in src.state()]

        def restore(values: list[torch.Tensor]) -> None:
            for x, v in zip(src.state(), values, strict=True):
                x.copy_(v)

        def fn() -> None:
            src.compute(self.inputs, False, self.stats)

        try:
            replay = self.capture(fn)
        except Exception as e:  # noqa: BLE001 - any failure to capture: the eager step runs
            restore(saved)
            fn()
            return f"capture failed: {type(e).__name__}: {(str(e) or '?').splitlines()[0][:200]}"
        restore(saved)
        fn()
        eager = [x.clone() for x in [*src.state(), self.stats]]
        restore(saved)
        replay()
        worst = apart(eager, [*src.state(), self.stats])
        if not worst <= TOLERANCE:  # (NaN too)
            restore(eager[:-1])
            self.stats.copy_(eager[-1])
            return f"its replay differed from the eager step by {worst:.2g} of a norm"
        self.replay, self.modes = replay, src.modes()
        return None

    def __call__(self) -> None:
        """Train one step, as the eager step does."""
        src = self.source
        tr = src.trainer
        if self.refused is not None:
            return src.eager()
        if tr.cfg.train.lr_decay > 0:
            tr.set_rates()
        self._stage()
        src.bind(self.lr, self.ema_weight if tr.G_ema is not None else None)
        if self.replay is not None and src.modes() != self.modes:
            self.replay = None  # captured again, in the modes of now
        try:
            if tr.penalty_due():
                src.compute(self.inputs, True, self.stats)
            elif self.replay is not None:
                self.replay()
            else:
                why = self._captured()
                if why is not None:
                    # no capture again in this run (a rebuilt D, a remedy): a failed capture
                    # can leave CUDA's graph bookkeeping unsettled for the process
                    self.refused = tr.graph_refused = why
                    self.kind = tr.step_kind = src.eager_kind
                    tr.notices.append(f"the CUDA graph of the {src.eager_kind.split()[0]} step "
                                      f"was dropped ({why}); the step runs without it")
        finally:
            src.bind(None, None)
        tr._acc += self.stats
        tr._acc_steps += 1
        tr.step += 1
