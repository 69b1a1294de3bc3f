"""Text end to end: the preset for .txt/.smi, loading and bad input, training, sampling with a
temperature, eval, the report, exact resume, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gankit
from gankit import kinds
from gankit.cli import main
from gankit.config import DataConfig, resolve
from gankit.errors import ConfigError, DataError
from gankit.kinds.text import TextCodec, TextKind, sample_strings, walk
from gankit.kinds.text import codec as codec_module
from gankit.models.text import TAU, gumbel_tau
from gankit.run import load_run, prepare
from gankit.training import checkpoint
from gankit.training.trainer import Trainer

from .test_trainer import interrupt_at

FAST = ["train.steps=20", "train.batch_size=16", "train.log_every=10", "train.sample_every=10",
        "train.checkpoint_every=10", "model.g_hidden=[16]", "model.d_hidden=[8]",
        "model.latent_dim=8", "train.threads=1", "guard.diversity_every=0",
        "train.pretrain_steps=5"]  # of MLE pre-training, then 15 adversarial
SYLLABLES = ["ma", "ri", "jo", "han", "an", "na", "el", "li", "sa", "to"]


def corpus(n: int = 200, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(SYLLABLES, rng.integers(1, 4))) for _ in range(n)]


@pytest.fixture
def names(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(corpus()) + "\n", encoding="utf-8")
    return path


def cfg_for(path: Path, *extra: str) -> gankit.Config:
    return resolve(None, overrides=[f"data.source={path}", *FAST, *extra])


def test_text_sources_pick_the_text_preset_and_kind(names: Path) -> None:
    cfg = cfg_for(names)
    assert cfg.preset == "text" and cfg.model.family == "text"
    assert kinds.of_source(DataConfig(source="mols.smi")).name == "text"
    assert resolve(None, overrides=["data.source=mols.smi"]).preset == "text"
    data = TextKind().load(cfg.data)
    train, holdout = data.frames
    assert len(train) == 160 and len(holdout) == 40
    assert data.codec.length == max(map(len, corpus()))
    assert data.codec.decode(data.samples) == train


def test_long_lines_are_cut_with_a_note_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("\n".join(["abcdefghij"] + corpus(30)), encoding="utf-8")
    data = TextKind().load(cfg_for(path, "data.max_length=8").data)
    assert data.codec.length == 8 and any("cut" in n for n in data.notes)
    with pytest.raises(DataError, match="data.max_length=8"):
        TextKind().load(cfg_for(path, "data.max_length=8", "data.truncate=false").data)


def test_smi_files_keep_the_first_field_and_skip_a_header(tmp_path: Path) -> None:
    path = tmp_path / "mols.smi"
    path.write_text("SMILES\n" + "".join(f"C{'C' * (i % 5)}O mol{i}\n" for i in range(20)))
    data = TextKind().load(cfg_for(path).data)
    assert set(data.frames[0] + data.frames[1]) == {"CO", "CCO", "CCCO", "CCCCO", "CCCCCO"}


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"), (b"\n  \n", "is empty"), (b"ab\x00cd\n" * 20, "binary"),
    (b"\xff\xfeab\n" * 20, "not UTF-8"), (b"aaa\naa\na\n" * 10, "one character"),
    (b"ab\nba\n", "at least 10"),
])
def test_bad_text_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        TextKind().load(cfg_for(path).data)


def test_conditioning_is_refused(names: Path) -> None:
    with pytest.raises(ConfigError, match="not offered for text"):
        prepare(cfg_for(names, "model.clusters=4"), None)


def test_train_sample_eval(names: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    prepare(cfg_for(names), out).fit(progress=False)
    assert (out / "codec.json").is_file() and (out / "samples" / "step-000000020.txt").is_file()
    run = load_run(out)
    assert run.kind.name == "text"
    a = sample_strings(run, 50, seed=3, temperature=0.5)
    assert a == sample_strings(run, 50, seed=3, temperature=0.5)
    assert set("".join(a)) <= set(run.codec.chars)
    greedy = sample_strings(run, 50, seed=3, temperature=0.0)
    assert len(set(greedy)) <= len(set(sample_strings(run, 50, seed=3, temperature=2.0)))
    scores = run.kind.evaluate(run, 100, 0, "")
    for key in ("nll", "nll_holdout", "rev_nll", "bleu4", "self_bleu4", "novelty", "uniqueness"):
        assert np.isfinite(scores[key]), key
    assert scores["num"] == 100 and "validity" not in scores


def test_report(names: Path, tmp_path: Path) -> None:
    from gankit.report import write_report

    out = tmp_path / "run"
    prepare(cfg_for(names, "train.steps=2", "train.checkpoint_every=2"), out).fit(progress=False)
    page = write_report(out).read_text(encoding="utf-8")
    assert "Generated strings" in page and "data:image/png" in page


def test_resume_is_bitwise(names: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # interrupted in the adversarial phase, whose Gumbel temperature follows train.steps (the
    # preset anneals it): the same run resumes exactly
    cfg = cfg_for(names)
    assert cfg.train.gumbel_beta_max > 0
    whole = tmp_path / "whole"
    prepare(cfg, whole).fit(progress=False)
    part = tmp_path / "part"
    interrupt_at(12, cfg, part, monkeypatch)
    assert checkpoint.latest(part / "checkpoints")["step"] == 12
    prepare(gankit.resume_config(part), part, resume=True).fit(progress=False)
    sa = checkpoint.latest(whole / "checkpoints")
    sb = checkpoint.latest(part / "checkpoints")
    assert sa is not None and sb is not None and sa["step"] == sb["step"] == 20
    for key in ("G", "D"):
        for name, v in sa[key].items():
            assert torch.equal(v, sb[key][name]), (key, name)
    assert (whole / "samples" / "step-000000020.txt").read_bytes() == \
        (part / "samples" / "step-000000020.txt").read_bytes()


# -- MLE pre-training of the generator and the annealed Gumbel temperature -----------------------

PRETRAIN = ["train.pretrain_steps=15", "train.gumbel_beta_max=100"]


def test_pretraining_lowers_the_generators_next_token_loss(names: Path) -> None:
    cfg = cfg_for(names, "train.pretrain_steps=40", "train.steps=40", "train.pretrain_lr=1e-2")
    trainer = Trainer(cfg, TextKind().load(cfg.data))  # writes nothing
    z = torch.randn(len(trainer.x), trainer.noise_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = float(trainer.G.nll(z, trainer.x))
    d_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    trainer.fit(progress=False)
    with torch.no_grad():
        after = float(trainer.G.nll(z, trainer.x))
    # a uniform guess over the 13 tokens is log 13 = 2.56 nats; the syllables are far likelier
    assert before > 2.2 and after < before - 0.5, (before, after)
    assert all(torch.equal(v, trainer.D.state_dict()[k]) for k, v in d_before.items())


def test_the_guards_rate_cut_reaches_pretraining(names: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = cfg_for(names, *PRETRAIN, "train.pretrain_lr=1e-3")
    trainer = Trainer(cfg, TextKind().load(cfg.data))
    monkeypatch.setattr(trainer.guard, "lr_scale", lambda: 0.25)
    lr_g, _ = trainer.set_rates()
    assert lr_g == pytest.approx(cfg.train.lr_g * 0.25)
    assert trainer.opt_pre.param_groups[0]["lr"] == pytest.approx(2.5e-4)


def test_pretraining_rate_falls_linearly_to_its_final_share(names: Path) -> None:
    cfg = cfg_for(names, *PRETRAIN, "train.pretrain_lr=1e-3", "train.pretrain_lr_final=0.1")
    trainer = Trainer(cfg, TextKind().load(cfg.data))
    rates = {}
    for step in (0, 7, 14, 20):  # pre-training is steps 0..14
        trainer.step = step
        trainer.set_rates()
        rates[step] = trainer.opt_pre.param_groups[0]["lr"]
    assert rates[0] == pytest.approx(1e-3) and rates[14] == pytest.approx(1e-4)
    assert rates[7] == pytest.approx(5.5e-4) and rates[20] == pytest.approx(1e-4)
    assert resolve("text").train.pretrain_lr_final < 1.0  # the preset decays
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match="pretrain_lr_final"):
            cfg_for(names, f"train.pretrain_lr_final={bad}")


def test_pretraining_is_logged_and_checkpointed(names: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    prepare(cfg_for(names, *PRETRAIN, "train.checkpoint_every=5"), out).fit(progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = {r["step"]: r for r in records}
    assert steps[10]["phase"] == "pretrain" and "loss_d" not in steps[10]
    assert steps[15]["phase"] == "pretrain"  # a log step ends pre-training
    assert np.isfinite(steps[15]["loss_mle"]) and "loss_mle" not in steps[20]
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(steps[20])
    kept = checkpoint.list_steps(out / "checkpoints")
    assert kept == [15, 20]
    assert "opt_pre" not in checkpoint.latest(out / "checkpoints")  # used no more
    with pytest.raises(ConfigError, match="model.family=text"):
        resolve("classic", overrides=["train.pretrain_steps=10"])
    with pytest.raises(ConfigError, match="gumbel_beta_max"):
        cfg_for(names, "train.gumbel_beta_max=0.5")


def test_gumbel_temperature_schedule() -> None:
    assert gumbel_tau(7, 10, 110, 0.0) == TAU
    assert gumbel_tau(10, 10, 110, 100.0) == pytest.approx(1.0)
    assert gumbel_tau(60, 10, 110, 100.0) == pytest.approx(0.1)  # beta = 100 ** 0.5
    assert gumbel_tau(110, 10, 110, 100.0) == pytest.approx(0.01)
    assert gumbel_tau(500, 10, 110, 100.0) == pytest.approx(0.01)


def test_resume_through_pretraining_is_bitwise(names: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    prepare(cfg_for(names, *PRETRAIN), whole).fit(progress=False)
    part = tmp_path / "part"
    prepare(cfg_for(names, *PRETRAIN, "train.steps=10"), part).fit(progress=False)
    stopped = checkpoint.latest(part / "checkpoints")
    assert stopped["step"] == 10 and stopped["opt_pre"]["state"]  # Adam's moments, stored
    prepare(gankit.resume_config(part, steps=20), part, resume=True).fit(progress=False)
    sa = checkpoint.latest(whole / "checkpoints")
    sb = checkpoint.latest(part / "checkpoints")
    assert sa is not None and sb is not None and sa["step"] == sb["step"] == 20
    for key in ("G", "D", "opt_g", "opt_d"):
        flat_a, flat_b = checkpoint_tensors(sa[key]), checkpoint_tensors(sb[key])
        assert len(flat_a) == len(flat_b) > 0
        assert all(torch.equal(a, b) for a, b in zip(flat_a, flat_b, strict=True)), key
    assert (whole / "samples" / "step-000000020.txt").read_bytes() == \
        (part / "samples" / "step-000000020.txt").read_bytes()


def checkpoint_tensors(tree: object) -> list[torch.Tensor]:
    """Every tensor of a checkpoint's nested state, in order."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for k in sorted(tree, key=str) for t in checkpoint_tensors(tree[k])]
    if isinstance(tree, list):
        return [t for v in tree for t in checkpoint_tensors(v)]
    return []


