"""The per-example leave-fold-out memorization score (van den Burg & Williams 2021;
seed 000) as a derived quantity across runs:

    M(x_i) = log p(x_i | S) - log p(x_i | S without the fold of x_i).

A suite that sweeps ``subset.holdout: [null, "1 of K", ..., "K of K"]`` with the
``memorization_score`` metric trains, per seed, one model on S and K models each
without one of K disjoint folds of S. Those runs share everything else (model,
data, n, budget, evaluation, seed), so they form a *fold group*. The metric stored
log p of every training example and of the held-out fold under the row names of
``logp_row`` (i the example's index in the dataset's train split); here the rows
are joined at every common evaluation
step: for i in fold k, M(x_i) is the full model's log p(x_i) minus the fold-k
model's, averaged over the seeds that have both (paired by seed, so the seed's
shared initialisation cancels), with the standard error across seeds.

Removing a whole fold removes more than x_i, so M estimates the leave-one-out score
from below when folds are large (the model also loses x_i's neighbours); K = n is
exact leave-one-out at the cost of n + 1 runs per seed.

Chance level. Two models trained on the same S also differ in log p(x_i): training is
random. With two or more seeds, the models trained on S give a null distribution,
log p(x_i | S, seed a) - log p(x_i | S, seed b) over examples and seed pairs, which
is what one seed's M(x_i) would look like if x_i's presence did not matter
(``seed_null``). It is symmetric about 0; a per-seed score above its 97.5th
percentile is judged memorized. The null pairs also differ in initialisation, which
M's pairs share, so the band is if anything wider than M's own noise.
"""
from __future__ import annotations

import itertools
import json
import math

import numpy as np

from benchbase.records import RunRecord
from benchbase.specs import RunSpec, json_default

SCORE_METRIC = "memorization_score"  # the metric whose per-example rows are joined (a parameter below)
TOP = 12  # examples listed as the most (and least) memorized


def logp_row(metric: str, index: int, heldout: bool = False) -> str:
    """The row a per-example log-likelihood is stored under: ``<metric>.logp.<i>`` for a
    training example, ``<metric>.heldout_logp.<i>`` for a held-out one, i its index in
    the dataset's train split. Metrics that store per-example likelihoods use this."""
    return f"{metric}.{'heldout_logp' if heldout else 'logp'}.{int(index)}"


def is_per_example_row(metric: str) -> bool:
    """True for the rows of ``logp_row`` (tables and figures of headline values skip them)."""
    parts = metric.rsplit(".", 2)
    return len(parts) == 3 and parts[1] in ("logp", "heldout_logp") and parts[2].isdigit()


def fold_key(spec: RunSpec) -> str:
    """What the runs of one fold group share: the run identity without the fold, the
    hash of the examples (it differs by construction) and the seed (paired inside)."""
    ident = spec.identity()
    ident.pop("seed")
    ident["subset"] = {k: v for k, v in ident["subset"].items() if k not in ("holdout", "content_hash")}
    return json.dumps(ident, sort_keys=True, default=json_default)


def fold_groups(runs: list[RunRecord]) -> list[dict]:
    """Complete fold groups among finished runs: ``{"full": {seed: run}, "folds": {k:
    {seed: run}}, "K": K}`` with at least one run on S and every fold 1..K present."""
    groups: dict[str, dict] = {}
    for r in runs:
        if r.status != "done":
            continue
        g = groups.setdefault(fold_key(r.spec), {"full": {}, "folds": {}, "Ks": set()})
        h = r.spec.subset.holdout
        if h is None:
            g["full"][r.seed] = r
        else:
            g["folds"].setdefault(h[0], {})[r.seed] = r
            g["Ks"].add(h[1])
    out = []
    for g in groups.values():
        if len(g["Ks"]) != 1 or not g["full"]:
            continue
        K = g["Ks"].pop()
        if set(g["folds"]) == set(range(1, K + 1)):
            out.append({"full": g["full"], "folds": g["folds"], "K": K})
    return out


def per_example(evals: list[dict], prefix: str) -> dict[int, dict[int, float]]:
    """step -> {train-split index: value} of the rows named ``prefix<index>``."""
    out: dict[int, dict[int, float]] = {}
    for e in evals:
        m = e["metric"]
        if m.startswith(prefix) and m[len(prefix):].isdigit() and math.isfinite(e["value"]):
            out.setdefault(int(e["step"]), {})[int(m[len(prefix):])] = float(e["value"])
    return out


