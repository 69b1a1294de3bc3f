"""The fully connected G and D: shapes, exact layers, sizes, output ranges, spectral norm."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gankit import models
from gankit.config import resolve
from gankit.models.mlp import MLPDiscriminator, MLPGenerator, activation


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def linear_count(in_f: int, out_f: int) -> int:
    return in_f * out_f + out_f


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 16)])
@pytest.mark.parametrize("preset", ["classic", "seed"])
def test_shapes(shape: tuple[int, int, int], preset: str) -> None:
    cfg = resolve(preset).model
    g, d = models.build(cfg, shape)
    z = torch.randn(5, cfg.latent_dim)
    x = g(z)
    assert x.shape == (5, *shape) and x.dtype == torch.float32
    logits = d(x)
    assert logits.shape == (5,)
    assert d(torch.rand(1, *shape)).shape == (1,)
    assert g.image_shape == shape and g.latent_dim == cfg.latent_dim


def test_seed_generator_is_exactly_the_textbook() -> None:
    g, _ = models.build(resolve("seed").model, (1, 28, 28))
    layers = list(g.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU,
                                         nn.Linear, nn.Sigmoid]
    sizes = [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)]
    assert sizes == [(100, 128), (128, 128), (128, 784)]
    assert all(m.bias is not None for m in layers if isinstance(m, nn.Linear))
    assert [m.negative_slope for m in layers if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2]
    assert n_params(g) == linear_count(100, 128) + linear_count(128, 128) + linear_count(128, 784)
    assert n_params(g) == 130576


def test_seed_discriminator_is_exactly_the_textbook() -> None:
    _, d = models.build(resolve("seed").model, (1, 28, 28))
    layers = list(d.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU,
                                         nn.Linear]
    sizes = [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)]
    assert sizes == [(784, 128), (128, 128), (128, 1)]
    assert [m.negative_slope for m in layers if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2]
    assert not any(parametrize.is_parametrized(m) for m in layers)
    assert n_params(d) == linear_count(784, 128) + linear_count(128, 128) + linear_count(128, 1)
    assert n_params(d) == 117121
    assert not list(d.buffers())  # no spectral-norm vectors


def test_param_counts_rgb() -> None:
    g, d = models.build(resolve("classic").model, (3, 16, 16))
    pixels = 3 * 16 * 16
    assert n_params(g) == linear_count(100, 128) + linear_count(128, 128) + linear_count(128,
                                                                                           pixels)
    # Spectral norm keeps the same trainable parameters (the original weights).
    assert n_params(d) == linear_count(pixels, 128) + linear_count(128, 128) + linear_count(128, 1)


def test_custom_widths_and_activation() -> None:
    cfg = resolve("classic", overrides=["model.g_hidden=[7, 5, 3]", "model.d_hidden=[4]",
                             "model.activation=gelu", "model.latent_dim=2",
                             "model.d_spectral_norm=false"]).model
    g, d = models.build(cfg, (1, 4, 4))
    sizes = [(m.in_features, m.out_features) for m in g.net if isinstance(m, nn.Linear)]
    assert sizes == [(2, 7), (7, 5), (5, 3), (3, 16)]
    assert sum(isinstance(m, nn.GELU) for m in g.net) == 3
    sizes = [(m.in_features, m.out_features) for m in d.net if isinstance(m, nn.Linear)]
    assert sizes == [(16, 4), (4, 1)]
    assert g(torch.randn(3, 2)).shape == (3, 1, 4, 4)


@pytest.mark.parametrize(("name", "cls"), [("leaky_relu", nn.LeakyReLU), ("relu", nn.ReLU),
                                           ("elu", nn.ELU), ("gelu", nn.GELU), ("silu", nn.SiLU),
                                           ("tanh", nn.Tanh)])
def test_activation_table(name: str, cls: type) -> None:
    layer = activation(name, 0.3)
    assert isinstance(layer, cls)
    if name == "leaky_relu":
        assert layer.negative_slope == 0.3
        assert layer(torch.tensor([-10.0])).item() == pytest.approx(-3.0)


@pytest.mark.parametrize(("output", "lo", "hi"), [("tanh", -1.0, 1.0), ("sigmoid", 0.0, 1.0)])
def test_output_ranges(output: str, lo: float, hi: float) -> None:
    cfg = resolve("classic", overrides=[f"model.output={output}"]).model
    assert models.output_range(cfg) == (lo, hi)
    torch.manual_seed(0)
    g, _ = models.build(cfg, (1, 28, 28))
    with torch.no_grad():
        x = g(torch.randn(64, cfg.latent_dim) * 50)  # large noise drives units to saturation
    assert float(x.min()) >= lo and float(x.max()) <= hi
    assert float(x.min()) < (lo + hi) / 2 < float(x.max())  # both halves of the range used
    assert isinstance(g.net[-1], nn.Tanh if output == "tanh" else nn.Sigmoid)


def test_spectral_norm_present_when_configured() -> None:
    _, d = models.build(resolve("classic").model, (1, 28, 28))
    linears = [m for m in d.net if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for m in linears:
        assert parametrize.is_parametrized(m, "weight")
        assert hasattr(m, "parametrizations") and "weight" in m.parametrizations
    keys = set(d.state_dict())
    assert "net.0.parametrizations.weight.original" in keys
    assert "net.0.parametrizations.weight.0._u" in keys
    _, d_plain = models.build(resolve("classic", overrides=["model.d_spectral_norm=false"]).model,
                              (1, 28, 28))
    assert not any(parametrize.is_parametrized(m) for m in d_plain.net)


def test_spectral_norm_normalises_the_weight() -> None:
    torch.manual_seed(0)
    d = MLPDiscriminator((1, 28, 28), (128, 128), use_spectral_norm=True).train()
    layer = d.net[0]
    original = layer.parametrizations.weight.original.detach()
    for _ in range(30):  # power iteration runs on each access in training mode
        w = layer.weight.detach()
    assert torch.linalg.matrix_norm(w, 2).item() == pytest.approx(1.0, abs=0.03)
    sigma = torch.linalg.matrix_norm(original, 2).item()
    assert abs(sigma - 1.0) > 0.1  # the raw weight really is rescaled
    torch.testing.assert_close(w * sigma, original, rtol=0.03, atol=1e-4)


def test_generator_maps_each_noise_vector_independently() -> None:
    torch.manual_seed(0)
    g = MLPGenerator(8, (16,), (1, 4, 4)).eval()
    z = torch.randn(4, 8)
    batch = g(z)
    single = torch.cat([g(z[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, single)


def test_discriminator_accepts_flat_or_image_input_shape() -> None:
    torch.manual_seed(0)
    d = MLPDiscriminator((3, 4, 4), (8,))
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(d(x), d.net(x.reshape(2, math.prod((3, 4, 4)))).squeeze(1))


def test_mlp_generator_skip_path_is_a_linear_map_beside_the_layers() -> None:

    torch.manual_seed(0)
    g = MLPGenerator(8, (16,), (5,), output="linear", skip=True)
    assert g.skip is not None and g.skip.weight.shape == (5, 8) and g.skip.bias is None
    z = torch.randn(4, 8)
    with torch.no_grad():
        g.net[-2].weight.zero_()  # the layers' part now only its bias
        out = g(z)
    torch.testing.assert_close(out, z @ g.skip.weight.T + g.net[-2].bias)
    plain = MLPGenerator(8, (16,), (5,), output="linear")
    assert plain.skip is None and "skip.weight" not in plain.state_dict()
