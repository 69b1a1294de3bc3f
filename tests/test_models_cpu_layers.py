"""The CPU-speed layers of the convolutional families: one-channel convolutions as a product and a
col2im (`models/thin.py`) compute torch's sums, and the seam where D's feature maps become a
vector (`models/layouts.py`) keeps one memory layout on each side without changing a value."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit import models
from gankit.config import ModelConfig
from gankit.models import layouts
from gankit.models.thin import GreyInConv2d, GreyOutConvTranspose2d, _Fold, unfold
from gankit.regularizers import maybe_sn

CL = torch.channels_last


def _pair(plain: nn.Module, ours: nn.Module, layout: torch.memory_format) -> None:
    """``ours`` with ``plain``'s parameters (its state dict loads as it is), both in ``layout``."""
    ours.load_state_dict(plain.state_dict())
    plain.to(memory_format=layout)
    ours.to(memory_format=layout)


def _grads(module: nn.Module, x: torch.Tensor, bf16: bool) -> list[torch.Tensor]:
    """Output, then gradients of input and parameters, for a fixed output gradient."""
    x = x.detach().requires_grad_()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        out = module(x)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    grads = torch.autograd.grad(out, [x, *module.parameters()], g)
    return [out.detach().float(), *(t.float() for t in grads)]


def _close(a: list[torch.Tensor], b: list[torch.Tensor], rel: float) -> None:
    for u, v in zip(a, b, strict=True):
        assert u.shape == v.shape
        assert float((u - v).norm()) <= rel * float(u.norm()) + 1e-12


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
@pytest.mark.parametrize("bf16", [False, True])
def test_grey_transposed_convolution_is_torchs(layout: torch.memory_format, bf16: bool) -> None:
    torch.manual_seed(0)
    plain, ours = nn.ConvTranspose2d(32, 1, 4, 2, 1), GreyOutConvTranspose2d(32, 1, 4, 2, 1)
    _pair(plain, ours, layout)
    x = torch.randn(8, 32, 14, 14).contiguous(memory_format=layout)
    # bf16: both round their products; measured agreement 1e-3 of each norm
    _close(_grads(plain, x, bf16), _grads(ours, x, bf16), 1e-2 if bf16 else 1e-5)
    assert _grads(ours, x, bf16)[0].shape == (8, 1, 28, 28)


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("sn", [False, True])
def test_grey_input_convolution_is_torchs(layout: torch.memory_format, bf16: bool,
                                          sn: bool) -> None:
    torch.manual_seed(0)
    plain = maybe_sn(nn.Conv2d(1, 16, 4, 2, 1), sn)
    ours = maybe_sn(GreyInConv2d(1, 16, 4, 2, 1), sn)
    _pair(plain, ours, layout)
    x = torch.randn(8, 1, 28, 28).contiguous(memory_format=layout)
    _close(_grads(plain, x, bf16), _grads(ours, x, bf16), 1e-2 if bf16 else 1e-5)


def test_grey_input_gradient_is_the_fold() -> None:
    """The input gradient really takes the product-and-fold path (not torch's own kernel)."""
    conv = GreyInConv2d(1, 4, 4, 2, 1)
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    conv(x).sum().backward()
    assert type(conv(x).grad_fn).__name__ == "_GreyInputBackward"
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
@pytest.mark.parametrize("shape, k, stride, padding", [((3, 1, 28, 28), 4, 2, 1),
                                                       ((2, 5, 9, 11), 3, 1, 1),
                                                       ((2, 4, 16, 16), 4, 2, 0),
                                                       ((1, 2, 7, 7), 2, 3, 2)])
def test_unfold_is_torchs(layout: torch.memory_format, shape: tuple[int, ...], k: int,
                          stride: int, padding: int) -> None:
    x = torch.randn(shape).contiguous(memory_format=layout)
    got, want = unfold(x, k, stride, padding), F.unfold(x, k, stride=stride, padding=padding)
    assert torch.equal(got, want) and got.is_contiguous()


def test_the_folds_gradient_is_torchs_bit_for_bit() -> None:
    # fold_up's col2im takes its gradient from ``unfold``: the same values as torch's im2col
    torch.manual_seed(0)
    cols = torch.randn(4, 16, 196, requires_grad=True)
    g = torch.randn(4, 1, 28, 28)
    (got,) = torch.autograd.grad(_Fold.apply(cols, (28, 28), 4, 2, 1), cols, g)
    (want,) = torch.autograd.grad(F.fold(cols, (28, 28), 4, stride=2, padding=1), cols, g)
    assert torch.equal(got, want)


