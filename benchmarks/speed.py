"""Training speed: gankit's trainer against the textbook eager PyTorch loop, side by side.

In one process, for each case (preset, batch size), a reference loop and gankit's trainer train the
same model on the same data, alternating several timed repeats; the table gives the medians.
The reference is the loop tutorials write: random indexing into an in-memory tensor, two Adam
optimizers, BCE-with-logits, D on real and on fake.detach(), then G through D, `.item()` on both
losses every step (for `classic`, its stabilisers written the plain way: spectral norm, tanh
output, EMA of G). Peak memory is the process's peak resident set during the repeat (VmHWM, reset
before each). FLOPs per step are counted from the operators' shapes (torch's FlopCounterMode, on
gankit's generic step) and reported against a large matmul measured in the same run, on the same
thread count. gankit's column runs the step its trainer picks (fused for the plain fully
connected presets, see training/fused.py; the table says which, and in which precision). "% own
peak" is the same fraction against the peak of the type the step's products run in: the bf16
peak for bf16 products or autocast, where the device has bf16 units.

The JAX column (fully connected presets only) is the same model as a JAX user writes it, whole
step under one jax.jit with optax Adam (benchmarks/jax_gan.py), from the same initial weights, on
the same thread count (XLA reads its threads once: the thread count of the first case); it is
skipped with a note where jax and optax are not installed (pip install 'gankit[bench]').

    python benchmarks/speed.py                       # the full table
    python benchmarks/speed.py --cases classic:128 --repeats 3 --seconds 2
    python benchmarks/speed.py --device cuda         # both loops on the GPU (peak memory: GPU)
    python benchmarks/speed.py --clock cpu           # a shared machine: CPU seconds, not wall
    python benchmarks/speed.py --cores 1             # one-thread loops on one core (JAX too)

``--clock cpu`` times everything (the matmul peak too) in the process's CPU seconds: on one
thread that is what a step costs with a core to itself, even while other work shares the machine.

``--cores N`` confines the whole process to N cores (Linux): XLA keeps helper threads busy beside
its one compute thread even when told to use one (measured: 28 ms of CPU per 18 ms step), so an
equal-cores comparison of one-thread loops needs ``--cores 1``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax_gan
import reference
import torch
from reference import ReferenceLoop
from torch.utils.flop_counter import FlopCounterMode

from gankit import load_data, presets, resolve
from gankit.config import Config
from gankit.training import fast
from gankit.training.trainer import Trainer

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
DEFAULT_CASES = ["seed:64", "seed:128", "seed:512", "classic:64", "classic:128", "classic:512",
                 "dcgan:64", "dcgan:128"]


def reset_peak_rss() -> None:
    """Reset this process's peak resident set size (Linux; no-op elsewhere)."""
    try:
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """This process's peak resident set size since the last reset, in MiB (0 if unknown)."""
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 1.0,
                device: str | torch.device = "cpu",
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Achieved GFLOP/s of an n×n matmul in ``dtype`` on ``device``."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    sync(device)
    count, t0 = 0, clock()
    while clock() - t0 < seconds:
        a @ b
        count += 1
        if device.type == "cuda" and count % 50 == 0:
            sync(device)
    sync(device)
    return 2 * n**3 * count / (clock() - t0) / 1e9


