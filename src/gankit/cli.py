"""The ``gankit`` command: argument parsing and error reporting only; the work is in the library."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from .autopreset import choose
from .config import TABLE_SUFFIXES, presets, resolve
from .errors import DivergedError, GankitError
from .run import check_out, default_out, load_run, prepare, resume_config, same_run
from .training import distributed
from .training.signals import stop_on_signals


class Parser(argparse.ArgumentParser):
    """An argument parser that reports a mistake as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gankit: error: {message}\n")


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def duration(text: str) -> float:
    """An argparse type: seconds from 90, 90s, 5m or 1.5h."""
    from .metrics.goals import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


positive_int = int_at_least(1)


def share(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value

DEFAULT_TARGET_EVERY = 500  # eval.every for --target when neither it nor --eval-every is set
natural_int = int_at_least(0)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    value = natural_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def make_parser() -> Parser:
    """The full command-line grammar."""
    parser = Parser(prog="gankit", description="Train and sample generative adversarial networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a GAN into a run directory")
    t.add_argument("--config", metavar="FILE.toml", help="TOML config file")
    t.add_argument("--preset", metavar="NAME",
                   help=f"preset to start from ({', '.join(presets())})")
    t.add_argument("--data", metavar="SPEC",
                   help="digits, mnist, ring8, grid25, adult, a folder of images, .npy/.npz, "
                        "or a table (.csv, .tsv, .parquet)")
    t.add_argument("--data-dir", metavar="DIR", help="folder holding the data's files (mnist)")
    t.add_argument("--steps", type=positive_int, metavar="N", help="total generator steps")
    t.add_argument("--batch-size", type=positive_int, metavar="N")
    t.add_argument("--seed", type=natural_int, metavar="N")
    t.add_argument("--out", metavar="DIR", help="run directory (default: runs/<timestamp>)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable)")
    t.add_argument("--eval-every", type=natural_int, metavar="N",
                   help="compute quality metrics every N steps into metrics.jsonl (0 = off)")
    t.add_argument("--devices", metavar="DEVICE",
                   help="auto (CUDA if available, the default), cpu, cuda or cuda:N "
                        "(train.device; under torchrun cuda is cuda:LOCAL_RANK)")
    t.add_argument("--target", metavar="METRIC=VALUE",
                   help="stop at the first evaluation that reaches it: fd=3 (at most, for "
                        "metrics better low), precision=0.7 (at least), or <, <=, >, >=")
    t.add_argument("--time", type=duration, metavar="DURATION",
                   help="stop with a checkpoint after this much training: 90s, 5m, 1h")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard event files under RUN/tb/ (train.tensorboard)")
    t.add_argument("--quiet", action="store_true", help="no progress display")

    s = sub.add_parser("sample", help="generate images (or 2-D points) from a trained run")
    s.add_argument("run", metavar="RUN", help="run directory")
    s.add_argument("--num", type=positive_int, default=None, metavar="N",
                   help="how many samples (required unless --between)")
    s.add_argument("--out", required=True, metavar="FILE",
                   help="images and points: .npz or .png; tables: .csv, .tsv or .parquet; "
                        "text: .txt")
    s.add_argument("--seed", type=natural_int, default=0, metavar="N")
    s.add_argument("--no-ema", action="store_true", help="use the raw generator, not its average")
    s.add_argument("--class", dest="label", type=natural_int, metavar="K",
                   help="conditional runs: only class K (default: one grid row per class); "
                        "self-conditioned runs: only cluster K (default: clusters drawn at "
                        "their share of the data)")
    s.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="tables: only rows where the clause holds (=, !=, <, <=, >, >=; "
                        "repeatable, all must hold)")
    s.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="text: sampling temperature (1: the model's own, lower: safer, 0: "
                        "the most likely token each time)")
    s.add_argument("--between", nargs=2, default=None, metavar=("A", "B"),
                   help="latent text runs: the walk from string A to string B")
    s.add_argument("--steps", type=int_at_least(2), default=None, metavar="N",
                   help="--between: strings on the walk, ends included (default 8)")

    e = sub.add_parser("eval", help="quality metrics of a run or of a file of samples; with "
                                    "two, whether they differ by more than the noise")
    e.add_argument("source", metavar="RUN|FILE.npz", nargs="+",
                   help="run directory or .npz/.npy samples; two to compare (B against A)")
    e.add_argument("--data", metavar="SPEC",
                   help="data to compare with (default: the run's data; digits for a file)")
    e.add_argument("--data-dir", metavar="DIR", help="folder holding the data's files (mnist)")
    e.add_argument("--num", type=positive_int, default=2500, metavar="N",
                   help="samples to generate, or to use from the file at most (default 2500)")
    e.add_argument("--extractor", default="", metavar="NAME",
                   help="feature extractor (default: digits for 28x28 grayscale, else inception)")
    e.add_argument("--seed", type=natural_int, default=0, metavar="N")
    e.add_argument("--ci", type=share, default=None, metavar="LEVEL",
                   help="give each metric a bootstrap interval at this level, e.g. 0.95 (the "
                        "default when comparing two)")
    e.add_argument("--replicates", type=int_at_least(2), default=None, metavar="N",
                   help="draws behind an interval (default 20)")
    e.add_argument("--json", action="store_true", help="print one JSON line")

    r = sub.add_parser("report", help="write report.html for a run")
    r.add_argument("run", metavar="RUN", help="run directory")
    r.add_argument("--out", metavar="FILE.html", help="where to write (default: RUN/report.html)")

    x = sub.add_parser("export", help="write a run's sampling generator as an ONNX file")
    x.add_argument("run", metavar="RUN", help="run directory")
    x.add_argument("--out", required=True, metavar="FILE.onnx")
    x.add_argument("--no-ema", action="store_true", help="the raw generator, not its average")

    v = sub.add_parser("serve", help="a local web page that samples from a run")
    v.add_argument("run", metavar="RUN", help="run directory")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    v.add_argument("--port", type=port_number, default=8765,
                   help="port (default 8765; 0: any free one)")
    v.add_argument("--max-samples", type=positive_int, default=1024, metavar="N",
                   help="most samples one request may ask for (default 1024)")
    v.add_argument("--no-ema", action="store_true", help="the raw generator, not its average")

    sub.add_parser("presets", help="list the shipped presets")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    """``gankit train``; under torchrun, one process of the job (rank 0 writes and talks)."""
    with distributed.session(args.devices or "auto") as world:
        return _train(args, world)


