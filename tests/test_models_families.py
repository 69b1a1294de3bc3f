"""DCGAN and residual families, conditional models and the model checks: shapes over every
supported size and channel count, labels, projection, refusals."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from gankit import models
from gankit.config import ModelConfig
from gankit.errors import ConfigError
from gankit.models.conditional import ConditionalBatchNorm2d


def cfg(family: str, **kw) -> ModelConfig:
    return ModelConfig(family=family, base_channels=8, latent_dim=16, **kw)


def check_pair(m: ModelConfig, shape: tuple[int, int, int], k: int = 0, pack: int = 1) -> None:
    torch.manual_seed(0)
    g, d = models.build(m, shape, k, pack)
    y = torch.tensor([0, 1, 2, 1]) if k else None
    x = g(torch.randn(4, m.latent_dim), y).detach()
    assert x.shape == (4, *shape)
    lo, hi = models.output_range(m)
    assert float(x.min()) >= lo and float(x.max()) <= hi
    if pack == 1:
        assert d(x, y).shape == (4,)
    else:
        xp = x.reshape(4 // pack, pack * shape[0], *shape[1:])
        assert d(xp).shape == (4 // pack,)


@pytest.mark.parametrize("side", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(side: int, channels: int) -> None:
    check_pair(cfg("dcgan"), (channels, side, side))
    check_pair(cfg("dcgan", conditional=True), (channels, side, side), k=3)


@pytest.mark.parametrize("side", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_shapes(side: int, channels: int) -> None:
    check_pair(cfg("resnet"), (channels, side, side))
    if side == 32:
        check_pair(cfg("resnet", conditional=True), (channels, side, side), k=3)


def test_mlp_conditional_and_packed_shapes() -> None:
    check_pair(cfg("mlp", g_hidden=(16,), d_hidden=(16,), conditional=True), (1, 28, 28), k=10)
    check_pair(cfg("dcgan"), (3, 32, 32), pack=2)
    check_pair(cfg("mlp", g_hidden=(16,), d_hidden=(16,)), (1, 8, 8), pack=4)


def test_dcgan_layers() -> None:
    g, d = models.build(cfg("dcgan"), (3, 32, 32))
    bns = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 3  # after the projection and after each inner transposed conv
    assert [m.stride for m in d.modules() if isinstance(m, torch.nn.Conv2d)] == [(2, 2)] * 3
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in d.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    _, d = models.build(cfg("dcgan", d_spectral_norm=True), (3, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(parametrize.is_parametrized(m, "weight") for m in convs)


def test_resnet_spectral_norm_everywhere_in_d() -> None:
    _, d = models.build(cfg("resnet", d_spectral_norm=True), (3, 32, 32))
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 3 * 3 + 1 and all(parametrize.is_parametrized(m) for m in layers)


def test_conditional_models_use_the_labels() -> None:
    for family in ("mlp", "dcgan", "resnet"):
        m = cfg(family, conditional=True, g_hidden=(16,), d_hidden=(16,))
        side = 32 if family == "resnet" else 28
        torch.manual_seed(0)
        g, d = models.build(m, (1, side, side), 4)
        with torch.no_grad():
            # Perturb the class tables away from their initial values (cBN starts at 1, 0).
            for module in list(g.modules()) + list(d.modules()):
                if isinstance(module, torch.nn.Embedding):
                    module.weight.add_(torch.randn_like(module.weight))
        g.eval()
        z = torch.randn(1, 16).expand(2, -1)
        y = torch.tensor([0, 3])
        x = g(z, y)
        assert not torch.allclose(x[0], x[1]), family  # same noise, other class, other image
        same = x[:1].expand(2, -1, -1, -1)
        s = d(same, y)
        assert not torch.allclose(s[0], s[1]), family  # same image, other class, other score
        with pytest.raises(ValueError, match="labels"):
            g(z)
        with pytest.raises(ValueError, match="labels"):
            d(x)


def test_conditional_batch_norm_starts_as_batch_norm() -> None:
    cbn = ConditionalBatchNorm2d(3, 5)
    x = torch.randn(6, 3, 4, 4)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    torch.testing.assert_close(cbn(x, y), torch.nn.BatchNorm2d(3, affine=False)(x))


def test_unconditional_classic_keys_unchanged() -> None:
    g, d = models.build(ModelConfig(), (1, 28, 28))
    assert not any("embed" in k for k in list(g.state_dict()) + list(d.state_dict()))


def test_sigmoid_output_bounds_d() -> None:
    _, d = models.build(cfg("dcgan", d_output="sigmoid"), (1, 28, 28))
    out = d(torch.randn(5, 1, 28, 28) * 100)
    assert ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize(("family", "shape"), [("dcgan", (1, 30, 30)), ("dcgan", (3, 32, 28)),
                                               ("resnet", (1, 28, 28)), ("resnet", (3, 256, 256))])
def test_sizes_the_architecture_cannot_make(family: str, shape: tuple[int, int, int]) -> None:
    with pytest.raises(ConfigError, match=f"model.family={family}.*data.size"):
        models.build(cfg(family), shape)


def test_conditional_needs_labels() -> None:
    with pytest.raises(ConfigError, match="model.conditional needs labelled data"):
        models.build(cfg("dcgan", conditional=True), (1, 28, 28), 0)


@pytest.mark.parametrize(("family", "side"), [("dcgan", 28), ("resnet", 32)])
def test_d_head_adds_hidden_layers_that_shape_the_score(family: str, side: int) -> None:
    shape = (3, side, side)
    check_pair(cfg(family, d_head=(24, 12)), shape)
    check_pair(cfg(family, d_head=(24,), conditional=True), shape, k=3)
    if family == "dcgan":
        check_pair(cfg(family, d_head=(24,)), shape, pack=2)
    torch.manual_seed(0)
    _, d = models.build(cfg(family, d_head=(24, 12), d_spectral_norm=True), shape)
    linears = [m for m in d.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears][1:] == [(24, 12), (12, 1)]
    assert all(parametrize.is_parametrized(m, "weight") for m in linears)
    x = torch.randn(4, *shape)
    d(x).sum().backward()
    assert all(m.parametrizations.weight.original.grad.abs().sum() > 0 for m in linears)
    # The score is not linear in the last convolutional features: doubling them does not
    # double it (minus the bias), as it would with a linear head.
    h = torch.randn(5, linears[0].in_features)
    s1, s2 = d.head(h, None), d.head(2 * h, None)
    bias = d.head(torch.zeros_like(h), None)
    assert not torch.allclose(s2 - bias, 2 * (s1 - bias), atol=1e-4)


def test_d_head_off_keeps_the_linear_heads_keys() -> None:
    # Checkpoints of D's without a hidden head (every run before model.d_head) still load.
    for family, side in (("dcgan", 28), ("resnet", 32)):
        _, d = models.build(cfg(family, conditional=True, d_spectral_norm=False),
                            (1, side, side), 3)
        assert sorted(k for k in d.state_dict() if k.startswith("head.")) == [
            "head.embed.weight", "head.linear.bias", "head.linear.weight"]
