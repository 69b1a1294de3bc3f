"""Error bars: ``gankit eval --ci`` intervals and ``gankit eval A B`` comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gankit.cli import main
from gankit.evaluation import compare, percentile_interval, with_intervals

RING = ["--data", "ring8", "--set", "model.clusters=0", "--set", "reg.pack=2",
        "--set", "train.lr_decay=0", "--set", "train.sample_every=1000", "--quiet"]


@pytest.fixture(scope="module")
def ring_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A barely trained ring8 run (50 steps) and a trained one (600 steps)."""
    root = tmp_path_factory.mktemp("ci")
    for name, steps in (("early", 50), ("late", 600)):
        assert main(["train", *RING, "--steps", str(steps), "--out", str(root / name)]) == 0
    return root / "early", root / "late"


def test_percentile_interval() -> None:
    assert percentile_interval(list(range(101)), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval([1.0, float("nan"), 3.0], 0.5) == pytest.approx((1.5, 2.5))
    lo, hi = percentile_interval([], 0.9)
    assert np.isnan(lo) and np.isnan(hi)


def test_intervals_hold_the_draws() -> None:
    draws = [{"source": "x", "num": 5, "fd": v, "classes": 10, "kid_std": 0.1} for v in
             (3.0, 1.0, 2.0, 5.0, 4.0)]
    out = with_intervals(draws, 0.5)
    assert out["fd"] == 3.0 and out["fd_ci"] == [2.0, 4.0] and out["classes_ci"] == [10, 10]
    assert "num_ci" not in out and "kid_std_ci" not in out  # the header and spreads are not metrics
    assert out["ci"] == 0.5 and out["replicates"] == 5


def test_comparison_verdicts_follow_each_metrics_goal() -> None:
    a = [{"fd": 10.0 + i, "precision": 0.5, "modes": 8} for i in range(5)]
    b = [{"fd": 5.0 + i, "precision": 0.5 + 0.01 * (i - 2), "modes": 4} for i in range(5)]
    rows = {r["metric"]: r for r in compare(a, b, 0.9)}
    assert rows["fd"]["verdict"] == "B better" and rows["fd"]["diff_ci"] == [-5.0, -5.0]
    assert rows["precision"]["verdict"] == "within noise"
    assert rows["modes"]["verdict"] == "A better"


def test_eval_ci_of_a_run(ring_runs: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    _, late = ring_runs
    args = ["eval", str(late), "--num", "300", "--ci", "0.9", "--replicates", "8", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == first  # seeded: the same intervals again
    assert main(["eval", str(late), "--num", "300", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert {k: first[k] for k in plain} == plain  # the point estimate is the plain eval's
    lo, hi = first["high_quality_ci"]
    assert 0 <= lo < hi <= 1  # fresh draws of 300 samples do differ
    assert first["replicates"] == 8 and first["ci"] == 0.9
    assert main(["eval", str(late), "--num", "300", "--ci", "0.9", "--replicates", "4"]) == 0
    text = capsys.readouterr().out
    assert any(line.startswith("high_quality") and "[" in line for line in text.splitlines())


def test_eval_compares_two_runs(ring_runs: tuple[Path, Path],
                                capsys: pytest.CaptureFixture) -> None:
    early, late = ring_runs
    assert main(["eval", str(early), str(late), "--num", "300", "--replicates", "8",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["metric"]: r for r in out["metrics"]}
    assert out["ci"] == 0.95 and rows["high_quality"]["verdict"] == "B better"
    assert main(["eval", str(late), str(late), "--num", "300", "--replicates", "4"]) == 0
    text = capsys.readouterr().out
    verdicts = [line.rsplit("]", 1)[1].strip() for line in text.splitlines() if "]" in line]
    assert verdicts and set(verdicts) == {"within noise"}  # a run against itself


def test_eval_ci_of_a_file_bootstraps_its_samples(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    angles = rng.integers(0, 8, 400) * np.pi / 4
    pts = np.stack([np.cos(angles), np.sin(angles)], 1) + rng.normal(0, 0.01, (400, 2))
    with open(tmp_path / "p.npz", "wb") as f:
        np.savez(f, samples=pts.astype(np.float32))
    assert main(["eval", str(tmp_path / "p.npz"), "--data", "ring8", "--ci", "0.9",
                 "--replicates", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modes"] == 8 and out["modes_ci"] == [8, 8]
    lo, hi = out["high_quality_ci"]
    assert lo <= out["high_quality"] <= hi


@pytest.mark.parametrize(("args", "needle"), [
    (["a", "b", "c"], "one source, or two"),
    (["a", "--ci", "1.5"], "between 0 and 1"),
    (["a", "--replicates", "1"], "at least 2"),
])
def test_eval_bad_arguments(args: list[str], needle: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture) -> None:
    try:
        code = main(["eval", *[str(tmp_path / a) if a in "abc" else a for a in args]])
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
