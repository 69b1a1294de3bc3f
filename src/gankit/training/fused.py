"""The fused training step of the fully connected family: the arithmetic of one step and no more.

The generic step (``Trainer.train_step``) runs autograd over the modules and one Adam per player.
For a fully connected G and D (on the CPU, or on CUDA where training/graphed.py replays it as
one CUDA graph), this module computes the same step as explicit matrix products into buffers
allocated once: activation and loss gradients are formed in place, D's weight gradients are
never formed in G's step (nor its first layer's input gradient in its own), every player's
parameters, gradients and Adam moments live in one flat buffer updated by one fused Adam call,
and G's moving average is one interpolation of two flat buffers.

The modules keep their parameters (now views into the flat buffers) and the optimizers keep their
usual per-parameter state (views into the flat moments), so ``state_dict``, checkpoints, resume
and ``load_run`` are as with the generic step, whichever step wrote them. The random generators
are drawn exactly as the generic step draws them, so both steps train the same run (to float
rounding: the sums are ordered differently).

Class labels and k-means clusters are fused too: G's class embedding is looked up into its input
and its rows' gradients scattered back, and D's projection term <embed(y), h> is added to the
logits in the forward pass and to the last hidden layer's gradient in the backward pass. G's
skip path (``model.g_skip``) is one more product on its input, added before the output
activation, with its weight gradient (and input gradient, for labels) in the backward pass. Where a
config needs something this step does not do (penalties, packing, augmentation, a table's
condition vectors, other families, fp16, several processes...), ``build`` returns None with the
reason and the generic step runs. R1 is the one penalty it takes: on its steps, autograd over
D's module (whose weights are the flat buffer's) adds its gradients.

At ``train.precision = bf16`` the products read bf16 copies of the weights (refreshed after each
Adam step), the activations and a bf16 copy of the training samples, and write bf16 weight
gradients that one cast per player turns into the fp32 flat gradient; Adam, the moments, the EMA,
the loss and the checkpoints stay fp32. Every rounding is placed where bf16 autocast places it in
the generic step (a spectrally normalised weight is W / sigma rounded; class embeddings and D's
projection stay fp32), so the two steps' gradients agree to float noise.

The tabular family has its own fused step (``fused_table``, fp32), built here from the same
pieces.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..conditioning import Conditioning, Labels
from ..losses import LOSSES
from ..models.mlp import MLPDiscriminator, MLPGenerator
from ..optim import Adam
from ..regularizers import r1_penalty
from . import devices, fast

ACTIVATIONS = ("leaky_relu", "relu")
# precisions whose products the fused step runs in a lower type (fp32 masters, Adam and loss)
LOW = {"bf16": torch.bfloat16}
OUTPUTS = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Identity: "linear"}
# D losses whose logit gradients are written out here; the others in LOSSES but relativistic get
# theirs from autograd on the logits alone (a few vector operations).
CLOSED_FORM = ("non_saturating", "minimax")
FUSED_LOSSES = ("non_saturating", "minimax", "least_squares", "wasserstein", "hinge")
ADAM_DEFAULTS = {"amsgrad": False, "maximize": False, "weight_decay": 0.0,
                 "capturable": False, "differentiable": False}


def unsupported(trainer: Any, precision: str | None = None) -> str | None:
    """Why the fused step cannot train ``trainer``'s config (at ``precision``, by default the
    trainer's); None when it can."""
    cfg = trainer.cfg
    precision = precision or trainer.precision
    m, r, t = cfg.model, trainer.recipe.reg, cfg.train
    if m.family == "tabular":
        from .fused_table import unsupported as table_unsupported
        return table_unsupported(trainer, precision)
    reasons = (
        (not t.fused_step, "train.fused_step is off"),
        (m.family != "mlp", f"model.family={m.family}"),
        (type(trainer.cond) not in (Conditioning, Labels),
         f"conditioning by {type(trainer.cond).__name__}"),
        (m.activation not in ACTIVATIONS, f"model.activation={m.activation}"),
        (m.d_output != "linear", f"model.d_output={m.d_output}"),
        (cfg.loss.name not in FUSED_LOSSES, f"loss.name={cfg.loss.name}"),
        (r.gp_weight > 0, "a gradient penalty"),
        (r.r1_gamma > 0 and any(_spectral_norm(q) is not None for q in trainer.D.modules()),
         "an R1 penalty with spectral norm in D"),
        (r.r2_gamma > 0, "an R2 penalty"),
        (r.instance_noise > 0, "instance noise"),
        (r.pack != 1, "packing"),
        (bool(r.augment), "augmentation"),
        (precision != "fp32" and precision not in LOW, f"train.precision={precision}"),
        (trainer.world.size > 1, "several processes"),
        (trainer.device.type not in ("cpu", "cuda"), f"the {trainer.device.type} device"),
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
    if trainer.cond.num_labels and not (isinstance(trainer.G.embed, nn.Embedding)
                                        and isinstance(trainer.D.embed, nn.Embedding)):
        return "labels the networks do not embed"
    if trainer.G_ema is not None and list(trainer.G_ema.buffers()):
        return "a generator with buffers"
    return None


def build(trainer: Any) -> tuple[Any, str | None]:
    """(The fused step for ``trainer``, None) where it applies, else (None, the reason).

    On CUDA the step never waits for the GPU, and with ``train.cuda_graph`` it is captured as
    a CUDA graph at its first call (training/graphed.py).
    """
    reason = unsupported(trainer)
    if reason is not None:
        return None, reason
    if trainer.cfg.model.family == "tabular":
        from .fused_table import FusedTableStep
        return FusedTableStep(trainer), None
    if trainer.device.type != "cuda":
        return FusedStep(trainer), None
    step = FusedStep(trainer, sync_free=True)
    if not trainer.cfg.train.cuda_graph or trainer.graph_refused is not None:
        return step, None
    from .graphed import FusedSource, GraphedStep
    return GraphedStep(FusedSource(step)), None


def draws(trainer: Any, shapes_only: bool = False) -> list[torch.Tensor]:
    """One step's random inputs, on the host, drawn as the generic step draws them (for
    labels, classes or clusters): for each D step its rows and its noise, then G's own noise
    unless G reuses D's batch (``shapes_only``: uninitialised tensors of their shapes, drawing
    nothing)."""
    tr = trainer
    t = tr.cfg.train
    b = tr.draw

    def rows() -> torch.Tensor:
        if shapes_only:
            return torch.empty(b, dtype=torch.long)[tr.part]
        return tr.cond.rows(b, tr.gen_data, tr.part)

    def noise() -> torch.Tensor:
        if shapes_only:
            return torch.empty(b, tr.noise_dim)[tr.part]
        return tr.draw_noise()

    out = []
    for _ in range(t.d_steps):
        out += [rows(), noise()]
    if not (t.reuse_fake and t.d_steps == 1):
        out.append(noise())
    return out


def _spectral_norm(module: nn.Module) -> nn.Module | None:
    """The spectral-norm parametrization of ``module``'s weight, if it has one."""
    p = getattr(module, "parametrizations", None)
    if p is None or "weight" not in p:
        return None
    return p["weight"][0]


class Flat:
    """One player's parameters, gradients and Adam moments, each one contiguous buffer (with
    bf16 products, also bf16 copies of the parameters and of the gradients the products write).

    The parameters become views into ``param`` (their ``.grad`` into ``grad``); the optimizer's
    per-parameter moments become views into ``exp_avg`` and ``exp_avg_sq`` (re-bound whenever
    the optimizer's state was replaced, as ``load_state_dict`` does).
    """

    def __init__(self, params: list[nn.Parameter], opt: Adam,
                 low: torch.dtype | None = None, sync_free: bool = False) -> None:
        self.params = params
        self.opt = opt
        # no host reads of device values (spectral norm's sigma stays a tensor): a CUDA step
        # that never waits for the GPU, and that a CUDA graph can capture
        self.sync_free = sync_free
        # a learning rate held in a tensor (a captured step reads each step's rate from it);
        # None: the optimizer's own rate
        self.lr: torch.Tensor | None = None
        n = sum(p.numel() for p in params)
        dev = params[0].device
        self.param = torch.empty(n, device=dev)
        self.grad = torch.zeros(n, device=dev)
        # with bf16 products: the parameters as the products read them, and the gradients as
        # they write them (cast to ``grad`` by ``finish``)
        self.low = None if low is None else torch.empty(n, dtype=low, device=dev)
        self.low_grad = None if low is None else torch.zeros(n, dtype=low, device=dev)
        self.dense: list[Dense] = []  # its layers, whose gradients ``finish`` completes
        self.low_spans: list[tuple[int, int]] = []  # what the bf16 products write, merged
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

    def mark_low(self, p: torch.Tensor) -> None:
        """Record that the products write ``p``'s gradient in the low precision (``finish``
        casts those spans only: a class embedding writes its fp32 gradient itself)."""
        i = next(k for k, q in enumerate(self.params) if q is p)
        spans = sorted([*self.low_spans, self.spans[i]])
        merged = [spans[0]]
        for lo, hi in spans[1:]:
            if lo == merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        self.low_spans = merged

    def lower(self) -> None:
        """With bf16 products: the parameters' copy the products read, from the parameters."""
        if self.low is not None:
            self.low.copy_(self.param)

    def finish(self) -> None:
        """Complete the gradients the products wrote: cast to fp32 (with bf16 products), then
        through spectral norm where a layer has it."""
        if self.low_grad is not None:
            for lo, hi in self.low_spans:
                self.grad[lo:hi].copy_(self.low_grad[lo:hi])
        for layer in self.dense:
            layer.through_norm()

    def _bound(self) -> bool:
        state = self.opt.state.get(self.params[0])
        return bool(state) and state.get("exp_avg") is self._first

    def bind(self) -> None:
        """Make the optimizer's state the flat moments (carrying over any state it holds).

        Each parameter's step count is its own element of one small tensor, so one addition
        counts them all; that tensor, once made, is kept (a captured step adds to it).
        """
        if self.counts is not None and self._bound():
            return
        if self.counts is None:
            self.counts = torch.zeros(len(self.params), device=self.param.device)
        else:
            self.counts.zero_()
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
        lr = group["lr"] if self.lr is None else self.lr
        torch._fused_adam_([self.param], [self.grad], [self.exp_avg], [self.exp_avg_sq], [],
                           [self._count], lr=lr, beta1=beta1, beta2=beta2,
                           weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False)


@dataclass
class Dense:
    """One linear layer of a fully connected network, with its (optional) spectral norm; a
    class embedding is one with no bias, whose rows are looked up instead of multiplied.

    The products read ``w`` and ``b`` and write ``grad_w`` and ``grad_b``: the parameters and
    their fp32 gradient buffers, or with bf16 products their bf16 copies (``Flat.low``)."""

    weight: nn.Parameter  # (out, in); with spectral norm, the weight before normalisation
    bias: nn.Parameter | None
    w: torch.Tensor  # what the products read
    b: torch.Tensor | None
    grad_w: torch.Tensor  # where the products write: views into the player's flat gradient
    grad_b: torch.Tensor | None
    master_grad_w: torch.Tensor  # the weight's fp32 gradient (grad_w itself in fp32)
    sn: nn.Module | None = None
    scale: float | torch.Tensor = 1.0  # with spectral norm: 1 / sigma of the current pass
    formed: bool = False  # whether grad_w was written since the last ``through_norm``
    # with spectral norm and bf16 products (or a sync-free step): ``w`` is a buffer of
    # W / sigma (in bf16 as the generic step's autocast casts the normalised weight), and the
    # gradients are of it
    folded: bool = False
    sync_free: bool = False  # sigma and 1 / sigma stay tensors (see ``Flat.sync_free``)

    def normalise(self) -> None:
        """With spectral norm: the power iteration (in training mode) on the module's u and v
        buffers, as the parametrization does, and 1 / sigma of the weight for this pass."""
        sn = self.sn
        if sn is None:
            return
        w = self.weight.detach()
        u, v = sn._u, sn._v
        if self.sync_free:
            sigma = _sigma_on_device(w, u, v, sn)
        elif sn.training:
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
        if self.folded:
            torch.div(w, sigma, out=self.w)

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The layer on ``x`` (N, in), as normalised by the last ``normalise``."""
        return torch.addmm(self.b, x, self.w.t(), alpha=1.0 if self.folded else self.scale,
                           out=out)

    def backward(self, g_out: torch.Tensor, x_in: torch.Tensor, weights: bool,
                 inputs: bool) -> torch.Tensor | None:
        """From the gradient of the layer's output: its parameters' gradients into the flat
        buffer (if ``weights``; ``Flat.finish`` completes them), and the gradient of its input
        (if ``inputs``)."""
        if weights:
            torch.sum(g_out, 0, out=self.grad_b)
        g = g_out if self.sn is None or self.folded else g_out * self.scale
        if weights:
            torch.mm(g.t(), x_in, out=self.grad_w)
            self.formed = True
        return torch.mm(g, self.w) if inputs else None

    def rows(self, y: torch.Tensor) -> torch.Tensor:
        """An embedding's rows for labels ``y``, as normalised by the last ``normalise``."""
        rows = self.w.index_select(0, y)
        return rows if self.sn is None or self.folded else rows.mul_(self.scale)

    def rows_backward(self, g_rows: torch.Tensor, y: torch.Tensor) -> None:
        """An embedding's weight gradient into the flat buffer, from its rows' gradients."""
        self.grad_w.zero_()
        g_rows = g_rows.to(self.grad_w.dtype)  # (bf16 products: cast back, as autograd does)
        scaled = self.sn is None or self.folded  # (folded: the gradient of W / sigma)
        self.grad_w.index_add_(0, y, g_rows if scaled else g_rows * self.scale)
        self.formed = True

    def through_norm(self) -> None:
        """With spectral norm, turn the fp32 weight gradient from G / s into the gradient of the
        weight before normalisation (once per backward pass that formed it)."""
        if self.sn is not None and self.formed:
            # W_sn = W / s with s = u^T W v (u, v constants): with G the gradient of W_sn,
            # dW = G / s - <G, W> / s^2 u v^T, where G / s is what the gradient holds now.
            g, w = self.master_grad_w, self.weight.detach()
            if self.folded:  # the gradient of W / s, as G / s
                g.mul_(self.scale)
            if self.sync_free:
                coef = torch.vdot(g.view(-1), w.view(-1)) * self.scale
                g.addr_(self.sn._u * coef, self.sn._v, alpha=-1.0)
            else:
                coef = float(torch.vdot(g.view(-1), w.view(-1))) * self.scale
                g.addr_(self.sn._u, self.sn._v, alpha=-coef)
        self.formed = False


def _sigma_on_device(w: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sn: nn.Module
                     ) -> torch.Tensor:
    """Spectral norm's sigma of ``w`` as a tensor, its power iteration (in training mode) on
    ``u`` and ``v`` as the parametrization runs it, with no value read back to the host."""
    if not sn.training:
        return torch.vdot(u, torch.mv(w, v))
    for _ in range(sn.n_power_iterations):
        torch.mv(w, v, out=u)
        u.div_(torch.linalg.vector_norm(u).clamp_min(sn.eps))
        torch.mv(w.t(), u, out=v)
        n = torch.linalg.vector_norm(v)
        v.div_(n.clamp_min(sn.eps))
    return n * n / n.clamp_min(sn.eps)


def _dense(module: nn.Linear | nn.Embedding, flat: Flat) -> Dense:
    sn = _spectral_norm(module)
    weight = module.parametrizations.weight.original if sn is not None else module.weight
    bias = getattr(module, "bias", None)
    low = flat.low is not None and not isinstance(module, nn.Embedding)
    if low:
        w, b = flat.view(flat.low, weight), None if bias is None else flat.view(flat.low, bias)
        grads = flat.low_grad
        for p in (weight, bias):
            if p is not None:
                flat.mark_low(p)
    else:
        w, b, grads = weight.detach(), None if bias is None else bias.detach(), flat.grad
    folded = (low or flat.sync_free) and sn is not None
    if folded:
        w = torch.empty_like(w)
    layer = Dense(weight, bias, w, b, flat.view(grads, weight),
                  None if bias is None else flat.view(grads, bias), flat.grad_of(weight), sn,
                  folded=folded, sync_free=flat.sync_free)
    flat.dense.append(layer)
    return layer


def _layers(net: nn.Sequential, flat: Flat) -> Iterator[Dense]:
    for module in net:
        if isinstance(module, nn.Linear):
            yield _dense(module, flat)


class MLP:
    """The forward and backward passes of a fully connected network, keeping each layer's
    input for the backward pass."""

    def __init__(self, net: nn.Sequential, flat: Flat, act: str, slope: float,
                 skip: nn.Linear | None = None) -> None:
        self.layers = list(_layers(net, flat))
        # a linear map of the input added before the output activation (G's skip path)
        self.skip = None if skip is None else _dense(skip, flat)
        self.slope = slope if act == "leaky_relu" else 0.0
        self.dtype = flat.param.dtype if flat.low is None else flat.low.dtype  # the products'
        last = net[-1]
        self.output = next((name for kind, name in OUTPUTS.items() if isinstance(last, kind)),
                           None)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The network on ``x`` (N, in); the last layer's output activation, if any, goes
        into ``out``."""
        self.inputs = []
        h = x = x.to(self.dtype)
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            self.inputs.append(h)
            layer.normalise()
            last = i == n - 1
            h = layer.forward(h, out if last and self.output == "linear" else None)
            if not last:
                h = F.leaky_relu_(h, self.slope) if self.slope else F.relu_(h)
        if self.skip is not None:
            if self.dtype == torch.float32:
                h = h.addmm_(x, self.skip.w.t())
            else:  # the generic step's order: both products rounded to bf16, then their sum
                h = h.add_(torch.mm(x, self.skip.w.t()))
        if self.output == "sigmoid":
            h = torch.sigmoid(h, out=out)
        elif self.output == "tanh" and self.dtype != torch.float32:
            # the identity below in fp32, rounded once: torch's tanh rounded to bf16 (no
            # element differed in 100,352 measured), in half the time of its bf16 tanh
            t = torch.sigmoid(h.float().mul_(2.0)).mul_(2.0).sub_(1.0)
            h = t.to(self.dtype) if out is None else out.copy_(t)
        elif self.output == "tanh":
            # tanh(x) = 2 sigmoid(2x) - 1: torch's CPU tanh is slower (measured on AVX2, 128 x
            # 784: 385 us against 172 us; within 2e-7 of it)
            h = torch.sigmoid(h.mul_(2.0), out=out).mul_(2.0).sub_(1.0)
        self.y = h
        return h

    def backward(self, g: torch.Tensor, weights: bool = True, inputs: bool = True,
                 g_hidden: torch.Tensor | None = None) -> torch.Tensor | None:
        """Back from the output gradient ``g``: the weight gradients into the flat buffer (if
        ``weights``) and the gradient of the input (if ``inputs``, else None). ``g_hidden`` is
        a further gradient of the last layer's input (a projection discriminator's)."""
        g = g.to(self.dtype)
        if self.output == "sigmoid":
            g = torch.ops.aten.sigmoid_backward(g, self.y)
        elif self.output == "tanh":
            g = torch.ops.aten.tanh_backward(g, self.y)
        g_skip = None
        if self.skip is not None:
            if weights:
                torch.mm(g.t(), self.inputs[0], out=self.skip.grad_w)
                self.skip.formed = True
            if inputs:
                g_skip = torch.mm(g, self.skip.w)
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            x_in = self.inputs[i]
            g = self.layers[i].backward(g, x_in, weights, inputs or i > 0)
            if i == last and g_hidden is not None and g is not None:
                g = g.add_(g_hidden.to(g.dtype))  # (bf16: each gradient rounded, as autograd)
            if i > 0:  # through the activation, whose output is this layer's input
                if self.slope:
                    g = torch.ops.aten.leaky_relu_backward(g, x_in, self.slope, True)
                else:
                    g = torch.ops.aten.threshold_backward(g, x_in, 0.0)
        if g_skip is None or g is None:
            return g
        # (bf16: autograd casts each product's input gradient back to fp32, then sums them)
        return g.add_(g_skip) if g.dtype == torch.float32 else g.float().add_(g_skip)


class LogitLoss:
    """The adversarial loss on D's logits: the loss and its gradient with respect to them.

    The cross-entropy losses have theirs written out (d/dx softplus(-x) = sigmoid(x) - 1,
    d/dx softplus(x) = sigmoid(x)), and the Wasserstein loss its constant ones (+-1/N); the
    others take autograd over the loss of ``losses`` on the logits alone, a few vector
    operations.
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
        self.wasserstein = name == "wasserstein"
        self.w_grad_d = torch.cat([self.minus, -self.minus])

    def d(self, logits: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's loss and d loss / d logits, for the real and fake logits (2N,) one after the
        other and their sigmoids ``p``."""
        b = self.batch
        if self.wasserstein:  # E[fake] - E[real]: constant gradients
            return self.d_fn(logits[:b], logits[b:]), self.w_grad_d.clone()
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
        if self.wasserstein:  # -E[fake]
            return self.g_fn(logits), self.minus.clone()
        if not self.closed:
            with torch.enable_grad():
                x = logits.detach().requires_grad_(True)
                loss = self.g_fn(x)
                (grad,) = torch.autograd.grad(loss, x)
            return loss.detach(), grad
        if self.minimax:  # -softplus(x)
            return -F.softplus(logits).mean(), p.mul(-1.0 / self.batch)
        return F.softplus(-logits).mean(), torch.add(self.minus, p, alpha=1.0 / self.batch)


class Labelled:
    """The class embeddings of a conditioned G and D: G's rows joined to its noise, and D's
    projection term <embed(y), h> on its last hidden features h (Miyato & Koyama 2018)."""

    def __init__(self, trainer: Any, flat_g: Flat, flat_d: Flat) -> None:
        self.g = _dense(trainer.G.embed, flat_g)
        self.d = _dense(trainer.D.embed, flat_d)
        self.latent = trainer.G.latent_dim
        self.rows = torch.empty(0)  # D's embedding rows of the last forward pass

    def g_input(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """G's input: the noise with the rows of its labels' embedding."""
        return torch.cat([z, self.g.rows(y)], dim=1)

    def g_backward(self, g_in: torch.Tensor, y: torch.Tensor) -> None:
        """G's embedding gradient from the gradient of G's input."""
        self.g.rows_backward(g_in[:, self.latent:], y)

    def d_forward(self, logits: torch.Tensor, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """D's logits (N, 1) with the projection term added (in fp32); keeps the rows."""
        self.d.normalise()
        self.rows = self.d.rows(y)
        # fp32 rows times (bf16) features: fp32, as under autocast, added to the logits in fp32
        return logits.float().add_(torch.sum(self.rows * h, 1, keepdim=True))

    def d_backward(self, g_logits: torch.Tensor, h: torch.Tensor, y: torch.Tensor,
                   weights: bool) -> torch.Tensor:
        """The projection's gradient of D's last hidden features; its embedding's weight
        gradient too if ``weights``."""
        if weights:
            self.d.rows_backward(g_logits * h, y)
        return g_logits * self.rows


class FusedStep:
    """One training step of ``trainer`` (D step(s), G step, EMA, statistics), fused.

    A step is its random inputs (``draws``: rows and noise from the trainer's generators, on the
    host) and its arithmetic on them (``compute``). With ``sync_free`` the arithmetic never reads
    a device value back to the host, so a CUDA graph can capture it (training/graphed.py).
    """

    kind = "fused"

    def __init__(self, trainer: Any, sync_free: bool = False) -> None:
        self.trainer = trainer
        m = trainer.cfg.model
        low = LOW.get(trainer.precision)
        self.flat_g = Flat(list(trainer.opt_g.param_groups[0]["params"]), trainer.opt_g, low,
                           sync_free)
        self.flat_d = Flat(list(trainer.opt_d.param_groups[0]["params"]), trainer.opt_d, low,
                           sync_free)
        self.g = MLP(trainer.G.net, self.flat_g, m.activation, m.leaky_slope, trainer.G.skip)
        self.d = MLP(trainer.D.net, self.flat_d, m.activation, m.leaky_slope)
        self.labelled = (Labelled(trainer, self.flat_g, self.flat_d)
                         if trainer.cond.num_labels else None)
        self.ema: torch.Tensor | None = None
        # the EMA's weight held in a tensor (as ``Flat.lr``); None: computed from the step
        self.ema_weight: torch.Tensor | None = None
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
        self.both = torch.empty(2 * b, *trainer.image_shape, device=trainer.device,
                                dtype=self.g.dtype)
        # the training samples as the products read them (a bf16 copy with bf16 products)
        self.x = trainer.x if low is None else trainer.x.to(low)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None, out: torch.Tensor) -> None:
        """G's output for noise ``z`` (and labels ``y``) into ``out``."""
        self.g.forward(z if y is None else self.labelled.g_input(z, y), out=out)

    def generator_backward(self, g_x: torch.Tensor, y: torch.Tensor | None) -> None:
        """G's gradients from the gradient of its output."""
        if y is None:
            self.g.backward(g_x, inputs=False)
        else:
            self.labelled.g_backward(self.g.backward(g_x), y)

    def discriminate(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's logits (N,) of ``x`` (N, features) with labels ``y``."""
        logits = self.d.forward(x)
        if y is not None:
            logits = self.labelled.d_forward(logits, self.d.inputs[-1], y)
        return logits.view(-1).float()

    def discriminator_backward(self, g_logits: torch.Tensor, y: torch.Tensor | None,
                               weights: bool) -> torch.Tensor | None:
        """D's gradients (if ``weights``) and, unless ``weights``, the gradient of its input,
        from the gradient of its logits (N,)."""
        g = g_logits.view(-1, 1)
        g_hidden = (None if y is None
                    else self.labelled.d_backward(g, self.d.inputs[-1], y, weights))
        return self.d.backward(g, weights=weights, inputs=not weights, g_hidden=g_hidden)

    def _r1(self, real: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """R1's term of D's loss on ``real`` (as the generic step weighs it), its gradients
        added to D's flat gradient: autograd over the module, whose weights are the flat
        buffer's (a double backward through a few small layers, every ``reg.r1_every`` steps)."""
        tr = self.trainer
        r = tr.recipe.reg
        params = self.flat_d.params
        if real.dtype != torch.float32:  # bf16 products: under autocast, as the generic step
            real = real.float()
        with torch.enable_grad(), fast.autocast(tr.precision, tr.device):
            penalty = r1_penalty(lambda v: tr.recipe.score(tr.D, v, y), real)
            term = tr.recipe.penalty_scale * 0.5 * r.r1_gamma * r.r1_every * penalty
            grads = torch.autograd.grad(term, params, allow_unused=True)
        for (lo, hi), grad in zip(self.flat_d.spans, grads, strict=True):
            if grad is not None:
                self.flat_d.grad[lo:hi] += grad.reshape(-1)
        return term.detach()

    @torch.no_grad()
    def __call__(self) -> None:
        """Train one step, as ``Trainer.train_step`` does."""
        tr = self.trainer
        if tr.cfg.train.lr_decay > 0:
            tr.set_rates()
        stats = self.compute([devices.upload(x, tr.device) for x in draws(tr)],
                             tr.penalty_due())  # (R2 takes the generic step)
        tr._acc += stats
        tr._acc_steps += 1
        tr.step += 1

    @torch.no_grad()
    def compute(self, inputs: list[torch.Tensor], r1: bool, out: torch.Tensor | None = None
                ) -> torch.Tensor:
        """The step's arithmetic on its inputs (``draws``', on the device; R1 in D's loss if
        ``r1``): both players' updates and the EMA. Returns the step's statistics (D's loss,
        G's loss, D's mean output on real and on fake), in ``out`` if given."""
        tr = self.trainer
        t = tr.cfg.train
        reuse = t.reuse_fake and t.d_steps == 1
        b = self.batch
        both = self.both
        flat = both.view(2 * b, -1)
        # (D's copy is also refreshed after its Adam step; this one catches what writes the
        # parameters between steps: a checkpoint or rollback loads through the modules, which
        # the flat buffers' version counters do not see)
        self.flat_g.lower()
        self.flat_d.lower()
        for k in range(t.d_steps):
            idx, z = inputs[2 * k], inputs[2 * k + 1]
            y = tr.cond.of(idx)
            torch.index_select(self.x, 0, idx, out=both[:b])
            self.generate(z, y, out=flat[b:])
            y2 = None if y is None else torch.cat([y, y])
            logits = self.discriminate(flat, y2)
            p = torch.sigmoid(logits)
            loss_d, g_logits = self.loss.d(logits, p)
            self.discriminator_backward(g_logits, y2, weights=True)
            self.flat_d.finish()
            if r1:
                loss_d = loss_d + self._r1(both[:b], y)
            self.flat_d.adam()
            self.flat_d.lower()
        d_stats = p.view(2, b).mean(1)

        if not reuse:
            self.generate(inputs[-1], y, out=flat[b:])
        fake = flat[b:]
        fake_out = self.discriminate(fake, y)
        loss_g, g_fake = self.loss.g(fake_out, torch.sigmoid(fake_out))
        self.generator_backward(self.discriminator_backward(g_fake, y, weights=False), y)
        self.flat_g.finish()
        self.flat_g.adam()

        if self.ema is not None:
            weight = 1.0 - tr.ema_decay() if self.ema_weight is None else self.ema_weight
            self.ema.lerp_(self.flat_g.param, weight)
        return torch.cat([loss_d.view(1), loss_g.view(1), d_stats], out=out)

    def state(self) -> list[torch.Tensor]:
        """Every tensor a step writes that outlives it: parameters, moments, step counts, the
        EMA and spectral norm's vectors (what a captured step's check saves and restores)."""
        out = []
        for flat in (self.flat_g, self.flat_d):
            flat.bind()
            out += [flat.param, flat.exp_avg, flat.exp_avg_sq, flat.counts]
            out += [u for layer in flat.dense if layer.sn is not None
                    for u in (layer.sn._u, layer.sn._v)]
        return out + ([] if self.ema is None else [self.ema])
