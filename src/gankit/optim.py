"""Adam as ``torch.optim.Adam`` computes it, without its start-up cost.

Every ``torch.optim`` optimizer imports ``torch._dynamo`` (the compiler, about 2 s of CPU) on its
first call, before the first training step. This Adam calls the same kernels (the fused kernel
where this torch has one for the device, else the same multi-tensor operations as torch's
``foreach`` Adam, in the same order), so its updates are bitwise torch's; it keeps its state in
torch's layout and reads and writes torch's ``state_dict`` format, so checkpoints written with
either load into the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch

#: Options of torch's Adam this one has only at their defaults (kept in each group so that
#: code reading a ``torch.optim.Adam``'s groups reads this one's alike).
FIXED = {"weight_decay": 0.0, "amsgrad": False, "maximize": False, "capturable": False,
         "differentiable": False, "decoupled_weight_decay": False}


def fused_kernel(device: torch.device) -> bool:
    """Whether this torch has a fused Adam kernel for ``device`` (CPU kernels came in 2.4)."""
    if not hasattr(torch, "_fused_adam_"):
        return False
    if device.type == "cpu":
        return torch.torch_version.TorchVersion(torch.__version__) >= (2, 4)
    return device.type == "cuda"


class Adam:
    """Adam (Kingma & Ba, 2015) over ``params``, with torch's hyperparameters and state.

    ``fused`` asks for one fused kernel per step where the device has one (else the
    multi-tensor path runs, as with ``torch.optim.Adam(foreach=True)``).
    """

    #: ``torch.amp.GradScaler`` unscales the gradients and skips steps with infinities itself.
    _step_supports_amp_scaling = False

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, ...] = (0.9, 0.999), eps: float = 1e-8,
                 fused: bool = True) -> None:
        params = list(params)
        if not params:
            raise ValueError("Adam was given no parameters")
        if lr < 0 or eps < 0 or len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid Adam hyperparameters: lr={lr}, betas={betas}, eps={eps}")
        fused = fused and all(p.is_floating_point() and fused_kernel(p.device) for p in params)
        self.defaults: dict[str, Any] = {
            "lr": lr, "betas": tuple(betas), "eps": eps, **FIXED,
            "foreach": None if fused else True, "fused": True if fused else None,
        }
        self.param_groups: list[dict[str, Any]] = [{"params": params, **self.defaults}]
        self.state: defaultdict[torch.Tensor, dict[str, torch.Tensor]] = defaultdict(dict)

    def _state(self, p: torch.Tensor, fused: bool) -> dict[str, torch.Tensor]:
        """``p``'s moments and step count, created (zero) on its first step."""
        state = self.state.get(p)
        if not state:
            state = self.state[p] = {
                # as torch hosts it: on the parameter's device for the fused kernel, else CPU
                "step": torch.zeros((), dtype=torch.float32, device=p.device if fused else "cpu"),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return state

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the parameters' gradients (to None, or zero them in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        with torch.no_grad():
            for group in self.param_groups:
                by_kind: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
                for p in group["params"]:
                    if p.grad is not None:
                        by_kind.setdefault((p.device, p.dtype), []).append(p)
                for params in by_kind.values():
                    _update(group, params, [self._state(p, bool(group["fused"])) for p in params])

    def state_dict(self) -> dict[str, Any]:
        """The state in ``torch.optim.Adam.state_dict``'s format (parameters by index)."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [index[id(p)] for p in group["params"]]})
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state written by ``state_dict`` here or by ``torch.optim.Adam``.

        The hyperparameters (lr, betas, eps) come from the state; options this Adam does not
        have are refused, and the kernel stays this machine's choice.
        """
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups,
                                                                    strict=False)):
            raise ValueError("the optimizer state does not fit these parameters "
                             "(another number of parameter groups or parameters)")
        for s in saved:
            bad = [k for k, v in FIXED.items() if s.get(k, v) != v]
            if bad:
                raise ValueError(f"the optimizer state uses Adam options gankit's Adam does not "
                                 f"have: {', '.join(bad)}")
        by_index = {i: p for s, g in zip(saved, self.param_groups, strict=True)
                    for i, p in zip(s["params"], g["params"], strict=True)}
        state: defaultdict[torch.Tensor, dict[str, torch.Tensor]] = defaultdict(dict)
        for i, values in state_dict["state"].items():
            p = by_index[int(i)]
            fused = bool(next(g for g in self.param_groups if any(q is p for q in g["params"]))
                         ["fused"])
            state[p] = {
                k: (v.to(dtype=torch.float32, device=p.device if fused else "cpu", copy=True)
                    if k == "step" else v.to(dtype=p.dtype, device=p.device, copy=True))
                for k, v in values.items()}
        for s, g in zip(saved, self.param_groups, strict=True):
            g.update(lr=s["lr"], betas=tuple(s["betas"]), eps=s["eps"])
        self.state = state


def _update(group: dict[str, Any], params: list[torch.Tensor],
            states: list[dict[str, torch.Tensor]]) -> None:
    """Adam's update of ``params`` (one device and dtype) from their gradients, in place."""
    grads = [p.grad for p in params]
    m = [s["exp_avg"] for s in states]
    v = [s["exp_avg_sq"] for s in states]
    steps = [s["step"] for s in states]
    lr, eps = group["lr"], group["eps"]
    beta1, beta2 = group["betas"]
    if group["fused"]:
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, m, v, [], steps, amsgrad=False, lr=lr, beta1=beta1,
                           beta2=beta2, weight_decay=0.0, eps=eps, maximize=False)
        return
    # torch's multi-tensor Adam (capturable off), operation by operation
    if steps[0].is_cpu:
        torch._foreach_add_(steps, torch.tensor(1.0, device="cpu"), alpha=1.0)
    else:
        torch._foreach_add_(steps, 1)
    torch._foreach_lerp_(m, grads, 1 - beta1)
    torch._foreach_mul_(v, beta2)
    torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
    counts = [s.item() for s in steps]
    step_size = [(lr / (1 - beta1 ** t)) * -1 for t in counts]
    bias_correction2_sqrt = [(1 - beta2 ** t) ** 0.5 for t in counts]
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, m, denom, step_size)
