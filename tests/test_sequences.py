"""Time series: the readers and windowing, the codec and its masks, the metrics against hand
computations and brute force, training end to end, exact resume, and every bad input."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gankit
from gankit import kinds
from gankit.cli import main as cli_main
from gankit.config import resolve
from gankit.errors import DataError
from gankit.kinds.sequences import SequenceKind, fit_codec
from gankit.kinds.sequences.codec import SequenceCodec
from gankit.kinds.sequences.files import builtin_series, read_series, sines, windows
from gankit.metrics import rocket
from gankit.metrics import sequences as ms
from gankit.run import load_run, prepare
from gankit.training import checkpoint

FAST = ["train.steps=20", "train.batch_size=32", "train.log_every=10", "train.sample_every=10",
        "train.checkpoint_every=10", "model.g_hidden=[32, 32]", "model.d_hidden=[32, 32]",
        "model.latent_dim=8", "train.threads=1"]


def walk_npz(path: Path, n: int = 60, t: int = 12, labelled: bool = False,
             variable: bool = False, seed: int = 0) -> Path:
    """Random walks (N, T, 2); class 1 drifts upward; lengths 6..T when ``variable``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    steps = rng.normal(0, 1, (n, t, 2)) + labels[:, None, None] * 0.5
    arrays = {"series": np.cumsum(steps, axis=1)}
    if labelled:
        arrays["labels"] = np.where(labels == 1, "up", "flat")
    if variable:
        arrays["lengths"] = rng.integers(6, t + 1, n)
    np.savez(path, **arrays)
    return path


def cfg_for(source: Path | str, *extra: str) -> gankit.Config:
    return resolve(None, overrides=[f"data.source={source}", *FAST, *extra])


def gankit_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


# -- data ----------------------------------------------------------------------------------------

def test_sines_are_timegans() -> None:
    x = sines(1000, 24, 5, seed=0)
    assert x.shape == (1000, 24, 5) and 0.5 <= x.min() and x.max() <= 1.0
    # every channel is sin(f t + p) mapped to [0, 1], f and p in [0, 0.1]
    s = x * 2 - 1
    phase = np.arcsin(s[:, 0])
    freq = np.arcsin(s[:, 1]) - phase
    assert phase.min() >= 0 and phase.max() <= 0.1 and freq.min() >= 0 and freq.max() <= 0.1
    np.testing.assert_allclose(np.sin(freq[:, None] * np.arange(24)[:, None] + phase[:, None]),
                               s, atol=1e-9)


def test_windows_as_timegan_cuts_them() -> None:
    rows = np.arange(10.0)[:, None] * np.array([[1.0, -1.0]])
    w = windows(rows, 4, 1)
    assert w.shape == (6, 4, 2)  # range(0, 10 - 4): TimeGAN leaves out the last start
    np.testing.assert_array_equal(w[2, :, 0], [2, 3, 4, 5])
    assert windows(rows, 4, 3).shape == (2, 4, 2)
    with pytest.raises(DataError, match="window"):
        windows(rows, 10, 1)


def test_stocks_are_reversed_and_scaled_over_the_whole_series() -> None:
    raw = pd.read_csv(io.BytesIO(gzip.decompress(
        resources.files("gankit").joinpath("data", "stocks.csv.gz").read_bytes())))
    assert raw.shape == (3685, 6)
    cfg = cfg_for("stocks").data
    s = builtin_series("stocks", cfg)
    assert s.values.shape == (3685 - 24, 24, 6)
    forward = raw.to_numpy()[::-1]
    np.testing.assert_allclose(s.values[0], forward[:24])
    np.testing.assert_allclose(s.low, forward.min(axis=0))
    plain = SequenceKind().load(cfg_for("stocks", "data.marginals=minmax", "data.basis=0",
                                        "model.output=tanh").data)
    assert plain.samples.min() >= 0 and plain.samples.max() <= 1 and plain.shape == (24 * 6,)
    data = SequenceKind().load(cfg)  # the preset's: normal scores on 99.9% of the variance
    assert data.shape[0] < 24 * 6
    values, _ = data.codec.decode(data.samples)
    scaled = data.codec.scale(s.values)
    assert values.min() >= 0 and values.max() <= 1
    assert np.abs(values - scaled).mean() < 0.01


