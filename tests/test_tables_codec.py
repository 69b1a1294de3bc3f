"""The table codec: column types, the round trip decode(encode(x)) == x, JSON, mixtures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gankit.errors import DataError
from gankit.kinds.tables.codec import TableCodec, infer_kind
from gankit.kinds.tables.gmm import fit_mixture


def mixed(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": np.round(rng.lognormal(10, 1, n), 2),
        "smoker": rng.choice(["yes", "no"], n, p=[0.2, 0.8]),
        "flag": rng.choice([True, False], n),
        "visit": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
        "stamp": pd.to_datetime("2021-03-01 08:00") + pd.to_timedelta(rng.integers(0, 10**6, n),
                                                                       "s"),
        "grade": rng.integers(1, 4, n),  # few distinct integers: a category
        "height": rng.normal(170, 10, n),
        "site": "A",  # constant
    })
    df.loc[rng.choice(n, 30, replace=False), "income"] = np.nan
    df.loc[rng.choice(n, 20, replace=False), "smoker"] = None
    df["count"] = pd.array(rng.integers(0, 50, n), dtype="Int64")
    df.loc[rng.choice(n, 15, replace=False), "count"] = pd.NA
    return df


def test_kinds_are_inferred() -> None:
    codec, notes = TableCodec.fit(mixed())
    kinds = {c.name: c.kind for c in codec.columns}
    assert kinds == {"age": "integer", "income": "continuous", "smoker": "categorical",
                     "flag": "boolean", "visit": "datetime", "stamp": "datetime",
                     "grade": "categorical", "height": "continuous", "site": "constant",
                     "count": "integer"}
    assert notes == []


def test_round_trip_is_exact_for_every_kind() -> None:
    df = mixed()
    codec, _ = TableCodec.fit(df)
    back = codec.decode(codec.encode(df))
    assert list(back.columns) == list(df.columns)
    for name in ["age", "smoker", "flag", "visit", "stamp", "grade", "site", "count"]:
        a, b = df[name], back[name]
        assert ((a == b) | (a.isna() & b.isna())).all(), name
    for name in ["income", "height"]:
        a, b = df[name].to_numpy(), back[name].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(a)
        np.testing.assert_allclose(b[ok], a[ok], rtol=1e-5)
    assert back["age"].dtype == df["age"].dtype
    assert back["count"].isna().sum() == 15 and str(back["count"].dtype) == "Int64"
    assert back["flag"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(back["visit"])


def test_gaussian_scale_round_trip_heads_and_json() -> None:
    df = mixed()
    codec, _ = TableCodec.fit(df, scale="gaussian")
    x = codec.encode(df)
    assert x.shape[1] == codec.width == sum(w for w, _ in codec.heads())
    income = codec.column("income")  # missing values: a scalar and a present/missing pair
    assert income.scale == "gaussian" and income.width == 3 and income.heads() == [
        (1, "tanh"), (2, "softmax")]
    assert codec.column("height").heads() == [(1, "tanh")]
    assert float(x[:, codec.offsets()[codec.names.index("height")]].abs().max()) < 1.0
    back = codec.decode(x)
    for name in ["age", "smoker", "flag", "visit", "stamp", "grade", "site", "count"]:
        a, b = df[name], back[name]
        assert ((a == b) | (a.isna() & b.isna())).all(), name
    for name in ["income", "height"]:
        a, b = df[name].to_numpy(), back[name].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(a)  # float32 scores; the largest value moves by a 1e-6 quantile at most
        span = np.nanmax(a) - np.nanmin(a)
        assert np.abs(b[ok] - a[ok]).max() < 1e-3 * span
        assert np.median(np.abs(b[ok] - a[ok])) < 1e-5 * span
    again = TableCodec.from_json(json.loads(json.dumps(codec.to_json())))
    assert torch.equal(again.encode(df), x)
    spoiled = codec.to_json()
    spoiled["columns"][1]["quantiles"] = spoiled["columns"][1]["quantiles"][::-1]
    with pytest.raises(DataError, match="invalid table codec"):
        TableCodec.from_json(spoiled)


def test_gaussian_scale_keeps_a_spike_exact() -> None:
    rng = np.random.default_rng(1)
    gains = np.where(rng.uniform(size=4000) < 0.9, 0, rng.integers(100, 20000, 4000))
    df = pd.DataFrame({"gain": gains, "other": rng.normal(size=4000)})
    codec, _ = TableCodec.fit(df, scale="gaussian")
    x = codec.encode(df)
    zero = x[torch.from_numpy(gains == 0), 0]
    assert bool((zero == zero[0]).all())  # every 0 is one score: the middle of its quantiles
    middle = torch.special.ndtri(torch.tensor((gains == 0).mean() / 2, dtype=torch.float64))
    assert float(zero[0]) * 5.0 == pytest.approx(float(middle), abs=2e-3)
    # any score below the spike's upper edge (ndtri(0.9) = 1.28) decodes to 0 exactly
    probe = torch.zeros(5, codec.width)
    probe[:, 0] = torch.tensor([-4.0, -1.0, 0.0, 1.0, 1.2]) / 5.0
    assert (codec.decode(probe)["gain"] == 0).all()


def test_auto_scale_gives_spiky_columns_normal_scores_or_a_spike_mode() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    df = pd.DataFrame({
        "gain": np.where(rng.uniform(size=n) < 0.9, 0, rng.integers(100, 20000, n)),
        "hours": np.where(rng.uniform(size=n) < 0.25, 40, rng.integers(1, 99, n)),
        "term": np.where(rng.uniform(size=n) < 0.4, 60, rng.choice(np.arange(3, 60, 3), n)),
        "age": rng.integers(17, 90, n),  # most common value ~1.4% of rows
        "height": rng.normal(170, 10, n),
    })
    codec, _ = TableCodec.fit(df, scale="auto")
    # a value in >= 20% of rows: the spike is a mode of its own beside the other values' mixture
    # among many values; among 20 or fewer (loan terms in months) the values are normal scores
    assert [codec.column(c).scale for c in df.columns] == ["spike-modes", "spike-modes",
                                                           "gaussian", "modes", "modes"]
    assert (codec.column("gain").spike, codec.column("hours").spike) == (0.0, 40.0)
    back = codec.decode(codec.encode(df))
    assert all((back[c] == df[c]).all() for c in ("gain", "hours", "term"))
    saved = json.loads(json.dumps(codec.to_json()))
    assert {c["scale"] for c in saved["columns"]} == {"spike-modes", "gaussian", "modes"}
    assert torch.equal(TableCodec.from_json(saved).encode(df), codec.encode(df))


def test_a_spike_is_its_own_mode_beside_the_other_values_mixture() -> None:
    rng = np.random.default_rng(4)
    n = 6000
    # capital losses: 0 in most rows, else near 1,900 or near 1,600 (two clusters, apart)
    loss = np.where(rng.uniform(size=n) < 0.5, rng.normal(1900, 20, n), rng.normal(1600, 20, n))
    loss = np.where(rng.uniform(size=n) < 0.9, 0.0, np.round(loss))
    loss[rng.uniform(size=n) < 0.05] = np.nan
    df = pd.DataFrame({"loss": loss, "other": rng.normal(size=n)})
    codec, _ = TableCodec.fit(df, scale="auto")
    c = codec.column("loss")
    assert c.scale == "spike-modes" and c.spike == 0.0 and c.missing
    k = len(c.mixture.weights)
    assert c.width == 1 + k + 2 and codec.heads()[:2] == [(1, "tanh"), (k + 2, "softmax")]
    means = np.sort(c.mixture.means[c.mixture.weights > 0.05])
    assert np.abs(means[:, None] - np.array([1600.0, 1900.0])).min(0).max() < 30  # both found
    x = codec.encode(df)[:, :c.width].numpy()
    spike, missing = loss == 0.0, np.isnan(loss)
    mode = x[:, 1:].argmax(1)
    assert (mode[spike] == k).all() and (mode[missing] == k + 1).all()
    assert (mode[~spike & ~missing] < k).all() and (x[spike | missing, 0] == 0).all()
    back = codec.decode(codec.encode(df))["loss"].to_numpy(dtype=float, na_value=np.nan)
    assert np.array_equal(np.isnan(back), missing)
    assert np.array_equal(back[~missing], loss[~missing])  # integers: exact
    # G's choice decides: the spike mode decodes to it whatever the scalar
    probe = torch.zeros(2, codec.width)
    probe[:, 0] = 0.9
    probe[0, 1 + k] = probe[1, 1 + k + 1] = 1.0
    out = codec.decode(probe)["loss"]
    assert out[0] == 0 and pd.isna(out[1])
    saved = json.loads(json.dumps(codec.to_json()))
    assert saved["columns"][0]["spike"] == 0.0
    assert torch.equal(TableCodec.from_json(saved).encode(df), codec.encode(df))
    with pytest.raises(DataError, match="spike"):
        saved["columns"][0]["spike"] = float("nan")
        TableCodec.from_json(saved)


def test_a_spike_of_runs_before_spike_modes_is_a_choice_and_normal_scores() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    gains = np.where(rng.uniform(size=n) < 0.9, 0.0, rng.lognormal(8, 1, n))
    gains[rng.uniform(size=n) < 0.05] = np.nan
    df = pd.DataFrame({"gain": gains, "other": rng.normal(size=n)})
    codec, _ = TableCodec.fit(df, scale="spike")  # what "auto" fitted in sessions 19-20
    c = codec.column("gain")
    assert c.scale == "spike" and c.missing and c.width == 4  # scalar; other, spike, missing
    assert codec.heads()[:2] == [(1, "tanh"), (3, "softmax")]
    x = codec.encode(df)[:, :4].numpy()
    spike, missing = gains == 0.0, np.isnan(gains)
    other = ~spike & ~missing
    assert (x[:, 1:].argmax(1) == np.where(missing, 2, np.where(spike, 1, 0))).all()
    assert (x[~other, 0] == 0).all()
    scores = x[other, 0] * 5.0  # the other values alone, as standard normal scores
    assert abs(scores.mean()) < 0.02 and scores.std() == pytest.approx(1.0, abs=0.06)
    back = codec.decode(codec.encode(df))["gain"].to_numpy()
    assert np.array_equal(np.isnan(back), missing)
    assert np.allclose(back[~missing], gains[~missing], rtol=1e-3)  # float32 scores
    # G's choice decides: the spike decodes to it whatever the scalar, the others to a value
    # within the other values' range
    probe = torch.zeros(3, codec.width)
    probe[:, 0] = torch.tensor([-0.9, 0.0, 0.9])
    probe[0, 2] = probe[1, 1] = probe[2, 3] = 1.0
    out = codec.decode(probe)["gain"]
    assert out[0] == 0.0 and out[1] == pytest.approx(float(np.median(gains[other])), rel=0.01)
    assert np.isnan(out[2])
    with pytest.raises(DataError, match="spike"):
        bad = json.loads(json.dumps(codec.to_json()))
        bad["columns"][0]["spike"] = float("nan")
        TableCodec.from_json(bad)


def test_decoded_values_stay_in_range_and_integers_stay_whole() -> None:
    import torch

    df = mixed()
    codec, _ = TableCodec.fit(df)
    noise = torch.randn(500, codec.width) * 3  # far outside what encode gives
    out = codec.decode(noise)
    assert out["age"].between(df["age"].min(), df["age"].max()).all()
    assert (out["age"] == out["age"].round()).all()
    h = out["height"].dropna()
    assert h.between(df["height"].min(), df["height"].max()).all()
    assert out["visit"].dropna().between(df["visit"].min(), df["visit"].max()).all()
    assert (out["visit"].dropna().dt.normalize() == out["visit"].dropna()).all()  # still dates
    assert set(out["smoker"].dropna()) <= {"yes", "no"}


def test_json_round_trip_encodes_identically() -> None:
    df = mixed()
    codec, _ = TableCodec.fit(df)
    again = TableCodec.from_json(json.loads(json.dumps(codec.to_json())))
    assert (again.encode(df) == codec.encode(df)).all()
    assert again.heads() == codec.heads()


def test_heads_cover_the_width() -> None:
    codec, _ = TableCodec.fit(mixed())
    assert sum(w for w, _ in codec.heads()) == codec.width
    assert {a for _, a in codec.heads()} == {"tanh", "softmax"}


def test_id_columns_are_dropped_with_a_note() -> None:
    df = mixed()
    df.insert(0, "patient_id", [f"P{i:05d}" for i in range(len(df))])
    df["row"] = np.arange(len(df)) * 7
    codec, notes = TableCodec.fit(df)
    assert "patient_id" in codec.dropped and "row" in codec.dropped
    assert "patient_id" not in codec.names and len(notes) == 2
    assert "id" in notes[0]


def test_overrides_and_drop() -> None:
    df = mixed()
    codec, _ = TableCodec.fit(df, {"grade": "integer", "height": "drop"})
    assert codec.column("grade").kind == "integer"
    assert "height" not in codec.names
    with pytest.raises(DataError, match="dropped"):
        codec.column("height")


@pytest.mark.parametrize("bad, match", [
    ({"nosuch": "drop"}, "not a column"),
    ({"smoker": "continuous"}, "smoker"),
])
def test_bad_overrides(bad: dict[str, str], match: str) -> None:
    with pytest.raises(DataError, match=match):
        TableCodec.fit(mixed(), bad)


def test_entirely_missing_column_and_too_many_categories() -> None:
    df = mixed()
    df["empty"] = np.nan
    with pytest.raises(DataError, match="entirely missing"):
        TableCodec.fit(df)
    df = mixed()
    df["zip"] = [f"Z{i % 150}" for i in range(len(df))]
    with pytest.raises(DataError, match="max_categories"):
        TableCodec.fit(df, max_categories=100)
    codec, _ = TableCodec.fit(df, max_categories=200)
    assert codec.column("zip").width == 150


def test_unseen_category_is_refused_on_encode() -> None:
    df = mixed()
    codec, _ = TableCodec.fit(df)
    other = df.copy()
    other.loc[0, "smoker"] = "sometimes"
    with pytest.raises(DataError, match="never seen"):
        codec.encode(other)


def test_category_shares_are_the_data_shares() -> None:
    df = mixed(1000)
    codec, _ = TableCodec.fit(df)
    c = codec.column("smoker")
    shares = dict(zip(c.categories, c.shares, strict=True))
    assert shares[None] == pytest.approx(20 / 1000)
    assert shares["yes"] == pytest.approx((df["smoker"] == "yes").mean())


def test_mixture_finds_two_modes_and_a_spike() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-5, 1, 5000), rng.normal(5, 0.5, 5000), np.zeros(5000)])
    m = fit_mixture(x, 10, seed=0)
    assert m.weights.sum() == pytest.approx(1.0)
    for centre, width in ((-5, 2.0), (5, 1.0), (0, 0.05)):  # each third of the data, one place
        near = np.abs(m.means - centre) < width
        assert m.weights[near].sum() == pytest.approx(1 / 3, abs=0.03), centre
    spike = np.abs(m.means) < 0.05
    assert m.stds[spike].max() < 0.05  # the zeros are one narrow mode
    assert (m.weights >= 0.005).all()


def test_mixture_of_large_magnitudes_is_stable() -> None:
    rng = np.random.default_rng(0)
    x = 1.6e9 + rng.normal(0, 3600, 10_000)  # timestamps in seconds
    m = fit_mixture(x, 10, seed=0)
    assert np.isfinite(m.stds).all() and (m.stds > 0).all()
    assert abs(float(np.sum(m.weights * m.means)) - x.mean()) < 100


def test_infer_kind_edge_cases() -> None:
    assert infer_kind(pd.Series([np.nan, np.nan])) == "empty"
    assert infer_kind(pd.Series([3, 3, 3])) == "constant"
    assert infer_kind(pd.Series([3.0, np.nan, 3.0])) == "categorical"  # a value and missing
    assert infer_kind(pd.Series([f"2020-01-0{i % 9 + 1}" for i in range(30)])) == "datetime"
    assert infer_kind(pd.Series([1.5, 2.25, 3.0])) == "continuous"


def test_beside_a_spike_the_scalar_is_a_normal_score_within_its_mode() -> None:
    rng = np.random.default_rng(5)
    n = 8000
    # weekly hours: 40 in a third of the rows, heaps at 45, 50, 60 and a smooth spread beside
    hours = np.where(rng.uniform(size=n) < 0.4, rng.choice([45, 50, 60], n),
                     np.clip(np.round(rng.gamma(9.0, 4.5, n)), 1, 99))
    hours[rng.uniform(size=n) < 0.33] = 40
    df = pd.DataFrame({"hours": hours.astype(np.int64), "other": rng.normal(size=n)})
    codec, _ = TableCodec.fit(df, scale="auto")
    c = codec.column("hours")
    assert c.scale == "spike-modes" and c.spike == 40.0
    assert codec.column("other").within is None  # plain mixture columns keep CTGAN's scalar
    k = len(c.mixture.weights)
    assert c.within is not None and c.within.quantiles.shape[0] == k
    x = codec.encode(df)[:, :c.width].numpy().astype(np.float64)
    mode = x[:, 1:].argmax(1)
    for m in range(k):  # within each mode: normal scores (ties in the middle), / 5
        s = x[mode == m, 0] * 5.0
        assert np.abs(s).max() < 4.8 and abs(np.median(s)) < 0.5
    back = codec.decode(codec.encode(df))["hours"].to_numpy()
    assert np.array_equal(back, df["hours"].to_numpy())
    # G's scalars spread over a mode come back as that mode's values, heaps as heaps
    heap_mode = int(np.bincount(mode[hours == 50]).argmax())
    probe = torch.zeros(4000, codec.width)
    probe[:, 0] = torch.from_numpy(rng.uniform(-0.95, 0.95, 4000))
    probe[:, 1 + heap_mode] = 1.0
    out = codec.decode(probe)["hours"].to_numpy()
    seen = hours[mode == heap_mode]
    assert np.isin(out, seen).all()
    assert (out == 50).mean() > 0.5 * (seen == 50).mean() > 0.05
    saved = json.loads(json.dumps(codec.to_json()))
    assert torch.equal(TableCodec.from_json(saved).encode(df), codec.encode(df))
    # a codec.json without "within" keeps the linear scalar (value - mean) / (4 std)
    del saved["columns"][0]["within"]
    old = TableCodec.from_json(saved)
    assert old.column("hours").within is None
    linear = old.encode(df)[:, 0].numpy()
    mean, std = old.column("hours").mixture.means, old.column("hours").mixture.stds
    other = hours != 40
    assert np.allclose(linear[other], ((hours - mean[mode % k]) / (4 * std[mode % k]))[other],
                       atol=1e-5)
    assert np.array_equal(old.decode(old.encode(df))["hours"].to_numpy(), df["hours"].to_numpy())
