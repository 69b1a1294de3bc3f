"""benchmarks/modes.py, fast: one seed of ring8 with few steps and loose bars; table and skips."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
    r = bench.run_mixture("ring8", seed=0, steps=bench.FAST_STEPS)  # measured: 8, 60.6%, 0.016
    assert r["modes"] == 8 and r["high_quality"] >= 0.50 and r["mode_kl"] <= 0.03
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
