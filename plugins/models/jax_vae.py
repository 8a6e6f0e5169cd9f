"""Variational autoencoder in JAX/Flax + optax (Kingma & Welling 2014); twin of torch_vae.py.

Same networks, initialisation, optimiser and losses (objectives.py) as the PyTorch
version; the train step, held-out loss, IWAE estimate and sampler are each one
``jax.jit``. A step spends one batch. jax is imported inside methods.
"""
from __future__ import annotations

from benchbase import hookimpl

from .jax_base import JaxModel
from .objectives import iwae_log_likelihood, neg_elbo
from .variants import VAEVariant


class JaxVAE(VAEVariant, JaxModel):
    def _build(self, spec) -> None:
        import jax
        import jax.numpy as jnp

        from . import jax_common as jc

        cfg, ops = self.config, jc.JAX_OPS
        enc, dec = self._enc, self._dec = jc.autoencoder(cfg, tuple(spec.shape), 2 * cfg.latent_dim)
        betas = (cfg.beta1, cfg.beta2)

        def encode(params, x):
            return jnp.split(enc.apply({"params": params["enc"]}, x), 2, axis=1)

        def decoder(params):
            return lambda z: dec.apply({"params": params["dec"]}, z)

        def loss(params, x, key, beta):
            mu, logvar = encode(params, x)
            eps = jax.random.normal(key, mu.shape)
            return neg_elbo(x, mu, logvar, eps, decoder(params), cfg.decoder, cfg.decoder_std, beta, ops)

        def step(state, batch, key, hparams):  # hparams["lr"]: traced (a run's scalar, a fleet's per member)
            value, grads = jax.value_and_grad(loss)(state["vae"]["params"], batch.x, key, cfg.beta)
            return {"vae": jc.apply_grads(jc.adam(hparams["lr"], betas), state["vae"], grads)}, {"loss": value}

        def iwae(params, x, key):
            mu, logvar = encode(params, x)
            eps = jax.random.normal(key, (cfg.iwae_samples, *mu.shape))
            return iwae_log_likelihood(x, mu, logvar, eps, decoder(params), cfg.decoder, cfg.decoder_std, ops)

        def sample(params, key, n):
            k_z, k_noise = jax.random.split(key)
            out = decoder(params)(jax.random.normal(k_z, (n, cfg.latent_dim)))
            if cfg.decoder == "gaussian":
                return out if cfg.sample_mean else out + cfg.decoder_std * jax.random.normal(k_noise, out.shape)
            p = jax.nn.sigmoid(out)
            return 2 * (p if cfg.sample_mean else jax.random.bernoulli(k_noise, p).astype(out.dtype)) - 1

        self._step_fn, self._sample_fn = step, sample
        self._train_step = jax.jit(step)
        self._heldout = jax.jit(lambda params, x, key: loss(params, x, key, 1.0))
        self._iwae = jax.jit(iwae)
        self._encode = jax.jit(encode)
        self._decode = jax.jit(lambda params, z: decoder(params)(z) if cfg.decoder == "gaussian"
                               else 2 * jax.nn.sigmoid(decoder(params)(z)) - 1)
        self._sample = jax.jit(sample, static_argnums=2)

    def init(self, data, seed: int) -> dict:
        import jax

        from . import jax_common as jc

        self._ensure_built(data.spec)
        params = jc.init_autoencoder(self._enc, self._dec, jc.init_key(seed), tuple(data.spec.shape),
                                     self.config.latent_dim)
        cfg = self.config
        self._hparams = self._traced_hparams(data.device)
        return jax.device_put({"vae": jc.adam_state(params, jc.adam(cfg.lr, (cfg.beta1, cfg.beta2)))}, data.device)

    def train_step(self, state: dict, batch, key):
        return self._train_step(state, batch, key, self._hparams)

    def fleet(self, members: list):
        """Members may differ in seed, data and ``lr`` (fleet_varying)."""
        sample = self._sample_fn
        return self._fleet(members, self._step_fn, lambda state, key, n: sample(state["vae"]["params"], key, n))

    def heldout_loss(self, state: dict, batch, key):
        """The negative ELBO with beta = 1 (a bound on -log p, comparable across beta)."""
        return self._heldout(state["vae"]["params"], batch.x, key)

    def log_prob(self, state: dict, x, key):
        """IWAE estimate of log p(x) with ``iwae_samples`` samples, per example, nats."""
        import jax
        import jax.numpy as jnp

        params, size = state["vae"]["params"], self.iwae_chunk
        return jnp.concatenate([self._iwae(params, x[i:i + size], jax.random.fold_in(key, i))
                                for i in range(0, x.shape[0], size)])

    def encode(self, state: dict, x):
        """The encoder's Gaussian q(z | x): (mean, log variance)."""
        mu, logvar = self._encode(state["vae"]["params"], x)
        return mu, logvar

    def decode(self, state: dict, z):
        """The decoder's mean in data space (Bernoulli: 2 sigmoid(logits) - 1)."""
        return self._decode(state["vae"]["params"], z)

    def sample(self, state: dict, n: int, key):
        return self._sample(state["vae"]["params"], key, int(n))


@hookimpl
def benchbase_register_models(register):
    register(JaxVAE)
