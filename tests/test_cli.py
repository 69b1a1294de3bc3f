"""The ``gankit`` command: end to end in subprocesses, and every user error as one clean line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.cli import main
from gankit.run import load_run
from gankit.training import checkpoint

# Small, single-threaded runs: the machine running the tests is shared.
TINY = ["--batch-size", "16", "--set", "train.log_every=2", "--set", "train.sample_every=3",
        "--set", "train.checkpoint_every=3", "--set", "train.grid_size=9",
        "--set", "train.threads=1", "--set", "train.precision=fp32"]  # auto: bf16 on bf16 CPUs
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def gankit(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=120)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with the contents of its files."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


# -- end to end, in subprocesses ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    res = gankit("train", "--preset", "classic", "--steps", "6", "--out", run, *TINY)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert "finished at step 6" in res.stderr
    assert "Traceback" not in res.stderr
    return run


def test_train_end_to_end(trained: Path) -> None:
    assert (trained / "config.toml").is_file()
    assert checkpoint.list_steps(trained / "checkpoints") == [3, 6]
    assert sorted(p.name for p in (trained / "samples").iterdir()) == [
        "step-000000003.png", "step-000000006.png"]
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    run = load_run(trained)
    assert run.step == 6 and run.config.train.batch_size == 16 and run.config.train.threads == 1


def test_sample_npz(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.npz"
    res = gankit("sample", trained, "--num", "10", "--seed", "4", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "wrote 10 samples from step 6" in res.stderr
    with np.load(out, allow_pickle=False) as z:
        assert list(z.keys()) == ["images"]
        images = z["images"]
    assert images.dtype == np.uint8 and images.shape == (10, 28, 28, 1)
    assert images.std() > 0
    # The same command in-process gives the same images; the library agrees too.
    again = tmp_path / "again.npz"
    assert main(["sample", str(trained), "--num", "10", "--seed", "4", "--out", str(again)]) == 0
    with np.load(again) as z:
        np.testing.assert_array_equal(z["images"], images)
    np.testing.assert_array_equal(load_run(trained).sample(10, seed=4), images)
    other = tmp_path / "other.npz"
    assert main(["sample", str(trained), "--num", "10", "--seed", "5", "--out", str(other)]) == 0
    with np.load(other) as z:
        assert not np.array_equal(z["images"], images)
    raw = tmp_path / "raw.npz"
    assert main(["sample", str(trained), "--num", "10", "--seed", "4", "--no-ema",
                 "--out", str(raw)]) == 0
    with np.load(raw) as z:
        np.testing.assert_array_equal(z["images"], load_run(trained, ema=False).sample(10, 4))
        assert not np.array_equal(z["images"], images)
    capsys.readouterr()


def test_sample_png(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    res = gankit("sample", trained, "--num", "9", "--out", out)
    assert res.returncode == 0, res.stderr
    with Image.open(out) as im:
        im.load()
        assert im.format == "PNG" and im.mode == "L"
        assert im.size == (3 * 30 + 2, 3 * 30 + 2)  # 3x3 tiles of 28px with 2px padding
        grid = np.asarray(im)
    first = load_run(trained).sample(9, seed=0)[0, :, :, 0]
    np.testing.assert_array_equal(grid[2:30, 2:30], first)


def test_help() -> None:
    res = gankit("--help")
    assert res.returncode == 0 and res.stderr == ""
    for word in ("train", "sample", "presets"):
        assert word in res.stdout


def test_presets_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out, err = capsys.readouterr()
    assert {"classic", "seed"} <= set(out.splitlines()) and err == ""


def test_subcommand_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "--set" in out


def test_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--steps", "4", "--out", str(run), "--quiet", *TINY]) == 0
    assert checkpoint.latest(run / "checkpoints")["step"] == 4
    assert main(["train", "--resume", "--out", str(run), "--steps", "8", "--quiet"]) == 0
    assert checkpoint.latest(run / "checkpoints")["step"] == 8
    assert load_run(run).step == 8 and load_run(run).config.train.steps == 8
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8]
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # --quiet


def test_quiet_off_reports_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--steps", "2", "--out", str(run), *TINY]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "training preset 'digits' on 'digits'" in err and "finished at step 2" in err
    # the start line says which step runs: the class-conditional default takes the fused one
    assert ", fused step" in err.splitlines()[0]


def test_start_line_names_the_fused_or_generic_step_and_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "classic", "--steps", "1", "--out", str(tmp_path / "a"),
                 *TINY]) == 0
    assert ", fused step" in capsys.readouterr().err.splitlines()[0]
    assert main(["train", "--preset", "classic", "--steps", "1", "--out", str(tmp_path / "b"),
                 *TINY, "--set", "reg.gp_weight=1"]) == 0
    assert ", generic (a gradient penalty) step" in capsys.readouterr().err.splitlines()[0]


# -- user errors: exit code 2 and exactly one line ----------------------------------------------


def assert_one_error_line(err: str, *needles: str) -> None:
    lines = err.splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{err}"
    assert lines[0].startswith("gankit: error: "), err
    for needle in needles:
        assert needle in lines[0], err


def expect_error(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    """A mistake reported by gankit itself: main() returns 2."""
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, *needles)


def expect_usage_error(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    """A mistake caught by argparse: SystemExit(2)."""
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, *needles)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out is runs/<timestamp> under the current folder


def test_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    expect_usage_error(capsys, ["train", "--bogus"], "--bogus")
    expect_usage_error(capsys, ["frobnicate"])
    expect_usage_error(capsys, [])


def test_steps_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expect_usage_error(capsys, ["train", "--steps", "0"], "--steps", "at least 1")
    assert not (tmp_path / "runs").exists()


def test_steps_not_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    expect_usage_error(capsys, ["train", "--steps", "abc"], "--steps", "'abc'")


def test_unknown_preset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expect_error(capsys, ["train", "--preset", "nope"], "unknown preset 'nope'")
    assert list(tmp_path.iterdir()) == []


def test_invalid_set_value(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expect_error(capsys, ["train", "--set", "train.lr_g=-1"], "train.lr_g")
    expect_error(capsys, ["train", "--set", "train.nope=1"], "train.nope")
    expect_error(capsys, ["train", "--set", "model.activation=swish"], "model.activation")
    assert list(tmp_path.iterdir()) == []


def test_malformed_set(capsys: pytest.CaptureFixture[str]) -> None:
    expect_error(capsys, ["train", "--set", "trainlr"], "section.key=value")
    expect_error(capsys, ["train", "--set", "train.lr_g"], "section.key=value")


def test_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    expect_error(capsys, ["train", "--config", "missing.toml"], "missing.toml")


def test_invalid_toml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[train\nsteps = 3\n")
    expect_error(capsys, ["train", "--config", "bad.toml"], "bad.toml", "TOML")


def test_missing_data_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expect_error(capsys, ["train", "--data", "missing.npy"], "missing.npy")
    expect_error(capsys, ["train", "--data", "no/such/folder"], "no/such/folder")
    assert not (tmp_path / "runs").exists()  # nothing created


def test_npy_wrong_shape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros((5, 8), dtype=np.uint8))
    expect_error(capsys, ["train", "--data", "flat.npy", "--out", "run"], "flat.npy")
    assert not (tmp_path / "run").exists()


def test_out_not_a_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("precious")
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = snapshot(out)
    expect_error(capsys, ["train", "--out", "mine", "--steps", "2", *TINY], "mine",
                 "not a gankit run")
    assert snapshot(out) == before


def test_out_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    expect_error(capsys, ["train", "--out", "file", "--steps", "2", *TINY], "not a folder")
    assert (tmp_path / "file").read_text() == "x"


def test_existing_run_without_resume(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "--steps", "2", "--out", "run", "--quiet", *TINY]) == 0
    capsys.readouterr()
    before = snapshot(tmp_path / "run")
    expect_error(capsys, ["train", "--steps", "4", "--out", "run", *TINY], "already holds a run",
                 "--resume")
    assert snapshot(tmp_path / "run") == before


def test_resume_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    expect_error(capsys, ["train", "--resume", "--out", "plain", "--steps", "3"], "--resume",
                 "plain")
    expect_error(capsys, ["train", "--resume", "--out", "missing"], "--resume")
    expect_error(capsys, ["train", "--resume", "--steps", "3"], "--out")
    assert main(["train", "--steps", "2", "--out", "run", "--quiet", *TINY]) == 0
    capsys.readouterr()
    expect_error(capsys, ["train", "--resume", "--out", "run", "--batch-size", "8"],
                 "train.batch_size differs", "has 16", "gives 8")
    expect_error(capsys, ["train", "--resume", "--out", "run", "--set", "train.lr_g=0.1"],
                 "train.lr_g differs", "has 0.0008", "gives 0.1")
    expect_error(capsys, ["train", "--resume", "--out", "run", "--preset", "seed"],
                 "preset differs", '"digits"', '"seed"')
    expect_error(capsys, ["train", "--resume", "--out", "run", "--data", "ring8"],
                 "data.source differs", '"digits"', '"ring8"')
    expect_error(capsys, ["train", "--resume", "--out", "run", "--set", "train.nope=1"],
                 "train.nope")
    assert checkpoint.latest(tmp_path / "run" / "checkpoints")["step"] == 2


def test_resume_as_typed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The first command again with --resume (and more --steps) continues the run, bitwise as an
    unbroken run; a repeated value that differs is refused naming the key and both values."""
    (tmp_path / "my.toml").write_text("[train]\nlr_d = 3e-4\n")
    typed = ["--preset", "classic", "--data", "digits", "--seed", "1", "--eval-every", "0",
             "--config", "my.toml", "--set", "train.lr_g=2e-4", "--quiet", *TINY]
    assert main(["train", *typed, "--steps", "3", "--out", "run"]) == 0
    # The example, with the rest of the first command.
    assert main(["train", "--preset", "classic", "--data", "digits", "--steps", "6", "--seed", "1",
                 "--out", "run", "--resume", *typed[6:]]) == 0
    assert main(["train", *typed, "--steps", "6", "--out", "whole"]) == 0
    resumed, whole = load_run(tmp_path / "run"), load_run(tmp_path / "whole")
    assert resumed.step == whole.step == 6 and resumed.config == whole.config
    assert resumed.config.train.lr_d == 3e-4 and resumed.config.train.seed == 1
    np.testing.assert_array_equal(resumed.sample(4, seed=0), whole.sample(4, seed=0))
    capsys.readouterr()
    expect_error(capsys, ["train", "--resume", "--out", "run", "--seed", "2", "--steps", "9"],
                 "train.seed differs", "has 1", "gives 2", "--steps, --devices")
    (tmp_path / "other.toml").write_text("[model]\ng_hidden = [64]\n")
    expect_error(capsys, ["train", "--resume", "--out", "run", "--config", "other.toml"],
                 "model.g_hidden differs", "[128, 128]", "[64]")
    assert load_run(tmp_path / "run").step == 6