def test_npz_with_labels_and_lengths(tmp_path: Path) -> None:
    path = walk_npz(tmp_path / "w.npz", labelled=True, variable=True)
    cfg = cfg_for(path)
    assert cfg.preset == "timeseries" and isinstance(kinds.of_source(cfg.data), SequenceKind)
    data = kinds.of_source(cfg.data).load(cfg.data)
    assert data.codec.variable and data.codec.classes == ("flat", "up")
    assert len(data) == 48 and len(data.frames.labels) == 12  # a fifth held out
    assert data.num_classes == 2
    raw = np.load(path)
    s = read_series(cfg.data)
    assert (s.lengths == raw["lengths"]).all()
    # padding is zero past each length and the mask cell says where a series ends
    flat = data.codec.basis.inverse(data.samples)  # the preset's rows: basis coordinates
    steps = flat.reshape(len(data), 12, 3)  # to the 0.1% of the variance the basis drops
    x, lengths = data.codec.decode(data.samples)
    assert (steps[:, :, 2].sum(1).round().numpy() == lengths).all()


def test_long_format_is_ordered_by_time_within_each_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for pid in ("a", "b", "c"):
        n = {"a": 5, "b": 3, "c": 4}[pid]
        for t in rng.permutation(n):
            rows.append({"patient": pid, "t": int(t), "hr": 60 + 10 * t, "bp": 120 - t,
                         "sex": "F" if pid != "b" else "M"})
    path = tmp_path / "vitals.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    cfg = cfg_for(path, "data.id=patient", "data.time=t", "data.target=sex")
    assert cfg.preset == "timeseries"
    s = read_series(cfg.data)
    assert s.values.shape == (3, 5, 2) and list(s.lengths) == [5, 3, 4]
    np.testing.assert_array_equal(s.values[0, :, 0], [60, 70, 80, 90, 100])
    np.testing.assert_array_equal(s.values[1, :, 1], [120, 119, 118, 0, 0])
    assert s.channels == ("hr", "bp") and s.classes == ("F", "M")
    assert list(s.labels) == [0, 1, 0]


def test_one_long_series_is_windowed(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    day = pd.date_range("2024-01-01", periods=50, freq="D")
    df = pd.DataFrame({"day": day.astype(str), "p": np.sin(np.arange(50) / 5.0),
                       "v": np.arange(50.0)}).iloc[::-1]  # newest first: ordered by data.time
    df.to_csv(path, index=False)
    s = read_series(cfg_for(path, "data.window=10", "data.time=day", "data.stride=5").data)
    assert s.values.shape == (8, 10, 2)
    np.testing.assert_array_equal(s.values[1, :, 1], np.arange(5.0, 15.0))


def test_codec_round_trip_and_json() -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(-3, 7, (20, 6, 3))
    lengths = rng.integers(2, 7, 20)
    values[np.arange(6)[None, :] >= lengths[:, None]] = 0
    codec = SequenceCodec(6, ("a", "b", "c"), (-3.0,) * 3, (7.0,) * 3, True, ("x", "y"))
    rows = codec.encode(codec.scale(values), lengths)
    assert rows.shape == (20, 6 * 4)
    scaled, back = codec.decode(rows)
    assert (back == lengths).all()
    keep = np.arange(6)[None, :] < lengths[:, None]
    np.testing.assert_allclose(codec.unscale(scaled)[keep], values[keep], atol=1e-5)
    assert SequenceCodec.from_json(codec.to_json()) == codec
    with pytest.raises(DataError):
        SequenceCodec.from_json({**codec.to_json(), "low": [0, 0, 9]})
    # a generated row ends at its first step whose length cell is below one half
    row = torch.zeros(1, 6 * 4)
    row[0, [3, 7, 15]] = 1.0
    assert list(codec.decode(row)[1]) == [2]


# -- metrics -------------------------------------------------------------------------------------

def test_ks_matches_scipy() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 300), rng.normal(0.3, 1.2, 200)
    assert ms.ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    x, y = a[:240].reshape(20, 12, 1), b[:120].reshape(10, 12, 1)
    assert ms.marginal_ks(x, y)[0] == pytest.approx(ks_2samp(a[:240], b[:120]).statistic)


