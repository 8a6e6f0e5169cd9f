"""The JAX/Flax + optax body of the diffusion/flow models: twin of torch_diffusion.py.

Same backbones (jax_unet.py), initialisation, optimiser, objective and sampler
(diffusion_process.py) as the PyTorch version. The train step is one ``jax.jit`` over
(state, batch, key) with the optax state inside the state pytree; the sampler runs
the shared plan inside ``lax.fori_loop`` in one jit; the held-out loss and the
denoiser are jitted too. Nothing syncs with the host during a step. jax is imported
inside methods so the plugins register without it.

State: ``{"net": {"params", "opt"}}`` (jax_base.JaxModel saves it with
flax.serialization).
"""
from __future__ import annotations

from typing import ClassVar


from .diffusion_process import guided, integrate, make_process, per_example, sigma_per_example
from .diffusion_variants import backbone_args, check_conditioning, clip_range
from .jax_base import JaxModel


def build_backbone(cfg, spec):
    """The Flax twin of torch_diffusion.build_backbone."""
    from .jax_unet import ConditionalMLP, UNet

    kind, args = backbone_args(cfg, spec)
    return (ConditionalMLP if kind == "mlp" else UNet)(*args)


def sample_plan(plan, predict, shape: tuple, key, dtype=None, clip_range: tuple | None = None):
    """Run a sampler plan from standard normal noise (to be called inside a jit): the
    JAX driver of ``diffusion_process.integrate``, the loop a ``lax.fori_loop``;
    ``clip_range`` bounds DDPM's clean estimates."""
    import jax
    import jax.numpy as jnp

    dtype = dtype or jnp.float32
    k_x, k_noise = jax.random.split(key)
    tables = {k: jnp.asarray(v, dtype) for k, v in plan.tables.items()}

    def coef(i):
        return {k: v[i] for k, v in tables.items()}

    def noise(i, like):
        return jax.random.normal(jax.random.fold_in(k_noise, i), like.shape, like.dtype)

    def loop(n, body, x):
        return jax.lax.fori_loop(0, n, body, x)

    clip = None if clip_range is None else (lambda v: jnp.clip(v, *clip_range))
    return integrate(plan, jax.random.normal(k_x, shape, dtype), predict, noise, loop, coef, clip)


