"""The fused training step of the fully connected family: the arithmetic of one step and no more.

The generic step (``Trainer.train_step``) runs autograd over the modules and one Adam per player.
For a fully connected G and D on the CPU in fp32, this module computes the same step as explicit
matrix products into buffers allocated once: activation and loss gradients are formed in place,
D's weight gradients are never formed in G's step (nor its first layer's input gradient in its
own), every player's parameters, gradients and Adam moments live in one flat buffer updated by
one fused Adam call, and G's moving average is one interpolation of two flat buffers.

The modules keep their parameters (now views into the flat buffers) and the optimizers keep their
usual per-parameter state (views into the flat moments), so ``state_dict``, checkpoints, resume
and ``load_run`` are as with the generic step, whichever step wrote them. The random generators
are drawn exactly as the generic step draws them, so both steps train the same run (to float
rounding: the sums are ordered differently).

Where a config needs something this step does not do (penalties, packing, augmentation,
conditioning, other families, mixed precision, several processes...), ``build`` returns None with
the reason and the generic step runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import LOSSES
from ..models.mlp import MLPDiscriminator, MLPGenerator
from . import devices

ACTIVATIONS = ("leaky_relu", "relu")
OUTPUTS = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Identity: "linear"}
# D losses whose logit gradients are written out here; the others in LOSSES but relativistic get
# theirs from autograd on the logits alone (a few vector operations).
CLOSED_FORM = ("non_saturating", "minimax")
FUSED_LOSSES = ("non_saturating", "minimax", "least_squares", "wasserstein", "hinge")
ADAM_DEFAULTS = {"amsgrad": False, "maximize": False, "weight_decay": 0.0,
                 "capturable": False, "differentiable": False}


def unsupported(trainer: Any) -> str | None:
    """Why the fused step cannot train ``trainer``'s config; None when it can."""
    cfg = trainer.cfg
    m, r, t = cfg.model, cfg.reg, cfg.train
    reasons = (
        (not t.fused_step, "train.fused_step is off"),
        (m.family != "mlp", f"model.family={m.family}"),
        (m.conditioned, "a conditioned model"),
        (m.activation not in ACTIVATIONS, f"model.activation={m.activation}"),
        (m.d_output != "linear", f"model.d_output={m.d_output}"),
        (cfg.loss.name not in FUSED_LOSSES, f"loss.name={cfg.loss.name}"),
        (r.gp_weight > 0, "a gradient penalty"),
        (r.r1_gamma > 0, "an R1 penalty"),
        (r.instance_noise > 0, "instance noise"),
        (r.pack != 1, "packing"),
        (bool(r.augment), "augmentation"),
        (trainer.precision != "fp32", f"train.precision={trainer.precision}"),
        (trainer.world.size > 1, "several processes"),
        (trainer.device.type != "cpu", f"the {trainer.device.type} device"),
        (not isinstance(trainer.G, MLPGenerator) or not isinstance(trainer.D, MLPDiscriminator),
         "networks of another kind"),
    )
    for failed, reason in reasons:
        if failed:
            return reason
    for opt in (trainer.opt_g, trainer.opt_d):
        group = opt.param_groups[0]
        if len(opt.param_groups) != 1 or any(group.get(k, v) != v
                                             for k, v in ADAM_DEFAULTS.items()):
            return "an optimizer other than plain Adam"
        if not isinstance(group["lr"], float) or isinstance(group["betas"][0], torch.Tensor):
            return "tensor learning rates"
    for module in trainer.D.modules():
        sn = _spectral_norm(module)
        if sn is not None and sn.dim != 0:
            return "spectral norm along another dimension"
    if trainer.G_ema is not None and list(trainer.G_ema.buffers()):
        return "a generator with buffers"
    return None


def build(trainer: Any) -> tuple[FusedStep | None, str | None]:
    """(The fused step for ``trainer``, None) where it applies, else (None, the reason)."""
    reason = unsupported(trainer)
    if reason is not None:
        return None, reason
    return FusedStep(trainer), None


def _spectral_norm(module: nn.Module) -> nn.Module | None:
    """The spectral-norm parametrization of ``module``'s weight, if it has one."""
    p = getattr(module, "parametrizations", None)
    if p is None or "weight" not in p:
        return None
    return p["weight"][0]