def test_autocorrelation_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (4, 7, 2))
    lengths = np.array([7, 5, 3, 7])
    acf = ms.autocorrelation(x, 3, lengths)
    for c in range(2):
        vals = [x[i, t, c] for i in range(4) for t in range(lengths[i])]
        mean, var = np.mean(vals), np.var(vals)
        for k in (1, 2, 3):
            pairs = [(x[i, t, c] - mean) * (x[i, t + k, c] - mean)
                     for i in range(4) for t in range(lengths[i] - k)]
            assert acf[k - 1, c] == pytest.approx(np.mean(pairs) / var)


def test_correlation_and_lengths_by_hand() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (5, 8, 3))
    corr = ms.channel_correlation(x)
    np.testing.assert_allclose(corr, np.corrcoef(x.reshape(-1, 3).T), atol=1e-12)
    assert ms.correlation_gap(x, x) == 0.0
    # histograms {2: 1/2, 3: 1/2} and {3: 1/4, 4: 3/4}: TV = (1/2 + 1/4 + 3/4) / 2
    assert ms.length_distance(np.array([2, 3]), np.array([3, 4, 4, 4]), 4) == pytest.approx(0.75)


def test_discriminative_score_tells_noise_from_sines_and_not_sines_from_sines() -> None:
    real = sines(400, 12, 2, seed=0)
    same = ms.discriminative_score(real, sines(400, 12, 2, seed=1), seed=0, iterations=300)
    noise = ms.discriminative_score(real, np.random.default_rng(0).uniform(0, 1, real.shape),
                                    seed=0, iterations=1000)
    assert same < 0.1 and noise > 0.3
    # one channel: TimeGAN's hidden size int(1 / 2) = 0 cannot train; ours is 1
    assert ms.hidden_size(1) == 1
    one = ms.discriminative_score(real[:, :, :1], np.zeros_like(real[:, :, :1]), seed=0,
                                  iterations=300)
    assert one > 0.4


def test_predictive_score_floor_is_below_noise() -> None:
    real = sines(300, 12, 3, seed=0)
    floor = ms.predictive_score(real, real, seed=0, iterations=400)
    noise = ms.predictive_score(real, np.random.default_rng(0).uniform(0, 1, real.shape),
                                seed=0, iterations=400)
    assert floor < noise and floor < 0.15
    assert ms.predictive_score(real[:, :, :1], real[:, :, :1], seed=0, iterations=50) < 1


def test_classifier_accuracy_separates_classes_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = rng.uniform(0, 0.5, (200, 8, 2)) + y[:, None, None] * 0.5
    assert ms.classifier_accuracy(x[:150], y[:150], x[150:], y[150:], 0, kernels=200) > 0.9
    shuffled = rng.permutation(y[:150])  # labels unrelated to the series: chance
    assert ms.classifier_accuracy(x[:150], shuffled, x[150:], y[150:], 0, kernels=200) < 0.75


def test_rocket_features_match_brute_force_over_valid_steps() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 20, 2))
    lengths = np.array([20, 13, 4])  # the last is shorter than an unpadded kernel's span
    bank = rocket._kernels(2, 20, 40, np.random.default_rng(0))
    got = rocket.features(x, lengths, bank)
    col = 0
    for length, dilation, padded, w, b in bank:
        span = (length - 1) * dilation
        pad = span // 2 if padded else 0
        for k in range(len(b)):
            for i, n in enumerate(lengths):
                xi = np.zeros((20 + 2 * pad, 2))
                xi[pad:pad + n] = x[i, :n]  # steps past the length read as zeros
                outs = [float((xi[p:p + span + 1:dilation] * w[k].numpy().T).sum() + b[k])
                        for p in range(20 + 2 * pad - span)]
                last = n - 1 if padded else max(0, n - 1 - span)
                outs = outs[:last + 1]
                assert got[i, col + k] == pytest.approx(np.mean(np.array(outs) > 0), abs=1e-6)
                assert got[i, col + len(b) + k] == pytest.approx(max(outs), abs=1e-4)
        col += 2 * len(b)
    assert col == got.shape[1] == 80