def flops_per_step(step: Callable[[], None]) -> int:
    """Floating-point operations of one call of ``step`` (matmuls and convolutions)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def time_steps(step: Callable[[], None], seconds: float, device: str | torch.device = "cpu",
               clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """(ms per step, peak memory MiB) over about ``seconds`` of steps, after a short warm-up.

    Peak memory is the process's resident set on the CPU, and the allocated GPU memory on CUDA.
    On CUDA the clock stops once the queued steps have finished.
    """
    device = torch.device(device)
    for _ in range(3):
        step()
    sync(device)
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    count, t0 = 0, clock()
    while True:
        step()
        count += 1
        if clock() - t0 >= seconds and count >= 5:
            break
    sync(device)
    elapsed = clock() - t0
    if device.type == "cuda":
        return 1000 * elapsed / count, torch.cuda.max_memory_allocated(device) / 2**20
    return 1000 * elapsed / count, peak_rss_mb()


def case_config(preset: str, batch: int, overrides: list[str], device: str) -> Config:
    """The config of one case: the preset at ``batch`` on ``device``, with ``overrides``."""
    return resolve(preset, overrides=overrides,
                   values={"train": {"batch_size": batch, "device": device}})


def jax_loop(cfg: Config, ours: Trainer, jax_note: str | None, jax_threads: int,
             device: str) -> tuple[jax_gan.JaxLoop | None, str | None]:
    """(The JAX loop of this case, None) where there is one, else (None, why not)."""
    why = jax_note or jax_gan.unsupported(cfg)
    if why is None and device != "cpu":
        why = "CPU only"
    if why is None and torch.get_num_threads() != jax_threads:
        why = f"XLA started on {jax_threads} thread(s)"
    return (None, why) if why else (jax_gan.JaxLoop(ours), None)


def run_case(preset: str, batch: int, repeats: int, seconds: float, overrides: list[str],
             peak: Callable[[int], float], threads: int, default_threads: int,
             device: str = "cpu", jax_note: str | None = None, jax_threads: int = 0,
             clock: Callable[[], float] = time.perf_counter) -> dict:
    """Alternate reference, gankit and JAX for one case; medians of the repeats.

    All loops run on the same number of threads: ``threads``, else the preset's
    ``train.threads``, else torch's default.
    """
    cfg = case_config(preset, batch, overrides, device)
    data = load_data(cfg.data)
    torch.set_num_threads(threads or cfg.train.threads or default_threads)
    ref = ReferenceLoop(cfg, data)
    ours = Trainer(cfg, data)
    # FLOPs counted as before the fused step: on the generic step's operators, of the
    # adversarial step alone (the FLOP counter cannot follow R1's double backward; the lazy R1
    # of the `digits` preset, every 4th step, is left out of the count and of the % of peak),
    # run eagerly (a CUDA graph's first call runs the step four times: warm-ups, capture, check)
    counted = cfg.replace(train={"fused_step": False, "cuda_graph": False},
                          reg={"r1_gamma": 0.0})
    flops = flops_per_step(Trainer(counted, data).train_step)
    jax, jax_why = jax_loop(cfg, ours, jax_note, jax_threads, device)
    loops = [("ref", ref), ("ours", ours)] + ([("jax", jax)] if jax is not None else [])
    ms: dict[str, list[float]] = {name: [] for name, _ in loops}
    mem: dict[str, list[float]] = {name: [] for name, _ in loops}
    for _ in range(repeats):
        for name, loop in loops:
            t, m = time_steps(loop.train_step, seconds, ours.device, clock)
            ms[name].append(t)
            mem[name].append(m)
    out = {"case": f"{preset}:{batch}", "flops": flops, "threads": torch.get_num_threads(),
           "precision": ours.precision, "step": ours.step_kind.split(" (")[0],
           "jax_why": jax_why}
    for name, _ in loops:
        out[f"{name}_ms"] = statistics.median(ms[name])
        out[f"{name}_ips"] = batch * 1000 / out[f"{name}_ms"]
        out[f"{name}_mem"] = max(mem[name])
    out["ratio"] = out["ours_ips"] / out["ref_ips"]
    out["vs_jax"] = out["jax_ms"] / out["ours_ms"] if jax is not None else None
    out["peak_frac"] = flops / (out["ours_ms"] / 1000) / 1e9 / peak(torch.get_num_threads())
    return out


def own_peak_frac(r: dict, peaks32: dict[int, float], peaks16: dict[int, float]
                  ) -> float | None:
    """A case's fraction of the peak of the type its products run in (fp32, or bf16 where the
    device's bf16 peak was measured); None for other precisions."""
    threads = r["threads"]
    if r["precision"] == "fp32":
        return r["peak_frac"]
    if r["precision"] == "bf16" and threads in peaks16:
        return r["peak_frac"] * peaks32[threads] / peaks16[threads]
    return None


