"""The benchmark scripts still run (a handful of steps each) and print their tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_speed_prints_the_table() -> None:
    out = run("speed.py", "--cases", "seed:16", "dcgan:8", "wgan-gp:8", "--repeats", "1",
              "--seconds", "0.05",
              "--threads", "1", "--set", "model.base_channels=4")
    assert "matmul peak" in out
    row = next(line for line in out.splitlines() if line.startswith("seed:16"))
    ratio = float(next(cell for cell in row.split() if cell.endswith("x")).rstrip("x"))
    assert 0.05 < ratio < 50
    assert "fused" in row.split()  # the step seed's trainer runs
    # % of the fp32 peak, and of the peak of the type its products run in: fp32 for `seed`
    fp32_peak, own_peak = [c for c in row.split() if c.endswith("%")]
    assert "fp32" in row.split() and fp32_peak == own_peak
    # The JAX column: a time and a ratio, or the reason it is skipped.
    assert "JAX ms" in out
    assert "JAX column skipped" in out or len([c for c in row.split() if c.endswith("x")]) == 2
    dcgan = next(line for line in out.splitlines() if line.startswith("dcgan:8"))
    assert "generic" in dcgan.split() and "n/a" in dcgan
    # a recipe the textbook loop does not write (5 D steps, a gradient penalty) is skipped
    assert "wgan-gp:8    skipped: the textbook loop takes one D step, not 5" in out


def test_time_to_quality_prints_curves() -> None:
    out = run("time_to_quality.py", "--seconds", "0.6", "--every", "0.3", "--seeds", "0",
              "--num", "200", "--runs", "gankit classic", "reference (textbook seed model)")
    assert "gankit classic seed 0:" in out and "seconds to FD <=" in out
    row = [line for line in out.splitlines() if line.startswith("gankit classic ")][-1]
    assert len(row.split()) == 2 + 3 + 4  # name, FD <= 5 / 3 / 2, final FD, P, R, C


def test_classic_ablation_prints_rows() -> None:
    out = run("classic_ablation.py", "--steps", "3", "--seeds", "0", "--only", "seed (textbook)")
    assert "real-vs-real" in out and "seed (textbook)" in out


def test_gpu_dcgan_runs_or_says_why_not() -> None:
    out = run("gpu_dcgan.py", "--seconds", "0.2", "--repeats", "1", "--warmup", "1",
              "--set", "model.base_channels=8")
    assert "no CUDA device" in out or ("fp16" in out and "images/s" in out)


def test_textbook_script_trains_and_saves_samples(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    printed = run("textbook_script.py", "--steps", "3", "--out", str(out))
    assert "step 0: loss_D" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_digits_ablation_prints_rows() -> None:
    out = run("digits_ablation.py", "--at", "2", "3", "--num", "100", "--only",
              "conditional classic")
    rows = [line for line in out.splitlines() if line.startswith("conditional classic")]
    assert [line.split()[3] for line in rows] == ["2", "3"]  # seed, step after the name


def test_text_benchmark_tables_rows_of_any_models(tmp_path: Path) -> None:
    import json

    def row(model: str, seed: int, temp: float | None, validity: float) -> dict:
        return {"dataset": "smiles", "seed": seed, "model": model, "temperature": temp,
                "nll": 0.7, "rev_nll": 0.9, "bleu4": 0.99, "self_bleu4": 0.98,
                "uniqueness": 1.0, "novelty": 0.99, "validity": validity, "examples": "CCO CCN"}

    rows = [row("real", s, None, 1.0) for s in (0, 1)]
    rows += [row("latent", s, t, v) for s, v in ((0, 0.5), (1, 0.7)) for t in (0.0, 1.0)]
    (tmp_path / "rows.json").write_text(json.dumps(rows))  # a --models latent run: no gan, mle
    out = run("text.py", "--from-json", str(tmp_path / "rows.json"),
              "--png", str(tmp_path / "curves.png"))
    means = [line for line in out.splitlines() if line.startswith("| smiles | latent | 1 | 2 |")]
    assert len(means) == 1 and "0.600 ± 0.100" in means[0], out  # validity over the 2 seeds
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_table_step_prints_fused_against_generic() -> None:
    out = run("table_step.py", "--tables", "adult", "--repeats", "1", "--seconds", "0.05")
    assert "matmul peak" in out and "CPU capability" in out
    row = next(line for line in out.splitlines() if line.startswith("| adult"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    flops, generic, fused = (float(c.replace(",", "")) for c in cells[1:4])
    assert flops > 1e2 and generic > 0 and fused > 0  # MFLOP of a step of Adult's networks
    assert 0.2 < float(cells[4].rstrip("x")) < 20
