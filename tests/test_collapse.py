"""Mode collapse: the diversity figures, the guard's verdict, warnings, remedies and stops."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import gankit
from gankit import runlog
from gankit.cli import main
from gankit.config import GuardConfig, resolve
from gankit.errors import ConfigError, DivergedError
from gankit.metrics.diversity import covered, diversity_reference, diversity_scores, mode_counts
from gankit.report import render
from gankit.training import checkpoint
from gankit.training.collapse import due
from gankit.training.guard import Guard

# ring8 (unconditioned, pack 2: all 8 modes by step 100 at lr 1e-3, measured) at lr 0.5
# collapses to one point within 50 steps; these settings judge from step 100 on, every 50 steps,
# so a collapse is a warning at step 150 (realism is judged from step 1,500 only).
FAST = {"diversity_every": 50, "diversity_after": 100, "diversity_num": 128}
COLLAPSING = ["model.clusters=0", "reg.pack=2", "train.lr_g=0.5", "train.lr_d=0.5",
              "train.log_every=50",
              "train.checkpoint_every=50", "train.sample_every=1000", "train.batch_size=128",
              "train.lr_decay=0", *(f"guard.{k}={v}" for k, v in FAST.items())]


def blobs(n: int, seed: int, k: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.arange(k)[:, None] * np.array([[10.0, 0.0, 0.0]])
    return centres[rng.integers(0, k, n)] + rng.normal(size=(n, 3))


def events(run: Path) -> list[dict[str, Any]]:
    return [r for r in runlog.read(run / "metrics.jsonl") if "event" in r]


# -- the figures --------------------------------------------------------------------------------


def test_real_like_batch_scores_like_real_data() -> None:
    ref = diversity_reference(blobs(300, 0), clusters=5)
    assert ref.modes == 5 and ref.num_classes == 5
    s = diversity_scores(blobs(300, 1), ref)
    assert 0.85 < s["diversity"] < 1.15
    assert s["duplicates"] < 0.05
    assert s["modes_seen"] == s["modes_real"] == 5


def test_realism_tells_data_like_samples_from_spread_out_ones() -> None:
    """Samples scattered between and around the blobs spread as widely as real ones (the
    other figures look healthy), but few lie in a real sample's neighbourhood."""
    ref = diversity_reference(blobs(300, 0), clusters=5)
    assert diversity_scores(blobs(300, 1), ref)["realism"] > 0.85
    rng = np.random.default_rng(5)
    scattered = rng.uniform(-5, 45, size=(300, 3)) * np.array([1.0, 0.3, 0.3])
    s = diversity_scores(scattered, ref)
    assert s["diversity"] > 0.7 and s["duplicates"] < 0.05
    assert s["realism"] < 0.3
    half = np.concatenate([blobs(150, 6), scattered[:150]])
    assert 0.35 < diversity_scores(half, ref)["realism"] < 0.7


def test_one_point_batch_is_collapsed() -> None:
    ref = diversity_reference(blobs(300, 0), clusters=5)
    one = np.tile(blobs(1, 2), (300, 1)) + 1e-4 * np.random.default_rng(3).normal(size=(300, 3))
    s = diversity_scores(one, ref)
    assert s["diversity"] < 0.01
    assert s["duplicates"] == 1.0
    assert s["modes_seen"] == 1


def test_two_of_five_modes_are_counted() -> None:
    ref = diversity_reference(blobs(500, 0), clusters=5)
    x = blobs(500, 4)
    x = x[x[:, 0] < 15]  # only the blobs at 0 and 10
    s = diversity_scores(x, ref)
    assert s["modes_seen"] == 2 and s["duplicates"] < 0.05


def test_classes_given_by_a_classifier() -> None:
    feats = blobs(100, 0)
    ref = diversity_reference(feats, classes=np.arange(100) % 10, num_classes=10)
    assert ref.modes == 10 and ref.centroids is None
    assert diversity_scores(feats, ref, classes=np.zeros(100, dtype=int))["modes_seen"] == 1
    with pytest.raises(ValueError, match="classes are needed"):
        diversity_scores(feats, ref)


