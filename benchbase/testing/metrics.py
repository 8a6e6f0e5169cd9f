"""``check_metric``: scores a metric plugin on known scenarios (see
:mod:`benchbase.testing.scenarios`) and checks the metric contract: a headline value
under the metric's own name, finite, repeatable, blind to the order of samples, not
writing into the arrays it is handed, ranking a better/worse pair the way its declared
direction says, moving the declared ``memorizes`` way on copies (memorization metrics),
the ideal value on identical sets, and finite (or a clear refusal) on tiny and
duplicated inputs.

What "better" means depends on what a metric measures: a fidelity metric prefers fresh
samples to noise, a memorization metric prefers fresh samples to copies. A metric
says which pairs it must order, and its value on identical sets, through the
``conformance`` class attribute or the arguments of ``check_metric``.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from benchbase.contracts import EvalContext, FeatureExtractor
from benchbase.errors import BenchbaseInputError
from benchbase.evaluation import ModelHandle
from benchbase.frameworks import NumpyFramework
from benchbase.testing.common import check_declaration, fingerprint, label, make_config, same
from benchbase.testing.scenarios import SCENARIOS, ScenarioModel, World, make_world
from benchbase.testing.violations import Checker, Report

DEFAULT_PAIRS = (("true", "noise"),)
_UNSET = object()
_REFUSALS = (ValueError, BenchbaseInputError)


class _Flatten(FeatureExtractor):
    """Pixels: what ``ctx.extractor`` is in a check (features are the flattened data)."""

    name = "kit_pixels"

    def embed(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))


def _declared(metric_cls: Any, key: str, given: Any, default: Any) -> Any:
    """An explicit argument (even None) wins over the class's ``conformance`` dict."""
    if given is not _UNSET:
        return given
    return (getattr(metric_cls, "conformance", None) or {}).get(key, default)


class _Scorer:
    """Builds EvalContexts the way the Evaluator does and calls ``compute`` with checks."""

    def __init__(self, c: Checker, metric: Any, world: World, seed: int):
        self.c, self.metric, self.world, self.seed = c, metric, world, seed
        self.name = type(metric).name
        self.needs_model = any(r.startswith("capability:") for r in getattr(type(metric), "requires", ()))
        self.extractor = _Flatten()

    def context(self, samples: np.ndarray, ref_name: str, mixture=None, world: World | None = None) -> EvalContext:
        w = world or self.world
        shape = w.spec.shape
        flat = lambda a: np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32)  # noqa: E731
        handle = None
        if self.needs_model:
            handle = ModelHandle(ScenarioModel(mixture or w.truth, shape), None, NumpyFramework(),
                                 "cpu", self.seed, 1)
        train, test = flat(w.train), flat(w.test)
        return EvalContext(gen=flat(samples), train=train, test=test,
                           samples=samples.reshape(len(samples), *shape).astype(np.float32),
                           train_data=w.train.reshape(len(w.train), *shape),
                           test_data=w.test.reshape(len(w.test), *shape),
                           spec=w.spec, feature_space="pixels", step=1, seed=self.seed, device="cpu",
                           ref=train if ref_name == "train" else test, ref_name=ref_name, model=handle,
                           extractor=self.extractor)

    def scenario(self, name: str, ref_name: str, n: int) -> EvalContext:
        rng = np.random.default_rng([self.seed, SCENARIOS.index(name)])
        mixture = self.world.scenario(name, rng)
        return self.context(mixture.sample(n, rng), ref_name, mixture)

    def compute(self, ctx: EvalContext, what: str) -> dict[str, float]:
        c, name = self.c, self.name
        with c.calling("compute", f"compute(ctx) on {what}"):
            out = self.metric.compute(ctx)
        c.require(isinstance(out, dict), "compute.returns", f"compute returned {type(out).__name__}",
                  f"return a dict: {{'{name}': value, '{name}.detail': ...}}")
        c.require(name in out, "compute.headline", f"compute returned keys {sorted(out)} without '{name}'",
                  f"put the headline value under the metric's own name '{name}'")
        stray = [k for k in out if k != name and not str(k).startswith(name + ".")]
        c.require(not stray, "compute.names", f"compute returned keys {stray} outside the metric's name",
                  f"name extra values '{name}.<detail>' (e.g. '{name}.ci_low') so they stay with the metric")
        values = {}
        for k, v in out.items():
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                c.fail("compute.values", f"value of '{k}' is {type(v).__name__} {v!r:.60}",
                       "return plain numbers (float(...)); the store keeps floats")
        return values

    def headline(self, ctx: EvalContext, what: str) -> float:
        return self.compute(ctx, what)[self.name]


