"""Quality during training (--eval-every, best checkpoint, exact resume), gankit eval, 2-D runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gankit
from gankit.cli import main
from gankit.config import resolve
from gankit.metrics import evaluate
from gankit.training import checkpoint
from tests.test_trainer import TINY, assert_same, final_state, metrics

EVAL = {"every": 3, "num": 40}
QUALITY = ("fd", "kid", "precision", "recall", "density", "coverage", "is", "classes")


def evals(run: Path) -> list[dict]:
    return [r for r in metrics(run) if "fd" in r or "modes" in r]


@pytest.fixture(autouse=True)
def _small_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "REFERENCE_MAX", 500)  # the machine running tests is shared


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evalrun") / "run"
    cfg = resolve("classic", values={"train": {**TINY, "steps": 7}, "eval": EVAL})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate, "REFERENCE_MAX", 500)
        gankit.train(cfg, out=out, progress=False)
    return out


def test_metrics_logged_and_best_kept(digits_run: Path) -> None:
    records = evals(digits_run)
    assert [r["step"] for r in records] == [3, 6, 7]
    for r in records:
        assert set(QUALITY) <= set(r) and isinstance(r["classes"], int)
        assert all(np.isfinite(r[k]) for k in QUALITY)
    best = min(records, key=lambda r: r["fd"])
    assert [r["step"] for r in records if r.get("best")][-1] == best["step"]
    steps = checkpoint.list_steps(digits_run / "checkpoints" / "best")
    assert steps == [best["step"]]
    assert checkpoint.list_steps(digits_run / "checkpoints") == [6, 7]  # latest kept as before
    assert gankit.load_run(digits_run).step == 7


def test_exact_resume_with_evaluation(tmp_path: Path) -> None:
    cfg = resolve("classic", values={"train": {**TINY, "steps": 8}, "eval": EVAL})
    gankit.train(cfg, out=tmp_path / "a", progress=False)
    gankit.train(cfg.replace(train={"steps": 4}), out=tmp_path / "b", progress=False)
    gankit.train(gankit.resume_config(tmp_path / "b", 8), out=tmp_path / "b", resume=True,
                 progress=False)
    assert_same(final_state(tmp_path / "a"), final_state(tmp_path / "b"))
    ea, eb = evals(tmp_path / "a"), evals(tmp_path / "b")
    assert [r["step"] for r in eb] == [3, 4, 6, 8] and [r["step"] for r in ea] == [3, 6, 8]
    for ra in ea:  # the same generator state gives the same scores
        rb = next(r for r in eb if r["step"] == ra["step"])
        assert rb["fd"] == ra["fd"] and rb["precision"] == ra["precision"]


def test_eval_cli_on_run_and_file(digits_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(digits_run), "--num", "30", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    scores = json.loads(out[0])
    assert scores["step"] == 7 and scores["num"] == 30 and scores["features"] == "digits"
    assert set(QUALITY) <= set(scores)

    npz = tmp_path / "s.npz"
    assert main(["sample", str(digits_run), "--num", "30", "--out", str(npz)]) == 0
    capsys.readouterr()
    assert main(["eval", str(npz)]) == 0
    text = capsys.readouterr().out
    assert "fd" in text and "precision" in text and "digits" in text
    with open(npz, "rb") as f, np.load(f) as z:
        assert z["images"].shape == (30, 28, 28, 1)


def test_eval_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def one_error(args: list[str], needle: str) -> None:
        assert main(args) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith("gankit: error: ") and needle in err[0]

    one_error(["eval", str(tmp_path / "missing.npz")], "missing.npz")
    np.savez(tmp_path / "p.npz", samples=np.zeros((20, 2), np.float32))
    one_error(["eval", str(tmp_path / "p.npz")], "--data")
    one_error(["eval", str(tmp_path / "p.npz"), "--data", "digits"], "shape")
    np.savez(tmp_path / "i.npz", images=np.zeros((20, 28, 28), np.uint8))
    one_error(["eval", str(tmp_path / "i.npz"), "--extractor", "nope"], "unknown feature extractor")
    one_error(["train", "--eval-every", "2", "--set", "eval.main=nope"], "eval.main")


def test_ring8_run_sample_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "ring"
    assert main(["train", "--data", "ring8", "--steps", "6", "--out", str(run), "--quiet",
                 "--eval-every", "3", "--set", "train.threads=1", "--set", "eval.num=100",
                 "--set", "train.grid_size=50", "--set", "train.sample_every=3"]) == 0
    assert gankit.load_run(run).config.preset == "mixture"
    records = evals(run)
    assert [r["step"] for r in records] == [3, 6]
    assert {"high_quality", "modes", "mode_kl"} <= set(records[0])
    assert checkpoint.list_steps(run / "checkpoints" / "best")
    with Image.open(run / "samples" / "step-000000006.png") as im:
        assert im.size == (320, 320) and im.mode == "RGB"

    assert main(["sample", str(run), "--num", "64", "--out", str(tmp_path / "p.npz")]) == 0
    assert main(["sample", str(run), "--num", "64", "--out", str(tmp_path / "p.png")]) == 0
    with open(tmp_path / "p.npz", "rb") as f, np.load(f) as z:
        assert z.files == ["samples"]
        assert z["samples"].dtype == np.float32 and z["samples"].shape == (64, 2)
    with Image.open(tmp_path / "p.png") as im:
        assert im.format == "PNG" and np.asarray(im).std() > 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "p.npz"), "--data", "ring8", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["num"] == 64 and 0 <= scores["modes"] <= 8
    assert main(["eval", str(run), "--json", "--num", "50"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == "ring8"


def test_class_scores_measure_diversity_within_each_class() -> None:
    """Real digits under their own labels are diverse in every class; one image per class, repeated,
    is the right class but has no diversity; swapped labels miss the class."""
    from gankit.evaluation import class_scores

    data = gankit.load_data(resolve("classic").data)
    ref = evaluate.reference(data)
    x, y = data.images[:600], data.labels[:600].numpy()
    real = class_scores(x, y, ref)
    assert real["class_hit"] > 0.95
    assert real["class_recall_min"] > 0.4 and real["class_coverage_min"] > 0.4, real
    first = {int(k): int(np.flatnonzero(y == k)[0]) for k in np.unique(y)}
    same = x[[first[int(k)] for k in y]]
    dull = class_scores(same, y, ref)
    assert dull["class_hit"] > 0.95
    # One point per class lies in a few of that class's real 5-NN balls (~50 reals a class here).
    assert dull["class_recall_min"] < 0.05 and dull["class_coverage_min"] < 0.2, dull
    assert class_scores(x, (y + 1) % 10, ref)["class_hit"] < 0.2


def test_eval_of_a_conditional_run_reports_class_scores(tmp_path: Path) -> None:
    cfg = resolve("digits", values={"train": {**TINY, "steps": 2}})
    gankit.train(cfg, out=tmp_path / "run", progress=False)
    from gankit.evaluation import evaluate_source

    scores = evaluate_source(tmp_path / "run", num=200)
    assert {"class_hit", "class_recall_min", "class_coverage_min"} <= set(scores)
    assert 0 <= scores["class_recall_worst"] < 10 and 0.0 <= scores["class_hit"] <= 1.0