def test_three_channels_stay_torchs_own() -> None:
    """RGB images use torch's layers (the fold is slower there): bitwise the same output."""
    torch.manual_seed(0)
    plain, ours = nn.ConvTranspose2d(8, 3, 4, 2, 1), GreyOutConvTranspose2d(8, 3, 4, 2, 1)
    _pair(plain, ours, torch.contiguous_format)
    h = torch.randn(2, 8, 7, 7)
    assert torch.equal(plain(h), ours(h))
    plain_in, ours_in = nn.Conv2d(3, 8, 4, 2, 1), GreyInConv2d(3, 8, 4, 2, 1)
    _pair(plain_in, ours_in, torch.contiguous_format)
    x = torch.randn(2, 3, 14, 14, requires_grad=True)
    assert torch.equal(plain_in(x), ours_in(x))
    assert type(ours_in(x).grad_fn).__name__ == "ConvolutionBackward0"


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_flatten_keeps_the_gradients_layout(layout: torch.memory_format) -> None:
    x = torch.randn(4, 8, 5, 5).contiguous(memory_format=layout).requires_grad_()
    flat = layouts.flatten(x)
    assert torch.equal(flat, x.flatten(1))  # channel-major order, whatever the layout
    g = torch.randn_like(flat)
    (grad,) = torch.autograd.grad(flat, x, g)
    assert torch.equal(grad, g.view(x.shape))
    assert grad.is_contiguous(memory_format=layout)


def _layouts_met(net: nn.Sequential, prefix: str, mixed: list[str]) -> None:
    """Hooks that add to ``mixed`` each layer of ``net`` whose output gradient comes back in
    another layout than its output's."""
    out_layout: dict[str, bool] = {}

    def is_cl(t: torch.Tensor) -> bool:
        return t.is_contiguous(memory_format=CL) and not t.is_contiguous()

    def forward_hook(name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            out_layout[name] = is_cl(out)
        return hook

    def backward_hook(name: str):  # noqa: ANN202
        def hook(module: nn.Module, grad_in: tuple, grad_out: tuple) -> None:
            (go,) = grad_out
            if go is not None and go.dim() == 4 and is_cl(go) != out_layout[name]:
                mixed.append(f"{prefix}{name}")
        return hook

    for name, mod in net.named_children():
        mod.register_forward_hook(forward_hook(name))
        mod.register_full_backward_hook(backward_hook(name))


def test_dcgan_in_channels_last_keeps_one_layout() -> None:
    """In a channels-last DCGAN no layer of G or D meets a gradient in another layout than its
    output's (the slow mixed-layout kernels): G's first batch norm and ReLU stay NCHW, the rest
    of both networks channels-last; and the networks compute what they did in NCHW."""
    torch.manual_seed(0)
    m = ModelConfig(family="dcgan", base_channels=8, latent_dim=16)
    g, d = models.build(m, (1, 28, 28), 0, 1)
    z = torch.randn(4, 16)
    want = d(g(z))
    g.to(memory_format=CL)
    d.to(memory_format=CL)
    mixed: list[str] = []
    _layouts_met(g.net, "G.net.", mixed)
    _layouts_met(d.net, "D.net.", mixed)
    out = d(g(z))
    out.sum().backward()
    assert mixed == []
    assert torch.allclose(out, want, rtol=1e-3, atol=1e-4)  # other conv kernels, fp32


@pytest.mark.parametrize("bf16", [False, True])
def test_dcgan_generator_seam_changes_no_value(bf16: bool, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """Entering the convolutions' layout after G's first ReLU (``layouts.enter``) gives the same
    samples and gradients, bit for bit, as feeding them the NCHW map."""
    m = ModelConfig(family="dcgan", base_channels=16, latent_dim=16)

    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        g, _ = models.build(m, (1, 28, 28), 0, 1)
        g.to(memory_format=CL)
        z = torch.randn(8, 16)
        ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
               else contextlib.nullcontext())
        with ctx:
            x = g(z)
        x.float().pow(2).sum().backward()
        return [x.detach(), *(p.grad for p in g.parameters())]

    got = run()
    monkeypatch.setattr(layouts, "enter", lambda x, weight: x)
    want = run()
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_grey_input_convolution_has_torchs_double_backward() -> None:
    """A gradient penalty (R1, WGAN-GP) differentiates D's input gradient again: through the
    fold path it gives torch's parameter gradients."""
    torch.manual_seed(0)
    plain, ours = nn.Conv2d(1, 8, 4, 2, 1), GreyInConv2d(1, 8, 4, 2, 1)
    ours.load_state_dict(plain.state_dict())
    head = nn.Linear(8 * 14 * 14, 1)
    x = torch.randn(4, 1, 28, 28)

    def penalty_grads(conv: nn.Module) -> list[torch.Tensor]:
        xi = x.clone().requires_grad_()
        out = head(nn.functional.softplus(conv(xi)).flatten(1)).sum()
        (g,) = torch.autograd.grad(out, xi, create_graph=True)
        penalty = (g.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return list(torch.autograd.grad(penalty, list(conv.parameters())))

    want, got = penalty_grads(plain), penalty_grads(ours)
    assert all(float(w.norm()) > 0 for w in want)
    _close(want, got, 1e-5)


def test_flatten_has_torchs_double_backward() -> None:
    x = torch.randn(3, 4, 5, 5).contiguous(memory_format=CL)
    w = torch.randn(4 * 5 * 5, requires_grad=True)

    def penalty_grad(flat: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        xi = x.clone().requires_grad_()
        out = (torch.tanh(flat(xi)) * w).sum()
        (g,) = torch.autograd.grad(out, xi, create_graph=True)
        (gw,) = torch.autograd.grad(g.pow(2).sum(), w)
        return gw

    assert torch.allclose(penalty_grad(layouts.flatten), penalty_grad(lambda t: t.flatten(1)))
