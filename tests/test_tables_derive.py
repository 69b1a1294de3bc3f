"""Columns that are a function of one discrete column (``data.derive``): found, decoded from
their source, kept through JSON, and usable in ``--where``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import gankit
from gankit.errors import DataError
from gankit.kinds.tables import metric_kinds
from gankit.kinds.tables.codec import TableCodec
from gankit.kinds.tables.conditions import TableConditions, condition_option, parse_where
from gankit.kinds.tables.dependencies import MIN_ROWS, find_dependencies

LEVEL = {"school": 1, "college": 2, "degree": 3, "doctorate": 4}
LABEL = {"school": "low", "college": "low", "degree": "high", "doctorate": "high"}


def schooling(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    edu = rng.choice(list(LEVEL), n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    edu[rng.choice(n, 12, replace=False)] = None  # missing is a category of its own
    level = [LEVEL.get(e, np.nan) if e is not None else np.nan for e in edu]
    return pd.DataFrame({
        "edu": edu,
        "years": rng.integers(10, 60, n),
        "level": pd.array([None if np.isnan(v) else int(v) for v in level], dtype="Int64"),
        "band": [LABEL.get(e) if e is not None else "none" for e in edu],  # many-to-one map
        "sex": rng.choice(["F", "M"], n),
        "score": rng.normal(0, 1, n),
    })


def test_functions_of_a_category_are_derived_and_decode_exactly() -> None:
    df = schooling()
    codec, notes = TableCodec.fit(df, derive=True)
    assert {(d.name, d.source) for d in codec.derived} == {("level", "edu"), ("band", "edu")}
    assert [c.name for c in codec.columns] == ["edu", "years", "sex", "score"]
    assert codec.names == list(df.columns)
    assert any("'level' is a function of 'edu'" in n for n in notes)
    plain, _ = TableCodec.fit(df)
    assert not plain.derived and codec.width < plain.width
    back = codec.decode(codec.encode(df))
    assert list(back.columns) == list(df.columns)
    assert back["level"].dtype == df["level"].dtype == "Int64"
    pd.testing.assert_series_equal(back["level"], df["level"], check_names=False)
    assert back["band"].tolist() == df["band"].tolist()
    assert metric_kinds(codec) == {"edu": "categorical", "years": "integer",
                                   "level": "categorical", "band": "categorical",
                                   "sex": "categorical", "score": "continuous"}


def test_derived_columns_hold_in_every_decoded_row_and_survive_json() -> None:
    df = schooling()
    codec, _ = TableCodec.fit(df, derive=True)
    again = TableCodec.from_json(json.loads(json.dumps(codec.to_json())))
    fake = again.decode(torch.randn(300, again.width, generator=torch.Generator().manual_seed(1)))
    assert fake["edu"].isna().any() and fake["edu"].notna().any()
    for e, lv, band in zip(fake["edu"], fake["level"], fake["band"], strict=True):
        if pd.isna(e):
            assert lv is pd.NA and band == "none"
        else:
            assert lv == LEVEL[e] and band == LABEL[e]


def test_what_is_not_derived() -> None:
    df = schooling()
    noisy = df.copy()
    noisy.loc[noisy.index[noisy["edu"] == "degree"][0], "level"] = 1  # one exception
    codec, _ = TableCodec.fit(noisy, derive=True)
    assert [d.name for d in codec.derived] == ["band"]
    # a source whose rarest category has fewer than MIN_ROWS rows is not trusted
    rare = df.copy()
    rows = rare.index[rare["edu"] == "doctorate"][MIN_ROWS - 1:]
    rare = rare.drop(index=rows).reset_index(drop=True)
    assert find_dependencies(rare, {"edu": "categorical", "level": "categorical"},
                             {"edu"}) == {}
    # the target, and columns the config names, are learned (a named column may be a source)
    kept, _ = TableCodec.fit(df, {"level": "categorical"}, derive=True, keep=("band",))
    assert [(d.name, d.source) for d in kept.derived] == [("edu", "level")]
    # a source is never derived, a derived column never a source: edu <-> edu2 one-to-one
    twin = df.assign(edu2=df["edu"].str.upper())
    links = find_dependencies(twin, {c: "categorical" for c in twin if c != "score"} | {
        "score": "continuous", "years": "integer"}, {"edu", "edu2", "band", "sex"})
    assert links["edu2"] == "edu" and "edu" not in links and set(links.values()) == {"edu"}


def test_a_codec_whose_derived_source_does_not_fit_is_refused() -> None:
    codec, _ = TableCodec.fit(schooling(), derive=True)
    d = codec.to_json()
    d["derived"][0]["source"] = "years"
    with pytest.raises(DataError, match="derived column"):
        TableCodec.from_json(d)
    d = codec.to_json()
    d["names"] = [n for n in d["names"] if n != "band"]
    with pytest.raises(DataError, match="names do not match"):
        TableCodec.from_json(d)


def test_where_on_a_derived_column_conditions_on_its_source() -> None:
    codec, _ = TableCodec.fit(schooling(), derive=True)
    cond = TableConditions(codec)
    clauses = parse_where(["level=4"], codec)
    assert clauses[0].value == 4.0
    assert condition_option(cond, clauses) == cond.option("edu", "doctorate")
    many = parse_where(["band=high"], codec)  # two categories give it: filtered, not conditioned
    assert condition_option(cond, many) is None
    with pytest.raises(DataError, match="never occurs in column 'band'"):
        parse_where(["band=medium"], codec)
    with pytest.raises(DataError, match="use = or !="):
        parse_where(["band>low"], codec)


def test_synthesizer_writes_derived_columns_and_where_holds() -> None:
    df = schooling()
    synth = gankit.TableSynthesizer(
        steps=20, batch_size=50, seed=0,
        overrides=["model.g_hidden=[32, 32]", "model.d_hidden=[32, 32]", "model.latent_dim=16",
                   "train.threads=1"]).fit(df)
    fake = synth.sample(200, seed=0)
    assert list(fake.columns) == list(df.columns)
    known = fake["edu"].notna()
    assert (fake.loc[known, "level"].astype(int) == fake.loc[known, "edu"].map(LEVEL)).all()
    picked = synth.sample(40, seed=1, where=["level=3", "sex=F"])
    assert len(picked) == 40 and (picked["edu"] == "degree").all()
    assert (picked["level"] == 3).all() and (picked["sex"] == "F").all()
    learned = gankit.TableSynthesizer(steps=2, batch_size=50, overrides=["data.derive=false",
                                                                          "train.threads=1"])
    assert "level" in learned.fit(df).kinds


def test_report_panels_draw_derived_columns() -> None:
    from gankit.kinds.tables.report import associations, marginals_png, shown

    df = schooling()
    codec, _ = TableCodec.fit(df, derive=True)
    assert [c.name for c in shown(codec)] == list(df.columns)
    real = codec.decode(codec.encode(df))
    a = associations(real, codec, {})
    names = [c.name for c in shown(codec)]
    assert a.shape == (6, 6)
    assert a[names.index("edu"), names.index("level")] > 0.99  # the map, exactly
    assert marginals_png(real, real, codec).startswith("data:image/png")
