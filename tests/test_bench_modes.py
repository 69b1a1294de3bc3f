"""benchmarks/modes.py, fast: one seed of ring8 with few steps and loose bars; the stacked-digits
path in seconds; table and skips."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gankit.data.digits import load_digits
from gankit.data.stacked import stack_digits
from gankit.metrics.modes import stacked_scores

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_modes", ROOT / "benchmarks" / "modes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_modes"] = module
    spec.loader.exec_module(module)
    return module


def test_ring8_fast(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    r = bench.run_mixture("ring8", seed=0, steps=bench.FAST_STEPS)  # measured: 8, 98.8%, 0.0027
    # Unconditioned (pack 2) it scored 60.6% here; self-conditioned, modes keep most of their width.
    assert r["modes"] == 8 and r["high_quality"] >= 0.90 and r["mode_kl"] <= 0.02
    assert 0.8 <= r["spread"] <= 1.05  # measured 0.95; the mixture itself: 0.97
    assert bench.print_table("ring8", [r], fast=True)
    out = capsys.readouterr().out
    assert "**gankit** (1 seed)" in out and "targets MET" in out and "PacGAN4 | 7.8 | 95.9" in out
    assert "Lin et al. 2018, Table 1" in out and "Elfeki et al. 2019" in out


def test_mean_and_standard_error(bench: ModuleType) -> None:
    assert bench.mean_se([1.0]) == (1.0, 0.0)
    mean, se = bench.mean_se([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and se == pytest.approx(1.2909944 / 2)


def test_stacked_without_its_preset_is_skipped(bench: ModuleType,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--no-mixtures", "--stacked", "--stacked-preset", "no-such-preset"])
    assert code == 0 and "stacked-digits skipped: no preset 'no-such-preset'" in \
        capsys.readouterr().out


def test_overrides_reach_the_2d_runs(bench: ModuleType) -> None:
    trainer, cfg, _ = bench._train("ring8", None, 0, 2, ("model.activation=leaky_relu",))
    assert cfg.preset == "mixture" and cfg.model.activation == "leaky_relu" and trainer.step == 2


def test_stacked_fast(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """The stacked-digits path end to end in seconds: the automatic preset (stacked) is built,
    trains one step and is scored on 2,000 samples; that untrained G covers far fewer modes than
    real stacked digits scored the same way. The full run (45,000 steps, 26,000 samples, ~30
    minutes) is in BENCHMARKS.md."""
    assert bench.resolve(values={"data": {"source": bench.STACKED}}).preset == "stacked"
    n = bench.STACKED_FAST_SAMPLES
    r = bench.run_stacked(None, seed=0, steps=1, samples=n)
    real = stacked_scores(stack_digits(load_digits(), n, seed=3).images)
    # Measured (2,000 samples): untrained G 64 modes, KL 4.89; real stacked digits 866 modes, KL
    # 0.29 (2,000 draws from 1,000 modes hit ~865 of them, and leave that KL, by chance alone).
    assert real["modes"] >= 0.95 * 1000 * (1 - math.exp(-n / 1000)) and real["mode_kl"] < 0.6
    assert r["modes"] < real["modes"] / 4 and r["mode_kl"] > real["mode_kl"] + 2
    assert len(r["channel_kl"]) == 3 and min(r["channel_kl"]) > 0.5  # each channel collapsed
    assert not bench.print_table(bench.STACKED, [r], fast=False)
    out = capsys.readouterr().out
    assert "target: 1000 modes" in out and "targets MISSED" in out
    assert "PacDCGAN2 | 1000 | — | 0.06" in out and "DCGAN | 99 | — | 3.4" in out
