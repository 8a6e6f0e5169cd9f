"""fls_overfit against dgm-eval's compute_fls_overfit (layer6ai-labs/dgm-eval,
dgm_eval/metrics/fls.py), transcribed below in float64 on the CPU without its
baseline set (benchbase has none: features are standardised over train, test and
generated points)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from support.metric_contexts import gaussian, make_ctx

from benchbase_plugins.metrics.feature_likelihood import FLSOverfit


def _standardised(train, test, gen):
    train, test, gen = (torch.tensor(a, dtype=torch.float64) for a in (train, test, gen))
    allf = torch.cat((train, test, gen), dim=0)
    mean, std = allf.mean(dim=0), allf.std(dim=0)
    return tuple((f - mean) / std for f in (train, test, gen))


def reference_log_sigmas(train, gen):
    """dgm-eval's bandwidth fit: autograd, torch.optim.Adam, MultiStepLR."""
    def nll(dists, log_sigmas, dim):
        e = (-0.5 * dists) / torch.exp(log_sigmas)
        e -= (dim / 2) * log_sigmas
        e += torch.log(torch.tensor(1 / dists.shape[1], dtype=torch.float64))
        return torch.mean(-torch.logsumexp(e, dim=1))

    log_sigmas = torch.zeros(gen.shape[0], dtype=torch.float64, requires_grad=True)
    optim = torch.optim.Adam([log_sigmas], lr=0.5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optim, milestones=[50], gamma=0.1)
    dists = (torch.cdist(train, gen) ** 2).detach()
    for _ in range(100):
        loss = nll(dists, log_sigmas, train.shape[1])
        optim.zero_grad()
        loss.backward()
        optim.step()
        scheduler.step()
        with torch.no_grad():
            log_sigmas.data = log_sigmas.clamp(-100, 20).data
    return log_sigmas.detach()


def reference_fls_overfit(train, test, gen):
    train, test, gen = _standardised(train, test, gen)
    log_sigmas = reference_log_sigmas(train, gen)

    def pairwise(x):
        e = (-0.5 * torch.cdist(x, gen) ** 2) / torch.exp(log_sigmas)
        e -= (gen.shape[1] / 2) * log_sigmas
        e += torch.log(torch.tensor(1 / gen.shape[0], dtype=torch.float64))
        return e

    size = min(test.shape[0], train.shape[0])
    diff = pairwise(train[:size]).logsumexp(axis=0) - pairwise(test[:size]).logsumexp(axis=0)
    return ((diff > 0).sum().item() / diff.shape[0]) * 100 - 50


@pytest.mark.parametrize("case", ["fresh", "noisy_copies", "unequal_sizes"])
def test_fls_overfit_matches_dgm_eval(case):
    train, test = gaussian(240, 6, 40), gaussian(200, 6, 41)
    if case == "fresh":
        gen = gaussian(150, 6, 42)
    elif case == "noisy_copies":
        gen = np.concatenate([train[:80] + gaussian(80, 6, 43, scale=0.2), gaussian(70, 6, 44)])
    else:
        train, test, gen = gaussian(90, 6, 45), gaussian(300, 6, 46), gaussian(120, 6, 47)
    out = FLSOverfit().compute(make_ctx(gen, train, test))
    assert out["fls_overfit"] == pytest.approx(reference_fls_overfit(train, test, gen), abs=1e-9)
    assert out["fls_overfit.n"] == min(len(train), len(test))


def test_fls_overfit_reads_copies_near_50_and_fresh_samples_near_0():
    train, test = gaussian(300, 8, 50), gaussian(300, 8, 51)
    assert FLSOverfit().compute(make_ctx(train[:200], train, test))["fls_overfit"] == 50.0
    assert abs(FLSOverfit().compute(make_ctx(gaussian(300, 8, 52), train, test))["fls_overfit"]) < 10


@pytest.mark.parametrize("case", ["fresh", "exact_and_noisy_copies", "wide"])
def test_bandwidth_fit_matches_autograd_adam(case):
    """The closed-form gradient and hand-written Adam give dgm-eval's log-variances,
    not only its final percentage (which moves in steps of 100 / |gen|)."""
    from benchbase_plugins.metrics.feature_likelihood import fit_log_variances

    train, test = gaussian(240, 6, 50), gaussian(200, 6, 51)
    if case == "fresh":
        gen = gaussian(150, 6, 52)
    elif case == "exact_and_noisy_copies":
        gen = np.concatenate([train[:40], train[40:80] + gaussian(40, 6, 53, scale=0.05), gaussian(70, 6, 54)])
    else:
        train, test, gen = gaussian(500, 64, 55), gaussian(100, 64, 56), gaussian(300, 64, 57)
    train, test, gen = _standardised(train, test, gen)
    expected = reference_log_sigmas(train, gen)
    fitted = fit_log_variances(train, gen, steps=100, lr=0.5)
    assert torch.allclose(fitted, expected, rtol=1e-9, atol=1e-9), float((fitted - expected).abs().max())