def _train(args: argparse.Namespace, world: distributed.World) -> int:
    note = ""
    if args.resume:
        if args.out is None:
            raise GankitError("--resume needs --out RUN, the run to continue")
        out = Path(args.out)
        cfg = None
        if world.main:  # only rank 0 reads the run directory
            check_out(out, resume=True)
            # The command as first typed, plus --resume, continues the run: what it repeats must
            # match the stored config; only --steps, --devices, --target, --time may change.
            given = {"data": {"source": args.data, "dir": args.data_dir},
                     "train": {"batch_size": args.batch_size, "seed": args.seed,
                               "steps": args.steps, "device": args.devices,
                               "target": args.target, "time_limit": args.time,
                               "tensorboard": args.tensorboard},
                     "eval": {"every": args.eval_every}}
            cfg = same_run(resume_config(out), args.preset, args.config, args.set, given)
    else:
        values: dict = {"data": {}, "train": {}, "eval": {}}
        if args.eval_every is not None:
            values["eval"]["every"] = args.eval_every
        if args.data is not None:
            values["data"]["source"] = args.data
        if args.data_dir is not None:
            values["data"]["dir"] = args.data_dir
        for key in ("steps", "batch_size", "seed", "target", "tensorboard"):
            if getattr(args, key) is not None:
                values["train"][key] = getattr(args, key)
        if args.time is not None:
            values["train"]["time_limit"] = args.time
        if args.target is not None and args.eval_every is None:
            values["eval"]["every"] = DEFAULT_TARGET_EVERY  # a target is judged at evaluations
        if args.devices is not None:
            values["train"]["device"] = args.devices
        overrides = list(args.set)
        if args.preset is None and args.config is None and args.data is not None:
            picked = choose(args.data)
            if picked is not None:
                args.preset, size, what = picked
                overrides.insert(0, f"data.size={size}")  # the user's --set still wins
                note = (f"gankit: picked preset '{args.preset}' at {size}x{size} for {what} "
                        "(--preset chooses another)")
        cfg = resolve(args.preset, args.config, overrides, values)
        out = Path(args.out) if args.out else default_out()
    cfg, out = distributed.broadcast_object((cfg, out), world)  # one config, one run directory
    trainer = prepare(cfg, out, resume=args.resume)
    cfg = trainer.cfg  # as the run trains it (a table's own length resolved)
    quiet = args.quiet or not world.main
    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr))
    if not args.resume and note:
        say(note)
    what = f"resuming at step {trainer.step}" if args.resume else "training"
    for line in trainer.data.notes:
        say(f"gankit: {line}")
    shape = trainer.kind.describe(trainer.data)
    split = (f", global batch {cfg.train.batch_size} = {world.size} processes x {trainer.batch}"
             if world.size > 1 else "")
    say(f"gankit: {what} preset '{cfg.preset}' on '{cfg.data.source}' ({shape}) "
        f"for {cfg.train.steps} steps into {out}{split}, {trainer.step_kind} step")
    with stop_on_signals(trainer) as caught:
        try:
            trainer.fit(progress=not quiet)
        except KeyboardInterrupt:
            name = caught.name or "SIGINT"
            if world.main:
                saved = f"checkpoint saved at step {trainer.step}; " if trainer.step else ""
                print(f"\ngankit: stopped by {name}; {saved}resume with: "
                      f"gankit train --resume --out {out}", file=sys.stderr)
            return 128 + int(getattr(signal, name))
    if trainer.stopped is not None:
        reason, detail = trainer.stopped
        more = (f"; continue with: gankit train --resume --out {out}"
                if reason == "time" else "")
        say(f"gankit: stopped at step {trainer.step} of {cfg.train.steps}: {detail}; "
            f"checkpoint saved{more}")
        return 0
    say(f"gankit: finished at step {trainer.step}; samples in {out / 'samples'}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``gankit sample``: what is written is the run's kind's to say."""
    from . import kinds

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (*kinds.get("images").sample_suffixes, *TABLE_SUFFIXES,
                      ".txt"):  # before the run
        raise GankitError(f"--out must end in .npz or .png (images, points), .csv, .tsv or "
                          f".parquet (tables, series) or .txt (text), got '{out.name}'")
    if not out.parent.is_dir():
        raise GankitError(f"folder {out.parent} does not exist")
    if args.num is None and args.between is None:
        raise GankitError("--num N is required (how many samples to write)")
    run = load_run(args.run, ema=not args.no_ema)
    kind = run.kind
    if suffix not in kind.sample_suffixes:
        raise GankitError(f"--out must end in {' or '.join(kind.sample_suffixes)} for a run "
                          f"that makes {kind.name}, got '{out.name}'")
    options = {"temperature": args.temperature, "between": args.between,
               "steps": args.steps}  # a kind's own sampling options
    count = kind.write_with(run, out, args.num, args.seed, args.label, args.where, options)
    print(f"gankit: wrote {count} samples from step {run.step} to {out}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``gankit eval``: one source's metrics, or two compared."""
    from .evaluation import (
        DEFAULT_REPLICATES,
        compare,
        evaluate_source,
        format_comparison,
        format_scores,
        judge_source,
        replicated,
    )

    if len(args.source) > 2:
        raise GankitError(f"eval takes one source, or two to compare; got {len(args.source)}")
    replicates = args.replicates or DEFAULT_REPLICATES
    if len(args.source) == 1:
        scores = evaluate_source(Path(args.source[0]), data=args.data, data_dir=args.data_dir,
                                 num=args.num, extractor=args.extractor, seed=args.seed,
                                 ci=args.ci or 0.0, replicates=replicates)
        print(json.dumps(scores) if args.json else format_scores(scores))
        return 0
    ci = args.ci or 0.95
    draws = []
    for source in args.source:  # both judged first: a bad source fails before the long part
        draws.append(judge_source(Path(source), args.data, args.data_dir, args.extractor))
    a, b = (replicated(j, args.num, args.seed, replicates) for j in draws)
    rows = compare(a, b, ci)
    if args.json:
        print(json.dumps({"a": args.source[0], "b": args.source[1], "ci": ci,
                          "replicates": replicates, "metrics": rows}))
    else:
        print(format_comparison(rows, ci, (args.source[0], args.source[1])))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``gankit report``."""
    from .report import write_report

    path = write_report(Path(args.run), Path(args.out) if args.out else None)
    print(f"gankit: wrote {path}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``gankit export``."""
    from .ship.export import export

    run, diff = export(args.run, args.out, ema=not args.no_ema)
    which = "raw" if args.no_ema or run.config.train.ema <= 0 else "EMA"
    check = ("" if diff is None
             else f"; ONNX Runtime matches PyTorch within {max(diff, 1e-12):.1e}")
    print(f"gankit: wrote {args.out} ({run.kind.name}, {which} generator of step {run.step})"
          f"{check}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``gankit serve``: until Ctrl-C."""
    from .ship.serve import serve

    serve(args.run, args.host, args.port, args.max_samples, ema=not args.no_ema,
          say=lambda text: print(text, file=sys.stderr))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """``gankit presets``."""
    for name in presets():
        print(name)
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "report": cmd_report,
            "export": cmd_export, "serve": cmd_serve, "presets": cmd_presets}


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command; user errors become one line on stderr and exit code 2.

    A run that diverged beyond recovery also ends with one line, and exit code 3. Under torchrun
    an unexpected exception is also recorded for torchrun's failure summary.
    """
    if distributed.launched():
        return distributed.recorded(_main)(argv)
    return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DivergedError as e:
        print(f"gankit: error: {e}", file=sys.stderr)
        return 3
    except GankitError as e:
        print(f"gankit: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`gankit eval RUN | head`): stop quietly
        _silence_stdout()
        return 141  # as a shell tool ended by SIGPIPE
    except OSError as e:
        print(f"gankit: error: {e.strerror or e}"
              + (f": {e.filename}" if getattr(e, "filename", None) else ""), file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real file behind stdout
        pass


if __name__ == "__main__":  # python -m gankit.cli, as python -m gankit
    raise SystemExit(main())
