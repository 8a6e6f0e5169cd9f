"""Chance levels of memorization and novelty metrics, measured rather than assumed,
and the test of a value's excess over them.

A perfect generalizer does not score zero on a memorization metric: in 2-D a fresh
sample passes mem_ratio's 1/3 ratio test with probability 1/9, and held-out data is
only ~70% "authentic". The chance level of a metric is therefore measured, the way
dgm-eval reports the test set's own AuthPct as the baseline: held-out points, which
no model saw, are scored against the same training subset with the same metric, the
same feature space and the same number of samples m.

Where held-out points come from (``ChanceLevel.source``):

- ``true_sampler``: the dataset has an exact sampler; each draw is m fresh samples,
  embedded like generated ones, scored with the run's own test split as ``ctx.test``.
  Draws are independent: their spread is the metric's sampling spread at m.
- ``held_out_test``: the suite caps the test points the metrics see (``eval.n_test``);
  each draw is m of the remaining test points (with replacement when fewer), scored
  with the run's own test split: the same null as a model's samples.
- ``test_split``: otherwise each draw splits the test split at random into two halves; m
  points of the first half (with replacement when the half has fewer than m) play
  the generated samples and the second half plays the test split, so that a metric
  that also reads the test split (dcr_overfit, novelty_ratio, ct_test) never scores
  a point against itself. The spread then also carries the finite size of the test
  split.

A value v is judged by its excess over the chance mean c in the metric's
memorization direction, e = v - c ("higher") or c - v ("lower"), with a one-sided
test against the spread s of the R draws: t = e / (s sqrt(1 + 1/R)) (the 1/R term
for the uncertainty of c), p = P(T > t) for Student's T with R - 1 degrees of freedom
(the prediction test of one new draw from the draws' distribution; s is itself an
estimate). A run memorizes by this metric when p < alpha and e >= the metric's
minimum effect (``Metric.min_excess``).

A chance level drawn from a finite pool (``held_out_test``, ``test_split``) of fewer
than ``MIN_POOL`` distinct points is not measured: its draws resample a handful of
points, so its mean is off by the pool's own sampling error and its spread can read 0
(2 points that both fail the ratio test give mem_ratio 0 ± 0, against 0.12 ± 0.03 from
150), which would let any excess count. Such a level is stored as NaN with the reason,
and no verdict is drawn from it, as for a value stored without a chance level.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from benchbase.contracts import EvalContext

DEFAULT_DRAWS = 100  # R: held-out draws per chance level
DEFAULT_ALPHA = 0.001  # one-sided level of the excess test
SOURCES = ("true_sampler", "held_out_test", "test_split")
#: distinct held-out points a chance level drawn from a finite pool needs: with fewer, every
#: point of the pool often scores alike (0.96^50 = 13% for a 4% chance rate), reading 0 ± 0
MIN_POOL = 50
_STEP_BASE = 1 << 40  # ctx.step of chance draw r is _STEP_BASE + r: never an evaluation step


class ChanceNotMeasuredWarning(UserWarning):
    """A memorization metric's chance level could not be measured (pool under ``MIN_POOL``)."""


@dataclass(frozen=True)
class ChanceLevel:
    """The distribution of a metric's value on held-out points at the run's sample size."""

    metric: str
    memorizes: str  # higher | lower: which way the metric moves when samples copy
    mean: float
    sd: float  # spread of the per-draw values (ddof = 1)
    values: tuple[float, ...]  # one value per draw
    m: int  # points scored per draw (the run's n_samples)
    source: str  # true_sampler | held_out_test | test_split (see the module docstring)
    pool: int  # distinct held-out points one draw is taken from
    reference: int  # test points the metric saw as ctx.test during a draw
    replace: bool  # draws with replacement (the pool is smaller than m)

    @property
    def draws(self) -> int:
        return len(self.values)

    @property
    def not_measured(self) -> str | None:
        """Why this level must not judge anything (a pool under ``MIN_POOL``), else None."""
        return pool_problem(self.source, self.pool)

    def describe(self) -> dict:
        """Everything but the per-draw values (stored as the params of ``.chance`` rows)."""
        out = dataclasses.asdict(self)
        out.pop("values")
        out["draws"] = self.draws
        if self.not_measured:
            out["not_measured"] = self.not_measured
        return out

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ChanceLevel":
        fields = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in data.items() if k in fields}
        kept["values"] = tuple(float(v) for v in kept["values"])
        return cls(**kept)