def fold_scores(full: dict[int, dict], folds: dict[int, dict[int, dict]], step: int) -> dict:
    """M(x_i) at ``step`` for every held-out example, paired by seed.

    ``full``: seed -> {index: log p} of the models trained on S; ``folds``: k -> seed
    -> {index: held-out log p} of the models trained without fold k.
    """
    indices, fold_of, score, se, lp_full, lp_without, seeds_used = [], [], [], [], [], [], []
    for k in sorted(folds):
        held_by_seed = folds[k]
        common = sorted(set(full) & set(held_by_seed))
        use = common or sorted(held_by_seed)
        ids = sorted(set.intersection(*(set(held_by_seed[s]) for s in use)))
        for i in ids:
            if common:
                diffs = np.array([full[s][i] - held_by_seed[s][i] for s in common if i in full[s]])
                if not len(diffs):
                    continue
                f = np.mean([full[s][i] for s in common if i in full[s]])
                w = np.mean([held_by_seed[s][i] for s in common if i in full[s]])
                m, e, used = float(diffs.mean()), (float(diffs.std(ddof=1) / math.sqrt(len(diffs)))
                                                   if len(diffs) > 1 else None), len(diffs)
            else:  # no seed trained both ways: difference of the seed means
                fs = [full[s][i] for s in full if i in full[s]]
                if not fs:
                    continue
                f, w = float(np.mean(fs)), float(np.mean([held_by_seed[s][i] for s in use]))
                m, e, used = f - w, None, min(len(fs), len(use))
            indices.append(int(i))
            fold_of.append(int(k))
            score.append(m)
            se.append(e)
            lp_full.append(float(f))
            lp_without.append(float(w))
            seeds_used.append(used)
    return {"indices": indices, "fold": fold_of, "score": score, "score_se": se, "logp_full": lp_full,
            "logp_without": lp_without, "seed_count": seeds_used}


def seed_null(full: dict[int, dict[int, float]]) -> dict:
    """The chance band of a per-seed score: the differences of log p(x_i) between the
    models trained on S of two seeds, over every example and seed pair, both signs."""
    diffs = [full[a][i] - full[b][i] for a, b in itertools.combinations(sorted(full), 2)
             for i in sorted(set(full[a]) & set(full[b]))]
    if not diffs:
        return {"pairs": 0, "values": 0}
    d = np.abs(np.asarray(diffs, dtype=float))
    q975 = float(np.quantile(d, 0.95))  # of |d|: the 97.5th percentile of the symmetric null
    return {"pairs": math.comb(len(full), 2), "values": int(len(d)), "rms": float(np.sqrt((d ** 2).mean())),
            "band95": [-q975, q975]}


def judged_against_null(full: dict[int, dict], folds: dict[int, dict[int, dict]], null: dict) -> dict | None:
    """The per-seed scores full_s(x_i) - without_s(x_i) against the null's 95% band:
    how many lie above it (memorized beyond chance) and below it."""
    if not null.get("values"):
        return None
    lo, hi = null["band95"]
    scores = np.array([full[s][i] - by_seed[s][i] for by_seed in folds.values() for s in sorted(set(full) & set(by_seed))
                       for i in by_seed[s] if i in full[s]], dtype=float)
    if not len(scores):
        return None
    return {"scores": int(len(scores)), "frac_above": float((scores > hi).mean()),
            "frac_below": float((scores < lo).mean())}


def summarize(scores: list[float]) -> dict:
    a = np.asarray(scores, dtype=float)
    if not len(a):
        return {"examples": 0}
    return {"examples": int(len(a)), "mean": float(a.mean()),
            "mean_se": float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None,
            "median": float(np.median(a)), "q10": float(np.quantile(a, 0.1)), "q90": float(np.quantile(a, 0.9)),
            "max": float(a.max()), "min": float(a.min()), "frac_positive": float((a > 0).mean())}


