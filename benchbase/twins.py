"""Strong generalization (Kadkhodaie et al. 2024): do two models trained on disjoint
halves of the data learn the same distribution?

Twin runs are runs of one suite whose specs are identical except for the part k of
``subset.split: "k of K"``: same model, n, budget and seed, hence the same
initialisation and the same sampling noise (the core derives both from the run seed
alone). Their stored samples (``eval.keep_samples`` per evaluation) pair up
one-to-one: sample i of each twin started from the same noise.

``twin_similarity`` = mean over i of cos(a_i, b_i) for the paired samples, and, for
each run, the mean over its samples of the largest cosine similarity to its own
training images. Vectors are flattened and mean-centred per image before the cosine
(a Pearson correlation), so a shared constant background (digits sit on -1) does not
make unrelated images look alike. Twins that generalize give high twin similarity
and lower nearest-training similarity; twins that memorize give copies of their own,
different training images: low twin similarity, nearest-training similarity near 1.
"""
from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np

from benchbase.records import RunRecord
from benchbase.specs import RunSpec


def _centred_unit(x: np.ndarray) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    v = v - v.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_i, b_i) of mean-centred, flattened pairs."""
    if len(a) != len(b):
        raise ValueError(f"twin samples differ in number: {len(a)} vs {len(b)}")
    return (_centred_unit(a) * _centred_unit(b)).sum(axis=1)


def nearest_cosine(samples: np.ndarray, train: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Largest cosine similarity of each sample to ``train`` (mean-centred) and its index."""
    s = _centred_unit(samples)
    best = np.full(len(s), -np.inf)
    arg = np.zeros(len(s), dtype=np.int64)
    for start in range(0, len(train), block):
        t = _centred_unit(train[start:start + block])
        sim = s @ t.T
        j = sim.argmax(axis=1)
        val = sim[np.arange(len(s)), j]
        better = val > best
        best[better], arg[better] = val[better], j[better] + start
    return best, arg


def twin_key(spec: RunSpec) -> str | None:
    """What twins share: the run identity with the split's part number blanked out."""
    if not spec.subset.split:
        return None
    # the part number and the hash of the examples differ between twins by construction
    part = dataclasses.replace(spec.subset, split=(0, spec.subset.split[1]), content_hash=None)
    return json.dumps(dataclasses.replace(spec, subset=part).identity(), sort_keys=True, default=str)


def twin_groups(runs: list[RunRecord]) -> list[list[RunRecord]]:
    """Groups of finished runs that are twins of each other (two or more parts)."""
    groups: dict[str, list[RunRecord]] = {}
    for r in runs:
        key = twin_key(r.spec)
        if key is not None:
            groups.setdefault(key, []).append(r)
    return [sorted(g, key=lambda r: r.spec.subset.split[0]) for g in groups.values()
            if len({r.spec.subset.split[0] for r in g}) > 1]


def train_split(spec: RunSpec, registry):
    """The splits of a run's dataset (``DataSplits``), loaded once per process."""
    from benchbase.data import DataCatalog
    from benchbase.structured import plugin_config

    reg = registry.get("dataset", spec.dataset.name)
    cfg, plain = plugin_config(reg, spec.dataset.config, "<run spec>", "dataset.config")
    _, splits = DataCatalog.shared().load(reg, cfg, plain)
    return splits


def training_set(spec: RunSpec, registry) -> np.ndarray:
    """Rebuild the exact training subset of a run (the core's own subset selection)."""
    from benchbase.data import select_subset

    return select_subset(train_split(spec, registry), spec.subset).x


def twin_records(store, runs: list[RunRecord], registry=None) -> dict[str, dict]:
    """For every run with a twin: paired similarity per stored step and at the last one."""
    groups = twin_groups(runs)
    if not groups:
        return {}
    if registry is None:
        from benchbase.plugins import build_registry

        registry = build_registry()
    out: dict[str, dict] = {}
    for group in groups:
        samples = {r.run_id: _stored_samples(store, r.run_id) for r in group}
        train_sim: dict[str, dict] = {}
        for r in group:
            try:
                train = training_set(r.spec, registry)
            except Exception as exc:
                warnings.warn(f"twin analysis: cannot rebuild the training set of run {r.run_id}: {exc}")
                continue
            train_sim[r.run_id] = {step: nearest_cosine(x, train)[0] for step, x in samples[r.run_id].items()}
        for r in group:
            rid = r.run_id
            partners = [p for p in group if p.run_id != rid]
            per_step: dict[int, list[np.ndarray]] = {}
            for p in partners:
                for step, x in samples[rid].items():
                    y = samples[p.run_id].get(step)
                    if y is not None and len(y) == len(x) and len(x):
                        per_step.setdefault(step, []).append(paired_cosine(x, y))
            if not per_step:
                continue
            steps = sorted(per_step)
            sims = {s: np.concatenate(per_step[s]) for s in steps}
            last = steps[-1]
            near = train_sim.get(rid, {}).get(last)
            out[rid] = {
                "split": f"{r.spec.subset.split[0]} of {r.spec.subset.split[1]}",
                "partners": [p.run_id for p in partners],
                "steps": steps,
                "twin_similarity_by_step": [float(sims[s].mean()) for s in steps],
                "nearest_train_similarity_by_step": [
                    float(train_sim[rid][s].mean()) if rid in train_sim and s in train_sim[rid] else None
                    for s in steps],
                "step": last,
                "samples": int(len(sims[last])),
                "twin_similarity": float(sims[last].mean()),
                "twin_similarity_median": float(np.median(sims[last])),
                "nearest_train_similarity": None if near is None else float(near.mean()),
                "nearest_train_similarity_median": None if near is None else float(np.median(near)),
                "similarity": "cosine of mean-centred pixel vectors",
            }
    return out


def _stored_samples(store, run_id: str) -> dict[int, np.ndarray]:
    out = {}
    for step in store.sample_steps(run_id):
        got = store.samples(run_id, step)
        if got is not None:
            out[int(got[0])] = got[1]
    return out
