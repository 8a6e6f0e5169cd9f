"""A small autoencoder trained once on the dataset's training split: an offline,
domain-specific feature space.

Fitted on the dataset's full train split (the first ``max_train`` examples), not on a
run's subset, so every run of a sweep over n embeds in the same space. Training is
seeded and deterministic on the CPU; the weights are cached next to the results
(``<results>/cache/encoders/<key>.pt``, written atomically, read back with
``weights_only=True``), keyed by the content hash of the fitting data and the config,
so a later run loads them instead of training again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import FeatureExtractor, hookimpl
from benchbase.data import content_hash
from benchbase.neighbors import torch_device
from benchbase_plugins.features.fit_cache import fit_path, read_fit, write_fit
from benchbase_plugins.models.config_checks import SelfChecked, check_at_least, check_learning_rate


@dataclass
class TrainedEncoderConfig(SelfChecked):
    latent_dim: int = 16  # feature dimension
    width: int = 256  # hidden units of the MLP encoder and decoder
    depth: int = 2  # hidden layers of each
    steps: int = 2000  # Adam steps
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0  # initialisation and batch order
    max_train: int = 20000  # fit on at most the first this many training examples

    def validate(self) -> None:
        """Refused at ``validate``, not by every run's fit (or, for a negative lr, silently
        an encoder trained uphill); depth 0 is a linear encoder."""
        check_at_least(self, 1, "latent_dim", "width", "steps", "batch_size", "max_train")
        check_at_least(self, 0, "depth")
        check_learning_rate(self, "lr")


def build_autoencoder(dim: int, cfg: TrainedEncoderConfig):
    """(encoder, decoder) MLPs with SiLU, initialised under a private seed."""
    import torch
    from torch import nn

    def mlp(d_in, d_out):
        layers, d = [], d_in
        for _ in range(cfg.depth):
            layers += [nn.Linear(d, cfg.width), nn.SiLU()]
            d = cfg.width
        return nn.Sequential(*layers, nn.Linear(d, d_out))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return mlp(dim, cfg.latent_dim), mlp(cfg.latent_dim, dim)


def fit_autoencoder(x: np.ndarray, cfg: TrainedEncoderConfig, device) -> dict:
    """Train on flattened ``x`` with MSE reconstruction; returns the encoder's state dict."""
    import torch

    data = torch.from_numpy(np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)).to(device)
    enc, dec = build_autoencoder(data.shape[1], cfg)
    enc, dec = enc.to(device), dec.to(device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    for _ in range(cfg.steps):
        batch = data[torch.randint(len(data), (min(cfg.batch_size, len(data)),), device=device, generator=gen)]
        loss = ((dec(enc(batch)) - batch) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach().cpu() for k, v in enc.state_dict().items()}


class TrainedEncoder(FeatureExtractor):
    """Latent codes of a small MLP autoencoder trained once (seeded) on the dataset's train split, cached.

    Encoder and decoder: ``depth`` hidden layers of ``width`` SiLU units; latent
    ``latent_dim``; MSE reconstruction, Adam, ``steps`` steps of ``batch_size``. Fitted
    on the first ``max_train`` examples of the dataset's train split (the same space
    for every subset size), cached next to the results and reloaded by later runs.
    Works on flattened vectors and images alike.
    """

    name = "trained_encoder"
    Config = TrainedEncoderConfig

    def __init__(self, config=None):
        super().__init__(config)
        self.encoder = None
        self.fitted_on = ""
        self.device = torch_device("cpu")

    def prepare(self, train, spec, device) -> None:
        self.device = torch_device(device)
        source = self.train_split if self.train_split is not None else train
        data = np.asarray(source, dtype=np.float32)[: self.config.max_train]
        self.fitted_on = content_hash(data)
        path = fit_path(self.cache_dir, self.fitted_on, self.config, self.version)
        state = read_fit(path)
        if state is None:
            state = fit_autoencoder(data, self.config, self.device)
            write_fit(path, state)
        enc, _ = build_autoencoder(int(np.prod(data.shape[1:])), self.config)
        enc.load_state_dict(state)
        self.encoder = enc.to(self.device).eval()

    def cache_key(self) -> dict:
        return {"fitted_on": self.fitted_on}

    def embed(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.encoder is None:
            raise RuntimeError("trained_encoder.embed called before prepare()")
        flat = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
        with torch.no_grad():
            return self.encoder(torch.from_numpy(flat).to(self.device)).cpu().numpy()


@hookimpl
def benchbase_register_features(register):
    register(TrainedEncoder)