# -- the command line ----------------------------------------------------------------------------

def gankit_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_cli_train_sample_eval(names: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    sets = [a for s in FAST for a in ("--set", s)]
    r = gankit_cli("train", "--data", names, "--out", out, "--quiet", *sets)
    assert r.returncode == 0, r.stderr
    new = tmp_path / "new.txt"  # sample and eval in this process (saves starting python)
    assert main(["sample", str(out), "--num", "30", "--out", str(new),
                 "--temperature", "0.7"]) == 0
    assert len(new.read_text(encoding="utf-8").split("\n")) == 31
    capsys.readouterr()
    assert main(["eval", str(out), "--num", "50", "--json"]) == 0
    printed = capsys.readouterr().out
    assert '"self_bleu4"' in printed and '"nll"' in printed
    assert main(["sample", str(out), "--num", "5", "--out", str(tmp_path / "x.png")]) == 2
    assert "text" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    assert main(["sample", str(out), "--num", "5", "--out", str(tmp_path / "y.txt"),
                 "--temperature", "-1"]) == 2
    assert not (tmp_path / "y.txt").exists()


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02" * 50, b"a\n" * 40])
def test_cli_bad_text_exits_2_and_touches_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    out = tmp_path / "run"
    r = gankit_cli("train", "--data", path, "--out", out, "--quiet", "--steps", "5")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("gankit: ")
    assert not out.exists()


# -- the latent-space model ----------------------------------------------------------------------

LATENT = ["data.autoencoder_steps=40", "data.code_dim=8", "train.pretrain_steps=0"]


def latent_cfg(path: Path, *extra: str) -> gankit.Config:
    return resolve("text-latent", overrides=[f"data.source={path}", *FAST, *LATENT, *extra])


def test_latent_codec_round_trips_through_json(names: Path) -> None:
    data = TextKind().load(latent_cfg(names).data)
    codec = data.codec
    assert codec.latent and data.samples.shape == (160, 8)
    assert any("autoencoder" in n for n in data.notes)
    again = TextCodec.from_json(codec.to_json())
    assert again.latent and torch.equal(again.encode(data.frames[0]), data.samples)
    assert again.decode(data.samples[:20]) == codec.decode(data.samples[:20])
    stored = TextKind().load(latent_cfg(names).data, codec.to_json())  # resume: no retraining
    assert torch.equal(stored.samples, data.samples)


def test_latent_codes_are_the_same_in_chunks(names: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    codec = TextKind().load(latent_cfg(names).data).codec
    strings = names.read_text().split()[:50]
    whole = codec.encode(strings)
    monkeypatch.setattr(codec_module, "ENCODE_CHUNK", 7)  # 8 chunks, the last of 1
    assert torch.allclose(codec.encode(strings), whole, atol=1e-6)
    assert codec.encode([]).shape == (0, whole.shape[1])


def test_latent_train_sample_walk(names: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    prepare(latent_cfg(names), out).fit(progress=False)
    run = load_run(out)
    assert run.codec.latent and run.kind.name == "text"
    drawn = sample_strings(run, 40, seed=1)
    assert drawn == sample_strings(run, 40, seed=1)
    assert set("".join(drawn)) <= set(run.codec.chars)
    path = walk(run, "maria", "johan", 6)
    assert len(path) == 6 and set("".join(path)) <= set(run.codec.chars)
    with pytest.raises(DataError, match="never saw"):
        walk(run, "maria", "zoë", 6)
    walk_txt = tmp_path / "walk.txt"
    assert main(["sample", str(out), "--between", "maria", "johan", "--steps", "4",
                 "--out", str(walk_txt)]) == 0
    assert len(walk_txt.read_text(encoding="utf-8").splitlines()) == 4
    bad = tmp_path / "bad.txt"
    capsys.readouterr()
    assert main(["sample", str(out), "--between", "maria", "jo!", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'!'" in err and not bad.exists()


def test_between_needs_a_latent_run(names: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    prepare(cfg_for(names, "train.steps=2", "train.checkpoint_every=2"), out).fit(progress=False)
    assert main(["sample", str(out), "--between", "ma", "jo", "--out",
                 str(tmp_path / "w.txt")]) == 2
    assert "text-latent" in capsys.readouterr().err and not (tmp_path / "w.txt").exists()
    assert main(["sample", str(out), "--out", str(tmp_path / "w.txt")]) == 2
    with pytest.raises(ConfigError, match="text-latent"):
        prepare(resolve(None, overrides=[f"data.source={names}", *FAST, *LATENT,
                                         "data.text_codec=autoencoder"]), None)


def test_view_and_export(names: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    prepare(cfg_for(names, "train.steps=2", "train.checkpoint_every=2"), out).fit(progress=False)
    run = load_run(out)
    view = run.kind.view(run)
    x = run.generate(6, seed=0)
    page = view.grid(x, 0)
    assert page["columns"] == ["text"] and [r[0] for r in page["rows"]] == run.codec.decode(x)
    tokens, raw = view.finish(x)
    assert run.codec.strings(tokens) == run.codec.decode(x) and raw is x
    assert view.download("txt", x, 0)[2].decode("utf-8").splitlines() == run.codec.decode(x)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from gankit.ship.export import export

    _, diff = export(out, tmp_path / "g.onnx")
    assert diff is not None and diff <= 1e-4 and (tmp_path / "g.onnx").is_file()
