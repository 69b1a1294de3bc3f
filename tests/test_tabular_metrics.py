"""Table metrics against hand-computed, scipy or brute-force values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gankit.errors import DataError
from gankit.metrics import tabular as T

KINDS = {"x": "continuous", "n": "integer", "c": "categorical", "b": "boolean",
         "d": "datetime", "y": "categorical"}


def table(rows: int, seed: int, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    """A small mixed table whose target y depends on x and c."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    c = np.where(x + rng.normal(0, 1, rows) > 0, "hi", "lo").astype(object)
    c[rng.random(rows) < 0.2] = "mid"
    n = rng.poisson(3 + 2 * (x > 0), rows)
    b = rng.random(rows) < 0.3
    d = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, rows), unit="D")
    y = np.where(x + (c == "hi") + rng.normal(0, 0.5, rows) > 0.8, "yes", "no")
    df = pd.DataFrame({"x": x, "n": n, "c": c, "b": b, "d": d, "y": y})
    if missing:
        for col in ("x", "c", "d"):
            df.loc[rng.random(rows) < missing, col] = None
    return df


# --------------------------------------------------------------------------- column shapes


def test_ks_matches_scipy_with_ties_and_ignores_nan() -> None:
    a = np.array([1.0, 2.0, 2.0, 3.0, 5.0, np.nan])
    b = np.array([2.0, 2.0, 4.0, 6.0, 7.0, 7.0, 8.0])
    expect = stats.ks_2samp(a[:-1], b).statistic
    assert T.ks_statistic(a[:-1], b) == pytest.approx(expect)
    assert T.ks_similarity(a, b) == pytest.approx(1.0 - expect)
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=37), rng.normal(0.3, 1.2, size=23).round(1)
    assert T.ks_statistic(u, v) == pytest.approx(stats.ks_2samp(u, v).statistic)


def test_ks_of_empty_columns() -> None:
    nan = np.array([np.nan, np.nan])
    assert T.ks_similarity(nan, nan) == 1.0
    assert T.ks_similarity(nan, np.array([1.0])) == 0.0


def test_tv_by_hand() -> None:
    real = np.array(["a", "a", "b", None], dtype=object)
    syn = np.array(["a", "b", "b", "c"], dtype=object)
    # p = (2/3, 1/3, 0), q = (1/4, 1/2, 1/4): TV = (5/12 + 2/12 + 3/12) / 2 = 5/12
    assert T.tv_similarity(real, syn) == pytest.approx(7 / 12)
    assert T.tv_similarity(syn, syn) == 1.0


def test_column_scores_per_kind() -> None:
    real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "a", "b", "b"],
                         "d": pd.to_datetime(["2020-01-01", "2020-01-02", None, "2020-01-04"])})
    syn = pd.DataFrame({"x": [1.0, 2.0, 9.0, 9.0], "c": ["a", "b", "b", "b"],
                        "d": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-04", None])})
    kinds = {"x": "continuous", "c": "categorical", "d": "datetime"}
    got = T.column_scores(real, syn, kinds)
    assert got["x"] == pytest.approx(0.5)  # ECDFs differ by 1/2 at x in [3, 4)
    assert got["c"] == pytest.approx(0.75)
    assert got["d"] == pytest.approx(1.0)  # same non-missing dates
    rep = T.column_report(real, syn, kinds)
    assert rep["d"]["missing_real"] == 0.25 and rep["x"]["shape"] == got["x"]


def test_datetimes_are_nanoseconds_and_nat_is_nan() -> None:
    s = pd.Series(pd.to_datetime(["1970-01-01 00:00:01", None]))
    v = T.numeric_values(s, "datetime")
    assert v[0] == 1e9 and math.isnan(v[1])


def test_non_numbers_in_a_numeric_column_are_a_data_error() -> None:
    with pytest.raises(DataError, match="holds non-numbers"):
        T.numeric_values(pd.Series(["1", "x"], name="age"), "integer")


def test_missing_similarity_by_hand() -> None:
    real = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": ["u", None, None, "v"]})
    syn = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["u", None, "w", "v"]})
    got = T.missing_scores(real, syn, {"a": "continuous", "b": "categorical"})
    assert got == {"a": pytest.approx(0.75), "b": pytest.approx(0.75)}