def group_record(store, group: dict, metric: str = SCORE_METRIC) -> dict:
    """The fold group's scores at every common step and in full at the last one."""
    full = {s: per_example(store.evals(r.run_id), f"{metric}.logp.") for s, r in group["full"].items()}
    folds = {k: {s: per_example(store.evals(r.run_id), f"{metric}.heldout_logp.") for s, r in by_seed.items()}
             for k, by_seed in group["folds"].items()}
    steps = set.intersection(*[set(v) for v in full.values()],
                             *[set(v) for by_seed in folds.values() for v in by_seed.values()])
    steps = sorted(steps)
    any_run = next(iter(group["full"].values()))
    record = {"K": group["K"], "n": any_run.n, "steps": steps,
              "seeds": sorted(group["full"]), "fold_runs": {str(k): sorted(r.run_id for r in by_seed.values())
                                                          for k, by_seed in sorted(group["folds"].items())},
              "full_runs": sorted(r.run_id for r in group["full"].values()),
              "by_step": [], "score": None}
    for step in steps:
        at = fold_scores({s: v[step] for s, v in full.items()},
                         {k: {s: v[step] for s, v in by_seed.items()} for k, by_seed in folds.items()}, step)
        full_at = {s: v[step] for s, v in full.items()}
        null = seed_null(full_at)
        judged = judged_against_null(full_at, {k: {s: v[step] for s, v in by_seed.items()}
                                               for k, by_seed in folds.items()}, null)
        record["by_step"].append({"step": step, **summarize(at["score"]), "null": null, "vs_null": judged})
        if step == steps[-1]:
            order = np.argsort(at["score"])[::-1]
            record.update(step=step, **at, summary=summarize(at["score"]), null=null, vs_null=judged,
                          top=[at["indices"][j] for j in order[:TOP]],
                          bottom=[at["indices"][j] for j in order[::-1][:TOP]])
    return record


def memscore_records(store, runs: list[RunRecord], metric: str = SCORE_METRIC) -> dict[str, dict]:
    """run_id -> the fold group's record, for every run trained on S in a complete group."""
    out = {}
    for group in fold_groups(runs):
        record = group_record(store, group, metric)
        if not record["steps"]:
            continue
        for r in group["full"].values():
            out[r.run_id] = record
    return out


def format_record(record: dict, label: str) -> str:
    """One line: the score's distribution over the training set at the last common step."""
    s = record.get("summary") or {}
    if not s.get("examples"):
        return f"leave-fold-out memorization score, {label}: no example scored"
    se = f" ± {1.96 * s['mean_se']:.3g} (95%, across examples)" if s.get("mean_se") is not None else ""
    return (f"leave-fold-out memorization score M = log p(x|S) - log p(x|S without its fold), {label}, n={record['n']}, "
            f"K={record['K']}, {len(record['full_runs'])} seed(s), step {record['step']}: mean {s['mean']:.4g}{se} "
            f"nats, median {s['median']:.4g}, 10%-90% [{s['q10']:.4g}, {s['q90']:.4g}], max {s['max']:.4g}, "
            f"{100 * s['frac_positive']:.0f}% of {s['examples']} examples above 0" + _null_text(record))


def _null_text(record: dict) -> str:
    null, judged = record.get("null") or {}, record.get("vs_null")
    if not null.get("values") or judged is None:
        return "; no chance band (one seed: the band needs two models trained on S)"
    lo, hi = null["band95"]
    return (f"; chance band of one seed's score (two models trained on S, {null['pairs']} seed pair(s)): "
            f"[{lo:.4g}, {hi:.4g}] nats, rms {null['rms']:.4g}; {100 * judged['frac_above']:.0f}% of "
            f"{judged['scores']} per-seed scores above it, {100 * judged['frac_below']:.0f}% below")


def scored_groups(data) -> dict[str, list[tuple[dict, dict]]]:
    """model label -> [(fold-group record, a run trained on S of it)], one per group, by n."""
    seen, out = set(), {}
    for r in sorted(data.runs, key=lambda r: (r.n, r.run.seed)):
        rec = r.derived.get("memorization_score")
        if not rec:
            continue
        ident = json.dumps(rec["full_runs"])
        if ident in seen:
            continue
        seen.add(ident)
        out.setdefault(r.spec.model.label, []).append((rec, r))
    return out


def memscore_lines(data) -> list[str]:
    """One line per fold group (``format_record``)."""
    return [format_record(rec, f"{model} on {run.spec.dataset.label}")
            for model, members in scored_groups(data).items() for rec, run in members]
