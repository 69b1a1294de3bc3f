"""Adversarial losses against values computed by hand, torch's BCE, extreme logits and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gankit.losses import LOSSES, d_non_saturating, g_minimax, g_non_saturating

LOGITS = [0.0, 2.0, -1.0]


def softplus(x: float) -> float:
    """log(1 + e^x), by hand."""
    return math.log(1.0 + math.exp(x))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def t(values: list[float], grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, requires_grad=grad)


def test_softplus_by_hand_sanity() -> None:
    # The hand-written reference itself: log(1 + e^0) = log 2, log(1 + e^2), log(1 + e^-1).
    assert softplus(0.0) == pytest.approx(0.6931471805599453)
    assert softplus(2.0) == pytest.approx(2.1269280110429727)
    assert softplus(-1.0) == pytest.approx(0.31326168751822286)


def test_g_non_saturating_by_hand() -> None:
    # -log D(G(z)) = -log sigmoid(x) = log(1 + e^-x)
    expected = mean([softplus(-x) for x in LOGITS])
    assert expected == pytest.approx((0.6931471805599453 + 0.1269280110429725
                                      + 1.3132616875182228) / 3)
    out = g_non_saturating(t(LOGITS))
    assert out.shape == ()
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_g_minimax_by_hand() -> None:
    # log(1 - D(G(z))) = log(1 - sigmoid(x)) = -log(1 + e^x)
    expected = mean([math.log(1.0 - 1.0 / (1.0 + math.exp(-x))) for x in LOGITS])
    assert expected == pytest.approx(-mean([softplus(x) for x in LOGITS]))
    out = g_minimax(t(LOGITS))
    assert out.shape == ()
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_g_minimax_is_never_positive() -> None:
    # log(1 - p) <= 0 for any probability p: the minimax generator loss is non-positive and the
    # generator *minimises* it by pushing D's fake logits up.
    for v in torch.linspace(-30, 30, 61).tolist():
        assert g_minimax(t([v])).item() < 0
    assert g_minimax(t([5.0])).item() < g_minimax(t([0.0])).item() < g_minimax(t([-5.0])).item()


def test_d_non_saturating_by_hand() -> None:
    real, fake = [0.0, 2.0, -1.0], [1.0, -3.0, 0.5]
    # -log D(x) on real + -log(1 - D(G(z))) on fake
    expected = mean([softplus(-x) for x in real]) + mean([softplus(x) for x in fake])
    out = d_non_saturating(t(real), t(fake))
    assert out.shape == ()
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_d_non_saturating_smoothed_by_hand() -> None:
    real, fake = [0.0, 2.0, -1.0], [1.0, -3.0, 0.5]
    lab = 0.9
    expected = (mean([lab * softplus(-x) + (1 - lab) * softplus(x) for x in real])
                + mean([softplus(x) for x in fake]))
    assert d_non_saturating(t(real), t(fake), 0.9).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("real_label", [1.0, 0.9, 0.75])
def test_d_non_saturating_equals_torch_bce(real_label: float) -> None:
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(64, generator=gen) * 4
    fake = torch.randn(48, generator=gen) * 4
    expected = (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    out = d_non_saturating(real, fake, real_label)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_d_non_saturating_default_label_is_one() -> None:
    real, fake = t([0.3, -0.7]), t([1.2, 0.1])
    assert torch.equal(d_non_saturating(real, fake), d_non_saturating(real, fake, 1.0))
    assert d_non_saturating(real, fake, 0.9).item() != d_non_saturating(real, fake).item()


def test_g_non_saturating_equals_torch_bce_with_target_one() -> None:
    gen = torch.Generator().manual_seed(1)
    fake = torch.randn(100, generator=gen) * 5
    expected = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    torch.testing.assert_close(g_non_saturating(fake), expected, rtol=1e-6, atol=1e-6)


def test_minimax_is_minus_d_fake_term() -> None:
    real, fake = t([0.5, -2.0, 3.0]), t([1.0, -1.0, 4.0])
    d_real_part = mean([softplus(-x) for x in [0.5, -2.0, 3.0]])
    total = d_non_saturating(real, fake) + g_minimax(fake)
    assert total.item() == pytest.approx(d_real_part, rel=1e-6)


# -- numerical stability ------------------------------------------------------------------------


def test_extreme_logits_are_finite_with_correct_asymptotics() -> None:
    big, small = t([100.0]), t([-100.0])
    # D certain that the fake is real: -log sigmoid(100) = log(1 + e^-100) ~ e^-100 ~ 0.
    assert 0.0 <= g_non_saturating(big).item() < 1e-30
    # D certain that the fake is fake: -log sigmoid(-100) = 100 + log(1 + e^-100) ~ 100.
    assert g_non_saturating(small).item() == pytest.approx(100.0, rel=1e-6)
    assert g_minimax(big).item() == pytest.approx(-100.0, rel=1e-6)
    assert -1e-30 < g_minimax(small).item() <= 0.0
    # A perfect discriminator has loss ~0, a perfectly wrong one ~200.
    assert 0.0 <= d_non_saturating(big, small).item() < 1e-30
    assert d_non_saturating(small, big).item() == pytest.approx(200.0, rel=1e-6)
    # Smoothing with a confident D: 0.9 * ~0 + 0.1 * 100 = 10.
    assert d_non_saturating(big, small, 0.9).item() == pytest.approx(10.0, rel=1e-5)
    for x in (t([1e4]), t([-1e4]), t([3e38]), t([-3e38])):
        for value in (g_non_saturating(x), g_minimax(x), d_non_saturating(x, x, 0.9)):
            assert torch.isfinite(value)


@pytest.mark.parametrize("value", [100.0, -100.0, 1e4, -1e4])
def test_extreme_logits_have_finite_gradients(value: float) -> None:
    for loss in (g_non_saturating, g_minimax):
        x = t([value, 0.0], grad=True)
        loss(x).backward()
        assert torch.isfinite(x.grad).all()
    r, f = t([value], grad=True), t([-value], grad=True)
    d_non_saturating(r, f, 0.9).backward()
    assert torch.isfinite(r.grad).all() and torch.isfinite(f.grad).all()


# -- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [g_non_saturating, g_minimax])
def test_generator_loss_falls_as_fake_logits_rise(loss) -> None:
    x = t(LOGITS, grad=True)
    loss(x).backward()
    assert (x.grad < 0).all()  # d loss / d logit < 0 everywhere
    assert loss(t(LOGITS) + 0.5).item() < loss(t(LOGITS)).item()


def test_generator_gradients_by_hand() -> None:
    # d/dx mean(log(1 + e^-x)) = -sigmoid(-x) / n ;  d/dx -mean(log(1 + e^x)) = -sigmoid(x) / n
    n = len(LOGITS)
    x = t(LOGITS, grad=True)
    g_non_saturating(x).backward()
    expected = [-1.0 / (1.0 + math.exp(v)) / n for v in LOGITS]
    assert x.grad.tolist() == pytest.approx(expected, rel=1e-5)
    x = t(LOGITS, grad=True)
    g_minimax(x).backward()
    expected = [-1.0 / (1.0 + math.exp(-v)) / n for v in LOGITS]
    assert x.grad.tolist() == pytest.approx(expected, rel=1e-5)


def test_minimax_saturates_where_non_saturating_does_not() -> None:
    # Early in training D rejects fakes confidently (logit -10): minimax's gradient vanishes.
    x = t([-10.0], grad=True)
    g_minimax(x).backward()
    assert abs(x.grad.item()) < 1e-4
    x = t([-10.0], grad=True)
    g_non_saturating(x).backward()
    assert x.grad.item() == pytest.approx(-1.0, rel=1e-4)


def test_discriminator_gradients_push_real_up_and_fake_down() -> None:
    r, f = t(LOGITS, grad=True), t(LOGITS, grad=True)
    d_non_saturating(r, f).backward()
    assert (r.grad < 0).all()  # raising real logits lowers D's loss
    assert (f.grad > 0).all()  # raising fake logits raises it


def test_smoothing_optimum_is_at_logit_of_real_label() -> None:
    # With target 0.9 the real term is minimised where sigmoid(x) = 0.9, i.e. x = log 9.
    r = t([math.log(9.0)], grad=True)
    d_non_saturating(r, t([0.0]), 0.9).backward()
    assert abs(r.grad.item()) < 1e-6
    r = t([5.0], grad=True)  # beyond the optimum, smoothing pulls the logit back down
    d_non_saturating(r, t([0.0]), 0.9).backward()
    assert r.grad.item() > 0


def test_losses_table() -> None:
    assert set(LOSSES) == {"non_saturating", "minimax", "least_squares", "wasserstein", "hinge",
                           "relativistic", "relativistic_pair"}
    assert LOSSES["non_saturating"] == (d_non_saturating, g_non_saturating)
    assert LOSSES["minimax"] == (d_non_saturating, g_minimax)


# -- the other losses, against values computed by hand ------------------------------------------

REAL = [2.0, 0.5]
FAKE = [-1.0, 0.0]


def test_least_squares_by_hand() -> None:
    from gankit.losses import d_least_squares, g_least_squares

    # D: 0.5 * mean((2-1)^2, (0.5-1)^2) + 0.5 * mean(1, 0) = 0.5*0.625 + 0.25 = 0.5625
    assert d_least_squares(t(REAL), t(FAKE)).item() == pytest.approx(0.5625)
    # Smoothed target 0.9: 0.5 * mean(1.1^2, 0.4^2) + 0.25 = 0.5 * 0.685 + 0.25 = 0.5925
    assert d_least_squares(t(REAL), t(FAKE), 0.9).item() == pytest.approx(0.5925)
    # G: 0.5 * mean((-2)^2, (-1)^2) = 1.25
    assert g_least_squares(t(FAKE)).item() == pytest.approx(1.25)


def test_wasserstein_by_hand() -> None:
    from gankit.losses import d_wasserstein, g_wasserstein

    # D: mean(fake) - mean(real) = -0.5 - 1.25 = -1.75 ; G: -mean(fake) = 0.5
    assert d_wasserstein(t(REAL), t(FAKE)).item() == pytest.approx(-1.75)
    assert g_wasserstein(t(FAKE)).item() == pytest.approx(0.5)


def test_hinge_by_hand() -> None:
    from gankit.losses import LOSSES, d_hinge

    # D: mean(relu(1-2), relu(1-0.5)) + mean(relu(1-1), relu(1+0)) = 0.25 + 0.5 = 0.75
    assert d_hinge(t(REAL), t(FAKE)).item() == pytest.approx(0.75)
    assert d_hinge(t([3.0]), t([-3.0])).item() == 0.0  # beyond the margins: no loss
    assert LOSSES["hinge"][1](t(FAKE)).item() == pytest.approx(0.5)


def test_relativistic_by_hand() -> None:
    from gankit.losses import d_relativistic, g_relativistic

    mr, mf = mean(REAL), mean(FAKE)  # 1.25, -0.5
    d = (mean([softplus(-(r - mf)) for r in REAL]) + mean([softplus(f - mr) for f in FAKE]))
    g = (mean([softplus(-(f - mr)) for f in FAKE]) + mean([softplus(r - mf) for r in REAL]))
    assert d_relativistic(t(REAL), t(FAKE)).item() == pytest.approx(d, rel=1e-6)
    assert g_relativistic(t(FAKE), t(REAL)).item() == pytest.approx(g, rel=1e-6)
    # Smoothing: real term 0.9 * softplus(-x) + 0.1 * softplus(x).
    ds = (mean([0.9 * softplus(-(r - mf)) + 0.1 * softplus(r - mf) for r in REAL])
          + mean([softplus(f - mr) for f in FAKE]))
    assert d_relativistic(t(REAL), t(FAKE), 0.9).item() == pytest.approx(ds, rel=1e-6)
    with pytest.raises(ValueError, match="real logits"):
        g_relativistic(t(FAKE), None)


def test_relativistic_pair_by_hand() -> None:
    from gankit.losses import d_relativistic_pair, g_relativistic_pair

    # Each real logit against the fake one at its position: (2, -1) and (0.5, 0).
    d = mean([softplus(-(r - f)) for r, f in zip(REAL, FAKE, strict=True)])
    g = mean([softplus(-(f - r)) for r, f in zip(REAL, FAKE, strict=True)])
    assert d_relativistic_pair(t(REAL), t(FAKE)).item() == pytest.approx(d, rel=1e-6)
    assert g_relativistic_pair(t(FAKE), t(REAL)).item() == pytest.approx(g, rel=1e-6)
    ds = mean([0.9 * softplus(-(r - f)) + 0.1 * softplus(r - f)
               for r, f in zip(REAL, FAKE, strict=True)])
    assert d_relativistic_pair(t(REAL), t(FAKE), 0.9).item() == pytest.approx(ds, rel=1e-6)
    # Pairs, not averages: swapping two fakes changes the loss (the average loss would not).
    assert (d_relativistic_pair(t(REAL), t(FAKE[::-1])).item()
            != pytest.approx(d_relativistic_pair(t(REAL), t(FAKE)).item()))
    with pytest.raises(ValueError, match="real logits"):
        g_relativistic_pair(t(FAKE), None)


@pytest.mark.parametrize("name", ["least_squares", "wasserstein", "hinge", "relativistic",
                                  "relativistic_pair"])
def test_new_losses_push_the_right_way(name: str) -> None:
    d_loss, g_loss = LOSSES[name]
    real, fake = [0.5, 0.2], [0.3, 0.1]  # inside every loss's margins and targets
    r, f = t(real, grad=True), t(fake, grad=True)
    d_loss(r, f).backward()
    assert (r.grad < 0).all() and (f.grad > 0).all()
    f = t(fake, grad=True)
    g_loss(f, t(real)).backward()
    assert (f.grad < 0).all()  # G wants its logits higher