# --------------------------------------------------------------------------- pair trends


def test_spearman_matches_scipy_with_ties_and_skips_missing() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, 40).astype(float)
    y = x + rng.integers(0, 3, 40)
    x[3] = np.nan
    keep = ~np.isnan(x)
    assert T.spearman(x, y) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)
    assert math.isnan(T.spearman(np.ones(5), np.arange(5.0)))


def test_contingency_by_hand() -> None:
    ra, rb = ["a", "a", "b", "b"], ["u", "v", "u", "v"]  # uniform over 4 cells
    sa, sb = ["a", "a", "a", "b"], ["u", "u", "v", "v"]  # (a,u) 1/2, (a,v) 1/4, (b,v) 1/4
    # |1/4-1/2| + |1/4-1/4| + |1/4-0| + |1/4-1/4| = 1/2 -> TV 1/4
    assert T.contingency_similarity(ra, rb, sa, sb) == pytest.approx(0.75)


def test_pair_scores_numeric_mixed_and_constant() -> None:
    real = pd.DataFrame({"p": [1.0, 2.0, 3.0, 4.0], "q": [1.0, 2.0, 3.0, 4.0],
                         "k": [5.0, 5.0, 5.0, 5.0], "c": ["a", "a", "b", "b"]})
    syn = pd.DataFrame({"p": [1.0, 2.0, 3.0, 4.0], "q": [4.0, 3.0, 2.0, 1.0],
                        "k": [5.0, 5.0, 5.0, 5.0], "c": ["a", "b", "a", "b"]})
    kinds = {"p": "continuous", "q": "continuous", "k": "continuous", "c": "categorical"}
    got = T.pair_scores(real, syn, kinds, bins=2)
    assert got[("p", "q")] == pytest.approx(0.0)  # rho +1 against -1
    # k is constant: rho undefined, so contingency; one bin, so only p's bins matter -> 1
    assert got[("p", "k")] == pytest.approx(1.0)
    # p binned at the real median 2.5: real (lo,a)(lo,a)(hi,b)(hi,b); syn (lo,a)(lo,b)(hi,a)(hi,b)
    # p = (1/2, 1/2, 0, 0) over (lo,a),(hi,b),(lo,b),(hi,a); q = 1/4 each -> TV 1/2
    assert got[("p", "c")] == pytest.approx(0.5)
    assert got[("k", "c")] == pytest.approx(1.0)  # c's marginal is the same


def test_quantile_bins() -> None:
    edges = T.quantile_edges(np.array([0.0, 1.0, 2.0, 3.0, np.nan]), bins=2)
    assert edges.tolist() == [1.5]
    labels = T.binned_labels(np.array([-5.0, 1.5, 9.0, np.nan]), edges)
    assert labels[0] == "bin0" and labels[1] == labels[2] == "bin1" and labels[3] != "bin0"


# --------------------------------------------------------------------------- privacy


def test_exact_copies_with_missing_values_and_number_types() -> None:
    kinds = {"a": "integer", "b": "categorical", "t": "datetime"}
    train = pd.DataFrame({"a": [1, 2, 3], "b": ["u", None, "w"],
                          "t": pd.to_datetime(["2020-01-01", None, "2020-01-03"])})
    syn = pd.DataFrame({"a": [1.0, 2.0, 2.0, 3.0], "b": ["u", None, "v", None],
                        "t": pd.to_datetime(["2020-01-01", None, None, "2020-01-03"])})
    # row 0 equals (1 == 1.0), row 1 equals (missing == missing), rows 2 and 3 differ
    assert T.exact_copy_share(syn, train, kinds) == pytest.approx(0.5)
    assert T.exact_copy_share(train, train, kinds) == 1.0


