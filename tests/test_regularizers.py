"""Gradient penalty, R1, instance noise and packing against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from gankit.regularizers import annealed, gradient_penalty, instance_noise, pack, r1_penalty


def linear_critic(w: torch.Tensor):
    """D(x) = <w, x>: its input gradient is w everywhere."""
    return lambda x: (x.flatten(1) * w).sum(1)


def test_gradient_penalty_of_a_linear_critic() -> None:
    # ||w|| = 5 for w = (3, 4): penalty (5 - 1)^2 = 16 wherever it is evaluated.
    w = torch.tensor([3.0, 4.0])
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    eps = torch.rand(6)
    assert gradient_penalty(linear_critic(w), real, fake, eps).item() == pytest.approx(16.0)
    assert gradient_penalty(linear_critic(w), real, fake, eps, one_sided=True).item() == \
        pytest.approx(16.0)
    # ||w|| = 0.5: two-sided (0.5 - 1)^2 = 0.25; one-sided 0 (norms below 1 are allowed).
    w = torch.tensor([0.3, 0.4])
    assert gradient_penalty(linear_critic(w), real, fake, eps).item() == pytest.approx(0.25)
    assert gradient_penalty(linear_critic(w), real, fake, eps, one_sided=True).item() == 0.0


def test_gradient_penalty_interpolates_with_eps() -> None:
    # D(x) = sum(x^2) / 2 has gradient x; at x_hat = eps*r + (1-eps)*f with r=(2,0), f=(0,0):
    # eps=0.5 -> x_hat=(1,0), norm 1, penalty 0 ; eps=1 -> (2,0), penalty 1 ; eps=0 -> 1.
    critic = lambda x: 0.5 * (x ** 2).sum(1)  # noqa: E731
    real, fake = torch.tensor([[2.0, 0.0]] * 3), torch.zeros(3, 2)
    eps = torch.tensor([0.5, 1.0, 0.0])
    assert gradient_penalty(critic, real, fake, eps).item() == pytest.approx(2.0 / 3.0)


def test_gradient_penalty_trains_the_critic() -> None:
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    gp = gradient_penalty(linear_critic(w), torch.randn(4, 2), torch.randn(4, 2), torch.rand(4))
    gp.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (0.6, 0.8)
    torch.testing.assert_close(w.grad, torch.tensor([4.8, 6.4]))


def test_r1_by_hand() -> None:
    # D(x) = <w, x>: ||grad||^2 = ||w||^2 = 25 for every sample.
    assert r1_penalty(linear_critic(torch.tensor([3.0, 4.0])), torch.randn(5, 2)).item() == \
        pytest.approx(25.0)
    # D(x) = sum(x^2)/2: ||grad||^2 = ||x||^2 -> mean(1, 4) = 2.5
    critic = lambda x: 0.5 * (x ** 2).sum(1)  # noqa: E731
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert r1_penalty(critic, real).item() == pytest.approx(2.5)


def test_instance_noise() -> None:
    x = torch.zeros(2000, 1, 4, 4)
    gen = torch.Generator().manual_seed(0)
    assert instance_noise(x, 0.0, gen) is x
    noisy = instance_noise(x, 0.5, gen)
    assert noisy.std().item() == pytest.approx(0.5, rel=0.02)
    a = instance_noise(x, 0.5, torch.Generator().manual_seed(3))
    b = instance_noise(x, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert annealed(0.2, 0, 100) == 0.2 and annealed(0.2, 50, 100) == pytest.approx(0.1)
    assert annealed(0.2, 100, 100) == 0.0 and annealed(0.2, 150, 100) == 0.0


def test_pack() -> None:
    x = torch.arange(6 * 2 * 1 * 1, dtype=torch.float32).view(6, 2, 1, 1)
    p = pack(x, 3)
    assert p.shape == (2, 6, 1, 1)
    # The first pack holds samples 0, 1, 2 side by side along channels.
    assert p[0].flatten().tolist() == [0, 1, 2, 3, 4, 5]
    assert p[1].flatten().tolist() == [6, 7, 8, 9, 10, 11]
    assert pack(x, 1) is x
    with pytest.raises(ValueError, match="divide"):
        pack(x, 4)