def test_mode_counts_by_classes_or_by_the_real_clusters() -> None:
    real = blobs(1000, 0)
    assert mode_counts(real, blobs(5000, 1), clusters=5) == (5, 5)  # five blobs, five clusters
    two = blobs(5000, 2, k=2)  # only the first two blobs
    assert mode_counts(real, two, clusters=5) == (2, 5)
    labels = np.arange(1000) % 10
    fake = np.r_[np.zeros(4950, int), np.ones(50, int)]  # class 1 at exactly 1%: not counted
    assert mode_counts(real, two, labels, fake, 10) == (1, 10)
    assert mode_counts(real, two, labels, np.r_[fake[1:], 1], 10) == (2, 10)  # 51 of 5000


def test_covered_needs_a_tenth_of_the_fair_share() -> None:
    labels = np.array([0] * 95 + [1] * 4 + [2] * 1)  # fair share 1/3: a tenth is 3.3%
    assert covered(labels, 3) == 2


def test_due_at_the_first_log_step_past_each_multiple() -> None:
    assert [s for s in range(100, 1100, 100) if due(s, 150, 100)] == [200, 300, 500, 600, 800,
                                                                       900]
    assert [s for s in range(50, 450, 50) if due(s, 100, 50)] == [100, 200, 300, 400]
    assert not any(due(s, 0, 100) for s in range(100, 1000, 100))


# -- the verdict --------------------------------------------------------------------------------


def verdicts(guard: Guard, figures: list[tuple[int, float, float, int]]) -> list[str | None]:
    out = []
    for step, div, dup, modes in figures:
        record = {"diversity": div, "duplicates": dup, "modes_seen": modes, "modes_real": 10}
        out.append(guard.check_diversity(SimpleNamespace(step=step), record))
    return out


def test_verdict_needs_consecutive_failures_after_the_warm_up() -> None:
    g = Guard(GuardConfig(diversity_after=500, diversity_checks=2))
    v = verdicts(g, [(300, 0.0, 1.0, 1), (400, 0.0, 1.0, 1),  # warm-up: no verdict
                     (500, 0.01, 0.0, 9), (600, 0.9, 0.0, 9),  # one failure, then healthy
                     (700, 0.9, 0.99, 9), (800, 0.9, 0.0, 1),  # duplicates, then one mode
                     (900, 0.9, 0.99, 1)])  # still failing: said once per stretch
    assert v[:5] == [None] * 5
    assert v[5] == "1 of 10 modes since step 700"
    assert v[6] is None
    g = Guard(GuardConfig(diversity_after=0, diversity_checks=1))
    assert verdicts(g, [(100, 0.01, 0.0, 10)])[0] == "diversity 0.01 < 0.05 since step 100"
    # A healthy run's passing phase of low spread and many near-duplicates is no collapse
    assert verdicts(g, [(200, 0.1, 0.9, 2)])[0] is None


def test_a_remedied_run_must_win_its_modes_back() -> None:
    """After a remedy (rolled back to step 700), partial coverage that a healthy run may pass
    through is a collapse once the remedy has had recovery_steps."""
    g = Guard(GuardConfig(diversity_after=500, diversity_checks=2, recovered_min=0.8,
                          recovery_steps=500))
    g.remedies = [("lr", 700)]
    v = verdicts(g, [(1000, 0.6, 0.0, 5), (1100, 0.6, 0.0, 5),  # the remedy's own warm-up
                     (1200, 0.6, 0.0, 8), (1300, 0.6, 0.0, 6), (1400, 0.6, 0.0, 7)])
    assert v[:4] == [None] * 4
    assert v[4] == "7 of 10 modes after lr since step 1300"
    # Rolled back into the warm-up (to step 200): a fresh run, judged from step 500 + 500 on
    g = Guard(GuardConfig(diversity_after=500, diversity_checks=2, recovered_min=0.8,
                          recovery_steps=500))
    g.remedies = [("lr", 200)]
    v = verdicts(g, [(700, 0.6, 0.0, 5), (800, 0.6, 0.0, 6), (900, 0.6, 0.0, 7),
                     (1000, 0.6, 0.0, 7), (1100, 0.6, 0.0, 7)])
    assert v == [None] * 4 + ["7 of 10 modes after lr since step 1000"]
    fresh = Guard(GuardConfig(diversity_after=500, diversity_checks=2))  # never remedied
    assert verdicts(fresh, [(800, 0.6, 0.0, 6), (900, 0.6, 0.0, 7)]) == [None, None]