def test_distance_encoding_by_hand() -> None:
    train = pd.DataFrame({"x": [0.0, 10.0, None], "c": ["a", "b", "a"]})
    kinds = {"x": "continuous", "c": "categorical"}
    enc = T.fit_distance_encoding(train, kinds)
    got = T.encode_for_distance(pd.DataFrame({"x": [5.0, None], "c": ["b", "zzz"]}), enc)
    h = 1 / math.sqrt(2)
    np.testing.assert_allclose(got, [[0.5, 0.0, 0.0, h], [0.0, 1.0, 0.0, 0.0]])


def test_nearest_distances_dcr_and_nndr_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    syn, train, hold = rng.random((60, 4)), rng.random((30, 4)), rng.random((30, 4))
    syn[:5] = train[:5]  # copies: distance exactly 0
    brute_t = np.sort(np.linalg.norm(syn[:, None] - train[None], axis=-1), axis=1)
    brute_h = np.linalg.norm(syn[:, None] - hold[None], axis=-1).min(1)
    got = T.nearest_distances(syn, train, 2)
    np.testing.assert_allclose(got, brute_t[:, :2], atol=1e-12)
    assert (got[:5, 0] == 0.0).all()
    assert T.dcr_share(syn, train, hold) == pytest.approx(np.mean(brute_t[:, 0] < brute_h))
    assert T.nndr(syn, train) == pytest.approx(np.median(brute_t[:, 0] / brute_t[:, 1]))


def test_dcr_ties_count_half() -> None:
    point = np.zeros((1, 2))
    assert T.dcr_share(point, np.ones((1, 2)), -np.ones((1, 2))) == 0.5


# --------------------------------------------------------------------------- whole tables


def test_identical_tables_score_perfectly_and_are_undetectable() -> None:
    train, hold = table(400, 0), table(300, 1)
    got = T.table_scores(train, hold, hold.copy(), KINDS, target="y")
    assert got["column_shapes"] == pytest.approx(1.0)
    assert got["pair_trends"] == pytest.approx(1.0)
    assert got["missing_similarity"] == 1.0
    assert 0.5 <= got["detection_auc"] < 0.6 and 0.5 <= got["detection_auc_logistic"] < 0.6
    assert got["holdout_copies"] == 0.0 and got["exact_copies"] == 0.0


def test_clearly_different_tables_are_detected() -> None:
    train, hold = table(400, 0), table(300, 1)
    got = T.table_scores(train, hold, table(300, 2, shift=3.0), KINDS, target="y")
    assert got["detection_auc"] > 0.95 and got["detection_auc_logistic"] > 0.95
    assert got["column_shapes"] < 0.8


