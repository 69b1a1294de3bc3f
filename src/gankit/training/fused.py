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

from collections.abc import Iterator
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
    m, r, t = cfg.model, trainer.recipe.reg, cfg.train
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

    The parameters become views into ``param`` (their ``.grad`` into ``grad``); the optimizer's
    per-parameter moments become views into ``exp_avg`` and ``exp_avg_sq`` (re-bound whenever
    the optimizer's state was replaced, as ``load_state_dict`` does).
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
            p.grad = self.view(self.grad, p)  # what the guard reads, as after a generic step
        self.counts: torch.Tensor | None = None

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
        """Make the optimizer's state the flat moments (carrying over any state it holds).

        Each parameter's step count is its own element of one small tensor, so one addition
        counts them all.
        """
        if self.counts is not None and self._bound():
            return
        self.counts = torch.zeros(len(self.params), device=self.param.device)
        for i, (p, (lo, hi)) in enumerate(zip(self.params, self.spans, strict=True)):
            state = self.opt.state[p]
            m, v = self.exp_avg[lo:hi].view(p.shape), self.exp_avg_sq[lo:hi].view(p.shape)
            if "exp_avg" in state:
                m.copy_(state["exp_avg"])
                v.copy_(state["exp_avg_sq"])
                self.counts[i] = state["step"]
            else:
                m.zero_()
                v.zero_()
            state["step"], state["exp_avg"], state["exp_avg_sq"] = self.counts[i], m, v
        self._first = self.opt.state[self.params[0]]["exp_avg"]
        self._count = self.counts[0]

    def adam(self) -> None:
        """One Adam step of all the parameters from the flat gradient (as torch's fused Adam)."""
        self.bind()
        group = self.opt.param_groups[0]
        beta1, beta2 = group["betas"]
        self.counts.add_(1.0)
        torch._fused_adam_([self.param], [self.grad], [self.exp_avg], [self.exp_avg_sq], [],
                           [self._count], lr=group["lr"], beta1=beta1, beta2=beta2,
                           weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False)


@dataclass
class Dense:
    """One linear layer of a fully connected network, with its (optional) spectral norm."""

    weight: nn.Parameter  # (out, in); with spectral norm, the weight before normalisation
    bias: nn.Parameter
    grad_w: torch.Tensor  # views into the player's flat gradient
    grad_b: torch.Tensor
    sn: nn.Module | None = None
    scale: float = 1.0  # with spectral norm: 1 / sigma of the current pass

    def normalise(self) -> None:
        """With spectral norm: the power iteration (in training mode) on the module's u and v
        buffers, as the parametrization does, and 1 / sigma of the weight for this pass."""
        sn = self.sn
        if sn is None:
            return
        w = self.weight.detach()
        u, v = sn._u, sn._v
        if sn.training:
            for _ in range(sn.n_power_iterations):
                torch.mv(w, v, out=u)
                u.mul_(1.0 / max(float(torch.linalg.vector_norm(u)), sn.eps))
                torch.mv(w.t(), u, out=v)
                n = float(torch.linalg.vector_norm(v))
                v.mul_(1.0 / max(n, sn.eps))
            # sigma = u^T W v, and W^T u = n v (n at least eps, as normalize clamps it)
            sigma = n * n / max(n, sn.eps)
        else:
            sigma = float(torch.vdot(u, torch.mv(w, v)))
        self.scale = 1.0 / sigma

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The layer on ``x`` (N, in), as normalised by the last ``normalise``."""
        return torch.addmm(self.bias, x, self.weight.detach().t(), alpha=self.scale, out=out)

    def backward(self, g_out: torch.Tensor, x_in: torch.Tensor, weights: bool,
                 inputs: bool) -> torch.Tensor | None:
        """From the gradient of the layer's output: its parameters' gradients into the flat
        buffer (if ``weights``), and the gradient of its input (if ``inputs``)."""
        w = self.weight.detach()
        if weights:
            torch.sum(g_out, 0, out=self.grad_b)
        g = g_out if self.sn is None else g_out * self.scale
        if weights:
            torch.mm(g.t(), x_in, out=self.grad_w)
            if self.sn is not None:
                # W_sn = W / s with s = u^T W v (u, v constants): with G the gradient of W_sn,
                # dW = G / s - <G, W> / s^2 u v^T, where G / s is what grad_w holds now.
                coef = float(torch.vdot(self.grad_w.view(-1), w.view(-1))) * self.scale
                self.grad_w.addr_(self.sn._u, self.sn._v, alpha=-coef)
        return torch.mm(g, w) if inputs else None


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
            layer.normalise()
            last = i == n - 1
            h = layer.forward(h, out if last and self.output == "linear" else None)
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
            x_in = self.inputs[i]
            g = self.layers[i].backward(g, x_in, weights, inputs or i > 0)
            if i > 0:  # through the activation, whose output is this layer's input
                if self.slope:
                    g = torch.ops.aten.leaky_relu_backward(g, x_in, self.slope, True)
                else:
                    g = torch.ops.aten.threshold_backward(g, x_in, 0.0)
        return g


class LogitLoss:
    """The adversarial loss on D's logits: the loss and its gradient with respect to them.

    The cross-entropy losses have theirs written out (d/dx softplus(-x) = sigmoid(x) - 1,
    d/dx softplus(x) = sigmoid(x)); the others take autograd over the loss of ``losses`` on the
    logits alone, a few vector operations.
    """

    def __init__(self, name: str, real_label: float, batch: int, device: torch.device) -> None:
        self.d_fn, self.g_fn = LOSSES[name]
        self.closed = name in CLOSED_FORM
        self.minimax = name == "minimax"
        self.real_label = real_label
        b = self.batch = batch
        # softplus(sign * logits) is each half's cross-entropy term (real: -x, fake: +x)
        self.sign = torch.cat([-torch.ones(b), torch.ones(b)]).to(device)
        self.offset = torch.cat([torch.full((b,), -real_label / b), torch.zeros(b)]).to(device)
        self.minus = torch.full((b,), -1.0 / b, device=device)

    def d(self, logits: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's loss and d loss / d logits, for the real and fake logits (2N,) one after the
        other and their sigmoids ``p``."""
        b = self.batch
        if not self.closed:
            with torch.enable_grad():
                x = logits.detach().requires_grad_(True)
                loss = self.d_fn(x[:b], x[b:], self.real_label)
                (grad,) = torch.autograd.grad(loss, x)
            return loss.detach(), grad
        loss = F.softplus(logits * self.sign).view(2, b).mean(1).sum()
        if self.real_label != 1.0:  # l sp(-x) + (1 - l) sp(x) = sp(-x) + (1 - l) x
            loss = loss + (1.0 - self.real_label) * logits[:b].mean()
        return loss, torch.add(self.offset, p, alpha=1.0 / b)

    def g(self, logits: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """G's loss and d loss / d logits, for D's logits of the fake batch and their sigmoids."""
        if not self.closed:
            with torch.enable_grad():
                x = logits.detach().requires_grad_(True)
                loss = self.g_fn(x)
                (grad,) = torch.autograd.grad(loss, x)
            return loss.detach(), grad
        if self.minimax:  # -softplus(x)
            return -F.softplus(logits).mean(), p.mul(-1.0 / self.batch)
        return F.softplus(-logits).mean(), torch.add(self.minus, p, alpha=1.0 / self.batch)


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
        b = self.batch = trainer.draw  # one process: it keeps all it draws
        self.loss = LogitLoss(trainer.cfg.loss.name, trainer.cfg.loss.real_label, b,
                              trainer.device)
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
            loss_d, g_logits = self.loss.d(logits, p)
            self.d.backward(g_logits.view(-1, 1), inputs=False)
            self.flat_d.adam()
        d_stats = p.view(2, b).mean(1)

        if not reuse:
            self.g.forward(tr._noise(), out=flat[b:])
        fake = flat[b:]
        fake_out = self.d.forward(fake).view(-1)
        loss_g, g_fake = self.loss.g(fake_out, torch.sigmoid(fake_out))
        g_x = self.d.backward(g_fake.view(-1, 1), weights=False)
        self.g.backward(g_x, inputs=False)
        self.flat_g.adam()

        if self.ema is not None:
            decay = min(t.ema, (1.0 + tr.step) / (10.0 + tr.step))
            self.ema.lerp_(self.flat_g.param, 1.0 - decay)
        tr._acc += torch.cat([loss_d.view(1), loss_g.view(1), d_stats])
        tr._acc_steps += 1
        tr.step += 1
