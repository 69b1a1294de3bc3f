"""Training steps captured as graphs (training/graphed.py), fused and generic, tested on the
CPU: the capture is a stand-in that records the step's operators once and replays them
(tests/tape.py), so what a CUDA graph would bake in at capture (a Python float, a host read)
shows here as a wrong run. The tests marked for CUDA run the real capture where a GPU is."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import gankit
from gankit.clusters import assign
from gankit.config import Config
from gankit.training.fused import FusedStep, draws
from gankit.training.graphed import FusedSource, GenericSource, GraphedStep, generic_unsupported
from gankit.training.trainer import Trainer

from .tape import HostRead, tape_capture
from .test_fused import CASES, assert_close, config

KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "rng", "acc", "acc_steps")


def graphed(cfg: Config, capture: Callable[..., Any] = tape_capture) -> Trainer:
    """A trainer of ``cfg`` whose step is the sync-free fused step, captured by ``capture``."""
    tr = Trainer(cfg, gankit.load_data(cfg.data))
    assert tr.step_kind == "fused"
    tr._fused = GraphedStep(FusedSource(FusedStep(tr, sync_free=True)), capture)
    return tr


def graphed_generic(cfg: Config, capture: Callable[..., Any] = tape_capture) -> Trainer:
    """A trainer of ``cfg`` whose generic step is captured by ``capture``."""
    tr = Trainer(cfg, gankit.load_data(cfg.data))
    assert tr.step_kind.startswith("generic") and tr._graphed is None  # (on the CPU)
    tr._graphed = GraphedStep(GenericSource(tr), capture)
    return tr


def eager(cfg: Config, sync_free: bool = False) -> Trainer:
    tr = Trainer(cfg, gankit.load_data(cfg.data))
    if sync_free:
        tr._fused = FusedStep(tr, sync_free=True)
    return tr


def run(tr: Trainer, steps: int) -> Trainer:
    for _ in range(steps):
        tr.train_step()
    return tr


def case(name: str) -> Config:
    """The config of case ``name``: the fused step's, or (prefixed ``generic-``) the generic's."""
    return CASES[name] if name in CASES else GENERIC[name]


def captured(name: str, capture: Callable[..., Any] = tape_capture) -> Trainer:
    """A trainer of case ``name`` whose step is captured by ``capture``."""
    build = graphed if name in CASES else graphed_generic
    return build(case(name), capture)


def graph_of(tr: Trainer) -> GraphedStep:
    """The graphed step a trainer runs, fused or generic."""
    return tr._fused if tr._fused is not None else tr._graphed


def assert_same_run(ours: Trainer, ref: Trainer) -> None:
    """Two trainers' states (weights, moments, generators, statistics) to float tolerance."""
    a, b = ours.state(), ref.state()
    for key in KEYS:
        assert_close(a[key], b[key], key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_replayed_step_trains_the_eager_run(name: str) -> None:
    cfg = CASES[name]
    ours, ref = run(graphed(cfg), 12), run(eager(cfg), 12)
    r1_always = cfg.reg.r1_gamma > 0 and cfg.reg.r1_every == 1  # (R1's steps run eagerly)
    assert (ours._fused.replay is None) == r1_always and ours._fused.refused is None
    assert ours.step == ref.step == 12 and not ours.notices
    assert_same_run(ours, ref)


def test_the_sync_free_step_is_the_eager_one() -> None:
    # spectral norm's sigma kept on the device, on D's layers and its class embedding
    cfg = CASES["conditional-sn"]
    a, b = run(eager(cfg, sync_free=True), 12).state(), run(eager(cfg), 12).state()
    for key in KEYS:
        assert_close(a[key], b[key], key)


def test_the_eager_fused_step_reads_values_on_the_host() -> None:
    # what the graphed step avoids: the CPU step reads spectral norm's sigma as a float
    tr = eager(CASES["classic"])
    run(tr, 1)
    with pytest.raises(HostRead):
        tape_capture(lambda: tr._fused.compute(
            [x.to(tr.device) for x in draws(tr)], r1=False))


def test_rates_and_the_average_change_between_replays() -> None:
    # a decaying rate, the EMA's warm-up and R1 every other step, over one capture
    cfg = config("digits", reg={"r1_gamma": 1.0, "r1_every": 2}, lr_decay=1.0, steps=12)
    ours = run(graphed(cfg), 12)
    ref = run(eager(cfg), 12)
    assert ours.opt_g.param_groups[0]["lr"] == ref.opt_g.param_groups[0]["lr"] < 2e-4
    assert_same_run(ours, ref)


def test_a_failed_capture_falls_back_to_the_eager_step() -> None:
    def broken(fn: Callable[[], Any]) -> Callable[[], None]:
        fn()  # (a capture that fails part way: the step's tensors were written)
        raise RuntimeError("operation not permitted when stream is capturing")

    cfg = CASES["classic"]
    ours, ref = run(graphed(cfg, broken), 6), run(eager(cfg), 6)
    assert ours._fused.refused.startswith("capture failed: RuntimeError: operation not")
    assert ours.step_kind == "fused" and len(ours.notices) == 1
    assert_same_run(ours, ref)


def test_after_a_dropped_graph_the_run_captures_no_other() -> None:
    # a rebuilt D or a remedy builds its step again: not as a graph once one was dropped (a
    # failed capture can leave CUDA's graph bookkeeping unsettled for the process)
    def broken(fn: Callable[[], Any]) -> Callable[[], None]:
        raise RuntimeError("operation not permitted when stream is capturing")

    tr = run(captured("generic-dcgan", broken), 2)
    assert tr.graph_refused == graph_of(tr).refused
    assert tr.graph_refused.startswith("capture failed: RuntimeError")
    tr.device = torch.device("cuda")  # (a device object only: what the check asks first)
    assert generic_unsupported(tr) == "a CUDA graph of this run was dropped"
    assert generic_unsupported(captured("generic-dcgan")) == "not on CUDA"  # (the first reason)


def test_a_rollback_keeps_the_cluster_labels_the_graph_reads() -> None:
    # a self-conditioned run's labels are read by the captured step at the address it was
    # captured with: loading a state (a guard's rollback, a resume) re-labels them in place
    ours, ref = captured("clusters"), eager(CASES["clusters"])
    run(ours, 3)
    run(ref, 3)
    saved = {**copy.deepcopy(ref.state()), "step": ref.step}
    run(ours, 2)
    labels = ours.cond.labels
    before = labels.data_ptr()
    labels.zero_()  # (what the re-labelling must overwrite)
    ours.load_state(saved)
    assert ours.cond.labels is labels and labels.data_ptr() == before
    assert torch.equal(labels, assign(ours.x.cpu(), saved["centroids"]))
    run(ours, 4)
    run(ref, 4)
    assert graph_of(ours).replay is not None
    assert_same_run(ours, ref)


@pytest.mark.parametrize("name, steps", [("seed", 5), ("generic-dcgan", 4)])
def test_a_replay_that_disagrees_is_dropped(name: str, steps: int) -> None:
    def skewed(fn: Callable[[], Any]) -> Callable[[], None]:
        replay = tape_capture(fn)

        def wrong() -> None:
            replay()
            next(holder[0].D.parameters()).data.add_(0.1)  # a replay that computes otherwise

        return wrong

    holder = [captured(name, skewed)]
    cfg = case(name)
    ours, ref = run(holder[0], steps), run(eager(cfg), steps)
    graph = graph_of(ours)
    assert "differed from the eager step by" in graph.refused
    assert ours.step_kind == graph.source.eager_kind  # "fused", "generic (...)"
    assert_same_run(ours, ref)


@pytest.mark.parametrize("name", ["classic", "generic-dcgan"])
def test_a_rollback_between_replays_is_seen_by_the_graph(name: str) -> None:
    # the guard's rollback loads a saved state through the modules and optimizers (the fused
    # step's flat buffers and step counts are written in place; the generic step's optimizer
    # state is replaced, and its values go into the tensors the graph updates)
    cfg = case(name)
    ours, ref = captured(name), eager(cfg)
    run(ours, 3)
    run(ref, 3)
    saved = {**copy.deepcopy(ref.state()), "step": ref.step}
    run(ours, 2)
    ours.load_state(saved)
    run(ours, 4)
    run(ref, 4)
    assert graph_of(ours).replay is not None
    assert_same_run(ours, ref)


def test_a_change_of_mode_is_captured_again() -> None:
    # spectral norm in evaluation mode skips the power iteration: a graph captured in training
    # mode would go on iterating, so the step is captured again
    cfg = CASES["classic"]
    ours, ref = graphed(cfg), eager(cfg)
    run(ours, 2)
    run(ref, 2)
    first = ours._fused.replay
    for tr in (ours, ref):
        tr.D.eval()
    run(ours, 3)
    run(ref, 3)
    assert ours._fused.replay is not None and ours._fused.replay is not first
    assert_same_run(ours, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["seed", "classic", "digits", "conditional-sn", "generic-dcgan",
                                  "generic-digits-r1", "generic-classic"])
def test_on_cuda_the_graph_trains_the_eager_run(name: str) -> None:
    cfg = case(name).replace(train={"device": "cuda"})
    ours = run(Trainer(cfg, gankit.load_data(cfg.data)), 12)
    ref = run(Trainer(cfg.replace(train={"cuda_graph": False}), gankit.load_data(cfg.data)), 12)
    step = "fused" if ref.step_kind == "fused" else "generic"
    assert ours.step_kind == f"{step}, CUDA graph" and not ours.notices, ours.notices
    assert_same_run(ours, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_a_graphed_run_resumes_bitwise(tmp_path: Path) -> None:
    # a checkpoint written by graph replays, resumed into a fresh capture: the same run (not
    # `digits`: its embedding gradient's index_add_ is not deterministic on CUDA)
    cfg = CASES["classic"].replace(train={"device": "cuda", "steps": 10, "checkpoint_every": 5})
    whole = gankit.train(cfg, out=tmp_path / "whole", progress=False)
    gankit.train(cfg.replace(train={"steps": 5}), out=tmp_path / "part", progress=False)
    resumed = gankit.train(gankit.resume_config(tmp_path / "part", 10), out=tmp_path / "part",
                           resume=True, progress=False)
    assert whole.step_kind == resumed.step_kind == "fused, CUDA graph"
    a, b = whole.state(), resumed.state()
    for net in ("G", "D", "G_ema"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), (net, k)


# the generic step: autograd, gankit's Adam, batch norm, lazy R1 (dcgan: 8 channels, batch 8)
GENERIC = {
    "generic-dcgan": config("dcgan", model={"base_channels": 8}, batch_size=8, steps=12),
    "generic-dcgan-decay-2-d-steps": config("dcgan", model={"base_channels": 8}, batch_size=8,
                                    lr_decay=1.0, d_steps=2, reuse_fake=False),
    "generic-classic": config("classic", fused_step=False),  # spectral norm's parametrization
    "generic-digits-r1": config("digits", fused_step=False, reg={"r1_gamma": 1.0, "r1_every": 3}),
    "generic-sngan": config("sngan", model={"base_channels": 8}, batch_size=8),
    "generic-pacgan": config("pacgan", batch_size=8),  # packed D
}


@pytest.mark.parametrize("name", sorted(GENERIC))
def test_the_replayed_generic_step_trains_the_eager_run(name: str) -> None:
    cfg = GENERIC[name]
    ours, ref = run(graphed_generic(cfg), 7), run(eager(cfg), 7)
    assert ours._graphed.replay is not None and ours._graphed.refused is None
    assert_same_run(ours, ref)


def test_the_gradients_after_a_replay_are_the_replayed_steps() -> None:
    # what the guard reads at a log step: the gradients of the last step, replayed or not
    cfg = GENERIC["generic-digits-r1"]
    ours, ref = graphed_generic(cfg), eager(cfg)
    for steps in (2, 1, 1):  # ending on a replay after an eager R1 step, then on a replay
        run(ours, steps)
        run(ref, steps)
        assert ours._graphed.replay is not None
        for net in ("G", "D"):
            for p, q in zip(getattr(ours, net).parameters(), getattr(ref, net).parameters(),
                            strict=True):
                assert_close(p.grad, q.grad, net)


@pytest.mark.parametrize("name", ["classic", "generic-dcgan"])
def test_a_whole_fit_with_replays_is_the_eager_fit(tmp_path: Path, name: str) -> None:
    # log steps (the guard and the collapse watch read the networks and gradients), sample
    # grids and checkpoints between replays
    cfg = case(name).replace(
        train={"steps": 60, "log_every": 10, "sample_every": 20, "checkpoint_every": 20})

    def fitted(graph: bool, out: Path) -> Trainer:
        out.mkdir()
        tr = Trainer(cfg, gankit.load_data(cfg.data), run_dir=out)
        if graph and tr._fused is not None:
            tr._fused = GraphedStep(FusedSource(FusedStep(tr, sync_free=True)), tape_capture)
        elif graph:
            tr._graphed = GraphedStep(GenericSource(tr), tape_capture)
        tr.fit(progress=False)
        return tr

    ours, ref = fitted(True, tmp_path / "graph"), fitted(False, tmp_path / "eager")
    assert graph_of(ours).replay is not None
    assert sorted(p.name for p in (tmp_path / "graph" / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "eager" / "checkpoints").iterdir())
    assert_same_run(ours, ref)