@dataclass(frozen=True)
class Excess:
    """A value judged against its chance level (see the module docstring for the test)."""

    value: float
    chance: float
    excess: float  # signed: > 0 in the direction of memorization
    scale: float  # standard error of the excess under "samples are fresh data"
    alpha: float
    min_excess: float
    df: float = math.inf  # degrees of freedom of the spread estimate (R - 1)

    @property
    def z(self) -> float:
        """The test statistic e / scale (Student's t with ``df`` degrees of freedom)."""
        if math.isnan(self.excess) or math.isnan(self.scale):
            return math.nan
        if self.scale > 0:
            return self.excess / self.scale
        return math.copysign(math.inf, self.excess) if self.excess != 0 else 0.0

    @property
    def p_value(self) -> float:
        """One-sided: P(T > t) under the chance level."""
        return t_sf(self.z, self.df)

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def threshold(self) -> float:
        """The smallest excess that counts as memorization at this spread, alpha and minimum
        effect (an excess above it is significant and large enough)."""
        return max(self.min_excess, t_quantile(1 - self.alpha, self.df) * self.scale)

    @property
    def memorizing(self) -> bool:
        """Significantly above chance and by at least the minimum effect."""
        return self.significant and self.excess >= self.min_excess


def pool_problem(source: str, pool: int) -> str | None:
    """'pool of N too small, need M' for a finite pool under ``MIN_POOL``; fresh exact
    samples (``true_sampler``) have no pool limit."""
    if source != "true_sampler" and pool < MIN_POOL:
        return f"pool of {pool} held-out point(s) too small, need {MIN_POOL}"
    return None


