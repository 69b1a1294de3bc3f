"""The fused training step of the tabular family (CTGAN-class): the generic step's arithmetic
without autograd's bookkeeping, and WGAN-GP's double backward written out.

G's residual layers write into one buffer laid out as [h_L, ..., h_1, noise code, condition]
so that each layer's input (its predecessor's output joined to that predecessor's input) is a
column slice of it: the joins cost nothing and their gradients add in place. Batch norm runs
the same kernels autograd runs (``native_batch_norm`` and its backward, running statistics
included). D reads rows laid out as [row | condition], packed by a view.

The gradient penalty is differentiated by hand: for an MLP critic with leaky ReLU the gradient
of its output with respect to its input is a chain of products with constant activation masks,
t_H = w_H, u_j = t_(j+1) * s_j, t_j = u_j W_j, and the penalty's gradient with respect to each
weight follows from that chain alone (masks are constant almost everywhere, so biases get none):
a handful of matrix products instead of autograd's graph of a graph.

Parameters, gradients and Adam moments live in ``fused.Flat`` buffers as in the fully connected
fused step, so checkpoints, resume and the guard see the generic step's layout; the random
streams are drawn as the generic step draws them, so both steps train the same run (to float
rounding). ``unsupported`` names what this step does not do; the generic step runs then.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.tabular import TAU, Residual, TabularDiscriminator, TabularGenerator, gumbel
from .devices import upload
from .fused import ADAM_DEFAULTS, FUSED_LOSSES, MLP, Flat, LogitLoss, _dense


def unsupported(trainer: Any, precision: str) -> str | None:
    """Why the fused tabular step cannot train ``trainer``'s config; None when it can."""
    cfg = trainer.cfg
    m, r, t = cfg.model, trainer.recipe.reg, cfg.train
    G, D = trainer.G, trainer.D
    reasons = (
        (not t.fused_step, "train.fused_step is off"),
        (not isinstance(G, TabularGenerator) or not isinstance(D, TabularDiscriminator),
         "networks of another kind"),
        (m.d_output != "linear", f"model.d_output={m.d_output}"),
        (m.d_spectral_norm, "spectral norm in D"),
        (cfg.loss.name not in FUSED_LOSSES, f"loss.name={cfg.loss.name}"),
        (r.r1_gamma > 0, "an R1 penalty"),
        (r.r2_gamma > 0, "an R2 penalty"),
        (r.instance_noise > 0, "instance noise"),
        (bool(r.augment), "augmentation"),
        (precision != "fp32", f"train.precision={precision}"),
        (trainer.world.size > 1, "several processes"),
        (trainer.device.type != "cpu", f"the {trainer.device.type} device"),
    )
    for failed, reason in reasons:
        if failed:
            return reason
    if not all(isinstance(layer, Residual) and layer.bn.affine
               and layer.bn.track_running_stats and layer.bn.momentum is not None
               for layer in G.body):
        return "a generator body of another kind"
    if any(not isinstance(q, (nn.Linear, nn.LeakyReLU)) for q in D.net):
        return "a discriminator of another kind"
    for opt in (trainer.opt_g, trainer.opt_d):
        group = opt.param_groups[0]
        if len(opt.param_groups) != 1 or any(group.get(k, v) != v
                                             for k, v in ADAM_DEFAULTS.items()):
            return "an optimizer other than plain Adam"
        if not isinstance(group["lr"], float) or isinstance(group["betas"][0], torch.Tensor):
            return "tensor learning rates"
    return None


def _index(values: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64, device=device)