class JaxDiffusionBase(JaxModel):
    """Shared body of the JAX ddpm and rectified_flow plugins; a variant mixin
    (diffusion_variants.py) gives the name, Config and ``process_name``."""

    process_name: ClassVar[str]

    def _build(self, spec) -> None:
        import jax
        import jax.numpy as jnp

        from . import jax_common as jc

        cfg = self.config
        self.process = make_process(self.process_name, cfg)
        self.plan = self.process.plan(cfg.sampler)
        self.shape = tuple(spec.shape)
        self.num_classes = check_conditioning(cfg, spec)
        self.clip_range = clip_range(cfg, spec)
        self.net = net = build_backbone(cfg, spec)
        self.example = (jnp.zeros((1, *self.shape)), jnp.zeros((1,)),
                        jnp.zeros((1,), jnp.int32) if self.num_classes else None)
        self._step_fn, self._sample_fn = self._make_step(net), self._make_sampler(net)
        self._train_step = jax.jit(self._step_fn)
        self._heldout = jax.jit(lambda params, batch, key: self._loss(net, params, batch, key, 0.0))
        self._sample = jax.jit(self._sample_fn, static_argnums=2)
        self._denoise = jax.jit(self._make_denoiser(net))

    def init(self, data, seed: int) -> dict:
        import jax

        from . import jax_common as jc

        from .jax_unet import host_init

        self._ensure_built(data.spec)
        params = host_init(self.net, self.example, seed)
        self._hparams = self._traced_hparams(data.device)
        return jax.device_put({"net": jc.adam_state(params, jc.adam(self.config.lr))}, data.device)

    # ------------------------------------------------------------------ training
    def _labels(self, y, n: int, key, dropout: float):
        import jax
        import jax.numpy as jnp

        if not self.num_classes:
            return None
        null = jnp.full((n,), self.num_classes, jnp.int32)
        if y is None:
            return null
        y = y.astype(jnp.int32)
        if dropout <= 0:
            return y
        return jnp.where(jax.random.uniform(key, (n,)) < dropout, null, y)

    def _loss(self, net, params, batch, key, dropout: float):
        import jax
        import jax.numpy as jnp

        x = batch.x
        n = x.shape[0]
        k_eps, k_t, k_y = jax.random.split(key, 3)
        eps = jax.random.normal(k_eps, x.shape, x.dtype)
        if self.process_name == "flow":
            t = jax.random.uniform(k_t, (n,), x.dtype)
            a, b = t, 1 - t
        else:
            T = self.process.cfg.T
            k = jax.random.randint(k_t, (n,), 0, T)
            a = jnp.asarray(self.process.sqrt_ab, x.dtype)[k]
            b = jnp.asarray(self.process.sqrt_1m_ab, x.dtype)[k]
            t = (k + 1).astype(x.dtype) / T
        x_t = per_example(a, x) * x + per_example(b, x) * eps
        y = self._labels(batch.y, n, k_y, dropout)
        out = net.apply({"params": params}, x_t, t, y)
        return ((out - self.process.target(x, eps)) ** 2).mean()

    def _make_step(self, net):
        """The pure step of one run; ``hparams["lr"]`` traced (a run's scalar, a fleet's per member)."""
        import jax

        from . import jax_common as jc

        dropout = float(self.config.label_dropout)

        def step(state, batch, key, hparams):
            value, grads = jax.value_and_grad(lambda p: self._loss(net, p, batch, key, dropout))(
                state["net"]["params"])
            return {"net": jc.apply_grads(jc.adam(hparams["lr"]), state["net"], grads)}, {"loss": value}

        return step

    def train_step(self, state: dict, batch, key):
        return self._train_step(state, batch, key, self._hparams)

    def fleet(self, members: list):
        """Members may differ in seed, data and ``lr`` (fleet_varying)."""
        sample = self._sample_fn
        return self._fleet(members, self._step_fn, lambda state, key, n: sample(state["net"]["params"], key, n))

    def heldout_loss(self, state: dict, batch, key):
        """The training objective on ``batch`` (labels kept as given), no update."""
        return self._heldout(state["net"]["params"], batch, key)

    # ------------------------------------------------------------------ sampling
    def _make_sampler(self, net):
        import jax
        import jax.numpy as jnp

        w, plan, classes = float(self.config.guidance), self.plan, self.num_classes

        def sample(params, key, n):
            k_y, k_run = jax.random.split(key)
            y = jax.random.randint(k_y, (n,), 0, classes) if classes else None

            def predict(x, t):
                tt = jnp.full((n,), t, x.dtype)
                if y is None or w == 0:
                    return net.apply({"params": params}, x, tt, y)
                null = jnp.full_like(y, classes)
                out = net.apply({"params": params}, jnp.concatenate([x, x]), jnp.concatenate([tt, tt]),
                                jnp.concatenate([y, null]))
                return guided(out[:n], out[n:], w)

            return sample_plan(plan, predict, (n, *self.shape), k_run, clip_range=self.clip_range)

        return sample

    def sample(self, state: dict, n: int, key):
        return self._sample(state["net"]["params"], key, int(n))

    def _make_denoiser(self, net):
        import jax.numpy as jnp

        classes = self.num_classes

        def denoise(params, x_noisy, a, t):
            y = jnp.full((x_noisy.shape[0],), classes, jnp.int32) if classes else None
            a = per_example(a, x_noisy)
            x_t = a * x_noisy
            return self.process.clean(x_t, net.apply({"params": params}, x_t, t, y), a)

        return denoise

    def denoise(self, state: dict, x_noisy, sigma):
        """E[x | x_noisy = x + sigma * eps] (VE convention; sigma a float or one per
        example): as torch_diffusion.TorchDiffusionBase.denoise."""
        import jax.numpy as jnp

        n = x_noisy.shape[0]
        sig = sigma_per_example(sigma, n)
        a, t = self.process.at_sigma(sig)
        return self._denoise(state["net"]["params"], x_noisy, jnp.asarray(a, x_noisy.dtype),
                             jnp.asarray(t, x_noisy.dtype))