def _derangement(n: int, seed: int) -> np.ndarray:
    """A random order in which no sample keeps its place (one n-cycle)."""
    order = np.random.default_rng(seed + 7).permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


def _better(direction: str, target: float | None, a: float, b: float) -> bool:
    if direction == "higher":
        return a > b
    if direction == "lower":
        return a < b
    return abs(a - target) < abs(b - target)


def check_metric(metric_cls: Any, config: Any = None, *, pairs: Any = _UNSET, identical: Any = _UNSET,
                 tolerance: Any = _UNSET, permutation_invariant: Any = _UNSET, shape: tuple | None = None,
                 n_gen: int = 200, n_ref: int = 200, seed: int = 0) -> Report:
    """Check a metric plugin class against the metric contract; raise ContractViolation.

    ``pairs``: (better, worse) scenario names the declared direction must order
    (scenarios: true, copies, noise, collapsed); ``identical``: the value on a generated
    set equal to the reference (None: no ideal value); ``tolerance`` for it;
    ``permutation_invariant``: False for a metric that depends on sample order. Each
    defaults to the class's ``conformance`` dict, then to pairs (("true", "noise"),),
    no ideal value, 1e-6 and True. ``shape``: one example's shape (default (8,), or
    (1, 8, 8) for a metric that requires modality:image).
    """
    c = Checker(label("metric", metric_cls))
    check_declaration(c, "metric", metric_cls)
    cfg = make_config(c, metric_cls, config)
    metric = metric_cls(cfg)
    pairs = tuple(tuple(p) for p in (_declared(metric_cls, "pairs", pairs, DEFAULT_PAIRS) or ()))
    ideal = _declared(metric_cls, "identical", identical, None)
    tol = float(_declared(metric_cls, "tolerance", tolerance, 1e-6))
    invariant = bool(_declared(metric_cls, "permutation_invariant", permutation_invariant, True))
    for better, worse in pairs:
        if better not in SCENARIOS or worse not in SCENARIOS:
            raise ValueError(f"unknown scenario in pair ({better!r}, {worse!r}); use {', '.join(SCENARIOS)}")

    with c.calling("params", "params()"):
        params = metric.params()
    try:
        json.dumps(params)
    except (TypeError, ValueError):
        c.fail("params", f"params() returned {params!r:.80}, which is not JSON",
               "return plain numbers, strings and lists: they are stored with every value")
    c.passed("params")

    requires = set(getattr(metric_cls, "requires", ()))
    shape = tuple(shape) if shape else ((1, 8, 8) if "modality:image" in requires else (8,))
    world = make_world(shape, n_ref, n_ref, seed)
    s = _Scorer(c, metric, world, seed)
    direction, target = metric_cls.direction, getattr(metric_cls, "target", None)
    name = metric_cls.name

    for ref in metric_cls.references:
        ctx = s.scenario("true", ref, n_gen)
        before = fingerprint(ctx.gen, ctx.train, ctx.test, ctx.samples, ctx.train_data, ctx.test_data)
        first = s.compute(ctx, f"fresh samples against the {ref} split")
        c.require(math.isfinite(first[name]), "compute.finite",
                  f"'{name}' is {first[name]} on fresh samples against the {ref} split",
                  "guard divisions and logs; every value must be a finite number on ordinary data")
        after = fingerprint(ctx.gen, ctx.train, ctx.test, ctx.samples, ctx.train_data, ctx.test_data)
        c.require(all(same(a, b) for a, b in zip(before, after)), "compute.read_only",
                  "compute changed the arrays in ctx (features or data)",
                  "copy before modifying (x = x - x.mean(0), not x -= ...): the same arrays go to every metric")
        again = s.compute(ctx, f"the same context again ({ref})")
        c.require(first.keys() == again.keys() and all(same(first[k], again[k]) for k in first),
                  "compute.deterministic", "two calls on the same context gave different values",
                  "draw randomness only from ctx.rng(salt) (fixed by the run's seed and step) or a seed "
                  "in the metric's config")
        if invariant:
            perm = _derangement(len(ctx.gen), seed)
            shuffled = s.context(ctx.samples[perm], ref)
            value = s.headline(shuffled, f"permuted samples ({ref})")
            c.require(bool(np.isclose(value, first[name], rtol=1e-6, atol=1e-9)), "invariance.permutation",
                      f"'{name}' is {first[name]!r} on the samples and {value!r} on the same samples in "
                      "another order",
                      "treat the generated samples as a set (subsample with ctx.rng, sort, or aggregate); "
                      "or declare conformance = {'permutation_invariant': False} if order is meaningful")
        else:
            c.skip("invariance.permutation", "declared order-dependent")

        for better, worse in pairs:
            vb = s.headline(s.scenario(better, ref, n_gen), f"scenario '{better}' ({ref})")
            vw = s.headline(s.scenario(worse, ref, n_gen), f"scenario '{worse}' ({ref})")
            want = {"higher": "higher", "lower": "lower"}.get(direction, f"closer to {target}")
            c.require(_better(direction, target, vb, vw), "direction",
                      f"'{name}' is {vb:.6g} on '{better}' and {vw:.6g} on '{worse}' (against {ref}); with "
                      f"direction '{direction}' the first should be {want}",
                      "fix the declared direction (or target), or the computation; if this metric does "
                      "not rank this pair, declare the pairs it does in conformance = {'pairs': [...]}")

        memorizes = getattr(metric_cls, "memorizes", None)
        if memorizes is None:
            c.skip("memorizes", "not a memorization metric")
        else:
            vt = s.headline(s.scenario("true", ref, n_gen), f"scenario 'true' ({ref})")
            vc = s.headline(s.scenario("copies", ref, n_gen), f"scenario 'copies' ({ref})")
            c.require(vc >= vt if memorizes == "higher" else vc <= vt, "memorizes",
                      f"'{name}' is {vt:.6g} on fresh samples and {vc:.6g} on copies (against {ref}); with "
                      f"memorizes = '{memorizes}' copies should not read {('lower', 'higher')[memorizes == 'lower']}",
                      "fix the declared memorizes (the way the value moves when samples copy the training "
                      "set), or the computation")
        if ideal is None:
            c.skip("identical", "no ideal value declared")
        else:
            same_set = world.train if ref == "train" else world.test
            v = s.headline(s.context(same_set.copy(), ref), f"a generated set identical to the {ref} split")
            c.require(abs(v - float(ideal)) <= tol * max(1.0, abs(float(ideal))), "identical",
                      f"'{name}' is {v!r} when the generated set equals the {ref} split; declared {ideal!r}",
                      "check the computation (biased estimators, float32 cancellation), or declare "
                      "the value it takes there in conformance = {'identical': ...}")
        _check_edges(c, s, ref, n_gen, seed)
    return c.report