class Heads:
    """G's output heads on all columns at once: tanh on the scalar columns, and every
    Gumbel-softmax block in one softmax over blocks padded to the widest (pads at -inf)."""

    def __init__(self, heads: tuple[tuple[int, str], ...], device: torch.device) -> None:
        tanh_cols, soft_cols, gather, noise, valid = [], [], [], [], []
        widest = max((w for w, act in heads if act != "tanh"), default=0)
        pos = cell = 0
        for width, act in heads:
            cols = list(range(pos, pos + width))
            if act == "tanh":
                tanh_cols += cols
            else:
                soft_cols += cols
                pad = widest - width
                gather += cols + [pos] * pad
                noise += list(range(cell, cell + width)) + [cell] * pad
                valid += [True] * width + [False] * pad
                cell += width
            pos += width
        self.tanh_cols, self.soft_cols = _index(tanh_cols, device), _index(soft_cols, device)
        self.gather, self.noise = _index(gather, device), _index(noise, device)
        valid_cells = torch.tensor(valid, dtype=torch.bool, device=device)
        self.pads = ~valid_cells
        self.kept = torch.nonzero(valid_cells).view(-1)
        self.unpadded = valid_cells.float() / TAU  # softmax's backward picks real cells, / TAU
        self.blocks, self.widest = (len(gather) // widest if widest else 0), widest
        self.probs = torch.empty(0)

    def forward(self, raw: torch.Tensor, noise: torch.Tensor, out: torch.Tensor) -> None:
        """The heads of ``raw`` (N, width) with Gumbel draws ``noise``, into ``out``."""
        out.index_copy_(1, self.tanh_cols, torch.tanh(raw.index_select(1, self.tanh_cols)))
        if not self.blocks:
            return
        v = raw.index_select(1, self.gather).add_(noise.index_select(1, self.noise)).div_(TAU)
        v.masked_fill_(self.pads, float("-inf"))
        # softmax along the blocks' cells, written out: torch's kernel is slow along a short
        # last dimension (measured 1.2 ms against 0.2 ms for 500 x 13 blocks of 11)
        v = v.view(len(raw), self.blocks, self.widest)
        e = v.sub_(v.amax(2, keepdim=True)).exp_()
        self.probs = e.div_(e.sum(2, keepdim=True))
        out.index_copy_(1, self.soft_cols, self.probs.view(len(raw), -1)[:, self.kept])

    def backward(self, g_out: torch.Tensor, out: torch.Tensor, g_raw: torch.Tensor) -> None:
        """The gradient of ``raw`` (into ``g_raw``) from the gradient of the heads' output."""
        g_raw.index_copy_(1, self.tanh_cols, torch.ops.aten.tanh_backward(
            g_out.index_select(1, self.tanh_cols), out.index_select(1, self.tanh_cols)))
        if not self.blocks:
            return
        n = len(g_out)
        # the output's gradient in the padded layout (zero at the pads), over TAU
        g = g_out.index_select(1, self.gather).mul_(self.unpadded)
        g = g.view(n, self.blocks, self.widest)
        p = self.probs
        g_v = g.sub_((g * p).sum(2, keepdim=True)).mul_(p)  # softmax's backward
        g_raw.index_copy_(1, self.soft_cols, g_v.view(n, -1)[:, self.kept])


class ResidualGenerator:
    """G's forward and backward passes (see the module docstring), keeping what the backward
    pass reads."""

    def __init__(self, G: TabularGenerator, flat: Flat, batch: int) -> None:
        self.code_dim, self.cond_dim = G.code_dim, G.cond_dim
        self.fc = [_dense(layer.fc, flat) for layer in G.body]
        self.bn = [layer.bn for layer in G.body]
        self.bn_grads = [(flat.grad_of(bn.weight), flat.grad_of(bn.bias)) for bn in self.bn]
        self.out = _dense(G.out, flat)
        widths = [layer.fc.out_features for layer in G.body]
        # layer i writes columns [start_i, start_i + width_i) and reads everything after them
        self.spans = [(sum(widths[i + 1:]), sum(widths[i + 1:]) + w) for i, w in enumerate(widths)]
        dev = G.out.weight.device
        self.buf = torch.empty(batch, sum(widths) + self.code_dim + self.cond_dim, device=dev)
        self.fake = torch.empty(batch, G.out.out_features, device=dev)
        self.hidden = sum(widths)  # buf's columns before the noise code and the condition
        self.head = Heads(G.heads, dev)
        self.g_raw = torch.empty_like(self.fake)
        self.saved: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """G's output for noise ``z`` and conditions ``y`` (into ``self.fake``), as
        ``TabularGenerator.forward`` computes it in training mode."""
        buf, code, hidden = self.buf, self.code_dim, self.hidden
        buf[:, hidden:hidden + code].copy_(z[:, :code])
        if self.cond_dim:
            buf[:, hidden + code:].copy_(y)
        self.saved = []
        for fc, bn, (lo, hi) in zip(self.fc, self.bn, self.spans, strict=True):
            pre = fc.forward(buf[:, hi:])
            out, mean, invstd = torch.native_batch_norm(
                pre, bn.weight.detach(), bn.bias.detach(), bn.running_mean, bn.running_var,
                True, bn.momentum, bn.eps)
            bn.num_batches_tracked.add_(1)
            torch.clamp(out, min=0.0, out=buf[:, lo:hi])
            self.saved.append((pre, mean, invstd))
        self.head.forward(self.out.forward(buf), gumbel(z[:, code:]), self.fake)
        return self.fake

    def backward(self, g_fake: torch.Tensor) -> None:
        """G's parameter gradients (into its flat buffer) from the gradient of its output."""
        self.head.backward(g_fake, self.fake, self.g_raw)
        buf, hidden = self.buf, self.hidden
        self.out.backward(self.g_raw, buf, weights=True, inputs=False)
        # gradients of the hidden columns only: the noise code and condition need none
        g_buf = torch.mm(self.g_raw, self.out.weight.detach()[:, :hidden])
        for i in range(len(self.fc) - 1, -1, -1):
            lo, hi = self.spans[i]
            pre, mean, invstd = self.saved[i]
            bn, fc = self.bn[i], self.fc[i]
            g_bn = torch.ops.aten.threshold_backward(g_buf[:, lo:hi], buf[:, lo:hi], 0.0)
            g_pre, g_w, g_b = torch.ops.aten.native_batch_norm_backward(
                g_bn, pre, bn.weight.detach(), bn.running_mean, bn.running_var, mean, invstd,
                True, bn.eps, [True, True, True])
            self.bn_grads[i][0].copy_(g_w)
            self.bn_grads[i][1].copy_(g_b)
            fc.backward(g_pre, buf[:, hi:], weights=True, inputs=False)
            if i > 0:
                g_buf[:, hi:].addmm_(g_pre, fc.weight.detach()[:, :hidden - hi])


class Critic:
    """D on rows laid out as [row | condition] (N, width + cond), packed by a view; its
    gradient penalty with the gradients written out."""

    def __init__(self, D: TabularDiscriminator, flat: Flat, slope: float, width: int) -> None:
        self.mlp = MLP(D.net, flat, "leaky_relu", slope)
        self.pack, self.width = D.pack, width
        self.flat = flat
        self.first = torch.empty(0)  # the first layer's outputs kept by ``logits``

    def packed(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows (N, width + cond) as D's packs (N / pack, pack * (width + cond))."""
        return rows.view(rows.shape[0] // self.pack, -1)

    def logits(self, rows: torch.Tensor, keep_first: bool = False) -> torch.Tensor:
        """D's logits (N / pack,) of ``rows``; with ``keep_first``, its first layer's output
        before the activation is kept for ``mixed_first``."""
        mlp = self.mlp
        x = self.packed(rows)
        mlp.inputs = [x]
        h = mlp.layers[0].forward(x)
        if keep_first:
            self.first = h.clone()
        for layer in mlp.layers[1:]:
            h = F.leaky_relu_(h, mlp.slope)
            mlp.inputs.append(h)
            h = layer.forward(h)
        return h.view(-1)

    def mixed_first(self, eps: torch.Tensor) -> torch.Tensor:
        """The first layer's output (before the activation) at the packs eps * real + (1 - eps)
        * fake, from the kept outputs of real packs then fake ones with the same conditions: the
        layer is affine and the conditions are equal, so no product is needed."""
        n = len(eps)
        real, fake = self.first[:n], self.first[n:]
        return torch.lerp(fake, real, eps[:, None])

    def backward(self, g_logits: torch.Tensor, weights: bool) -> torch.Tensor | None:
        """D's weight gradients (if ``weights``) or the gradient of its rows (N, width + cond),
        from the gradient of the last ``logits``."""
        g = self.mlp.backward(g_logits.view(-1, 1), weights=weights, inputs=not weights)
        return None if g is None else g.view(g.shape[0] * self.pack, -1)

    def penalty(self, first: torch.Tensor, scale: float, one_sided: bool) -> torch.Tensor:
        """WGAN-GP's term ``scale`` * E[(||d D / d row values|| - 1)^2] at the packs whose first
        layer outputs (before the activation) are ``first``; its weight gradients added to D's
        flat gradient."""
        layers, slope = self.mlp.layers, self.mlp.slope
        n = first.shape[0]
        # masks s_j: leaky ReLU's slope where layer j's output is negative, 1 elsewhere
        masks = [torch.where(first > 0, 1.0, slope)]
        h = first
        for layer in layers[1:-1]:
            h = layer.forward(F.leaky_relu(h, slope))
            masks.append(torch.where(h > 0, 1.0, slope))
        t = layers[-1].weight.detach().expand(n, -1)  # d out / d h_(H-1)
        us = []
        for j in range(len(layers) - 2, -1, -1):
            u = t * masks[j]
            us.append(u)
            t = torch.mm(u, layers[j].weight.detach())
        us.reverse()  # us[j]: d out / d (layer j's output before its activation)
        grad = t.view(n, self.pack, -1)[:, :, :self.width].reshape(n, -1)
        norm = torch.linalg.vector_norm(grad, dim=1)
        excess = (norm - 1.0).clamp(min=0.0) if one_sided else norm - 1.0
        term = scale * (excess ** 2).mean()
        # d term / d grad, with zeros at the conditions' cells (the penalty reads rows only)
        coef = torch.where(norm > 0, scale * 2.0 * excess / (n * norm), 0.0)
        g_t = torch.zeros_like(t)
        g_t.view(n, self.pack, -1)[:, :, :self.width] = (grad * coef[:, None]).view(
            n, self.pack, -1)
        for j, layer in enumerate(layers[:-1]):
            w = layer.weight.detach()
            layer.grad_w.addmm_(us[j].t(), g_t)  # t_j = u_j W_j
            g_t = torch.mm(g_t, w.t()).mul_(masks[j])  # back to t_(j+1) through u_j
        layers[-1].grad_w.add_(g_t.sum(0, keepdim=True))
        return term.detach()


class FusedTableStep:
    """One training step of a tabular ``trainer`` (D step(s), G step, EMA, statistics), fused."""

    kind = "fused"

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        m = trainer.cfg.model
        self.flat_g = Flat(list(trainer.opt_g.param_groups[0]["params"]), trainer.opt_g)
        self.flat_d = Flat(list(trainer.opt_d.param_groups[0]["params"]), trainer.opt_d)
        b = self.batch = trainer.draw
        self.g = ResidualGenerator(trainer.G, self.flat_g, b)
        width = trainer.G.out.out_features
        self.d = Critic(trainer.D, self.flat_d, m.leaky_slope, width)
        self.width = width
        self.ema: torch.Tensor | None = None
        if trainer.G_ema is not None:
            self.ema = torch.empty_like(self.flat_g.param)
            for p, q in zip(trainer.G_ema.parameters(), trainer.G.parameters(), strict=True):
                view = self.flat_g.view(self.ema, q)
                view.copy_(p.detach())
                p.data = view
        packs = b // trainer.D.pack
        self.loss = LogitLoss(trainer.cfg.loss.name, trainer.cfg.loss.real_label, packs,
                              trainer.device)
        cols = width + trainer.G.cond_dim
        self.rows = torch.empty(2 * b, cols, device=trainer.device)  # real, then fake
        self.conds = self.rows[:, width:].view(2, b, -1)  # both halves' condition vectors
        self.buffers = ([] if trainer.G_ema is None else  # G's batch-norm statistics, as EMA's
                        list(zip(trainer.G_ema.buffers(), trainer.G.buffers(), strict=True)))

    def _discriminator(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One D step on a fresh real batch and G's last output; the loss and the logits."""
        tr, b = self.trainer, self.batch
        rows, r = self.rows, tr.recipe.reg
        gp = r.gp_weight > 0
        logits = self.d.logits(rows, keep_first=gp)
        loss_d, g_logits = self.loss.d(logits, torch.sigmoid(logits))
        self.d.backward(g_logits, weights=True)
        self.flat_d.finish()
        if gp:
            eps = upload(torch.rand(b // self.d.pack, generator=tr.gen_aug), tr.device)
            loss_d = loss_d + self.d.penalty(self.d.mixed_first(eps),
                                             tr.recipe.penalty_scale * r.gp_weight,
                                             r.gp_one_sided)
        self.flat_d.adam()
        return loss_d, logits

    @torch.no_grad()
    def __call__(self) -> None:
        """Train one step, as ``Trainer.train_step`` does."""
        tr = self.trainer
        t = tr.cfg.train
        reuse = t.reuse_fake and t.d_steps == 1
        if t.lr_decay > 0:
            tr.set_rates()
        b, w, rows = self.batch, self.width, self.rows
        for _ in range(t.d_steps):
            idx, y = tr.cond.batch(b, tr.gen_data, tr.part, tr.device)
            rows[:b, :w] = tr.x.index_select(0, idx)
            if y is not None:
                self.conds.copy_(y.expand(2, -1, -1))
            rows[b:, :w] = self.g.forward(tr._noise(), y)
            loss_d, logits = self._discriminator()
        packs = b // self.d.pack
        d_stats = torch.sigmoid(logits).view(2, packs).mean(1)

        if not reuse:
            rows[b:, :w] = self.g.forward(tr._noise(), y)
        fake_logits = self.d.logits(rows[b:])
        loss_g, g_logits = self.loss.g(fake_logits, torch.sigmoid(fake_logits))
        g_fake = self.d.backward(g_logits, weights=False)[:, :w].contiguous()
        extra = tr.cond.penalty_with_grad(self.g.fake, y)
        if extra is not None:
            loss_g = loss_g + extra[0]
            g_fake.add_(extra[1])
        self.g.backward(g_fake)
        self.flat_g.finish()
        self.flat_g.adam()

        if self.ema is not None:
            decay = min(t.ema, (1.0 + tr.step) / (10.0 + tr.step))
            self.ema.lerp_(self.flat_g.param, 1.0 - decay)
            for b_ema, b_g in self.buffers:
                b_ema.copy_(b_g)
        tr._acc += torch.cat([loss_d.view(1), loss_g.view(1), d_stats])
        tr._acc_steps += 1
        tr.step += 1
