"""Wasserstein autoencoders in JAX/Flax + optax (Tolstikhin et al. 2018): WAE-MMD and
WAE-GAN; twins of torch_wae.py (same networks, init, optimisers, losses, budget use).
Each train step is one ``jax.jit``; jax is imported inside methods.
"""
from __future__ import annotations

from benchbase import hookimpl

from .backbones import ENCODER_ACT
from .jax_base import JaxModel
from .objectives import nonsaturating_losses, wae_gan_loss, wae_mmd_loss
from .variants import WAEGANVariant, WAEMMDVariant


class _JaxWAE(JaxModel):
    """The autoencoder, prior sampler and plumbing shared by the two WAE variants."""

    def _build_autoencoder(self, spec):
        import jax

        from . import jax_common as jc

        cfg = self.config
        enc, dec = self._enc, self._dec = jc.autoencoder(cfg, tuple(spec.shape), cfg.latent_dim)
        latent = cfg.latent_dim
        self._sample = jax.jit(lambda p, key, n: dec.apply({"params": p["dec"]}, jax.random.normal(key, (n, latent))),
                               static_argnums=2)
        self._encode = jax.jit(lambda p, x: enc.apply({"params": p["enc"]}, x))
        self._decode = jax.jit(lambda p, z: dec.apply({"params": p["dec"]}, z))
        return enc, dec

    def _init_autoencoder(self, data, key) -> dict:
        from . import jax_common as jc

        return jc.init_autoencoder(self._enc, self._dec, key, tuple(data.spec.shape), self.config.latent_dim)

    def sample(self, state: dict, n: int, key):
        return self._sample(state["ae"]["params"], key, int(n))

    def encode(self, state: dict, x):
        """The deterministic code (no log variance: a point mass)."""
        return self._encode(state["ae"]["params"], x), None

    def decode(self, state: dict, z):
        return self._decode(state["ae"]["params"], z)

    def train_step(self, state: dict, batch, key):
        return self._train_step(state, batch, key)

    def heldout_loss(self, state: dict, batch, key):
        return self._heldout(state, batch.x, key)


class JaxWAEMMD(WAEMMDVariant, _JaxWAE):
    def _build(self, spec) -> None:
        import jax

        from . import jax_common as jc

        cfg = self.config
        enc, dec = self._build_autoencoder(spec)
        tx = self._tx = jc.adam(cfg.lr, (cfg.beta1, cfg.beta2))

        def loss(p, x, key):
            z_q = enc.apply({"params": p["enc"]}, x)
            z_p = jax.random.normal(key, z_q.shape)
            return wae_mmd_loss(x, dec.apply({"params": p["dec"]}, z_q), z_q, z_p, cfg.lam, cfg.kernel_scales)

        def step(state, batch, key):
            value, grads = jax.value_and_grad(loss)(state["ae"]["params"], batch.x, key)
            return {"ae": jc.apply_grads(tx, state["ae"], grads)}, {"loss": value}

        self._train_step = jax.jit(step)
        self._heldout = jax.jit(lambda state, x, key: loss(state["ae"]["params"], x, key))

    def init(self, data, seed: int) -> dict:
        import jax

        from . import jax_common as jc

        self._ensure_built(data.spec)
        params = self._init_autoencoder(data, jc.init_key(seed))
        return jax.device_put({"ae": jc.adam_state(params, self._tx)}, data.device)


class JaxWAEGAN(WAEGANVariant, _JaxWAE):
    def _build(self, spec) -> None:
        import jax

        from . import jax_common as jc

        cfg, ops = self.config, jc.JAX_OPS
        enc, dec = self._build_autoencoder(spec)
        adv = self._adv = jc.MLP(cfg.width, cfg.adversary_depth, 1, ENCODER_ACT)
        betas = (cfg.beta1, cfg.beta2)
        tx_ae, tx_adv = self._tx_ae, self._tx_adv = jc.adam(cfg.lr, betas), jc.adam(cfg.adversary_lr, betas)
        adv_loss_fn, _ = nonsaturating_losses(ops)

        def critic(p, z):
            return adv.apply({"params": p}, z)

        def ae_loss(p, adv_params, x):
            z_q = enc.apply({"params": p["enc"]}, x)
            return wae_gan_loss(x, dec.apply({"params": p["dec"]}, z_q), critic(adv_params, z_q), cfg.lam, ops)

        def step(state, batch, key):
            x = batch.x
            z_q = enc.apply({"params": state["ae"]["params"]["enc"]}, x)
            z_p = jax.random.normal(key, z_q.shape)
            adv_value, grads = jax.value_and_grad(lambda p: adv_loss_fn(critic(p, z_p), critic(p, z_q)))(
                state["adv"]["params"])
            adv_state = jc.apply_grads(tx_adv, state["adv"], grads)
            value, grads = jax.value_and_grad(ae_loss)(state["ae"]["params"], adv_state["params"], x)
            new = {"ae": jc.apply_grads(tx_ae, state["ae"], grads), "adv": adv_state}
            return new, {"loss": value, "adv_loss": adv_value}

        self._train_step = jax.jit(step)
        self._heldout = jax.jit(lambda state, x, key: ae_loss(state["ae"]["params"], state["adv"]["params"], x))

    def init(self, data, seed: int) -> dict:
        import jax
        import jax.numpy as jnp

        from . import jax_common as jc

        self._ensure_built(data.spec)
        k_ae, k_adv = jax.random.split(jc.init_key(seed))
        adv_params = jc.init_params(self._adv, k_adv, jnp.zeros((1, self.config.latent_dim)))
        state = {"ae": jc.adam_state(self._init_autoencoder(data, k_ae), self._tx_ae),
                 "adv": jc.adam_state(adv_params, self._tx_adv)}
        return jax.device_put(state, data.device)


@hookimpl
def benchbase_register_models(register):
    register(JaxWAEMMD)
    register(JaxWAEGAN)
