"""Likelihood-based memorization: the leave-one-out memorization score of van den
Burg & Williams (2021), seed 000,

    M(x_i) = log p(x_i | S) - log p(x_i | S without x_i),

for models with the ``log_prob`` capability (the VAE's importance-weighted bound, the
flow's probability-flow ODE).

One run gives the run-level value: the mean log-likelihood of the training examples
minus that of held-out test examples. It is the average of M over the training set
when dropping one example leaves the model unchanged elsewhere (then x_i under the
model trained without it is scored like any fresh point), so it needs no retraining;
0 is chance (a model that never saw S), and its standard error is stored beside it.

The per-example score needs models trained without each example. With K disjoint
folds (``subset.holdout: "k of K"`` trains on S without its k-th fold) the metric
stores log p of every training example and of the held-out fold at every
evaluation, by index in the dataset's train split; ``benchbase.memscore`` joins
the runs trained on S and those trained without each fold into M(x_i) for every
x_i in S (a derived quantity of the suite, like twin similarity).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.memscore import logp_row


@dataclass
class MemorizationScoreConfig:
    max_test: int = 500  # test examples scored for the run-level value (the first of the split)
    per_example: bool = True  # store log p of every training and held-out example (for the fold score)


class MemorizationScore(Metric):
    """Leave-one-out memorization (van den Burg & Williams 2021): mean log p(train) - mean log p(test), per-example log p stored.

    Headline: mean log p over the training subset minus mean log p over up to
    ``max_test`` test examples, in nats per example: the average leave-one-out
    memorization score when removing one example does not change the model
    elsewhere. 0 is chance; ``memorization_score.se`` is the standard error of the
    difference. Details: ``.train``, ``.test`` (and ``.heldout`` with
    ``subset.holdout``) mean log-likelihoods, and ``memorization_score.logp.<i>`` /
    ``.heldout_logp.<i>`` for every training / held-out example i (its index in the
    dataset's train split), from which ``benchbase dynamics`` derives the per-example score M(x_i)
    across runs trained with and without each fold.

    It declares no ``memorizes``: the core measures chance levels by scoring held-out
    points in place of generated samples, and this metric reads the model, not its
    samples. Its chance level is 0 by construction, with ``.se`` as its spread.
    """

    name = "memorization_score"
    direction = "target"  # 0 is chance: a likelihood lower on training than on test data is no better
    target = 0.0
    requires = frozenset({"capability:log_prob"})
    Config = MemorizationScoreConfig

    def compute(self, ctx) -> dict[str, float]:
        train = _finite(ctx.model.log_prob(ctx.train_data, salt=21), "training")
        test = _finite(ctx.model.log_prob(ctx.test_data[: self.config.max_test], salt=21), "test")
        out = {"memorization_score": float(train.mean() - test.mean()),
               "memorization_score.se": _se_difference(train, test),
               "memorization_score.train": float(train.mean()),
               "memorization_score.test": float(test.mean())}
        held = None
        if ctx.heldout_data is not None and len(ctx.heldout_data):
            held = _finite(ctx.model.log_prob(ctx.heldout_data, salt=21), "held-out")
            out["memorization_score.heldout"] = float(held.mean())
        if self.config.per_example and ctx.train_indices is not None:
            out.update({logp_row(self.name, i): float(v) for i, v in zip(ctx.train_indices, train)})
            if held is not None:
                out.update({logp_row(self.name, i, heldout=True): float(v)
                            for i, v in zip(ctx.heldout_indices, held)})
        return out


def _finite(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"log_prob returned non-finite values on {what} examples")
    return arr


def _se_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of mean(a) - mean(b) for independent samples (Welch)."""
    va = a.var(ddof=1) / len(a) if len(a) > 1 else 0.0
    vb = b.var(ddof=1) / len(b) if len(b) > 1 else 0.0
    return float(math.sqrt(va + vb))


@hookimpl
def benchbase_register_metrics(register):
    register(MemorizationScore)