class Flat:
    """One player's parameters, gradients and Adam moments, each one contiguous buffer.

    The parameters of ``module`` become views into ``param``; the optimizer's per-parameter
    moments become views into ``exp_avg`` and ``exp_avg_sq`` (re-bound whenever the optimizer's
    state was replaced, as ``load_state_dict`` does).
    """

    def __init__(self, params: list[nn.Parameter], opt: torch.optim.Adam) -> None:
        self.params = params
        self.opt = opt
        n = sum(p.numel() for p in params)
        dev = params[0].device
        self.param = torch.empty(n, device=dev)
        self.grad = torch.zeros(n, device=dev)
        self.exp_avg = torch.zeros(n, device=dev)
        self.exp_avg_sq = torch.zeros(n, device=dev)
        self.spans: list[tuple[int, int]] = []
        off = 0
        for p in params:
            self.spans.append((off, off + p.numel()))
            off += p.numel()
        for p in params:
            view = self.view(self.param, p)
            view.copy_(p.detach())
            p.data = view
        self.steps: list[torch.Tensor] = []

    def view(self, flat: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``p``'s slice of the flat buffer ``flat``, shaped like ``p``."""
        i = next(k for k, q in enumerate(self.params) if q is p)
        lo, hi = self.spans[i]
        return flat[lo:hi].view(p.shape)

    def grad_of(self, p: torch.Tensor) -> torch.Tensor:
        """The gradient buffer of parameter ``p``."""
        return self.view(self.grad, p)

    def _bound(self) -> bool:
        state = self.opt.state.get(self.params[0])
        return bool(state) and state.get("exp_avg") is self._first

    def bind(self) -> None:
        """Make the optimizer's state the flat moments (carrying over any state it holds)."""
        if self.steps and self._bound():
            return
        self.steps = []
        for p, (lo, hi) in zip(self.params, self.spans, strict=True):
            state = self.opt.state[p]
            m, v = self.exp_avg[lo:hi].view(p.shape), self.exp_avg_sq[lo:hi].view(p.shape)
            if "exp_avg" in state:
                m.copy_(state["exp_avg"])
                v.copy_(state["exp_avg_sq"])
                step = state["step"]
            else:
                m.zero_()
                v.zero_()
                step = torch.zeros((), dtype=torch.float32, device=p.device)
            state["step"], state["exp_avg"], state["exp_avg_sq"] = step, m, v
            self.steps.append(step)
        self._first = self.opt.state[self.params[0]]["exp_avg"]

    def adam(self) -> None:
        """One Adam step of all the parameters from the flat gradient (as torch's fused Adam)."""
        self.bind()
        group = self.opt.param_groups[0]
        beta1, beta2 = group["betas"]
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_([self.param], [self.grad], [self.exp_avg], [self.exp_avg_sq], [],
                           [self.steps[0]], lr=group["lr"], beta1=beta1, beta2=beta2,
                           weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False)


@dataclass
class Dense:
    """One linear layer of a fully connected network, with its (optional) spectral norm."""

    weight: nn.Parameter  # (out, in); with spectral norm, the weight before normalisation
    bias: nn.Parameter
    grad_w: torch.Tensor  # views into the player's flat gradient
    grad_b: torch.Tensor
    sn: nn.Module | None = None
    w_sn: torch.Tensor | None = None  # W / sigma of the current D pass
    sigma: torch.Tensor | None = None
    u: torch.Tensor | None = None  # u, v of the current pass (clones of the buffers)
    v: torch.Tensor | None = None

    def normalise(self) -> torch.Tensor:
        """The weight the layer applies: W, or W / sigma after one power iteration (in
        training mode) on the module's u and v buffers, as the parametrization does."""
        sn = self.sn
        if sn is None:
            return self.weight
        w = self.weight.detach()
        with torch.no_grad():
            if sn.training:
                for _ in range(sn.n_power_iterations):
                    sn._u = F.normalize(torch.mv(w, sn._v), dim=0, eps=sn.eps, out=sn._u)
                    sn._v = F.normalize(torch.mv(w.H, sn._u), dim=0, eps=sn.eps, out=sn._v)
            self.u, self.v = sn._u.clone(), sn._v.clone()
            self.sigma = torch.vdot(self.u, torch.mv(w, self.v))
            self.w_sn = torch.div(w, self.sigma, out=self.w_sn)
        return self.w_sn

    def weight_grad(self, g_out: torch.Tensor, x_in: torch.Tensor) -> None:
        """Write d loss / d W and d loss / d b for the layer's output gradient ``g_out``."""
        torch.sum(g_out, 0, out=self.grad_b)
        if self.sn is None:
            torch.mm(g_out.t(), x_in, out=self.grad_w)
            return
        # W_sn = W / sigma, sigma = u^T W v (u, v constants): dW = G / s - <G, W> / s^2 u v^T
        g = torch.mm(g_out.t(), x_in)
        coef = torch.vdot(g.view(-1), self.weight.detach().view(-1)).div_(self.sigma ** 2)
        torch.div(g, self.sigma, out=self.grad_w)
        self.grad_w.addr_(self.u * coef, self.v, alpha=-1.0)


def _layers(net: nn.Sequential, flat: Flat) -> Iterator[Dense]:
    for module in net:
        if isinstance(module, nn.Linear):
            sn = _spectral_norm(module)
            weight = module.parametrizations.weight.original if sn is not None else module.weight
            yield Dense(weight, module.bias, flat.grad_of(weight), flat.grad_of(module.bias), sn)


class MLP:
    """The forward and backward passes of a fully connected network, keeping each layer's
    input for the backward pass."""

    def __init__(self, net: nn.Sequential, flat: Flat, act: str, slope: float) -> None:
        self.layers = list(_layers(net, flat))
        self.slope = slope if act == "leaky_relu" else 0.0
        last = net[-1]
        self.output = next((name for kind, name in OUTPUTS.items() if isinstance(last, kind)),
                           None)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The network on ``x`` (N, in); the last layer's output activation, if any, goes
        into ``out``."""
        self.inputs = []
        h = x
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            self.inputs.append(h)
            w = layer.normalise()
            last = i == n - 1
            if last and self.output == "linear" and out is not None:
                h = torch.addmm(layer.bias, h, w.t(), out=out)
            else:
                h = torch.addmm(layer.bias, h, w.t())
            if not last:
                h = F.leaky_relu_(h, self.slope) if self.slope else F.relu_(h)
        if self.output == "sigmoid":
            h = torch.sigmoid(h, out=out)
        elif self.output == "tanh":
            h = torch.tanh(h, out=out)
        self.y = h
        return h

    def backward(self, g: torch.Tensor, weights: bool = True, inputs: bool = True
                 ) -> torch.Tensor | None:
        """Back from the output gradient ``g``: the weight gradients into the flat buffer (if
        ``weights``) and the gradient of the input (if ``inputs``, else None)."""
        if self.output == "sigmoid":
            g = torch.ops.aten.sigmoid_backward(g, self.y)
        elif self.output == "tanh":
            g = torch.ops.aten.tanh_backward(g, self.y)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            x_in = self.inputs[i]
            if weights:
                layer.weight_grad(g, x_in)
            if i == 0 and not inputs:
                return None
            g = torch.mm(g, layer.w_sn if layer.sn is not None else layer.weight.detach())
            if i > 0:  # through the activation, whose output is this layer's input
                if self.slope:
                    g = torch.ops.aten.leaky_relu_backward(g, x_in, self.slope, True)
                else:
                    g = torch.ops.aten.threshold_backward(g, x_in, 0.0)
        return g


def _logit_grads(name: str, real_label: float
                 ) -> tuple[Callable[..., tuple[torch.Tensor, torch.Tensor]],
                            Callable[..., tuple[torch.Tensor, torch.Tensor]]]:
    """(D, G) functions from logits to (loss, d loss / d logits) for the loss ``name``."""
    d_fn, g_fn = LOSSES[name]
    if name in CLOSED_FORM:
        def d_grad(real: torch.Tensor, fake: torch.Tensor, p_real: torch.Tensor,
                   p_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # d/dx softplus(-x) = sigmoid(x) - 1, d/dx softplus(x) = sigmoid(x)
            loss = d_fn(real, fake, real_label)
            n = real.shape[0]
            return loss, torch.cat([p_real - real_label, p_fake]).div_(n)

        sign = 1.0 if name == "non_saturating" else -1.0

        def g_grad(fake: torch.Tensor, p_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            loss = g_fn(fake)
            grad = (p_fake - 1.0) if sign > 0 else -p_fake
            return loss, grad.div_(fake.shape[0])

        return d_grad, g_grad

    def d_auto(real: torch.Tensor, fake: torch.Tensor, p_real: torch.Tensor,
               p_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            logits = torch.cat([real, fake]).requires_grad_(True)
            n = real.shape[0]
            loss = d_fn(logits[:n], logits[n:], real_label)
            (grad,) = torch.autograd.grad(loss, logits)
        return loss.detach(), grad

    def g_auto(fake: torch.Tensor, p_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            logits = fake.detach().requires_grad_(True)
            loss = g_fn(logits)
            (grad,) = torch.autograd.grad(loss, logits)
        return loss.detach(), grad

    return d_auto, g_auto


class FusedStep:
    """One training step of ``trainer`` (D step(s), G step, EMA, statistics), fused."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        m = trainer.cfg.model
        self.flat_g = Flat(list(trainer.opt_g.param_groups[0]["params"]), trainer.opt_g)
        self.flat_d = Flat(list(trainer.opt_d.param_groups[0]["params"]), trainer.opt_d)
        self.g = MLP(trainer.G.net, self.flat_g, m.activation, m.leaky_slope)
        self.d = MLP(trainer.D.net, self.flat_d, m.activation, m.leaky_slope)
        self.ema: torch.Tensor | None = None
        if trainer.G_ema is not None:
            ema_params = list(trainer.G_ema.parameters())
            self.ema = torch.empty_like(self.flat_g.param)
            for p, q in zip(ema_params, trainer.G.parameters(), strict=True):
                view = self.flat_g.view(self.ema, q)
                view.copy_(p.detach())
                p.data = view
        self.d_grad, self.g_grad = _logit_grads(trainer.cfg.loss.name, trainer.cfg.loss.real_label)
        b = self.batch = trainer.draw  # one process: it keeps all it draws
        self.both = torch.empty(2 * b, *trainer.image_shape, device=trainer.device)

    @torch.no_grad()
    def __call__(self) -> None:
        """Train one step, as ``Trainer.train_step`` does."""
        tr = self.trainer
        t = tr.cfg.train
        reuse = t.reuse_fake and t.d_steps == 1
        if t.lr_decay > 0:
            tr.set_rates()
        b = self.batch
        both = self.both
        flat = both.view(2 * b, -1)
        for _ in range(t.d_steps):
            idx = devices.upload(torch.randint(tr.x.shape[0], (tr.draw,),
                                               generator=tr.gen_data)[tr.part], tr.device)
            torch.index_select(tr.x, 0, idx, out=both[:b])
            self.g.forward(tr._noise(), out=flat[b:])
            logits = self.d.forward(flat).view(-1)
            p = torch.sigmoid(logits)
            real_logits, fake_logits = logits[:b], logits[b:]
            loss_d, g_logits = self.d_grad(real_logits, fake_logits, p[:b], p[b:])
            self.d.backward(g_logits.view(-1, 1), inputs=False)
            self.flat_d.adam()
        d_stats = p.view(2, b).mean(1)

        if not reuse:
            self.g.forward(tr._noise(), out=flat[b:])
        fake = flat[b:]
        fake_out = self.d.forward(fake).view(-1)
        loss_g, g_fake = self.g_grad(fake_out, torch.sigmoid(fake_out))
        g_x = self.d.backward(g_fake.view(-1, 1), weights=False)
        self.g.backward(g_x, inputs=False)
        self.flat_g.adam()

        if self.ema is not None:
            decay = min(t.ema, (1.0 + tr.step) / (10.0 + tr.step))
            self.ema.lerp_(self.flat_g.param, 1.0 - decay)
        tr._acc += torch.cat([torch.stack([loss_d, loss_g]), d_stats])
        tr._acc_steps += 1
        tr.step += 1
