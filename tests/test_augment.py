"""DiffAugment: shapes, determinism from the caller's generator, what each transform does."""

from __future__ import annotations

import pytest
import torch

from gankit.augment import color, cutout, diff_augment, translation


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("names", [("translation",), ("cutout",), ("color",),
                                   ("translation", "cutout", "color")])
def test_shape_determinism_and_gradients(names: tuple[str, ...]) -> None:
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    a = diff_augment(x, names, gen(1))
    assert a.shape == x.shape
    assert torch.equal(a, diff_augment(x, names, gen(1)))
    assert not torch.equal(a, diff_augment(x, names, gen(2)))
    a.sum().backward()  # differentiable: G is trained through it
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_no_augmentation_is_identity() -> None:
    x = torch.randn(2, 1, 8, 8)
    assert diff_augment(x, (), gen()) is x


def test_translation_moves_pixels_and_pads_with_zeros() -> None:
    x = torch.ones(64, 1, 8, 8)
    out = translation(x, gen())
    # Each image is a shifted copy: ones where the image still is, zeros shifted in.
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    shifted = (out == 0).flatten(1).any(1)
    assert shifted.any() and (~shifted).any()  # some moved, some (shift 0, 0) did not
    # A single bright pixel moves by at most 1 (= 0.125 * 8) in each direction.
    x = torch.zeros(32, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = translation(x, gen())
    for img in out[:, 0]:
        ys, xs = torch.nonzero(img, as_tuple=True)
        assert len(ys) == 1 and abs(ys.item() - 4) <= 1 and abs(xs.item() - 4) <= 1


def test_cutout_zeros_a_quarter() -> None:
    x = torch.ones(32, 2, 8, 8)
    out = cutout(x, gen())
    zeros = (out == 0).float().sum(dim=(1, 2, 3)) / 2  # per image, per channel
    # A 4x4 square (half the side), clipped at the border: between 4 and 16 pixels.
    assert ((zeros >= 4) & (zeros <= 16)).all() and (zeros == 16).any()
    assert torch.equal(out[:, 0], out[:, 1])  # the same square in every channel


def test_color_changes_brightness_saturation_contrast() -> None:
    x = torch.rand(16, 3, 4, 4)
    out = color(x, gen())
    assert not torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))
    flat = torch.full((4, 1, 2, 2), 0.25)  # a flat grey image stays flat: only brightness moves
    out = color(flat, gen())
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out))
