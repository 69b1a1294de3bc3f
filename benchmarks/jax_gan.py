"""The fully connected GAN as a JAX user writes it: the whole step under one ``jax.jit``.

Batch indices and noise from ``jax.random``, D's and G's losses through ``jax.value_and_grad``,
both updates with optax Adam, spectral norm's power iteration and the EMA of G written out, and
the state donated to the step. It starts from the weights of a gankit trainer, so it trains the
same model from the same point. Used by ``speed.py`` for its JAX column.

JAX reads its thread count once, when it starts: call ``configure_threads`` before anything
imports jax.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch


def configure_threads(threads: int) -> None:
    """Ask XLA for ``threads`` CPU threads (1: single-threaded matmuls); before jax starts."""
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()


def available() -> str | None:
    """None when jax and optax import; else why the JAX column is skipped."""
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError as e:
        return f"jax/optax not installed ({e.name}): pip install 'gankit[bench]'"
    return None


def unsupported(cfg: Any) -> str | None:
    """Why this config has no JAX counterpart here; None when it has."""
    m = cfg.model
    if m.family != "mlp":
        return f"family {m.family}"
    if m.conditioned or cfg.loss.name != "non_saturating" or cfg.reg.pack != 1:
        return "conditioning, packing or another loss"
    if m.activation not in ("leaky_relu", "relu") or m.d_output != "linear":
        return f"activation {m.activation}"
    return None


def _layers(module: torch.nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W as (in, out), b) of each linear layer of a gankit MLP, spectral norm's raw weight."""
    out = []
    for layer in module.net:
        if isinstance(layer, torch.nn.Linear):
            p = getattr(layer, "parametrizations", None)
            w = p.weight.original if p is not None else layer.weight
            out.append((w.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()))
    return out


class JaxLoop:
    """A JAX training loop of ``trainer``'s fully connected model and data."""

    def __init__(self, trainer: Any, seed: int = 0) -> None:
        import jax
        import jax.numpy as jnp
        import optax

        cfg = trainer.cfg
        m, t = cfg.model, cfg.train
        b, zdim = t.batch_size, m.latent_dim
        slope = m.leaky_slope if m.activation == "leaky_relu" else 0.0
        out_fn = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "linear": lambda h: h}[m.output]
        spectral = m.d_spectral_norm
        x = jnp.asarray(trainer.x.reshape(trainer.x.shape[0], -1).numpy())
        g_params = [(jnp.asarray(w), jnp.asarray(bias)) for w, bias in _layers(trainer.G)]
        d_params = [(jnp.asarray(w), jnp.asarray(bias)) for w, bias in _layers(trainer.D)]
        uv = []
        for layer in trainer.D.net:
            p = getattr(layer, "parametrizations", None)
            if p is not None:
                sn = p.weight[0]
                uv.append((jnp.asarray(sn._u.numpy()), jnp.asarray(sn._v.numpy())))
        opt_g = optax.adam(t.lr_g, b1=t.betas_g[0], b2=t.betas_g[1])
        opt_d = optax.adam(t.lr_d, b1=t.betas_d[0], b2=t.betas_d[1])

        def act(h):
            return jnp.where(h > 0, h, slope * h)

        def generate(gp, z):
            h = z
            for w, bias in gp[:-1]:
                h = act(h @ w + bias)
            w, bias = gp[-1]
            return out_fn(h @ w + bias)

        def normalise(dp, uv):
            """D's weights divided by their spectral norms, after one power iteration."""
            if not spectral:
                return dp, uv
            new_dp, new_uv = [], []
            for (w, bias), (u, v) in zip(dp, uv, strict=True):
                wm = w.T  # (out, in), as torch's power iteration reads it
                u = wm @ v
                u = u / jnp.maximum(jnp.linalg.norm(u), 1e-12)
                v = wm.T @ u
                v = v / jnp.maximum(jnp.linalg.norm(v), 1e-12)
                u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
                sigma = u @ (wm @ v)
                new_dp.append((w / sigma, bias))
                new_uv.append((u, v))
            return new_dp, new_uv

        def discriminate(dp, xs):
            h = xs
            for w, bias in dp[:-1]:
                h = act(h @ w + bias)
            w, bias = dp[-1]
            return (h @ w + bias)[:, 0]

        def d_loss(dp, uv, real, fake):
            ndp, uv = normalise(dp, uv)
            logits = discriminate(ndp, jnp.concatenate([real, fake]))
            loss = (jax.nn.softplus(-logits[:b]).mean() + jax.nn.softplus(logits[b:]).mean())
            return loss, uv

        def g_loss(gp, dp, uv, z):
            ndp, uv = normalise(dp, uv)
            return jax.nn.softplus(-discriminate(ndp, generate(gp, z))).mean(), uv

        decay = t.ema

        def step(state):
            gp, dp, uv, sg, sd, ema, key = state
            key, k1, k2 = jax.random.split(key, 3)
            real = x[jax.random.randint(k1, (b,), 0, x.shape[0])]
            z = jax.random.normal(k2, (b, zdim))
            fake = jax.lax.stop_gradient(generate(gp, z))
            (ld, uv), grads = jax.value_and_grad(d_loss, has_aux=True)(dp, uv, real, fake)
            updates, sd = opt_d.update(grads, sd, dp)
            dp = optax.apply_updates(dp, updates)
            (lg, uv), grads = jax.value_and_grad(g_loss, has_aux=True)(gp, dp, uv, z)
            updates, sg = opt_g.update(grads, sg, gp)
            gp = optax.apply_updates(gp, updates)
            if ema is not None:
                ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, ema, gp)
            return gp, dp, uv, sg, sd, ema, key

        ema0 = jax.tree_util.tree_map(jnp.copy, g_params) if decay > 0 else None
        self.state = (g_params, d_params, uv, opt_g.init(g_params), opt_d.init(d_params),
                      ema0, jax.random.PRNGKey(seed))
        self._step = jax.jit(step, donate_argnums=0)
        self._block = jax.block_until_ready
        self.generate = jax.jit(generate)

    def train_step(self) -> None:
        """One D step and one G step (waits for it: gankit's CPU step is synchronous too)."""
        self.state = self._block(self._step(self.state))

    def samples(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` samples of the current generator (for checking that it trains)."""
        import jax

        z = jax.random.normal(jax.random.PRNGKey(seed), (n, self.state[0][0][0].shape[0]))
        return np.asarray(self.generate(self.state[0], z))