def test_realism_is_judged_late_and_only_judged_figures_are_healthy() -> None:
    g = Guard(GuardConfig(diversity_after=500, diversity_checks=2, realism_after=1500,
                          realism_min=0.1))

    def check(step: int, realism: float) -> str | None:
        record = {"diversity": 0.9, "duplicates": 0.0, "modes_seen": 8, "modes_real": 8,
                  "realism": realism}
        return g.check_diversity(SimpleNamespace(step=step), record)

    assert [check(s, 0.02) for s in (600, 700, 1400)] == [None] * 3
    assert g.healthy is None  # spread-out samples would have passed as healthy here
    assert check(1500, 0.5) is None and g.healthy == 1500
    assert check(1600, 0.03) is None
    assert check(1700, 0.02) == "realism 0.02 < 0.1 since step 1600"
    assert g.healthy == 1500


def final_trainer(seen: int, real: int = 10) -> SimpleNamespace:
    """A stand-in trainer whose end-of-run verdict counts ``seen`` of ``real`` modes."""
    watch = SimpleNamespace(verdict=lambda t: {"modes_seen": seen, "modes_real": real})
    return SimpleNamespace(step=2000, watch=watch, x=torch.zeros(5000, 2), run_dir=None)


def test_a_remedied_run_must_end_with_every_mode() -> None:
    g = Guard(GuardConfig())
    g.final_check(final_trainer(3))  # never remedied: no last word
    assert g.events == []
    g.remedies = [("r1", 600), ("lr", 1200)]
    g.final_check(final_trainer(10))
    assert g.events[-1]["event"] == "verdict" and g.events[-1]["action"] == "none"
    assert (g.events[-1]["modes_seen"], g.events[-1]["num"]) == (10, 5000)
    with pytest.raises(DivergedError, match=r"ended at step 2000 with 9 of 10 modes after 2 "
                       r"mode-collapse rollback\(s\) \(tried r1 at step 600, lr at step 1200"):
        g.final_check(final_trainer(9))
    assert g.events[-1]["event"] == "stopped" and g.events[-1]["modes_seen"] == 9
    lenient = Guard(GuardConfig(final_modes_min=0.8))
    lenient.remedies = [("r1", 600)]
    lenient.final_check(final_trainer(8))
    assert lenient.events[-1]["action"] == "none"
    off = Guard(GuardConfig(final_modes_min=0))
    off.remedies = [("r1", 600)]
    off.final_check(final_trainer(1))
    assert off.events == []


def test_the_verdict_on_digits_counts_the_classifier_s_classes() -> None:
    # k-means clusters of pooled pixels mix digits (a 4 and a 9); the verdict reads the digit
    # classifier: ten classes in real digits, and a generator drawing one digit covers one.
    cfg = resolve("classic", values={"train": {"steps": 1, "batch_size": 8}})
    trainer = gankit.Trainer(cfg, gankit.load_data(cfg.data))
    counts = trainer.watch.verdict(trainer)
    assert counts["modes_real"] == 10
    ones = trainer.x[trainer.data.labels == 1]
    trainer.generate = lambda z, y=None: ones[torch.arange(len(z)) % len(ones)]
    assert trainer.watch.verdict(trainer) == {"modes_seen": 1, "modes_real": 10}


def test_guard_state_keeps_stretches_and_remedies() -> None:
    g = Guard(GuardConfig())
    g.mode_since, g.mode_fails, g.retries, g.remedies = 700, 1, 3, [("noise", 400)]
    h = Guard(GuardConfig())
    h.load_state_dict(g.state_dict())
    assert (h.mode_since, h.mode_fails, h.divergences, h.remedies) == (700, 1, 2,
                                                                       [("noise", 400)])
    old = Guard(GuardConfig())
    old.load_state_dict({"retries": 2, "collapse_since": None})  # a checkpoint from before
    assert old.divergences == 2 and old.remedies == []


