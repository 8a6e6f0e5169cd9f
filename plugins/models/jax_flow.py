"""Rectified flow / flow matching in JAX/Flax + optax (see
diffusion_variants.RectifiedFlowVariant); twin of torch_flow.py. Registers without jax.

``log_prob`` solves the probability-flow ODE backwards (flow_likelihood.py) inside one
jit, the solver loop a ``lax.fori_loop``; the divergence comes from ``jax.linearize``
(one primal pass, then JVPs vmapped over the basis vectors or Hutchinson's probes).
"""
from __future__ import annotations

from benchbase import hookimpl

from .diffusion_variants import RectifiedFlowVariant
from .flow_likelihood import integrate_loglik, standard_normal_logpdf_const
from .jax_diffusion import JaxDiffusionBase


def make_loglik(net, shape: tuple, num_classes: int, cfg):
    """A jittable ``loglik(params, x, probes) -> log p(x)`` (float32, per example);
    ``probes`` (P, B, D) are Hutchinson's, ignored for the exact divergence."""
    import jax
    import jax.numpy as jnp

    exact = cfg.loglik_divergence == "exact"

    def loglik(params, x, probes):
        n = x.shape[0]
        flat = x.reshape(n, -1)
        dim = flat.shape[1]
        y = jnp.full((n,), num_classes, jnp.int32) if num_classes else None

        def field(z, t):
            tt = jnp.full((n,), t, z.dtype)
            v, directional = jax.linearize(
                lambda u: net.apply({"params": params}, u.reshape((n, *shape)), tt, y).reshape(n, dim), z)
            if exact:
                eye = jnp.eye(dim, dtype=z.dtype)
                cols = jax.vmap(directional)(jnp.broadcast_to(eye[:, None, :], (dim, n, dim)))
                return v, jnp.einsum("jbj->b", cols)
            jv = jax.vmap(directional)(probes)
            return v, (probes * jv).sum(-1).mean(0)

        def loop(steps, body, state):
            return jax.lax.fori_loop(0, steps, body, state)

        x0, a = integrate_loglik(field, flat, jnp.zeros((n,), flat.dtype), cfg.loglik_steps, cfg.loglik_solver,
                                 loop)
        return standard_normal_logpdf_const(dim) - 0.5 * (x0 ** 2).sum(1) + a

    return loglik


class JaxRectifiedFlow(RectifiedFlowVariant, JaxDiffusionBase):
    def _build(self, spec) -> None:
        import jax

        super()._build(spec)
        self._loglik = jax.jit(make_loglik(self.net, self.shape, self.num_classes, self.config))

    def log_prob(self, state: dict, x, key):
        """log p(x) of the model's probability-flow ODE, per example, in nats."""
        import jax
        import jax.numpy as jnp

        cfg = self.config
        out = []
        for i, start in enumerate(range(0, x.shape[0], cfg.loglik_chunk)):
            chunk = x[start:start + cfg.loglik_chunk]
            n, dim = chunk.shape[0], int(chunk[0].size)
            probes = jnp.zeros((1, n, dim), chunk.dtype)
            if cfg.loglik_divergence == "hutchinson":
                signs = jax.random.bernoulli(jax.random.fold_in(key, i), 0.5, (cfg.loglik_probes, n, dim))
                probes = 2 * signs.astype(chunk.dtype) - 1
            out.append(self._loglik(state["net"]["params"], chunk, probes))
        return jnp.concatenate(out) if out else jnp.zeros((0,), x.dtype)


@hookimpl
def benchbase_register_models(register):
    register(JaxRectifiedFlow)
