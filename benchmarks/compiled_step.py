"""torch.compile of the whole training step against gankit's generic and fused steps.

For one preset and batch, the step as a user writes it for ``torch.compile`` (D step and G step,
both optimizer steps, in one compiled function; batches and noise drawn outside it, as gankit
draws them) is compiled, its compilation timed, and its ms per step measured beside gankit's
generic and fused steps, alternating repeats.

    python benchmarks/compiled_step.py --case seed:128 --repeats 3 --seconds 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gankit import load_data, resolve
from gankit.training.trainer import Trainer


def compiled_step(tr: Trainer) -> tuple[float, callable]:
    """(Seconds spent compiling, a step function) of ``torch.compile`` over the whole step."""
    G, D, opt_g, opt_d = tr.G, tr.D, tr.opt_g, tr.opt_d
    ema = tr.G_ema
    decay = tr.cfg.train.ema

    def step(real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        fake = G(z)
        logits = D(torch.cat([real, fake.detach()]))
        n = real.shape[0]
        loss_d = F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward(retain_graph=True)  # G's graph: compiled with D's, and used again
        opt_d.step()
        D.requires_grad_(False)
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(G.parameters()), 1 - decay)
        return torch.stack([loss_d.detach(), loss_g.detach()])

    torch._functorch.config.donated_buffer = False  # needed with retain_graph above
    fn = torch.compile(step)

    def run() -> None:
        idx = torch.randint(tr.x.shape[0], (tr.draw,), generator=tr.gen_data)
        fn(tr.x.index_select(0, idx), tr._noise())

    t0 = time.perf_counter()
    run()
    run()  # a second call: recompiles for changed guards happen here
    return time.perf_counter() - t0, run


def timed(step: callable, seconds: float) -> tuple[float, float]:
    """(wall, this thread's CPU) ms per step over about ``seconds``, after a warm-up.

    On one thread the CPU time is what the step costs with a core to itself, even on a busy
    machine.
    """
    for _ in range(3):
        step()
    count, t0, c0 = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - t0 < seconds or count < 5:
        step()
        count += 1
    return (1000 * (time.perf_counter() - t0) / count,
            1000 * (time.thread_time() - c0) / count)


def main() -> None:
    """Print compile time and ms per step of the compiled, generic and fused steps."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="seed:128", help="PRESET:BATCH")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    preset, _, batch = args.case.partition(":")
    cfg = resolve(preset, values={"train": {"batch_size": int(batch), "threads": args.threads}})
    data = load_data(cfg.data)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} thread(s), {args.case}")
    steps = {"generic": Trainer(cfg.replace(train={"fused_step": False}), data).train_step}
    fused = Trainer(cfg, data)
    if fused.step_kind == "fused":
        steps["fused"] = fused.train_step
    t0 = time.perf_counter()
    seconds, steps["compiled"] = compiled_step(Trainer(cfg.replace(train={"fused_step": False}),
                                                       data))
    print(f"torch.compile: first two steps {seconds:.1f} s (process at "
          f"{time.perf_counter() - t0:.1f} s)", flush=True)
    ms: dict[str, list[tuple[float, float]]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            ms[name].append(timed(step, args.seconds))
    for name in steps:
        wall = statistics.median(w for w, _ in ms[name])
        cpu = statistics.median(c for _, c in ms[name])
        print(f"{name:9s} {wall:7.2f} ms/step wall, {cpu:7.2f} ms/step main-thread CPU")


if __name__ == "__main__":
    main()