def _with_duplicates(x: np.ndarray) -> np.ndarray:
    """The second half of the rows replaced by copies of the first half."""
    out = x.copy()
    half = len(out) // 2
    out[half:] = out[: len(out) - half]
    return out


def _check_edges(c: Checker, s: _Scorer, ref: str, n_gen: int, seed: int) -> None:
    """Finite, or a clear refusal (ValueError naming the problem), never NaN or a crash."""
    name = s.name
    tiny = make_world(s.world.spec.shape, 10, 10, seed + 3)
    rng = np.random.default_rng(seed + 4)
    w = s.world
    dup_world = World(w.truth, _with_duplicates(w.train), _with_duplicates(w.test), w.spec, w.labels_train,
                      w.labels_test)
    on_duplicate = (dup_world.train if ref == "train" else dup_world.test)[:1]
    cases = {
        "edge.tiny": ("2 samples against 10 reference points",
                      lambda: s.context(tiny.truth.sample(2, rng), ref, world=tiny)),
        "edge.duplicates": ("one sample repeated, sitting on a reference point that is itself duplicated",
                            lambda: s.context(np.repeat(on_duplicate, n_gen, axis=0), ref, world=dup_world)),
    }
    for clause, (what, make) in cases.items():
        try:
            values = s.metric.compute(make())
        except _REFUSALS as exc:
            c.require(bool(str(exc).strip()), clause, f"compute raised {type(exc).__name__} without a message "
                      f"on {what}", "say what is too small or degenerate and what the user can change")
            c.skip(clause, f"refused clearly: {exc}")
            continue
        except Exception as exc:
            c.fail(clause, f"compute raised {type(exc).__name__}: {exc} on {what}",
                   "return finite values, or raise ValueError saying what is too small or degenerate")
        value = values.get(name) if isinstance(values, dict) else None
        c.require(value is not None and math.isfinite(float(value)), clause,
                  f"'{name}' is {value!r} on {what}",
                  "handle zero distances and zero variances (e.g. epsilon in divisions); or raise "
                  "ValueError saying what is too small or degenerate")
