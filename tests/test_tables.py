"""Tables end to end: loading and bad input, conditioning, sampling with --where, exact resume,
determinism, the CLI and the Python API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gankit
from gankit import kinds, runlog
from gankit.config import resolve
from gankit.errors import DataError
from gankit.kinds.tables import TableKind, split
from gankit.kinds.tables.codec import TableCodec
from gankit.kinds.tables.conditions import TableConditions, parse_where
from gankit.kinds.tables.files import read_table
from gankit.run import load_run, load_toml_config, prepare
from gankit.training import checkpoint

FAST = ["train.steps=20", "train.batch_size=50", "train.log_every=10", "train.sample_every=10",
        "train.checkpoint_every=10", "model.g_hidden=[32, 32]", "model.d_hidden=[32, 32]",
        "model.latent_dim=16", "train.threads=1"]


def patients(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    smoker = rng.choice(["yes", "no"], n, p=[0.1, 0.9])
    age = rng.integers(20, 80, n)
    df = pd.DataFrame({
        "id": [f"p{i}" for i in range(n)],
        "sex": sex, "smoker": smoker, "age": age,
        "bmi": np.round(rng.normal(26, 4, n), 1),
        "visit": pd.to_datetime("2022-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D"),
        "sick": rng.choice([True, False], n),
    })
    df.loc[rng.choice(n, 20, replace=False), "bmi"] = np.nan
    return df


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "patients.csv"
    patients().to_csv(path, index=False)
    return path


def cfg_for(path: Path, *extra: str) -> gankit.Config:
    return resolve(None, overrides=[f"data.source={path}", *FAST, *extra])


# -- loading -------------------------------------------------------------------------------------

def test_a_csv_picks_the_tabular_preset_and_holds_out_a_fifth(table: Path) -> None:
    cfg = cfg_for(table)
    assert cfg.preset == "tabular" and cfg.model.family == "tabular"
    assert isinstance(kinds.of_source(cfg.data), TableKind)
    data = kinds.of_source(cfg.data).load(cfg.data)
    train, holdout = data.frames
    assert len(holdout) == 60 and len(train) == 240 and len(data) == 240
    assert "id" in data.codec.dropped and any("id" in n for n in data.notes)
    assert not set(train["bmi"].index) & set()  # frames are fresh frames
    a, b = split(patients(), 0.2, 0), split(patients(), 0.2, 0)
    assert a[1].equals(b[1])  # the split is seeded
    assert not split(patients(), 0.2, 1)[1].equals(a[1])


def test_a_table_trains_for_its_own_length(table: Path, tmp_path: Path) -> None:
    tables = kinds.get("tables")
    # ~115 passes over the rows in batches of 500, within 1,400..6,000 steps (in hundreds)
    assert tables.steps_for(3563, 500) == 1400  # credit_data (820 steps' worth)
    assert tables.steps_for(8000, 500) == 1900  # Default (1,840)
    assert tables.steps_for(26049, 500) == 6000  # Adult (5,992)
    assert tables.steps_for(10**6, 500) == 6000
    assert kinds.get("images").steps_for(1000, 64) is None
    assert resolve("tabular").train.steps == 0  # the preset leaves it to the table
    cfg = cfg_for(table, "train.steps=0", "train.batch_size=5", "reg.pack=1")  # 240 rows
    trainer = gankit.Trainer(cfg, kinds.get("tables").load(cfg.data))
    assert trainer.cfg.train.steps == 5600  # 115 passes in batches of 5: 5,520
    out = tmp_path / "run"
    prepare(cfg_for(table, "train.steps=0"), out)
    assert load_toml_config(out / "config.toml").train.steps == 1400  # stored resolved


def test_a_table_packs_by_its_size_and_other_data_need_a_pack_size(table: Path) -> None:
    tables = kinds.get("tables")
    # PacGAN's packs of 10 below 20,000 training rows (credit_data, Default), 2 from there (Adult)
    assert tables.pack_for(3563) == tables.pack_for(19_999) == 10
    assert tables.pack_for(20_000) == tables.pack_for(26049) == 2
    cfg = cfg_for(table)
    assert cfg.reg.pack == 0  # the preset leaves it to the table
    tr = gankit.Trainer(cfg, tables.load(cfg.data))
    assert tr.cfg.reg.pack == tr.D.pack == 10
    with pytest.raises(gankit.ConfigError, match="does not divide train.batch_size=45"):
        gankit.Trainer(cfg_for(table, "train.batch_size=45"), tables.load(cfg.data))
    digits = resolve("seed", overrides=["reg.pack=0"])
    with pytest.raises(gankit.ConfigError, match="no pack size of their own"):
        gankit.Trainer(digits, gankit.load_data(digits.data))



def test_only_tables_have_a_length_of_their_own(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = gankit_cli("train", "--preset", "seed", "--set", "train.steps=0", "--out", out)
    assert done.returncode == 2, done.stderr
    assert "train.steps=0" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (out / "config.toml").exists()


def test_tsv_and_parquet_read_like_csv(tmp_path: Path) -> None:
    df = patients(50)
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    a, b = read_table(tmp_path / "t.tsv"), read_table(tmp_path / "t.parquet")
    assert list(a.columns) == list(b.columns) == list(df.columns)
    assert (a["age"] == b["age"]).all()


def test_builtin_adult() -> None:
    df = kinds.get("tables").load(resolve(None, overrides=["data.source=adult"]).data).frames[0]
    assert df.shape == (26049, 15)
    assert df["workclass"].isna().sum() > 1000  # "?" became missing
    assert not df["workclass"].dropna().str.startswith(" ").any()


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"a,b,c\n", "header but no rows"),
    (b"a,a,b\n" + b"1,2,3\n" * 20, "appears twice"),
    (b"a,,b\n" + b"1,2,3\n" * 20, "no name"),
    (b"a,b\n" + b"1,2\n" * 20 + b"1,2,3\n", "row 22 has 3 fields"),
    (b"a,b\n" + b"1,2\n" * 20 + b"1\n", "row 22 has 1 fields"),
    (b"a,b\n1,2\n", "1 row; a table needs at least 10"),
    (b"name\n" + "Jos\xe9\n".encode("latin-1") * 20, "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
])
def test_bad_tables_are_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_table(path)


def test_missing_target_and_column(table: Path) -> None:
    with pytest.raises(DataError, match="data.target 'nosuch'"):
        kinds.get("tables").load(cfg_for(table, "data.target=nosuch").data)
    with pytest.raises(DataError, match="not a column"):
        kinds.get("tables").load(cfg_for(table, "data.columns.nosuch=drop").data)


# -- conditioning --------------------------------------------------------------------------------

def test_training_by_sampling_favours_rare_categories_and_rows_match(table: Path) -> None:
    data = kinds.get("tables").load(cfg_for(table).data)
    cond = TableConditions(data.codec, data.samples)
    gen = torch.Generator().manual_seed(0)
    idx, y = cond.batch(20_000, gen, slice(None), torch.device("cpu"))
    x = data.samples[idx]
    # every drawn row has the category its condition names
    assert torch.equal((x.index_select(1, cond.positions) * y).sum(1), torch.ones(len(y)))
    smoker_yes = cond.option("smoker", "yes")
    real_share = float((data.frames[0]["smoker"] == "yes").mean())
    drawn = float(y[:, smoker_yes].sum()) / float(y[:, cond.option("smoker", "no")].sum()
                                                 + y[:, smoker_yes].sum())
    assert drawn > real_share + 0.2  # log-frequency: the rare category is drawn far more often
    shares = cond.sample(20_000, gen)
    drawn = float(shares[:, smoker_yes].sum()) / float(
        shares[:, smoker_yes].sum() + shares[:, cond.option("smoker", "no")].sum())
    assert drawn == pytest.approx(real_share, abs=0.02)  # sampling: the real share


def test_penalty_is_low_when_g_obeys_the_condition(table: Path) -> None:
    data = kinds.get("tables").load(cfg_for(table).data)
    cond = TableConditions(data.codec, data.samples)
    idx, y = cond.batch(64, torch.Generator().manual_seed(0), slice(None), torch.device("cpu"))
    obey = cond.penalty(data.samples[idx], y)
    other = cond.penalty(data.samples[idx.flip(0)], y)
    assert obey is not None and other is not None
    assert float(obey) < 1e-6 < float(other)


def test_where_parsing(table: Path) -> None:
    codec, _ = TableCodec.fit(patients())
    clauses = parse_where(["smoker=yes", "age>=40", "bmi="], codec)
    assert [(c.column, c.op, c.value) for c in clauses] == [
        ("smoker", "=", "yes"), ("age", ">=", 40.0), ("bmi", "=", None)]
    for bad, match in [("smoker=maybe", "never occurs"), ("nosuch=1", "no column"),
                       ("age", "must look like"), ("smoker>yes", "use = or !="),
                       ("age>old", "not a value")]:
        with pytest.raises(DataError, match=match):
            parse_where([bad], codec)


# -- training, sampling, resume ------------------------------------------------------------------

def test_train_sample_where_and_determinism(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    prepare(cfg_for(table), out).fit(progress=False)
    assert (out / "codec.json").is_file() and list((out / "samples").glob("*.csv"))
    run = load_run(out)
    df = gankit.kinds.tables.sample_rows(run, 400, seed=3)
    assert list(df.columns) == ["sex", "smoker", "age", "bmi", "visit", "sick"]
    assert df["age"].dtype == np.int64 and df["sick"].dtype == bool
    assert df["age"].between(20, 79).all()
    again = gankit.kinds.tables.sample_rows(load_run(out), 400, seed=3)
    pd.testing.assert_frame_equal(df, again)  # same seed, same table
    picked = gankit.kinds.tables.sample_rows(run, 50, seed=0,
                                             where=["smoker=yes", "sex=F", "age>30"])
    assert len(picked) == 50
    assert (picked["smoker"] == "yes").all() and (picked["sex"] == "F").all()
    assert (picked["age"] > 30).all()


def test_same_seed_same_weights(table: Path) -> None:
    cfg = cfg_for(table)
    a = gankit.Trainer(cfg, kinds.get("tables").load(cfg.data))  # writes nothing
    a.fit(progress=False)
    b = gankit.Trainer(cfg, kinds.get("tables").load(cfg.data))
    b.fit(progress=False)
    for (ka, va), (_, vb) in zip(a.G.state_dict().items(), b.G.state_dict().items(),
                                 strict=True):
        assert torch.equal(va, vb), ka


def test_resume_is_bitwise(table: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    prepare(cfg_for(table), whole).fit(progress=False)
    part = tmp_path / "part"
    prepare(cfg_for(table, "train.steps=10"), part).fit(progress=False)
    prepare(gankit.resume_config(part, steps=20), part, resume=True).fit(progress=False)
    sa = checkpoint.latest(whole / "checkpoints")
    sb = checkpoint.latest(part / "checkpoints")
    assert sa is not None and sb is not None and sa["step"] == sb["step"] == 20
    assert sa["G_ema"] is not None  # the preset samples from G's moving average
    for key in ("G", "D", "G_ema"):
        for name, v in sa[key].items():
            assert torch.equal(v, sb[key][name]), (key, name)


def test_synthesizer_api() -> None:
    df = patients()
    synth = gankit.TableSynthesizer(steps=20, batch_size=50, seed=0,
                                    overrides=FAST[2:]).fit(df.drop(columns=["id"]))
    fake = synth.sample(120, seed=1)
    assert list(fake.columns) == ["sex", "smoker", "age", "bmi", "visit", "sick"]
    assert len(fake) == 120
    assert synth.kinds["visit"] == "datetime"
    assert synth.sample(120, seed=1).equals(fake)
    assert (synth.sample(30, where=["sex=M"])["sex"] == "M").all()


# -- the command line ----------------------------------------------------------------------------

def gankit_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_cli_train_sample_eval_report(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = [a for s in FAST for a in ("--set", s)]
    done = gankit_cli("train", "--data", table, "--set", "data.target=sick", *sets,
                      "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    synth = tmp_path / "synth.csv"
    done = gankit_cli("sample", out, "--num", "100", "--out", synth, "--where", "smoker=yes")
    assert done.returncode == 0, done.stderr
    back = pd.read_csv(synth)
    assert len(back) == 100 and (back["smoker"] == "yes").all()
    done = gankit_cli("sample", out, "--num", "10", "--out", tmp_path / "s.parquet")
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 10
    done = gankit_cli("eval", out, "--json")
    assert done.returncode == 0, done.stderr
    assert '"column_shapes"' in done.stdout and '"efficacy_f1_ratio"' in done.stdout
    done = gankit_cli("report", out)
    assert done.returncode == 0, done.stderr
    page = (out / "report.html").read_text()
    assert "Marginals" in page and "Correlation" in page


@pytest.mark.parametrize("args, match", [
    (["--where", "smoker=maybe"], "never occurs"),
    (["--where", "nosuch=1"], "no column"),
    (["--class", "1"], "--class"),
    (["--out-suffix", ".png"], "must end in .csv"),
])
def test_cli_bad_sample_requests(table: Path, tmp_path: Path, args: list[str],
                                 match: str) -> None:
    out = tmp_path / "run"
    prepare(cfg_for(table, "train.steps=10"), out).fit(progress=False)
    target = tmp_path / "x.csv"
    if args[0] == "--out-suffix":
        target, args = tmp_path / "x.png", []
    target.write_text("keep me")
    done = gankit_cli("sample", out, "--num", "5", "--out", target, *args)
    assert done.returncode == 2
    assert match in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert target.read_text() == "keep me"  # nothing on disk damaged


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"), (b"a,b\n", "no rows"), (b"a,b\n1,2\n", "at least 10"),
])
def test_cli_bad_tables(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    done = gankit_cli("train", "--data", path, "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 2 and match in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_eval_every_scores_against_held_out_rows(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = cfg_for(table, "eval.every=10", "eval.num=100", "data.target=sick")
    prepare(cfg, out).fit(progress=False)
    records = [r for r in runlog.read(out / "metrics.jsonl") if "column_shapes" in r]
    assert [r["step"] for r in records] == [10, 20]
    for r in records:
        assert 0.0 <= r["column_shapes"] <= 1.0 and 0.5 <= r["detection_auc"] <= 1.0
        assert "efficacy_f1_ratio" in r and r["exact_copies"] >= 0.0
    assert checkpoint.list_steps(out / "checkpoints" / "best")  # ranked by detection_auc


def test_column_overrides_round_trip_through_config_toml(tmp_path: Path) -> None:
    from gankit.config import load_toml_config, to_toml

    cfg = resolve(None, overrides=["data.source=x.csv", "data.columns.id=drop",
                                   "data.columns.age=integer", "data.target=y"])
    assert cfg.preset == "tabular" and cfg.data.column_kinds == {"id": "drop", "age": "integer"}
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    assert load_toml_config(tmp_path / "c.toml") == cfg
    with pytest.raises(gankit.ConfigError, match="data.columns.age"):
        resolve(None, overrides=["data.source=x.csv", "data.columns.age=number"])


def test_a_target_is_drawn_at_its_real_share(table: Path) -> None:
    data = kinds.get("tables").load(cfg_for(table).data)
    cond = TableConditions(data.codec, data.samples, focus="smoker")
    y = cond.sample(20_000, torch.Generator().manual_seed(0))
    yes, no = cond.option("smoker", "yes"), cond.option("smoker", "no")
    assert float(y[:, [yes, no]].sum()) == len(y)  # every row conditioned on the target
    real = float((data.frames[0]["smoker"] == "yes").mean())
    assert float(y[:, yes].mean()) == pytest.approx(real, abs=0.01)
    # training draws are unchanged by the focus
    a = cond.batch(64, torch.Generator().manual_seed(1), slice(None), torch.device("cpu"))
    b = TableConditions(data.codec, data.samples).batch(
        64, torch.Generator().manual_seed(1), slice(None), torch.device("cpu"))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_focus_share_of_training_batches_is_conditioned_on_the_target(table: Path) -> None:
    data = kinds.get("tables").load(cfg_for(table).data)
    plain = TableConditions(data.codec, data.samples, focus="smoker")
    cond = TableConditions(data.codec, data.samples, focus="smoker", focus_share=0.5)
    gen = torch.Generator().manual_seed(0)
    idx, y = cond.batch(40_000, gen, slice(None), torch.device("cpu"))
    x = data.samples[idx]
    assert torch.equal((x.index_select(1, cond.positions) * y).sum(1), torch.ones(len(y)))
    yes, no = cond.option("smoker", "yes"), cond.option("smoker", "no")
    on_target = y[:, [yes, no]].sum(1) == 1
    blocks = sum(1 for c in data.codec.columns if c.kind in ("categorical", "boolean"))
    # half the batches by focus, and the uniform draw of one column in the other half
    assert float(on_target.float().mean()) == pytest.approx(0.5 + 0.5 / blocks, abs=0.01)
    # the focused half at the real share: the rare category's share lies between the real one
    # and the log-frequency one of the unfocused draws
    real = float((data.frames[0]["smoker"] == "yes").mean())
    p = plain.p_train
    log_share = float(p[yes] / (p[yes] + p[no]))
    drawn = float(y[on_target, yes].mean())
    expected = (0.5 * real + 0.5 / blocks * log_share) / (0.5 + 0.5 / blocks)
    assert drawn == pytest.approx(expected, abs=0.015)
    assert real + 0.05 < log_share
    with pytest.raises(gankit.ConfigError, match="data.target_focus"):
        cfg_for(table, "data.target_focus=1.5")


def test_synthesizer_target_focuses_generated_conditions() -> None:
    df = patients().drop(columns=["id"])
    synth = gankit.TableSynthesizer(steps=10, batch_size=50, overrides=FAST[2:],
                                    target="smoker").fit(df)
    cond = synth.run.conditioning
    assert cond is not None and cond.p_share is not None
    picked = cond.p_share.nonzero().flatten().tolist()
    assert sorted(picked) == sorted([cond.option("smoker", "yes"), cond.option("smoker", "no")])
