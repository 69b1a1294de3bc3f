"""The recipe: losses and stabilisers composed from the config, as seen by one D and G step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.config import resolve
from gankit.losses import d_hinge, d_non_saturating
from gankit.recipe import Recipe
from gankit.regularizers import gradient_penalty, r1_penalty, r2_penalty


class Linear(nn.Module):
    """D(x) = <w, x> over flattened inputs; labels ignored."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, n))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (x.flatten(1) * self.w).sum(1)


def recipe(*overrides: str) -> Recipe:
    return Recipe(resolve("classic", overrides=["train.batch_size=4", *overrides]))


def batches() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(4, 1, 2, 2, generator=gen), torch.randn(4, 1, 2, 2, generator=gen)


def test_plain_loss_is_the_loss_of_the_logits() -> None:
    d, (real, fake) = Linear(4), batches()
    loss, rl, fl = recipe().d_loss(d, real, fake, None, 0, torch.Generator())
    torch.testing.assert_close(rl, d(real).detach())
    torch.testing.assert_close(loss, d_non_saturating(d(real), d(fake)))
    loss, _, _ = recipe("loss.name=hinge").d_loss(d, real, fake, None, 0, torch.Generator())
    torch.testing.assert_close(loss, d_hinge(d(real), d(fake)))


def test_penalties_are_added_with_their_weights() -> None:
    d, (real, fake) = Linear(4), batches()
    r = recipe("loss.name=wasserstein", "reg.gp_weight=10.0")
    loss, _, _ = r.d_loss(d, real, fake, None, 0, torch.Generator().manual_seed(1))
    eps = torch.rand(4, generator=torch.Generator().manual_seed(1))
    expected = d(fake).mean() - d(real).mean() + 10 * gradient_penalty(d, real, fake, eps)
    torch.testing.assert_close(loss, expected)
    # Lazy R1 every 4 steps: gamma/2 * 4 * R1 on steps 0, 4, ...; nothing in between.
    r = recipe("reg.r1_gamma=2.0", "reg.r1_every=4")
    base = d_non_saturating(d(real), d(fake))
    on, _, _ = r.d_loss(d, real, fake, None, 8, torch.Generator())
    off, _, _ = r.d_loss(d, real, fake, None, 9, torch.Generator())
    torch.testing.assert_close(on, base + 4.0 * r1_penalty(d, real))
    torch.testing.assert_close(off, base)


class Quadratic(nn.Module):
    """D(x) = 1/2 ||x||^2 + <w, x>: its input gradient is x + w, different at every input."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, n))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        return 0.5 * x.pow(2).sum(1) + (x * self.w).sum(1)


def test_r2_penalises_d_on_generated_samples() -> None:
    d, (real, fake) = Quadratic(4), batches()
    w = d.w.detach()

    def by_hand(x: torch.Tensor) -> torch.Tensor:  # E ||x + w||^2
        return (x.flatten(1) + w).pow(2).sum(1).mean()

    torch.testing.assert_close(r2_penalty(d, fake), by_hand(fake))
    torch.testing.assert_close(r1_penalty(d, real), by_hand(real))
    r = recipe("reg.r1_gamma=2.0", "reg.r2_gamma=3.0", "reg.r1_every=4")
    base = d_non_saturating(d(real), d(fake))
    on, _, _ = r.d_loss(d, real, fake, None, 8, torch.Generator())
    off, _, _ = r.d_loss(d, real, fake, None, 9, torch.Generator())
    # gamma / 2 * 4 steps each: R1 on the real batch, R2 on the generated one
    torch.testing.assert_close(on, base + 4.0 * by_hand(real) + 6.0 * by_hand(fake))
    torch.testing.assert_close(off, base)
    # R2 is a term of D's loss: it trains D's weights.
    loss, _, _ = recipe("reg.r2_gamma=1.0").d_loss(d, real, fake, None, 0, torch.Generator())
    loss.backward()
    assert d.w.grad is not None and d.w.grad.abs().sum() > 0


def test_relativistic_pair_generator() -> None:
    from gankit.losses import d_relativistic_pair, g_relativistic_pair

    d, (real, fake) = Linear(4), batches()
    r = recipe("loss.name=relativistic_pair")
    loss, _, _ = r.d_loss(d, real, fake, None, 0, torch.Generator())
    torch.testing.assert_close(loss, d_relativistic_pair(d(real), d(fake)))
    f = fake.clone().requires_grad_(True)
    g = r.g_loss(d, f, real, None, 0, torch.Generator())
    torch.testing.assert_close(g, g_relativistic_pair(d(fake), d(real)))
    g.backward()  # G's gradient reaches the fakes, and D's real logits take no graph
    assert f.grad is not None and f.grad.abs().sum() > 0


def test_packing_halves_the_logits() -> None:
    d, (real, fake) = Linear(8), batches()
    _, rl, fl = recipe("reg.pack=2").d_loss(d, real, fake, None, 0, torch.Generator())
    assert rl.shape == fl.shape == (2,)
    torch.testing.assert_close(rl, d(real.reshape(2, 2, 2, 2)).detach())


def test_sigmoid_d_output_is_read_as_logits() -> None:
    class Prob(Linear):
        def forward(self, x, y=None):
            return torch.sigmoid(super().forward(x, y))

    d, (real, fake) = Prob(4), batches()
    _, rl, _ = recipe("model.d_output=sigmoid").d_loss(d, real, fake, None, 0, torch.Generator())
    torch.testing.assert_close(rl, Linear(4)(real).detach(), rtol=1e-4, atol=1e-4)


def test_view_draws_from_the_given_generator_only() -> None:
    r = recipe("reg.augment=['translation', 'cutout', 'color']", "reg.instance_noise=0.1")
    x = torch.randn(4, 1, 8, 8)
    torch.manual_seed(0)
    a = r.view(x, 0, torch.Generator().manual_seed(5))
    torch.manual_seed(1)
    b = r.view(x, 0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    # Instance noise anneals to nothing by the last step; augmentation stays.
    plain = recipe().view(x, 0, torch.Generator())
    assert plain is x


def test_relativistic_generator_reads_real_logits() -> None:
    d, (real, fake) = Linear(4), batches()
    r = recipe("loss.name=relativistic")
    g = r.g_loss(d, fake, real, None, 0, torch.Generator())
    from gankit.losses import g_relativistic
    torch.testing.assert_close(g, g_relativistic(d(fake), d(real)))


@pytest.mark.parametrize("name", ["non_saturating", "least_squares", "wasserstein", "hinge"])
def test_g_loss_ignores_real_unless_relativistic(name: str) -> None:
    d, (real, fake) = Linear(4), batches()
    r = recipe(f"loss.name={name}")
    a = r.g_loss(d, fake, real, None, 0, torch.Generator())
    b = r.g_loss(d, fake, real * 5, None, 0, torch.Generator())
    torch.testing.assert_close(a, b)
