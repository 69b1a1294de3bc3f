"""The fused step of the tabular family: the generic step's run, its written-out gradient
penalty and heads against autograd, and where it applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from gankit import kinds
from gankit.config import Config, resolve
from gankit.models.tabular import TabularDiscriminator, apply_heads, gumbel
from gankit.regularizers import gradient_penalty
from gankit.training.fused import Flat
from gankit.training.fused_table import Critic, Heads
from gankit.training.trainer import Trainer

from .test_fused import assert_close
from .test_tables import patients

SMALL = ["train.batch_size=40", "model.g_hidden=[24, 16]", "model.d_hidden=[20, 12]",
         "model.latent_dim=8", "train.threads=1", "train.precision=fp32", "reg.pack=4"]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fused") / "patients.csv"
    patients(200).drop(columns=["id"]).to_csv(path, index=False)
    return path


def config(table: Path, *extra: str) -> Config:
    return resolve(None, overrides=[f"data.source={table}", *SMALL, *extra])


def trained(cfg: Config, steps: int, fused: bool) -> Trainer:
    tr = Trainer(cfg.replace(train={"fused_step": fused}), kinds.get("tables").load(cfg.data))
    assert tr.step_kind.startswith("fused" if fused else "generic"), tr.step_kind
    for _ in range(steps):
        tr.train_step()
    return tr


# A linear layer followed by batch norm has a bias whose gradient is zero in exact arithmetic
# (the norm subtracts the batch mean): both steps give it rounding noise, which Adam turns into
# moves of about lr either way, and the running mean follows it. Neither changes G's output.
DEAD = (".fc.bias", ".bn.running_mean")

CASES = {
    "preset": (),  # conditioned on the discrete columns, WGAN-GP, pack, EMA
    "target": ("data.target=sick",),  # the target focus, and a boolean column
    "unconditioned": ("model.conditional=false",),
    "2-d-steps": ("train.d_steps=2",),
    "fresh-fake": ("train.reuse_fake=false",),
    "one-sided-gp": ("reg.gp_one_sided=true",),
    "no-gp-non-saturating": ("reg.gp_weight=0", "loss.name=non_saturating"),
    "no-pack-decay": ("reg.pack=1", "train.lr_decay=0.5"),
    "three-layers": ("model.g_hidden=[16, 8, 12]", "model.d_hidden=[10, 6, 8]"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_table_step_trains_the_generic_run(table: Path, name: str) -> None:
    cfg = config(table, *CASES[name])
    fast, slow = trained(cfg, 8, True), trained(cfg, 8, False)
    a, b = fast.state(), slow.state()
    for key in ("G", "D", "G_ema"):
        live = {k: v for k, v in a[key].items() if not k.endswith(DEAD)}
        assert len(live) > 4
        assert_close(live, {k: b[key][k] for k in live}, key)
    for key in ("opt_d", "rng", "acc", "acc_steps"):
        assert_close(a[key], b[key], key)
    start = Trainer(cfg, kinds.get("tables").load(cfg.data)).state()
    moved = [float((a["G"][k].float() - start["G"][k].float()).abs().max()) for k in a["G"]
             if not k.endswith(DEAD) and "num_batches" not in k]
    assert min(moved) > 1e-4  # both trained: not a comparison of untouched weights


def _critic(pack: int, width: int, cond: int, slope: float = 0.2
            ) -> tuple[TabularDiscriminator, Critic]:
    torch.manual_seed(0)
    D = TabularDiscriminator(width, (12, 7), slope, cond_dim=cond, pack=pack)
    with torch.no_grad():  # gradient norms around 1, so a one-sided penalty has terms on both sides
        for p in D.parameters():
            p.mul_(2.5)
    opt = torch.optim.Adam(D.parameters())
    return D, Critic(D, Flat(list(D.parameters()), opt), slope, width)


@pytest.mark.parametrize("one_sided", [False, True])
@pytest.mark.parametrize("pack, cond", [(1, 0), (3, 4)])
def test_written_out_gradient_penalty_matches_autograd(one_sided: bool, pack: int,
                                                       cond: int) -> None:
    width, n = 5, 12
    D, critic = _critic(pack, width, cond)
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(n, width, generator=gen), torch.randn(n, width, generator=gen)
    y = torch.randn(n, cond, generator=gen) if cond else None
    eps = torch.rand(n // pack, generator=gen)
    scale = 7.0
    # autograd: the recipe's penalty on packed rows, D joining the conditions itself
    pr, pf = real.reshape(n // pack, -1), fake.reshape(n // pack, -1)
    want = scale * gradient_penalty(lambda v: D(v, y), pr, pf, eps, one_sided)
    grads = torch.autograd.grad(want, list(D.parameters()), allow_unused=True)
    # written out: the first layer at the mixed packs, from the real and fake packs' outputs
    beside = [y] if cond else []
    rows = torch.cat([torch.cat([real] + beside, 1), torch.cat([fake] + beside, 1)])
    mix = eps.repeat_interleave(pack)[:, None]
    mixed = torch.cat([mix * real + (1 - mix) * fake] + beside, dim=1)
    critic.flat.grad.zero_()
    with torch.no_grad():
        logits = critic.logits(rows, keep_first=True)
        first = critic.mixed_first(eps)
        torch.testing.assert_close(first, critic.mlp.layers[0].forward(critic.packed(mixed)))
        torch.testing.assert_close(logits, D(torch.cat([real, fake]).reshape(2 * n // pack, -1),
                                             None if y is None else torch.cat([y, y])))
        got = critic.penalty(first, scale, one_sided)
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)
    assert float(want.detach()) > 0.1
    for p, g in zip(D.parameters(), grads, strict=True):
        g = torch.zeros_like(p) if g is None else g
        torch.testing.assert_close(critic.flat.grad_of(p), g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("heads", [
    ((1, "tanh"), (3, "softmax"), (1, "tanh"), (5, "softmax"), (2, "softmax")),
    ((4, "softmax"), (1, "softmax"), (7, "softmax")),  # categories only
    ((1, "tanh"), (1, "tanh")),  # numbers only
])
def test_heads_match_autograd(heads: tuple[tuple[int, str], ...]) -> None:
    width = sum(w for w, _ in heads)
    cells = sum(w for w, act in heads if act == "softmax")
    gen = torch.Generator().manual_seed(2)
    raw = torch.randn(6, width, generator=gen, requires_grad=True)
    noise = gumbel(torch.randn(6, cells, generator=gen))
    want = apply_heads(raw, heads, noise)
    g_out = torch.randn(6, width, generator=gen)
    (g_want,) = torch.autograd.grad(want, raw, g_out)
    h = Heads(heads, torch.device("cpu"))
    out, g_raw = torch.full((6, width), float("nan")), torch.full((6, width), float("nan"))
    h.forward(raw.detach(), noise, out)
    h.backward(g_out, out, g_raw)
    torch.testing.assert_close(out, want.detach())  # every cell written (no NaN left)
    torch.testing.assert_close(g_raw, g_want)


def test_the_tabular_preset_takes_the_fused_step(table: Path) -> None:
    cfg = resolve(None, overrides=[f"data.source={table}", "train.batch_size=40"])
    assert cfg.preset == "tabular"
    assert Trainer(cfg, kinds.get("tables").load(cfg.data)).step_kind == "fused"


@pytest.mark.parametrize("extra, reason", [
    (("reg.r1_gamma=1",), "an R1 penalty"),
    (("model.d_spectral_norm=true",), "spectral norm in D"),
    (("train.precision=bf16",), "train.precision=bf16"),
    (("reg.instance_noise=0.1",), "instance noise"),
    (("loss.name=relativistic",), "loss.name=relativistic"),
    (("reg.r2_gamma=1.0",), "an R2 penalty"),
])
def test_generic_step_where_the_fused_table_step_does_not_apply(
        table: Path, extra: tuple[str, ...], reason: str) -> None:
    cfg = config(table, *extra)
    tr = Trainer(cfg, kinds.get("tables").load(cfg.data))
    assert tr.step_kind == f"generic ({reason})"
    tr.train_step()
    assert tr.step == 1


def test_fused_table_step_skips_a_discriminator_of_another_kind(table: Path,
                                                               monkeypatch: Any) -> None:
    cfg = config(table)
    data = kinds.get("tables").load(cfg.data)
    original = TabularDiscriminator.__init__

    def with_dropout(self: TabularDiscriminator, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.net.insert(1, nn.Dropout(0.0))

    monkeypatch.setattr(TabularDiscriminator, "__init__", with_dropout)
    assert Trainer(cfg, data).step_kind == "generic (a discriminator of another kind)"
