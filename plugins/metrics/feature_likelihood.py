"""Feature likelihood: a mixture of Gaussians centred on the generated samples, each
with its own bandwidth fitted to the training set, asked how likely the training and
the held-out points are (Jiralerspong et al., NeurIPS 2023, "Feature Likelihood
Divergence"; dgm-eval ships it as FLS). A generator that copies puts narrow kernels on
training points: they explain the training set far better than fresh data.
Definitions: docs/metrics.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl


@dataclass
class FLSOverfitConfig:
    steps: int = 100  # Adam steps fitting the log-bandwidths (dgm-eval: 100)
    lr: float = 0.5  # Adam learning rate, divided by 10 after half the steps (dgm-eval: 0.5, step 50)


class FLSOverfit(Metric):
    """Percentage of generated samples whose kernel explains training points better than held-out ones, minus 50 (FLS overfit).

    Features are standardised over train, test and generated points together. A
    Gaussian kernel N(g_j, s_j I) sits on each generated sample g_j; the log-variances
    log s_j (from 0) are fitted by Adam (``steps``, ``lr``, divided by 10 half way,
    clamped to [-100, 20]) to maximise the likelihood of the training set under the
    uniform mixture. With T' and S' the first min(|T|, |S|) training and test points,
    sample j memorizes when sum_i N(t_i; g_j, s_j) > sum_i N(s_i; g_j, s_j) over them (in
    log space); fls_overfit = 100 x (fraction of such samples) - 50. 0: no preference;
    -> 50: every kernel sits on training data. As dgm-eval's compute_fls_overfit, in
    float64. Because the bandwidths are fitted to the training set, fresh samples
    already lean toward it: judge the value against its chance level.
    """

    name = "fls_overfit"
    direction = "target"
    target = 0.0
    memorizes = "higher"
    min_excess = 5.0  # percentage points
    references = ("train",)
    Config = FLSOverfitConfig

    def compute(self, ctx) -> dict[str, float]:
        import torch

        device = torch.device("cuda" if str(ctx.device).startswith("cuda") and torch.cuda.is_available() else "cpu")

        def t(a):
            return torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(len(a), -1), device=device)

        train, test, gen = t(ctx.train), t(ctx.test), t(ctx.gen)
        if len(gen) < 1 or len(train) < 1 or len(test) < 1:
            raise ValueError("fls_overfit needs generated, training and test points")
        everything = torch.cat([train, test, gen])
        mean, std = everything.mean(0), everything.std(0)
        std = torch.where(std > 0, std, torch.ones_like(std))  # constant features carry no information
        train, test, gen = ((x - mean) / std for x in (train, test, gen))
        log_var = fit_log_variances(train, gen, self.config.steps, self.config.lr)
        size = min(len(train), len(test))
        on_train = kernel_log_likelihoods(train[:size], gen, log_var).logsumexp(dim=0)
        on_test = kernel_log_likelihoods(test[:size], gen, log_var).logsumexp(dim=0)
        share = float((on_train > on_test).double().mean())
        return {"fls_overfit": 100.0 * share - 50.0, "fls_overfit.n": float(size)}


def kernel_log_likelihoods(x, kernels, log_var):
    """(N, M) log of (1/M) N(x_i; kernel_j, exp(log_var_j) I)  (without the 2 pi term)."""
    import torch

    d2 = torch.cdist(x, kernels) ** 2
    dim = x.shape[1]
    return -0.5 * d2 / torch.exp(log_var) - (dim / 2) * log_var - np.log(kernels.shape[0])


def fit_log_variances(data, kernels, steps: int, lr: float):
    """Per-kernel log-variances maximising the mixture likelihood of ``data``: Adam
    (PyTorch's update, betas 0.9 / 0.999, eps 1e-8; ``lr`` divided by 10 after half the
    steps) on the closed-form gradient. This loop runs once per evaluation and 100 times
    per chance level, so it is written for memory traffic: one (N, M) work buffer, the
    softmax's normaliser folded into two matrix-vector products, the mixture's constant
    1/M left out (a softmax does not see it). Log-variances within 3e-12 of autograd's."""
    import torch

    neg_half_d2 = torch.cdist(data, kernels).pow_(2).mul_(-0.5)
    half_dim = data.shape[1] / 2
    log_var = torch.zeros(kernels.shape[0], dtype=data.dtype, device=data.device)
    first, second = torch.zeros_like(log_var), torch.zeros_like(log_var)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    resp = torch.empty_like(neg_half_d2)
    for k in range(1, steps + 1):
        inv_var = torch.exp(-log_var)
        # kernel j's share of x_i, unnormalised: exp(-d2_ij / 2 v_j - half_dim log v_j - row max)
        torch.addcmul(-half_dim * log_var, neg_half_d2, inv_var, out=resp)
        # terms under exp(-600) (1e-261) are below a float64 rounding of the row's sum (>= 1);
        # left smaller they become subnormal numbers, which the CPU multiplies 10-100x slower
        resp.sub_(resp.amax(dim=1, keepdim=True)).clamp_(min=-600.0).exp_()
        row_weight = resp.sum(dim=1).reciprocal_()
        share = row_weight @ resp  # sum_i resp_ij
        pull = row_weight @ resp.mul_(neg_half_d2)  # sum_i resp_ij * (-d2_ij / 2)
        # d/d log_var_j of the mean negative log-likelihood
        grad = (inv_var * pull + half_dim * share) / len(data)
        first.mul_(beta1).add_(grad, alpha=1 - beta1)
        second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        rate = lr if k <= steps // 2 else lr * 0.1
        denom = (second / (1 - beta2 ** k)).sqrt() + eps
        log_var = (log_var - rate * (first / (1 - beta1 ** k)) / denom).clamp(-100, 20)  # identical points would drive a variance to zero
    return log_var


@hookimpl
def benchbase_register_metrics(register):
    register(FLSOverfit)
