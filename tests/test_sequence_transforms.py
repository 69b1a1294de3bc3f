"""The sequence codec's marginals (normal scores) and basis (principal axes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.config import resolve
from gankit.errors import ConfigError, DataError
from gankit.kinds.normal_scores import EDGE, Marginals
from gankit.kinds.sequences import fit_codec
from gankit.kinds.sequences.codec import SequenceCodec
from gankit.kinds.sequences.files import Series
from gankit.kinds.sequences.transforms import Basis


def test_normal_scores_of_uniform_values_are_standard_normal_and_invert() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, (400, 10, 2))
    values[:, :, 1] **= 3  # a skewed channel
    m = Marginals.fit(values, None)
    z = m.forward(values)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.02
    assert abs(np.median(z[:, :, 1])) < 0.01  # the skew is gone
    inner = (values > m.quantiles[:, 1]) & (values < m.quantiles[:, -2])
    np.testing.assert_allclose(m.inverse(z)[inner], values[inner], atol=1e-9)
    far = m.inverse(np.full((1, 1, 2), 50.0))  # never past the seen range
    assert (far <= values.max(axis=(0, 1))).all()


def test_a_spike_takes_the_middle_of_its_quantiles_and_comes_back_exactly() -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 1, (1000, 1, 1))
    values[:300] = 0.0  # 30% at the floor
    m = Marginals.fit(values, None)
    z = m.forward(values)
    expected = float(torch.special.ndtri(torch.tensor(0.15, dtype=torch.float64)))
    np.testing.assert_allclose(z[:300], expected, atol=5e-3)  # to the quantiles' 0.1%
    assert (m.inverse(z[:300]) == 0.0).all()


def test_marginals_skip_padding_and_refuse_damaged_json() -> None:
    values = np.zeros((4, 5, 1))
    values[:, :3, 0] = np.arange(12).reshape(4, 3) / 11
    m = Marginals.fit(values, np.full(4, 3))
    assert m.quantiles[0, 0] == 0.0 and m.quantiles[0, -1] == 1.0
    np.testing.assert_allclose(m.quantiles[0, 500], 0.5)  # the padding zeros do not count
    assert np.array_equal(Marginals.from_json(m.to_json(), 1).quantiles, m.quantiles)
    with pytest.raises(DataError):
        Marginals.from_json(m.to_json(), 2)
    with pytest.raises(DataError):
        Marginals.from_json([list(reversed(m.to_json()[0]))], 1)


def test_basis_keeps_the_fewest_axes_for_the_share() -> None:
    rng = np.random.default_rng(2)
    low = rng.normal(size=(500, 3)) * [5.0, 2.0, 1.0]
    rows = low @ np.linalg.qr(rng.normal(size=(8, 3)))[0].T + 0.01 * rng.normal(size=(500, 8))
    b = Basis.fit(rows, 0.99)
    assert b.size == 3
    coords = b.forward(torch.from_numpy(rows))
    np.testing.assert_allclose(coords.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(coords.std(0).numpy(), [5.0, 2.0, 1.0], rtol=0.15)
    torch.testing.assert_close(b.axes @ b.axes.T, torch.eye(3), atol=1e-5, rtol=0)
    back = b.inverse(coords).numpy()
    assert np.abs(back - rows).max() < 0.06  # only the dropped jitter is lost
    full = Basis.fit(rows, 1.0)
    assert full.size == 8
    np.testing.assert_allclose(full.inverse(full.forward(torch.from_numpy(rows))).numpy(), rows,
                               atol=1e-4)


def test_basis_json_round_trip_and_damage() -> None:
    rows = np.random.default_rng(3).normal(size=(50, 6))
    b = Basis.fit(rows, 0.9)
    again = Basis.from_json(b.to_json(), 6)
    assert torch.equal(again.axes, b.axes) and torch.equal(again.mean, b.mean)
    with pytest.raises(DataError):
        Basis.from_json(b.to_json(), 7)
    with pytest.raises(DataError):
        Basis.from_json("not base64!", 6)
    with pytest.raises(DataError):
        Basis.fit(np.ones((10, 4)), 0.9)


def series_of(values: np.ndarray, lengths: np.ndarray | None = None) -> Series:
    c = values.shape[2]
    return Series(values, lengths, None, (), tuple(f"c{i}" for i in range(c)),
                  values.min(axis=(0, 1)), values.max(axis=(0, 1)), {"format": "npz"})


def test_a_copied_white_noise_channel_stays_a_copy_in_any_generated_row() -> None:
    rng = np.random.default_rng(4)
    n, t = 600, 12
    slow = np.cumsum(rng.normal(size=(n, t, 1)) * 0.1, axis=1) + rng.normal(size=(n, 1, 1))
    noise = rng.uniform(0, 50, (n, t, 1))
    values = np.concatenate([slow, noise, noise], axis=2)  # energy's rv1 == rv2
    cfg = resolve("timeseries", None, ["data.marginals=gaussian", "data.basis=0.999",
                                       "model.output=linear"]).data
    codec = fit_codec(series_of(values), cfg)
    assert codec.basis is not None and codec.row_width < t * 3
    rows = codec.encode(codec.scale(values), None)
    assert rows.shape == (n, codec.row_width)
    np.testing.assert_allclose(rows.mean(0).numpy(), 0, atol=1e-4)
    fake, lengths = codec.decode(torch.randn(200, codec.row_width) * 1.5)
    assert lengths is None and fake.min() >= 0 and fake.max() <= 1
    np.testing.assert_allclose(fake[:, :, 1], fake[:, :, 2], atol=1e-5)
    back = SequenceCodec.from_json(codec.to_json())
    assert torch.equal(back.encode(codec.scale(values), None), rows)


def test_variable_lengths_survive_both_transforms() -> None:
    rng = np.random.default_rng(5)
    values = rng.uniform(0, 1, (300, 8, 2))
    lengths = rng.integers(2, 9, 300)
    values[np.arange(8)[None, :] >= lengths[:, None]] = 0
    cfg = resolve("timeseries", None, ["data.marginals=gaussian", "data.basis=1.0",
                                       "model.output=linear"]).data
    codec = fit_codec(series_of(values, lengths), cfg)
    decoded, back = codec.decode(codec.encode(codec.scale(values), lengths))
    assert (back == lengths).all()
    keep = np.arange(8)[None, :] < lengths[:, None]
    inner = keep[:, :, None] & (values > 0.01) & (values < 0.99)
    np.testing.assert_allclose(codec.unscale(decoded)[inner], values[inner], atol=1e-4)


def test_unbounded_rows_need_a_linear_output() -> None:
    with pytest.raises(ConfigError, match="model.output"):
        resolve("timeseries", None, ["data.source=sines", "data.marginals=gaussian",
                                     "model.output=tanh"])
    with pytest.raises(ConfigError, match="data.marginals"):
        resolve("timeseries", None, ["data.marginals=uniform"])
    assert EDGE < 0.01