def finite_pool(held_out: int, test: int) -> tuple[str, int]:
    """(source, pool) of a chance level without an exact sampler: the ``held_out`` points
    no metric sees, else half of the ``test`` points (the other half is the reference)."""
    return ("held_out_test", held_out) if held_out else ("test_split", test // 2)


def stored_not_measured(info: dict) -> str | None:
    """Why a stored ``.chance`` row (its params' ``chance``) must not judge anything: rows
    written before ``MIN_POOL`` from a small pool are caught here too."""
    if info.get("not_measured"):
        return str(info["not_measured"])
    return pool_problem(str(info.get("source", "true_sampler")), int(info.get("pool", MIN_POOL)))


def excess_over_chance(value: float, mean: float, sd: float, draws: int, memorizes: str,
                       alpha: float = DEFAULT_ALPHA, min_excess: float = 0.0) -> Excess:
    """Judge ``value`` against a chance level of ``mean`` and per-draw spread ``sd`` (R = ``draws``).

    One-sided t-test in the memorization direction: t = e / (sd sqrt(1 + 1/R)), R - 1
    degrees of freedom. A chance level with no spread (every draw equal, e.g. mem_ratio
    0 in 64-d) makes any positive excess significant; the minimum effect then decides
    alone. A chance level without a spread estimate (NaN sd) never makes anything
    significant.
    """
    if memorizes not in ("higher", "lower"):
        raise ValueError(f"memorizes must be 'higher' or 'lower', got {memorizes!r}")
    if not (math.isfinite(value) and math.isfinite(mean)):
        return Excess(value, mean, math.nan, math.nan, alpha, min_excess)
    excess = (value - mean) if memorizes == "higher" else (mean - value)
    draws = max(int(draws), 1)
    scale = sd * math.sqrt(1.0 + 1.0 / draws) if math.isfinite(sd) else math.inf
    return Excess(value, mean, excess, scale, alpha, min_excess, float(draws - 1) if draws > 1 else math.inf)


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's T with ``df`` degrees of freedom (the normal for df = inf)."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if math.isinf(df):
        return normal_sf(t)
    from scipy.special import stdtr

    return float(stdtr(df, -t))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's T with ``df`` degrees of freedom (the normal for df = inf)."""
    from scipy.special import ndtri, stdtrit

    return float(ndtri(q)) if math.isinf(df) else float(stdtrit(df, q))


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    if math.isnan(z):
        return math.nan
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def judge_stored(evals: list[dict], alpha: float = DEFAULT_ALPHA,
                 min_excess: dict[str, float] | None = None) -> dict[tuple[str, str, int], Excess]:
    """Every stored memorization value judged against the chance level stored beside it.

    ``evals`` are store rows (metric, ref, step, value, params); a value is judged when
    ``<metric>.chance`` and ``<metric>.chance_sd`` rows share its reference and step.
    ``min_excess`` overrides the metric's declared minimum effect, by metric name.
    Returns {(metric, ref, step): Excess}.
    """
    rows = {(e["metric"], e["ref"] or "", int(e["step"])): e for e in evals}
    out = {}
    for (metric, ref, step), row in rows.items():
        chance = rows.get((f"{metric}.chance", ref, step))
        spread = rows.get((f"{metric}.chance_sd", ref, step))
        if chance is None or spread is None or row["value"] is None:
            continue
        info = (chance.get("params") or {}).get("chance") or {}
        if not math.isfinite(_float(chance["value"])) or stored_not_measured(info):
            continue  # no verdict from a chance level not measured (too few points)
        effect = (min_excess or {}).get(metric, info.get("min_excess", 0.0))
        out[(metric, ref, step)] = excess_over_chance(
            float(row["value"]), _float(chance["value"]), _float(spread["value"]), int(info.get("draws", 1)),
            info.get("memorizes", "higher"), alpha, float(effect))
    return out


def _float(value) -> float:
    return math.nan if value is None else float(value)


# ---------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class ExactSampler:
    """Fresh draws of the data distribution for chance levels: ``sample(n, seed)`` in data
    space, ``embed(x)`` into the run's feature space."""

    sample: Callable[[int, int], np.ndarray]
    embed: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class HeldOutPoints:
    """Test points that the metrics do not see (the rest of a test split capped by
    ``eval.n_test``), in data space and in the run's feature space."""

    data: np.ndarray
    features: np.ndarray


def measure_chance(metric: Any, base: EvalContext, m: int, draws: int = DEFAULT_DRAWS,
                   exact: ExactSampler | None = None, held_out: HeldOutPoints | None = None,
                   seed: int = 0) -> ChanceLevel:
    """Score R draws of m held-out points against the training subset with ``metric``.

    ``base`` is the run's evaluation context (training and test features and data,
    feature space, extractor, device; its ``gen``/``samples`` are ignored). The draws
    are, in this order of preference: fresh exact samples (``exact``); test points the
    metrics do not see (``held_out``, with replacement when fewer than m), scored with
    the run's own test split; halves of the test split (module docstring). ``seed``
    fixes every draw, so a chance level is a function of its inputs alone and can be
    cached. A pool under ``MIN_POOL`` is not drawn from: the level comes back with NaN
    mean and spread, no values, and ``not_measured`` saying why.
    """
    cls = type(metric)
    memorizes = getattr(cls, "memorizes", None)
    if memorizes is None:
        raise ValueError(f"metric '{cls.name}' declares no memorization direction (memorizes)")
    if m < 1 or draws < 2:
        raise ValueError(f"a chance level needs m >= 1 and at least 2 draws (m={m}, draws={draws})")
    rng = np.random.default_rng([seed, 0x43484E43])
    values = []
    test_f, test_x = base.test, base.test_data
    if exact is not None:
        source, pool, reference, replace = "true_sampler", m, len(test_f), False
    else:
        source, pool = finite_pool(len(held_out.data) if held_out is not None else 0, len(test_f))
        reference = len(test_f) if source == "held_out_test" else len(test_f) - pool
        replace = pool < m
    if pool_problem(source, pool):
        return ChanceLevel(metric=cls.name, memorizes=memorizes, mean=math.nan, sd=math.nan, values=(), m=int(m),
                           source=source, pool=int(pool), reference=int(reference), replace=bool(replace))
    for r in range(draws):
        if exact is not None:
            x = np.asarray(exact.sample(m, int(rng.integers(0, 2**31 - 1))), dtype=np.float32)
            gen = np.asarray(exact.embed(x), dtype=np.float32)
            ref_f, ref_x, ref_y = test_f, test_x, base.test_labels
        elif source == "held_out_test":
            picked = rng.choice(pool, size=m, replace=replace)
            gen, x = held_out.features[picked], held_out.data[picked]
            ref_f, ref_x, ref_y = test_f, test_x, base.test_labels
        else:
            order = rng.permutation(len(test_f))
            first, second = order[:pool], np.sort(order[pool:])
            picked = first[rng.choice(pool, size=m, replace=replace)]
            gen, x = test_f[picked], test_x[picked]
            ref_f, ref_x = test_f[second], test_x[second]
            ref_y = None if base.test_labels is None else base.test_labels[second]
        ctx = dataclasses.replace(base, gen=gen, samples=x, test=ref_f, test_data=ref_x, test_labels=ref_y,
                                  ref=ref_f if base.ref_name == "test" else base.train,
                                  seed=seed, step=_STEP_BASE + r, model=None)
        out = metric.compute(ctx)
        values.append(float(out[cls.name]))
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    mean = float(finite.mean()) if len(finite) else math.nan
    sd = float(finite.std(ddof=1)) if len(finite) > 1 else math.nan
    return ChanceLevel(metric=cls.name, memorizes=memorizes, mean=mean, sd=sd, values=tuple(values), m=int(m),
                       source=source, pool=int(pool), reference=int(reference), replace=bool(replace))


def chance_seed(key: dict) -> int:
    """A seed fixed by what determines a chance level (so equal inputs give equal draws)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "little")


# ------------------------------------------------------------------------ caching


class ChanceCache:
    """Chance levels by what determines them, as JSON files in ``<results>/cache/chance/``
    (and in memory for the process): computed once per (data, subset, feature space,
    metric and config, sample size, draws). Writes are atomic; a corrupt file is
    recomputed."""

    _memory: dict[str, ChanceLevel] = {}

    def __init__(self, directory: str | None):
        from pathlib import Path

        self.dir = Path(directory) / "chance" if directory is not None else None

    def get(self, key: dict, compute: Callable[[int], ChanceLevel]) -> ChanceLevel:
        """The chance level for ``key``; ``compute(seed)`` measures it on a miss."""
        import os
        import tempfile

        blob = json.dumps(key, sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:24]
        if digest in self._memory:
            return self._memory[digest]
        path = self.dir / f"{digest}.json" if self.dir is not None else None
        if path is not None and path.exists():
            try:
                level = ChanceLevel.from_dict(json.loads(path.read_text())["chance"])
                self._memory[digest] = level
                return level
            except (OSError, ValueError, KeyError, TypeError):
                pass  # recomputed below
        level = compute(chance_seed(key))
        self._memory[digest] = level
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                with os.fdopen(fd, "w") as f:
                    json.dump({"key": json.loads(blob), "chance": level.to_dict()}, f)
                os.replace(tmp, path)
            except OSError:
                pass  # a cache is an optimisation, never a failure
        return level
