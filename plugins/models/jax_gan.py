"""GANs in JAX/Flax + optax: non-saturating GAN, WGAN-GP and f-GAN (twins of torch_gan.py).

Same networks, initialisation, optimiser, losses (objectives.py) and budget use as
the PyTorch versions: the core hands ``train_step`` ``batches_per_step() * B``
examples; the critic makes one update per B-example slice (a ``lax.scan``), each
against B fresh generator samples, then the generator makes one update on B fresh
latent draws. The whole step is one ``jax.jit``. jax is imported inside methods so
these plugins register without it.
"""
from __future__ import annotations

from benchbase import hookimpl

from .backbones import ENCODER_ACT, decoder_act, resolve_backbone
from .jax_base import JaxModel
from .objectives import gradient_penalty
from .variants import FGANVariant, GANVariant, WGANGPVariant


class _JaxGAN(JaxModel):
    """The JAX GAN update; a variant mixin (variants.py) supplies the losses,
    ``gp_weight`` and ``batches_per_step``."""

    def _build(self, spec) -> None:
        import jax

        from . import jax_common as jc

        cfg = self.config
        shape = tuple(spec.shape)
        backbone = resolve_backbone(cfg.backbone, shape)
        self._gen = jc.generator(cfg.latent_dim, shape, cfg.width, cfg.depth, backbone, decoder_act(backbone),
                                 "tanh" if spec.modality == "image" else "identity")
        self._disc = jc.encoder(shape, 1, cfg.width, cfg.depth, backbone, ENCODER_ACT)
        self._tx = jc.adam(cfg.lr, (cfg.beta1, cfg.beta2))
        self._train_step = jax.jit(self._make_step(self._gen, self._disc, self._tx, jc.JAX_OPS))
        gen, latent = self._gen, cfg.latent_dim
        self._sample = jax.jit(lambda params, key, n: gen.apply({"params": params}, jax.random.normal(key, (n, latent))),
                               static_argnums=2)

    def init(self, data, seed: int) -> dict:
        import jax
        import jax.numpy as jnp

        from . import jax_common as jc

        self._ensure_built(data.spec)
        k_gen, k_disc = jax.random.split(jc.init_key(seed))
        gen_params = jc.init_params(self._gen, k_gen, jnp.zeros((1, self.config.latent_dim)))
        disc_params = jc.init_params(self._disc, k_disc, jnp.zeros((1, *data.spec.shape)))
        state = {"gen": jc.adam_state(gen_params, self._tx), "disc": jc.adam_state(disc_params, self._tx)}
        return jax.device_put(state, data.device)

    def _make_step(self, gen, disc, tx, ops):
        import jax

        from . import jax_common as jc

        d_loss_fn, g_loss_fn = self.losses(ops)
        k, latent, gp_weight = self.batches_per_step(), self.config.latent_dim, self.gp_weight

        def step(state, batch, key):
            x = batch.x
            b = x.shape[0] // k
            slices = x.reshape((k, b) + x.shape[1:])
            keys = jax.random.split(key, k + 1)
            gen_params = state["gen"]["params"]

            def critic_update(disc_state, inputs):
                real, kk = inputs
                k_z, k_eps = jax.random.split(kk)
                fake = gen.apply({"params": gen_params}, jax.random.normal(k_z, (b, latent)))

                def loss_fn(p):
                    critic = lambda v: disc.apply({"params": p}, v)  # noqa: E731
                    loss = d_loss_fn(critic(real), critic(fake))
                    if gp_weight:
                        eps = jax.random.uniform(k_eps, (b,) + (1,) * (real.ndim - 1))
                        x_hat = eps * real + (1 - eps) * fake
                        grads = jax.grad(lambda xh: critic(xh).sum())(x_hat)
                        loss = loss + gp_weight * gradient_penalty(grads)
                    return loss

                loss, grads = jax.value_and_grad(loss_fn)(disc_state["params"])
                return jc.apply_grads(tx, disc_state, grads), loss

            disc_state, d_losses = jax.lax.scan(critic_update, state["disc"], (slices, keys[:k]))
            z = jax.random.normal(keys[k], (b, latent))

            def gen_loss(p):
                return g_loss_fn(disc.apply({"params": disc_state["params"]}, gen.apply({"params": p}, z)))

            g_loss, grads = jax.value_and_grad(gen_loss)(gen_params)
            new = {"gen": jc.apply_grads(tx, state["gen"], grads), "disc": disc_state}
            return new, {"d_loss": d_losses.mean(), "g_loss": g_loss}

        return step

    def train_step(self, state: dict, batch, key):
        return self._train_step(state, batch, key)

    def sample(self, state: dict, n: int, key):
        return self._sample(state["gen"]["params"], key, int(n))


class JaxGAN(GANVariant, _JaxGAN):
    pass


class JaxWGANGP(WGANGPVariant, _JaxGAN):
    pass


class JaxFGAN(FGANVariant, _JaxGAN):
    pass


@hookimpl
def benchbase_register_models(register):
    register(JaxGAN)
    register(JaxWGANGP)
    register(JaxFGAN)
