"""The 2-D mixtures ring8 and grid25: layout, labels, and the preset they pick."""

from __future__ import annotations

import numpy as np
import pytest

from gankit import data as data_sources
from gankit.config import DEFAULT_PRESETS, SEQUENCE_BUILTINS, DataConfig, resolve
from gankit.data.mixtures import MIXTURES, load_mixture, mixture
from gankit.metrics.modes import mode_scores


def test_layouts() -> None:
    ring = mixture("ring8")
    assert ring.means.shape == (8, 2) and ring.std == 0.01
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 1.0)
    grid = mixture("grid25")
    assert grid.means.shape == (25, 2) and grid.std == 0.05
    assert sorted(set(grid.means[:, 0])) == [-4, -2, 0, 2, 4]
    assert len({tuple(m) for m in grid.means}) == 25
    with pytest.raises(KeyError):
        mixture("ring9")


@pytest.mark.parametrize("name", MIXTURES)
def test_points_and_labels(name: str) -> None:
    d = data_sources.build(DataConfig(source=name))
    m = mixture(name)
    assert d.shape == (2,) and not d.is_image and d.name == name and len(d) == 10_000
    x, y = d.images.numpy(), d.labels.numpy()
    assert np.bincount(y).min() == np.bincount(y).max()  # evenly over the modes
    spread = (x - m.means[y]).std()
    assert spread == pytest.approx(m.std, rel=0.05)
    np.testing.assert_array_equal(x, load_mixture(name).images.numpy())  # fixed
    s = mode_scores(x[:2500], m.means, m.std)
    assert s["modes"] == len(m.means) and s["high_quality"] > 0.98 and s["mode_kl"] < 0.02


def test_mixture_preset_is_picked_when_none_is_named(tmp_path) -> None:
    assert set(DEFAULT_PRESETS) == (set(MIXTURES) | {"stacked-digits", "digits"}
                                    | set(SEQUENCE_BUILTINS))
    assert resolve(values={"data": {"source": "stacked-digits"}}).preset == "stacked"
    assert resolve(values={"data": {"source": "ring8"}}).preset == "mixture"
    assert resolve(overrides=["data.source=grid25"]).preset == "mixture-grid"
    (tmp_path / "c.toml").write_text('[data]\nsource = "ring8"\n')
    assert resolve(file=tmp_path / "c.toml").preset == "mixture"
    assert resolve("classic", values={"data": {"source": "ring8"}}).preset == "classic"
    assert resolve(values={"data": {"source": "digits"}}).preset == "digits"
    assert resolve(values={"data": {"source": "mnist"}}).preset == "classic"
    cfg = resolve(values={"data": {"source": "ring8"}})
    assert cfg.model.output == "linear"
