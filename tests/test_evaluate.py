"""The metric suite on real digits, noise and mixture points; ranking of checkpoints."""

from __future__ import annotations

import pytest
import torch

from gankit.data.base import Dataset
from gankit.data.digits import load_digits
from gankit.data.mixtures import load_mixture
from gankit.errors import DataError
from gankit.metrics.evaluate import evaluate, is_better, reference


@pytest.fixture(scope="module")
def halves() -> tuple[Dataset, torch.Tensor]:
    d = load_digits()
    perm = torch.randperm(len(d), generator=torch.Generator().manual_seed(0))[:800]
    a = Dataset(d.images[perm[:400]], d.labels[perm[:400]], "digits")
    return a, d.images[perm[400:]]


def test_real_against_real_and_noise(halves) -> None:
    data, other = halves
    ref = reference(data)
    assert ref.main == "fd" and ref.extractor.name == "digits" and ref.num_classes == 10
    real = evaluate(other, ref)
    noise = evaluate(torch.rand(400, 1, 28, 28, generator=torch.Generator().manual_seed(1)), ref)
    assert set(real) == {"fd", "kid", "kid_std", "precision", "recall", "density", "coverage",
                         "is", "is_std", "classes", "class_kl"}
    assert real["fd"] < 0.1 * noise["fd"] and real["kid"] < 0.01 < noise["kid"]
    assert real["precision"] > 0.6 and real["recall"] > 0.6 and real["coverage"] > 0.8
    assert max(noise["precision"], noise["recall"], noise["coverage"]) < 0.02
    assert real["is"] > 5 > 1.5 > noise["is"]
    assert real["classes"] == 10 and real["class_kl"] < 0.05 < noise["class_kl"]


def test_mixture_points() -> None:
    data = load_mixture("ring8")
    ref = reference(data)
    assert ref.main == "modes"
    s = evaluate(load_mixture("ring8", num=2500, seed=1).images, ref)
    assert s["modes"] == 8 and s["high_quality"] > 0.98
    collapsed = evaluate(torch.tensor([[1.0, 0.0]]).repeat(100, 1), ref)
    assert collapsed["modes"] == 1 and collapsed["mode_kl"] == pytest.approx(2.0794, abs=1e-3)


def test_bad_samples(halves) -> None:
    ref = reference(load_mixture("grid25"))
    with pytest.raises(DataError, match="shape"):
        evaluate(torch.rand(20, 1, 28, 28), ref)
    with pytest.raises(DataError, match="at least 10"):
        evaluate(torch.rand(5, 2), ref)
    with pytest.raises(DataError, match="ring8"):
        reference(Dataset(torch.rand(20, 2), None, "points"))


def test_is_better() -> None:
    assert is_better({"fd": 1.0}, None, "fd")
    assert is_better({"fd": 1.0}, {"fd": 2.0}, "fd") and not is_better({"fd": 2.0}, {"fd": 1}, "fd")
    assert not is_better({"fd": 1.0}, {"fd": 1.0}, "fd")
    assert is_better({"modes": 8, "high_quality": 0.9}, {"modes": 8, "high_quality": 0.5}, "modes")
    assert not is_better({"modes": 7, "high_quality": 1.0}, {"modes": 8, "high_quality": 0.1},
                         "modes")