def test_linear_matrix_by_hand() -> None:
    kinds = {"x": "continuous", "c": "categorical"}
    first = pd.DataFrame({"x": [1.0, 3.0, None], "c": ["a", "b", "a"]})
    other = pd.DataFrame({"x": [2.0], "c": ["z"]})
    a, b = T.linear_matrix([first, other], kinds)
    # x: standardised by the first frame's mean 2 and deviation 1, a missing indicator; c: a, b
    # by frequency, then one level for unseen or missing.
    np.testing.assert_allclose(a, [[-1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [0, 1, 1, 0, 0]])
    np.testing.assert_allclose(b, [[0, 0, 0, 0, 1]])


def test_the_logistic_judge_misses_an_interaction_the_boosting_one_sees() -> None:
    """Real: y = sign(x1 * x2); synthetic: the same marginals, y independent of (x1, x2). A
    linear judge cannot tell them apart, boosting can; a plain shift both see."""
    rng = np.random.default_rng(0)
    kinds = {"x1": "continuous", "x2": "continuous", "y": "categorical"}

    def rows(n: int, linked: bool, shift: float = 0.0) -> pd.DataFrame:
        x1, x2 = rng.normal(shift, 1, n), rng.normal(0, 1, n)
        y = np.where(x1 * x2 > 0 if linked else rng.random(n) < 0.5, "p", "q")
        return pd.DataFrame({"x1": x1, "x2": x2, "y": y})

    real, fake = rows(1500, True), rows(1500, False)
    assert T.detection_auc(real, fake, kinds, judge="logistic")[0] < 0.56
    assert T.detection_auc(real, fake, kinds, judge="boosting")[0] > 0.7  # 0.75 at best
    shifted = rows(1500, True, shift=1.0)
    assert T.detection_auc(real, shifted, kinds, judge="logistic")[0] > 0.7
    with pytest.raises(ValueError, match="judge"):
        T.detection_auc(real, fake, kinds, judge="forest")


def test_copying_the_training_rows_shows_in_privacy_and_efficacy() -> None:
    train, hold = table(400, 0), table(300, 1)
    got = T.table_scores(train, hold, train.copy(), KINDS, target="y")
    assert got["exact_copies"] == 1.0
    assert got["dcr_share"] > 0.6  # a copy ties only with a train row in the subsample: 1
    assert got["nndr"] == 0.0 and got["holdout_nndr"] > 0.0
    # the same rows and seed give the same model: ratio exactly 1
    assert got["efficacy_f1_ratio"] == pytest.approx(1.0)
    assert got["efficacy_auc_ratio"] == pytest.approx(1.0)
    assert 0.6 < got["efficacy_auc_real"] <= 1.0


def test_efficacy_regression_multiclass_and_one_class() -> None:
    train, hold = table(400, 0), table(300, 1)
    reg = T.efficacy(train, hold, train, KINDS, target="x")
    assert reg["efficacy_r2_ratio"] == pytest.approx(1.0) and reg["efficacy_r2_real"] > 0.2
    multi = T.efficacy(train, hold, train, KINDS, target="c")
    assert "efficacy_auc_real" not in multi and multi["efficacy_f1_ratio"] == pytest.approx(1.0)
    one = train.assign(y="no")  # the majority class only: never predicts the positive one
    got = T.efficacy(train, hold, one, KINDS, target="y")
    assert got["efficacy_f1_synthetic"] == 0.0 and got["efficacy_auc_synthetic"] == 0.5
    assert got["efficacy_f1_ratio"] == 0.0
    # the positive (minority) class's share of each training table, counted by hand
    positive = train["y"].value_counts().idxmin()
    assert got["efficacy_share_real"] == pytest.approx((train["y"] == positive).mean())
    assert got["efficacy_share_synthetic"] == 0.0
    assert "efficacy_share_real" not in multi


def test_positive_class_is_the_real_minority() -> None:
    train, hold = table(400, 0), table(300, 1)
    flipped = T.efficacy(train, hold, train, KINDS, target="b")
    # b is independent of everything: F1 of the rare True class is low, not the ~0.8 of False
    assert flipped["efficacy_f1_real"] < 0.6


def test_missing_values_constant_and_single_category_columns() -> None:
    train, hold, syn = (table(300, s, missing=0.15) for s in (0, 1, 2))
    for f in (train, hold, syn):
        f["k"] = 7.0
        f["one"] = "only"
    kinds = {**KINDS, "k": "continuous", "one": "categorical"}
    got = T.table_scores(train, hold, syn, kinds, target="y")
    assert all(math.isfinite(v) for v in got.values()), got
    shapes = T.column_scores(hold, syn, kinds)
    assert shapes["k"] == 1.0 and shapes["one"] == 1.0
    assert got["missing_similarity"] > 0.9


def test_max_rows_cuts_tables_deterministically() -> None:
    train, hold, syn = table(400, 0), table(300, 1), table(300, 2)
    a = T.table_scores(train, hold, syn, KINDS, target="y", seed=5, max_rows=120)
    b = T.table_scores(train, hold, syn, KINDS, target="y", seed=5, max_rows=120)
    c = T.table_scores(train, hold, syn, KINDS, target="y", seed=6, max_rows=120)
    assert a == b and a != c


def test_bad_inputs_are_data_errors() -> None:
    df = table(20, 0)
    with pytest.raises(DataError, match="unknown kind"):
        T.table_scores(df, df, df, {**KINDS, "x": "float"})
    with pytest.raises(DataError, match="columns missing"):
        T.table_scores(df, df, df.drop(columns="c"), KINDS)
    with pytest.raises(DataError, match="no rows"):
        T.table_scores(df, df, df.iloc[:0], KINDS)
    with pytest.raises(DataError, match="target"):
        T.table_scores(df, df, df, KINDS, target="nope")