def test_bad_guard_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown remedy 'reset'"):
        resolve("classic", overrides=['guard.remedies=["lr", "reset"]'])
    with pytest.raises(ConfigError, match="guard.modes_min must be in"):
        resolve("classic", overrides=["guard.modes_min=2"])


# -- in training --------------------------------------------------------------------------------


def collapsing(*extra: str, steps: int = 300) -> gankit.Config:
    return resolve("mixture", overrides=[*COLLAPSING, *extra],
                   values={"data": {"source": "ring8"}, "train": {"steps": steps}})


def test_induced_collapse_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--preset", "mixture", "--data", "ring8", "--steps", "200",
                 "--out", str(tmp_path / "run"), *sum((["--set", s] for s in COLLAPSING), []),
                 "--set", "guard.remedies=[]"])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: mode collapse at step 150" in err, err
    warned = [e for e in events(tmp_path / "run") if e["event"] == "warning"]
    assert len(warned) == 1  # once for the whole stretch
    assert warned[0]["step"] == 150 and warned[0]["reason"] == "mode_collapse"
    figures = [r for r in runlog.read(tmp_path / "run" / "metrics.jsonl") if "diversity" in r]
    assert [r["step"] for r in figures] == [50, 100, 150, 200]
    assert all(r["modes_real"] == 8 for r in figures)
    page = render(tmp_path / "run")  # the report draws the figures, and lists the warning
    assert page.count('alt="chart"') == 3 and "mode_collapse" in page
    assert all(r["duplicates"] > 0.5 or r["diversity"] < 0.25 for r in figures[1:]), [
        (r["modes_seen"], r["diversity"], r["duplicates"]) for r in figures]


def test_healthy_run_has_no_alarm(tmp_path: Path) -> None:
    cfg = resolve("mixture", overrides=[f"guard.{k}={v}" for k, v in FAST.items()] +
                  ["model.clusters=0", "reg.pack=2", "train.log_every=50", "guard.remedies=[]"],
                  values={"data": {"source": "ring8"}, "train": {"steps": 400}})
    gankit.train(cfg, out=tmp_path / "run", progress=False)
    assert events(tmp_path / "run") == []
    figures = [r for r in runlog.read(tmp_path / "run" / "metrics.jsonl") if "diversity" in r]
    assert len(figures) == 8 and figures[-1]["modes_seen"] == 8 and figures[-1]["diversity"] > 0.8


def test_collapse_rate_cuts_are_capped() -> None:
    g = Guard(GuardConfig(collapse_lr_factor=0.1, collapse_lr_max=1e-3))
    assert g.lr_cap() == float("inf")  # no cut yet
    g.remedies, g.retries = [("r1", 600)], 1
    assert g.lr_cap() == float("inf")  # a penalty is not a rate cut
    g.remedies, g.retries = [*g.remedies, ("lr", 1200)], 2
    assert g.lr_cap() == pytest.approx(1e-3) and g.lr_scale() == pytest.approx(0.1)
    g.remedies, g.retries = [*g.remedies, ("lr", 1800)], 3
    assert g.lr_cap() == pytest.approx(1e-4) and g.lr_scale() == pytest.approx(0.01)
    g.cfg = GuardConfig(collapse_lr_max=0.0)
    assert g.lr_cap() == float("inf")  # 0: no cap
    with pytest.raises(ConfigError, match="collapse_lr_max"):
        resolve("classic", overrides=["guard.collapse_lr_max=-1"])


