"""Model-aware metrics: they ask the model itself (through ``ctx.model``, a
:class:`benchbase.evaluation.ModelHandle`) rather than only looking at its samples.

heldout_gap compares the training objective on the training subset and on the test
split at the same step (the onset of their divergence marks memorization: Bonnaire
et al. 2025, Favero et al. 2025); denoiser_gap measures how far a diffusion/flow
model's denoiser is from the empirical optimal denoiser of its training set, which
reproduces training points (a memorizer by construction). A suite that lists them
for a model without the capability fails validation before anything trains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.neighbors import as_tensor


def _fixed_rng(ctx, salt: int) -> np.random.Generator:
    """Depends on the run's seed only: the same points and noise at every step."""
    return np.random.default_rng([ctx.seed, 1000 + salt])


def _pick(x: np.ndarray, y: np.ndarray | None, n: int, rng: np.random.Generator):
    if len(x) <= n:
        return x, y
    idx = np.sort(rng.choice(len(x), n, replace=False))
    return x[idx], (None if y is None else y[idx])


def _tile(x: np.ndarray, y: np.ndarray | None, at_least: int):
    """Repeat the rows until there are at least ``at_least`` of them (whole copies)."""
    reps = max(1, -(-at_least // max(len(x), 1)))
    if reps == 1:
        return x, y
    return np.concatenate([x] * reps), (None if y is None else np.concatenate([y] * reps))


@dataclass
class HeldoutGapConfig:
    max_points: int = 2000  # examples per split; both splits use the same number
    # Small training subsets are repeated (each copy with fresh noise) until both losses
    # average at least this many noise draws: at n = 32 a single draw per example makes
    # the gap too noisy to time the onset of memorization.
    min_evaluations: int = 2048


class HeldoutGap(Metric):
    """Held-out loss minus training loss of the model's own objective, at the same step.

    heldout_gap = L(S') - L(T'), L the model's ``heldout_loss`` (its training objective
    without an update: denoising/flow-matching loss, negative ELBO), T' and S' equally
    large subsets of the training subset and the test split, evaluated with the same
    noise draws (same key per batch) so the difference is not noise-dominated; sets
    smaller than ``min_evaluations`` are repeated with fresh noise per copy. ~0:
    generalizing; growing > 0: memorizing (Bonnaire et al. 2025; seed 001). Reports
    both losses as ``heldout_gap.train`` and ``heldout_gap.test``.
    """

    name = "heldout_gap"
    direction = "lower"
    references = ("test",)
    requires = frozenset({"capability:heldout_loss"})
    Config = HeldoutGapConfig

    def compute(self, ctx) -> dict[str, float]:
        n = min(len(ctx.train_data), len(ctx.test_data), self.config.max_points)
        tx, ty = _tile(*_pick(ctx.train_data, ctx.train_labels, n, _fixed_rng(ctx, 1)), self.config.min_evaluations)
        sx, sy = _tile(*_pick(ctx.test_data, ctx.test_labels, n, _fixed_rng(ctx, 2)), self.config.min_evaluations)
        train = ctx.model.heldout_loss(tx, ty, salt=11)
        test = ctx.model.heldout_loss(sx, sy, salt=11)
        return {"heldout_gap": test - train, "heldout_gap.train": train, "heldout_gap.test": test}


def empirical_optimal_denoiser(x_noisy: np.ndarray, train: np.ndarray, sigma: float, device: str = "cpu",
                               block: int = 256):
    """D*(x; sigma) = sum_i softmax_i(-||x - y_i||^2 / (2 sigma^2)) y_i over the training
    points y_i, in float64 (a torch tensor (N, d) on the device).

    The posterior mean of the clean point under the empirical training distribution,
    x = y + sigma * eps. ||x||^2 is common to every logit and dropped, which leaves
    (2 x.y - ||y||^2) / (2 sigma^2); a log-sum-exp softmax keeps small sigma exact.
    """
    import torch

    y = as_tensor(train, device, torch.float64)
    x = as_tensor(x_noisy, device, torch.float64)
    y_sq = (y * y).sum(1)
    out = torch.empty_like(x)
    for s in range(0, len(x), block):
        logits = (2 * x[s:s + block] @ y.T - y_sq) / (2 * float(sigma) ** 2)
        out[s:s + block] = torch.softmax(logits, dim=1) @ y
    return out


def _sigma_label(sigma: float) -> str:
    return f"sigma_{sigma:g}"


@dataclass
class DenoiserGapConfig:
    sigmas: List[float] = field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0])
    n_points: int = 500  # clean points from the reference split, noised once per sigma


class DenoiserGap(Metric):
    """Mean squared distance between the model's denoiser and the empirical optimal denoiser, over noise levels.

    gap(sigma) = E_{x, eps} ||D_theta(x + sigma eps, sigma) - D*(x + sigma eps; sigma)||^2
    (sum over dimensions), x from the reference split (test: do samples near fresh
    data snap to training points? train: fitted points), D* the empirical optimal
    denoiser of the training subset in float64 (see METRICS.md), D_theta the
    model's ``denoise`` in the variance-exploding parametrisation. Points and noise
    are fixed per run, so curves over steps compare like with like. 0 means the
    model denoises like the memorizer; a generalizing model departs from D* at
    small sigma. Headline: the mean over the grid; ``denoiser_gap.sigma_<s>`` per
    level. A diagnostic of memorization (higher = further from the memorizer), not
    a quality score: an untrained network is also far from D*. Cost per sigma and
    reference: O(n_points x n_train x dim) in float64 - lower ``n_points`` on large
    image sets without a GPU.
    """

    name = "denoiser_gap"
    direction = "higher"
    references = ("test", "train")
    requires = frozenset({"capability:denoise"})
    Config = DenoiserGapConfig

    def compute(self, ctx) -> dict[str, float]:
        sigmas = [float(s) for s in self.config.sigmas]
        if not sigmas or min(sigmas) <= 0:
            raise ValueError(f"denoiser_gap.sigmas must be positive noise levels, got {sigmas}")
        source = ctx.train_data if ctx.ref_name == "train" else ctx.test_data
        x0, _ = _pick(source, None, self.config.n_points, _fixed_rng(ctx, 3))
        x0 = np.asarray(x0, dtype=np.float64).reshape(len(x0), -1)
        eps = _fixed_rng(ctx, 4).standard_normal(x0.shape)
        shape = (len(x0), *ctx.spec.shape)
        out = {}
        for sigma in sigmas:
            noisy = (x0 + sigma * eps).astype(np.float32)  # what the model sees; D* sees the same
            model_d = np.asarray(ctx.model.denoise(noisy.reshape(shape), sigma), dtype=np.float64)
            optimal = empirical_optimal_denoiser(noisy, ctx.train_data, sigma, ctx.device).cpu().numpy()
            out[f"denoiser_gap.{_sigma_label(sigma)}"] = float(
                ((model_d.reshape(len(x0), -1) - optimal) ** 2).sum(1).mean())
        out["denoiser_gap"] = float(np.mean(list(out.values())))
        return out


@hookimpl
def benchbase_register_metrics(register):
    register(HeldoutGap)
    register(DenoiserGap)