def main() -> None:
    """Print the machine's matmul peak and the speed table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="PRESET:BATCH ...")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0, help="per timed repeat")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--set", action="append", default=[], help="config override for gankit")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both loops)")
    ap.add_argument("--no-jax", action="store_true", help="skip the JAX column")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall seconds, or the process's CPU seconds (a shared machine)")
    ap.add_argument("--cores", type=int, default=0,
                    help="confine the process (XLA's threads too) to this many cores; 0: all")
    args = ap.parse_args()
    if args.cores:  # before XLA or any torch thread pool starts
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
    clock = CLOCKS[args.clock]
    device = torch.device(args.device)
    default_threads = torch.get_num_threads()
    # XLA takes its thread count once, before it starts: the first fully connected case's.
    jax_threads = default_threads
    for case in args.cases:
        preset, _, batch = case.partition(":")
        if preset in presets():
            cfg = case_config(preset, int(batch), args.set, args.device)
            if jax_gan.unsupported(cfg) is None:
                jax_threads = args.threads or cfg.train.threads or default_threads
                break
    jax_gan.configure_threads(jax_threads)
    jax_note = "--no-jax" if args.no_jax else jax_gan.available()
    if jax_note and not args.no_jax:
        print(f"JAX column skipped: {jax_note}")
    if args.threads:
        torch.set_num_threads(args.threads)
    where = (f"{torch.cuda.get_device_name(device)} ({device})" if device.type == "cuda" else
             f"{os.cpu_count()} CPUs, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    pinned = f", confined to cores {sorted(os.sched_getaffinity(0))}" if args.cores else ""
    print(f"torch {torch.__version__}, {where}, {args.clock} clock{pinned}")
    peaks: dict[int, float] = {}
    peaks16: dict[int, float] = {}  # the bf16 peak, where the device has bf16 units

    def peak32(threads: int) -> float:
        """The fp32 matmul peak on ``threads`` threads, measured once and printed."""
        if threads not in peaks:
            if device.type == "cuda":  # fp32 without TF32, as the trainer runs it
                n, on = 8192, f"{device}"
                bf16 = True
            else:
                n, on = 2048, f"{threads} threads"
                bf16 = fast.cpu_bf16()
            peaks[threads] = matmul_peak(torch.float32, n, device=device, clock=clock)
            line = f"matmul peak ({n}², measured, {on}): fp32 {peaks[threads]:.1f}"
            if bf16:
                peaks16[threads] = matmul_peak(torch.bfloat16, n, device=device, clock=clock)
                line += f", bf16 {peaks16[threads]:.1f}"
            print(line + " GFLOP/s", flush=True)
        return peaks[threads]

    header = (f"{'case':12s} {'thr':>3s} {'MFLOP/step':>10s} {'ref ms':>8s} {'ref img/s':>10s} "
              f"{'ref MiB':>8s} {'gankit ms':>9s} {'gankit img/s':>12s} {'gankit MiB':>10s} "
              f"{'ratio':>6s} {'% fp32 peak':>11s} {'% own peak':>10s} {'JAX ms':>8s} "
              f"{'vs JAX':>7s} "
              f"{'gankit step':>11s} {'gankit precision'}")
    shown = False  # the header follows the first peak line, which the first case measures
    available = set(presets())
    for case in args.cases:
        preset, _, batch = case.partition(":")
        if preset not in available:
            print(f"{case:12s} skipped: no preset '{preset}'")
            continue
        why = reference.unsupported(case_config(preset, int(batch), args.set, args.device))
        if why:
            print(f"{case:12s} skipped: {why}")
            continue
        r = run_case(preset, int(batch), args.repeats, args.seconds, args.set, peak32,
                     args.threads, default_threads, args.device, jax_note, jax_threads, clock)
        if not shown:
            print(header)
            shown = True
        jax = (f"{r['jax_ms']:8.2f} {r['vs_jax']:6.2f}x" if r["vs_jax"] is not None else
               f"{'n/a':>8s} {'':>7s}")
        own = own_peak_frac(r, peaks, peaks16)
        own_col = f"{100 * own:9.1f}%" if own is not None else f"{'n/a':>10s}"
        print(f"{r['case']:12s} {r['threads']:3d} {r['flops'] / 1e6:10.1f} {r['ref_ms']:8.2f} "
              f"{r['ref_ips']:10.0f} "
              f"{r['ref_mem']:8.0f} {r['ours_ms']:9.2f} {r['ours_ips']:12.0f} "
              f"{r['ours_mem']:10.0f} {r['ratio']:5.2f}x {100 * r['peak_frac']:10.1f}% "
              f"{own_col} {jax} {r['step']:>11s} {r['precision']}"
              + (f"  (JAX: {r['jax_why']})" if r["jax_why"] and not args.no_jax else ""),
              flush=True)


if __name__ == "__main__":
    main()