def test_collapse_is_rolled_back_and_remedied(tmp_path: Path) -> None:
    # lr 0.5 collapses; one cut, capped at guard.collapse_lr_max (1e-3, where a cut by the
    # factor 0.1 alone gives 0.05), trains ring8 (measured: all 8 modes).
    cfg = collapsing('guard.remedies=["lr"]', steps=600)
    trainer = gankit.train(cfg, out=tmp_path / "run", progress=False)
    rolled = [e for e in events(tmp_path / "run") if e.get("action") == "rollback"]
    assert len(rolled) == 1
    e = rolled[0]
    assert e["reason"] == "mode_collapse" and e["remedy"] == "lr" and e["rollback_to"] < 100
    assert e["lr_g"] == pytest.approx(1e-3) and e["lr_d"] == pytest.approx(1e-3)
    assert trainer.step == 600
    last = [r for r in runlog.read(tmp_path / "run" / "metrics.jsonl") if "diversity" in r][-1]
    assert last["modes_seen"] == 8 and last["duplicates"] < 0.1
    # The remedy is in the checkpoint: a resumed run keeps the cut rate.
    state = checkpoint.latest(tmp_path / "run" / "checkpoints")
    assert state["guard"]["retries"] == 1  # that rollback, and no divergence
    assert state["guard"]["remedies"] == [["lr", e["rollback_to"]]]
    # The run was remedied, so it ended on the verdict: every mode, by the mixture's modes.
    verdict = events(tmp_path / "run")[-1]
    assert (verdict["event"], verdict["action"], verdict["modes_seen"]) == ("verdict", "none", 8)


def test_remedies_switch_on_penalties_and_the_generic_step(tmp_path: Path) -> None:
    # Neither cures lr 0.5 (measured): the run stops after trying both.
    cfg = collapsing('guard.remedies=["noise", "r1"]', "guard.max_retries=2", steps=400)
    trainer = gankit.prepare(cfg, tmp_path / "run")
    with pytest.raises(DivergedError, match=r"tried noise at step \d+, r1 at step \d+"):
        trainer.fit(progress=False)
    used = [e["remedy"] for e in events(tmp_path / "run") if e.get("action") == "rollback"]
    assert used == ["noise", "r1"]
    # The noise that did not cure was taken back when R1 came in.
    assert trainer.recipe.reg.instance_noise == cfg.reg.instance_noise == 0.0
    assert trainer.recipe.reg.r1_gamma == pytest.approx(10.0)
    assert trainer.step_kind == "generic (packing)"
    # Resuming rebuilds the same recipe from the checkpoint's guard state.
    resumed = gankit.prepare(gankit.resume_config(tmp_path / "run", 400), tmp_path / "run",
                             resume=True)
    assert resumed.recipe.reg == trainer.recipe.reg
    assert resumed.recipe.noise_from == trainer.recipe.noise_from


def test_a_penalty_that_did_not_cure_is_taken_back_while_rate_cuts_add_up() -> None:
    g = Guard(resolve("classic").guard)
    base = resolve("classic").reg
    g.retries, g.remedies = 4, [("lr", 100), ("r1", 200), ("lr", 300), ("noise", 400)]
    reg, noise_from = g.regularisers(base)
    assert (reg.r1_gamma, reg.instance_noise, noise_from) == (base.r1_gamma, 0.1, 400)
    assert g.lr_scale() == pytest.approx(0.1 ** 2)
    g.retries, g.remedies = 2, g.remedies[:2]
    reg, _ = g.regularisers(base)
    assert (reg.r1_gamma, reg.instance_noise) == (10.0, base.instance_noise)
    assert g.lr_scale() == pytest.approx(0.1)


def test_wider_d_applies_only_to_a_small_discriminator() -> None:
    g = Guard(GuardConfig(remedies=("wider_d", "r1", "lr")))
    assert g.applicable(SimpleNamespace(small_d=True)) == ["wider_d", "r1", "lr"]
    assert g.applicable(SimpleNamespace(small_d=False)) == ["r1", "lr"]
    for preset in ("classic", "digits", "mixture"):  # no shipped D is small beside its G
        cfg = resolve(preset, values={"train": {"steps": 1}})
        assert not gankit.Trainer(cfg, gankit.load_data(cfg.data)).small_d, preset
    cfg = resolve("classic", overrides=["model.d_hidden=[4]"])
    trainer = gankit.Trainer(cfg, gankit.load_data(cfg.data))
    assert trainer.small_d and trainer.step_kind == "fused"
    trainer.guard.remedies = [("wider_d", 0)]
    trainer.apply_remedies()  # D afresh, as wide as G, and still the fused step
    assert trainer.d_hidden == (128, 128) and trainer.step_kind == "fused"
    assert [m.out_features for m in trainer.D.modules() if isinstance(m, torch.nn.Linear)] == [
        128, 128, 1]
    assert {id(p) for p in trainer.opt_d.param_groups[0]["params"]} == {
        id(p) for p in trainer.D.parameters()}
    trainer.train_step()