def test_rocket_is_stable_over_seeds_and_handles_one_class() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    t = np.arange(30)
    x = np.sin(t[None, :, None] * (0.2 + 0.3 * y[:, None, None])) + rng.normal(0, 0.3,
                                                                             (120, 30, 2))
    accs = [rocket.accuracy(x[:60], y[:60], np.full(60, 30), x[60:], y[60:], np.full(60, 30),
                            seed, kernels=300) for seed in range(3)]
    assert min(accs) > 0.9 and max(accs) - min(accs) < 0.1
    assert accs[0] == rocket.accuracy(x[:60], y[:60], np.full(60, 30), x[60:], y[60:],
                                      np.full(60, 30), 0, kernels=300)
    assert rocket.accuracy(x[:5], np.zeros(5), np.full(5, 30), x[:4], np.array([0, 0, 1, 0]),
                           np.full(4, 30)) == 0.75


# -- training, sampling, eval, resume ------------------------------------------------------------

def test_train_sample_eval_report_in_process(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(ms, "DISCRIMINATIVE_ITERATIONS", 20)
    monkeypatch.setattr(ms, "PREDICTIVE_ITERATIONS", 20)
    monkeypatch.setattr(rocket, "KERNELS", 50)
    data = walk_npz(tmp_path / "w.npz", labelled=True, variable=True)
    out = tmp_path / "run"
    sets = [a for s in FAST for a in ("--set", s)]
    assert cli_main(["train", "--data", str(data), "--set", "model.conditional=true", *sets,
                     "--out", str(out), "--quiet", "--eval-every", "10"]) == 0
    assert (out / "codec.json").is_file() and list((out / "samples").glob("*.png"))
    s = tmp_path / "up.npz"
    assert cli_main(["sample", str(out), "--num", "7", "--class", "1", "--out", str(s)]) == 0
    z = np.load(s)
    assert z["series"].shape == (7, 12, 2) and list(z["labels"]) == ["up"] * 7
    assert ((z["lengths"] >= 1) & (z["lengths"] <= 12)).all()
    assert cli_main(["sample", str(out), "--num", "5", "--out", str(tmp_path / "s.csv")]) == 0
    back = pd.read_csv(tmp_path / "s.csv")
    assert list(back.columns) == ["series", "t", "channel0", "channel1", "label"]
    assert back["series"].nunique() == 5
    capsys.readouterr()
    assert cli_main(["eval", str(out), "--json", "--num", "40"]) == 0
    scores = __import__("json").loads(capsys.readouterr().out)
    for key in ("discriminative", "discriminative_std", "predictive", "predictive_real",
                "marginal_ks", "length_distance", "tstr_accuracy", "trtr_accuracy"):
        assert 0.0 <= scores[key] <= 1.0, key
    assert 0.0 <= scores["discriminative"] <= 0.5
    for key in ("autocorrelation_gap", "correlation_gap"):  # gaps of values in [-1, 1]
        assert 0.0 <= scores[key] <= 2.0, key
    assert cli_main(["report", str(out)]) == 0
    page = next(out.glob("report*.html")).read_text() if list(out.glob("report*.html")) \
        else (out / "report" / "index.html").read_text()
    assert "Autocorrelation" in page and "PCA" in page


def test_resume_of_a_sequence_run_is_bitwise(tmp_path: Path) -> None:
    data = walk_npz(tmp_path / "w.npz", variable=True)
    whole, part = tmp_path / "whole", tmp_path / "part"
    prepare(cfg_for(data), whole).fit(progress=False)
    prepare(cfg_for(data, "train.steps=10"), part).fit(progress=False)
    prepare(gankit.resume_config(part, steps=20), part, resume=True).fit(progress=False)
    sa = checkpoint.latest(whole / "checkpoints")
    sb = checkpoint.latest(part / "checkpoints")
    assert sa is not None and sb is not None and sa["step"] == sb["step"] == 20
    for key in ("G", "D"):
        for name, v in sa[key].items():
            assert torch.equal(v, sb[key][name]), (key, name)
    run = load_run(whole)
    cfg = cfg_for(data).data
    assert run.kind.name == "sequences" and run.codec == fit_codec(read_series(cfg), cfg)
    data.rename(tmp_path / "moved.npz")  # a finished run is known by its codec, not its data
    assert load_run(whole).kind.name == "sequences"
    assert cli_main(["sample", str(whole), "--num", "2", "--out", str(tmp_path / "s.npz")]) == 0


def test_builtin_sines_train_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = gankit_cli("train", "--data", "sines", "--steps", "20", "--out", out, "--quiet",
                      *[a for s in FAST[1:] for a in ("--set", s)])
    assert done.returncode == 0, done.stderr
    done = gankit_cli("sample", out, "--num", "3", "--out", tmp_path / "s.npz")
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "s.npz")["series"].shape == (3, 24, 5)


