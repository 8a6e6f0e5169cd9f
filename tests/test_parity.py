"""Cross-framework parity: a model's PyTorch and JAX plugins, trained on gmm2d through
the core under the same budget, must end at the same quality.

The two frameworks draw different random numbers, so single runs differ; the test
compares seed means against the spread between seeds. For each model in
``PARITY_MODELS`` it trains the torch and the jax version with every seed in
``SEEDS`` (same data subset, budget, config and evaluation), reads the final
``swd`` (against the test split) and ``mem_ratio`` (against the training subset), and
for each metric requires

    |mean_torch - mean_jax| <= max(K * s_pooled, FLOORS[metric]),
    s_pooled = sqrt((s_torch^2 + s_jax^2) / 2),

where s_x is the sample standard deviation (ddof=1) over the seeds of framework x
and K = 3. With 3 seeds per side a difference of means has standard error
s * sqrt(2/3), so K = 3 admits about 3.7 standard errors (a two-sided t test with
4 degrees of freedom at about p = 0.02): a real bug in one framework (a wrong loss,
optimiser or sampler) moves the mean by many seed spreads, while identical models
pass. The absolute floor stops a spuriously tiny spread (e.g. mem_ratio = 0 for all
seeds) from demanding an exact match.

Adding a model is one line in PARITY_MODELS: (name, config shared by both frameworks).
Runtime is dominated by JAX compilation and torch training; it is marked slow.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.store import Store

pytest.importorskip("jax")

MLP = {"width": 64, "depth": 2}
PARITY_MODELS = [
    ("ddpm", {**MLP, "sample_steps": 50}),
    ("rectified_flow", {**MLP, "sample_steps": 50}),
    ("gan", MLP),
    ("wgan_gp", {**MLP, "gp_weight": 0.1, "lr": 5e-4}),  # the paper's toy penalty (see WGANGPConfig)
    ("fgan", {**MLP, "divergence": "kl"}),
    ("vae", MLP),
    ("wae_mmd", {**MLP, "latent_dim": 2}),  # a WAE's latent must not exceed the data's dimension
    ("wae_gan", {**MLP, "latent_dim": 2, "lam": 0.01}),
]
SEEDS = (0, 1, 2)
BUDGET = {"batch_size": 128, "steps": 1000}
DATASET = {"name": "gmm2d", "n": 256, "config": {"train_size": 2000, "test_size": 1000}}
K = 3.0
FLOORS = {"swd": 0.01, "mem_ratio": 0.02}
METRICS = {"swd": "test", "mem_ratio": "train"}  # metric -> reference split compared


def parity_check(torch_values, jax_values, floor: float, k: float = K) -> tuple[bool, float, float]:
    """(passes, |difference of means|, tolerance) by the rule in the module docstring."""
    a, b = np.asarray(torch_values, float), np.asarray(jax_values, float)
    pooled = float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))
    gap = float(abs(a.mean() - b.mean()))
    tol = max(k * pooled, floor)
    return gap <= tol, gap, tol


def final_values(registry, tmp_path, name: str, config: dict) -> dict:
    """{framework: {metric: [final value per seed]}} from one suite through the core."""
    suite = build_suite({
        "name": f"parity_{name}", "seeds": list(SEEDS), "device": "cpu",
        "datasets": [DATASET],
        "models": [{"name": name, "framework": fw, "label": f"{name}_{fw}", "config": config}
                   for fw in ("torch", "jax")],
        "metrics": [{"name": "mem_ratio", "config": {"bootstrap": 0}},
                    {"name": "swd", "config": {"n_projections": 100}}],
        "budget": BUDGET,
        "eval": {"points": 1, "n_samples": 1000, "keep_samples": 0},
    }, "<parity>", registry=registry)
    out: dict = {"torch": {m: [] for m in METRICS}, "jax": {m: [] for m in METRICS}}
    with Store(tmp_path / name) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok, [(r.spec.model.name, r.spec.model.framework, r.error) for r in store.runs() if r.status != "done"]
        for run in store.runs():
            evals = store.evals(run.run_id)
            last = max(e["step"] for e in evals)
            for metric, ref in METRICS.items():
                value = next(e["value"] for e in evals
                             if e["step"] == last and e["metric"] == metric and e["ref"] == ref)
                out[run.spec.model.framework][metric].append(value)
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name,config", PARITY_MODELS, ids=[m[0] for m in PARITY_MODELS])
def test_torch_and_jax_reach_the_same_quality(registry, tmp_path, name, config):
    values = final_values(registry, tmp_path, name, config)
    report = []
    ok_all = True
    for metric in METRICS:
        ok, gap, tol = parity_check(values["torch"][metric], values["jax"][metric], FLOORS[metric])
        ok_all &= ok
        report.append(f"{metric}: torch {np.round(values['torch'][metric], 4).tolist()} "
                      f"jax {np.round(values['jax'][metric], 4).tolist()} gap {gap:.4f} tol {tol:.4f}")
    print(f"\n{name}: " + "; ".join(report))
    assert ok_all, f"{name} differs between frameworks:\n" + "\n".join(report)


# ----------------------------------------------------------------- the rule itself


def test_parity_rule_accepts_overlapping_seed_spreads():
    assert parity_check([0.10, 0.12, 0.11], [0.115, 0.13, 0.105], floor=0.0)[0]


def test_parity_rule_rejects_a_shift_of_many_spreads():
    ok, gap, tol = parity_check([0.10, 0.12, 0.11], [0.30, 0.31, 0.29], floor=0.01)
    assert not ok and gap > tol


def test_parity_rule_floor_covers_identical_seeds():
    assert parity_check([0.0, 0.0, 0.0], [0.01, 0.01, 0.01], floor=0.02)[0]
    assert not parity_check([0.0, 0.0, 0.0], [0.01, 0.01, 0.01], floor=0.0)[0]