def test_a_small_discriminator_is_widened_kept_wide_and_resumed_exactly(tmp_path: Path) -> None:
    # lr 0.5 with a 2-unit D collapses: the first rollback rebuilds D as wide as G (128, 128),
    # the second cuts the rates and may roll back to a state of the narrow D, widened again.
    extra = ['guard.remedies=["wider_d", "lr"]', "model.d_hidden=[2]",
             "guard.final_modes_min=0"]
    whole = gankit.train(collapsing(*extra, steps=500), out=tmp_path / "a", progress=False)
    used = [e["remedy"] for e in events(tmp_path / "a") if e.get("action") == "rollback"]
    assert used[:2] == ["wider_d", "lr"], used
    widened = next(e for e in events(tmp_path / "a") if e.get("remedy") == "wider_d")
    assert widened["d_hidden"] == [128, 128] and whole.d_hidden == (128, 128)
    state = checkpoint.latest(tmp_path / "a" / "checkpoints")
    assert tuple(state["D"]["net.0.weight"].shape) == (128, 4)  # 2-D points, packed by 2
    # Stopped at step 350 and resumed, the run ends where the whole one did, bit for bit.
    gankit.train(collapsing(*extra, steps=350), out=tmp_path / "b", progress=False)
    resumed = gankit.prepare(gankit.resume_config(tmp_path / "b", 500), tmp_path / "b",
                             resume=True)
    assert resumed.d_hidden == (128, 128)
    resumed.fit(progress=False)
    for a, b in zip(whole.state()["D"].values(), resumed.state()["D"].values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(whole.G.parameters(), resumed.G.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_remedy_the_fused_step_lacks_hands_over_to_the_generic_step() -> None:
    trainer = gankit.Trainer(resolve("classic", values={"train": {"steps": 4, "batch_size": 8,
                                                                  "precision": "fp32"}}),
                             gankit.load_data(resolve("classic").data))
    assert trainer.step_kind == "fused"
    trainer.guard.remedies = [("noise", 0)]
    trainer.apply_remedies()
    assert trainer.step_kind == "generic (instance noise)"
    trainer.train_step()
    assert trainer.step == 1


def test_collapse_that_cannot_be_remedied_stops_with_exit_3(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--preset", "mixture", "--data", "ring8", "--steps", "600",
                 "--out", str(tmp_path / "run"), *sum((["--set", s] for s in COLLAPSING), []),
                 "--set", "guard.max_retries=1", "--set", "guard.collapse_lr_factor=0.9",
                 "--set", "guard.collapse_lr_max=0",  # no cap: a cut that does not cure
                 "--set", 'guard.remedies=["lr"]', "--quiet"])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "collapsed to few modes" in err[0] and "tried lr at step" in err[0], err
    stopped = [e for e in events(tmp_path / "run") if e["event"] == "stopped"]
    assert stopped and stopped[0]["reason"] == "mode_collapse"
    with pytest.raises(DivergedError):  # the same through the Python API
        gankit.train(collapsing("guard.max_retries=0"), out=tmp_path / "api", progress=False)


def test_watch_does_not_change_training(tmp_path: Path) -> None:
    base = ["model.clusters=0", "train.log_every=50", "train.checkpoint_every=1000",
            "train.sample_every=1000",            "guard.remedies=[]"]
    a = resolve("mixture", overrides=[*base, "guard.diversity_every=50"],
                values={"data": {"source": "ring8"}, "train": {"steps": 100}})
    b = a.replace(guard={"diversity_every": 0})
    ta = gankit.train(a, out=tmp_path / "a", progress=False)
    tb = gankit.train(b, out=tmp_path / "b", progress=False)
    for pa, pb in zip(ta.G.parameters(), tb.G.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert any("diversity" in r for r in runlog.read(tmp_path / "a" / "metrics.jsonl"))
    assert not any("diversity" in r for r in runlog.read(tmp_path / "b" / "metrics.jsonl"))