def test_sample_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expect_error(capsys, ["sample", "missing", "--num", "2", "--out", "x.npz"], "missing",
                 "not found")
    (tmp_path / "plain").mkdir()
    expect_error(capsys, ["sample", "plain", "--num", "2", "--out", "x.npz"], "plain")
    expect_error(capsys, ["sample", "missing", "--num", "2", "--out", "x.jpg"], ".npz or .png",
                 "x.jpg")
    expect_error(capsys, ["sample", "missing", "--num", "2", "--out", "x"], ".npz or .png")
    expect_error(capsys, ["sample", "missing", "--num", "2", "--out", "nodir/x.npz"], "nodir",
                 "does not exist")
    assert list(tmp_path.iterdir()) == [tmp_path / "plain"]


def test_sample_without_num(capsys: pytest.CaptureFixture[str]) -> None:
    # --num is optional only beside --between (text walks): refused in one line, exit 2
    expect_error(capsys, ["sample", "missing", "--out", "x.npz"], "--num")


def test_sample_errors_need_no_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Bad --out is refused before the run is even opened: no files are written.
    assert main(["train", "--steps", "2", "--out", "run", "--quiet", *TINY]) == 0
    capsys.readouterr()
    expect_error(capsys, ["sample", "run", "--num", "2", "--out", "x.gif"], "x.gif")
    expect_error(capsys, ["sample", "run", "--num", "2", "--out", "no/x.png"], "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_out_parent_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # An --out that cannot be created (works as root, unlike the chmod test below).
    (tmp_path / "file").write_text("x")
    expect_error(capsys, ["train", "--steps", "2", "--out", "file/run", *TINY], "file/run")
    assert (tmp_path / "file").read_text() == "x"


def test_unwritable_out_parent(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as a user (root) whom chmod does not stop from writing")
        expect_error(capsys, ["train", "--steps", "2", "--out", str(parent / "run"), *TINY],
                     "ro")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(stat.S_IRWXU)


def test_a_reader_that_goes_away_ends_quietly() -> None:
    # `gankit presets | head -0`: the pipe is closed before gankit writes to it.
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err


def test_python_dash_m_gankit_cli_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "gankit.cli", "presets"], capture_output=True,
                          text=True, timeout=120, env=ENV)
    assert done.returncode == 0 and "digits" in done.stdout, done.stderr
    bad = subprocess.run([sys.executable, "-m", "gankit.cli", "train", "--bogus"],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert bad.returncode == 2 and "--bogus" in bad.stderr