# -- bad input -----------------------------------------------------------------------------------

def _bad(tmp_path: Path, name: str, make) -> Path:  # noqa: ANN001
    path = tmp_path / name
    make(path)
    return path


def _long(path: Path, **changes: object) -> None:
    df = pd.DataFrame({"id": ["a"] * 4 + ["b"] * 4, "t": [0, 1, 2, 3] * 2,
                       "x": np.arange(8.0), "y": np.arange(8.0) ** 2})
    for k, v in changes.items():
        df[k] = v
    df.to_csv(path, index=False)


BAD = {
    "ragged": ("r.npz", lambda p: np.savez(p, series=np.array([np.zeros((3, 2)), np.zeros((4, 2))],
                                                                 dtype=object)), [],
               "without pickle"),
    "window too long": ("w.csv", lambda p: pd.DataFrame({"x": np.arange(5.0)}).to_csv(
        p, index=False), ["data.window=24"], "data.window=24"),
    "nan": ("n.npz", lambda p: np.savez(p, series=np.where(np.eye(4)[None, :, :2] > 0, np.nan,
                                                           np.ones((3, 4, 2)))), [], "NaN"),
    "missing id": ("m.csv", lambda p: _long(p, id=["a", None] * 4), ["data.id=id"], "no 'id'"),
    "unsortable time": ("u.csv", lambda p: _long(p, t=["1", "x", "2", "3"] * 2),
                        ["data.id=id", "data.time=t"], "cannot be ordered"),
    "one step": ("o.csv", lambda p: _long(p, id=[f"s{i}" for i in range(8)]), ["data.id=id"],
                 "one time step"),
    "constant channel": ("c.npz", lambda p: np.savez(p, series=np.ones((5, 4, 2))), [],
                         "constant"),
    "labels mismatch": ("l.npz", lambda p: np.savez(p, series=np.random.rand(5, 4, 2),
                                                    labels=np.arange(4)), [], "4 labels for 5"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    name, make, sets, message = BAD[case]
    path = _bad(tmp_path, name, make)
    before = path.read_bytes()
    out = tmp_path / "run"
    args = ["train", "--data", str(path), "--out", str(out), "--steps", "2"]
    for s in ("train.threads=1", *sets):
        args += ["--set", s]
    done = gankit_cli(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, lines
    assert not out.exists() and path.read_bytes() == before


# -- shipping ------------------------------------------------------------------------------------

def test_export_and_serve_a_sequence_run(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    import json
    import threading
    import urllib.request

    from gankit.ship.export import export, read_metadata
    from gankit.ship.serve import make_server

    data = walk_npz(tmp_path / "w.npz", labelled=True)
    out = tmp_path / "run"
    prepare(cfg_for(data, "model.conditional=true"), out).fit(progress=False)
    run, diff = export(out, tmp_path / "g.onnx")
    assert diff is not None and diff < 1e-4
    meta = read_metadata(tmp_path / "g.onnx")
    assert SequenceCodec.from_json(json.loads(meta["gankit.codec"])) == run.codec
    server = make_server(load_run(out), "127.0.0.1", 0, 16)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/api/info", timeout=30) as r:
            info = json.loads(r.read())
        assert info["kind"] == "sequences" and info["labels"] == ["class 0", "class 1"]
        with urllib.request.urlopen(base + "/api/samples?num=4&seed=2", timeout=30) as r:
            assert json.loads(r.read())["plot"].startswith("data:image/png;base64,")
        with urllib.request.urlopen(base + "/download?format=npz&num=3&seed=2", timeout=30) as r:
            series = np.load(io.BytesIO(r.read()))["series"]
        assert series.shape == (3, 12, 2)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
