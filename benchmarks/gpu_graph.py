"""Training steps on a GPU, eager and captured as a CUDA graph, side by side.

For each case (preset:batch) three trainers of the same config train on one CUDA device: the
generic step run eagerly (``train.fused_step = false``, ``train.cuda_graph = false``), the
preset's own step run eagerly (``train.cuda_graph = false``: the fused step for the fully
connected presets, the generic one for the others) and that step replayed as a CUDA graph (the
default on CUDA). Timed alternately in one process (median of the repeats, the clock stopped
once the queued steps finished); then, from one seed, the graphed and the eager runs train
``--check`` steps each and the table gives how far apart their weights are (relative to each
tensor's norm) and which step the graphed run ended on.

    python benchmarks/gpu_graph.py                      # seed:128 classic:128 digits:64 dcgan:64
    python benchmarks/gpu_graph.py --cases seed:512 --repeats 5 --seconds 2
"""

from __future__ import annotations

import argparse
import statistics

import torch
from speed import case_config, sync, time_steps

import gankit
from gankit.training.graphed import apart
from gankit.training.trainer import Trainer

DEFAULT_CASES = ["seed:128", "classic:128", "digits:64", "dcgan:64"]


def trainer(preset: str, batch: int, overrides: list[str], device: str) -> Trainer:
    """A trainer of one case on ``device``, with ``overrides``."""
    cfg = case_config(preset, batch, overrides, device)
    return Trainer(cfg, gankit.load_data(cfg.data))


def weights(tr: Trainer) -> list[torch.Tensor]:
    """G's and D's weights and buffers, in their state dicts' order."""
    return [v for net in (tr.G, tr.D) for v in net.state_dict().values()]


def run_case(preset: str, batch: int, repeats: int, seconds: float, check: int,
             device: str) -> dict:
    """Time the three steps of one case, then check the graphed run against the eager one."""
    def make(*overrides: str) -> Trainer:
        return trainer(preset, batch, list(overrides), device)

    loops = {"generic": make("train.fused_step=false", "train.cuda_graph=false"),
             "eager": make("train.cuda_graph=false"), "graphed": make()}
    kinds = {name: tr.step_kind for name, tr in loops.items()}
    ms: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, tr in loops.items():
            ms[name].append(time_steps(tr.train_step, seconds, tr.device)[0])
    eager, graphed = make("train.cuda_graph=false"), make()
    for _ in range(check):
        eager.train_step()
        graphed.train_step()
    sync(graphed.device)
    out = {f"{name}_ms": statistics.median(v) for name, v in ms.items()}
    out.update(case=f"{preset}:{batch}", kinds=kinds, apart=apart(weights(eager), weights(graphed)),
               kept=graphed.step_kind, notices=graphed.notices, finite=all(
                   bool(torch.isfinite(p).all()) for p in graphed.G.parameters()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="PRESET:BATCH ...")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="per timed repeat")
    ap.add_argument("--check", type=int, default=200, help="steps of the agreement check")
    ap.add_argument("--device", default="cuda",
                    help="cuda or cuda:N (cpu: a dry run, where no graph is captured)")
    args = ap.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        raise SystemExit("gpu_graph.py: no CUDA device")
    where = "CPU" if args.device == "cpu" else torch.cuda.get_device_name(args.device)
    print(f"torch {torch.__version__}, {where}")
    print(f"{'case':<12} {'generic ms':>10} {'eager ms':>9} {'graphed ms':>10} "
          f"{'vs generic':>10} {'vs eager':>8} {'apart':>8}  graphed run's step")
    for case in args.cases:
        preset, _, batch = case.partition(":")
        r = run_case(preset, int(batch or 128), args.repeats, args.seconds, args.check,
                     args.device)
        print(f"{r['case']:<12} {r['generic_ms']:>10.3f} {r['eager_ms']:>9.3f} "
              f"{r['graphed_ms']:>10.3f} {r['generic_ms'] / r['graphed_ms']:>9.2f}x "
              f"{r['eager_ms'] / r['graphed_ms']:>7.2f}x {r['apart']:>8.1e}  {r['kept']}"
              f"{'' if r['finite'] else ' (NOT FINITE)'}")
        for note in r["notices"]:
            print(f"  note: {note}")
        print(f"  steps timed: {r['kinds']}")


if __name__ == "__main__":
    main()
