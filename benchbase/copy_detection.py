"""Copy detection scored as a retrieval benchmark (the DISC21 protocol of Douze et al.
2021, simplified): does a feature space find the source of a disguised copy, and
does it rank true matches above the best match of a query that has none?

Each query is an edited image; its source is the index of the reference image it was
made from, or -1 for a distractor made from an image outside the reference set. Every
query predicts one match, its nearest reference image (L2 in the feature space, as
the memorization metrics measure it), with score minus that distance. All
predictions of all queries are ranked together by score:

- micro average precision (uAP): the area under the precision-recall curve of that
  single ranking, recall counted over the queries that have a source (a prediction
  is correct when it names the query's source);
- recall at 90% precision: the largest recall at which the ranking's precision is
  still at least 0.9.

Distractors make the benchmark honest: a space that maps everything close together
finds many right sources, but cannot rank them above the distractors' matches.

Score normalisation (optional, ``background_k``): SSCD (Pizzi et al. 2022) subtracts
from a match's similarity the query's similarity to its k-th neighbour in a
background set, so that a query in a crowded region of the space (a fresh digit among
many alike) does not outrank a clear copy. Without an image set disjoint from both the
references and the queries, the background here is the reference set itself: the score
is the squared-distance margin d_k^2 - d_1^2 between the query's k-th and first
nearest reference (2 (s_1 - s_k) for unit descriptors). The retrieved image is the
same; only the ranking across queries changes.
This module knows no feature space or disguise by name; callers bring both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchbase.neighbors import knn


@dataclass
class QuerySet:
    """Queries made by one disguise: images and their sources (-1: a distractor)."""

    name: str
    x: np.ndarray
    source: np.ndarray
    held_out: bool = False  # the disguise is not among those a learned space trained on


@dataclass
class Predictions:
    """One prediction per query: its score (higher: more confident) and whether it is right."""

    score: np.ndarray
    correct: np.ndarray
    n_positive: int  # queries that have a source

    def __add__(self, other: "Predictions") -> "Predictions":
        return Predictions(np.concatenate([self.score, other.score]), np.concatenate([self.correct, other.correct]),
                           self.n_positive + other.n_positive)


@dataclass
class RetrievalScore:
    uap: float
    recall_at_p90: float
    top1: float  # fraction of queries with a source whose nearest reference is that source
    n_queries: int
    n_positive: int


def precision_recall(p: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each prediction of the ranking by decreasing score
    (ties: the order given)."""
    order = np.argsort(-p.score, kind="stable")
    hits = np.cumsum(p.correct[order].astype(np.float64))
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / max(p.n_positive, 1)
    return precision, recall


def micro_average_precision(p: Predictions) -> float:
    """Sum over correct predictions of the precision at their rank, over the number of
    queries that have a source (sources never retrieved count as zero precision)."""
    if p.n_positive == 0:
        return float("nan")
    precision, _ = precision_recall(p)
    order = np.argsort(-p.score, kind="stable")
    return float((precision * p.correct[order]).sum() / p.n_positive)


def recall_at_precision(p: Predictions, level: float = 0.9) -> float:
    """The largest recall over the ranking's cut-offs whose precision is >= ``level``."""
    if p.n_positive == 0 or len(p.score) == 0:
        return float("nan")
    precision, recall = precision_recall(p)
    ok = precision >= level
    return float(recall[ok].max()) if ok.any() else 0.0


def predict(query_f: np.ndarray, source: np.ndarray, ref_f: np.ndarray, device: str = "cpu",
            background_k: int = 0) -> Predictions:
    """Nearest reference of every query, correct when it is the source; score =
    -distance, or with ``background_k`` >= 2 the margin d_k^2 - d_1^2 to the query's
    k-th nearest reference."""
    k = max(1, int(background_k))
    d, idx = knn(np.ascontiguousarray(query_f, dtype=np.float32), np.ascontiguousarray(ref_f, dtype=np.float32),
                 k=k, device=device)
    score = -d[:, 0] if k == 1 else d[:, k - 1] ** 2 - d[:, 0] ** 2
    return Predictions(score, (idx[:, 0] == source) & (source >= 0), int((source >= 0).sum()))


def summarise(p: Predictions) -> RetrievalScore:
    positives = p.n_positive
    return RetrievalScore(uap=micro_average_precision(p), recall_at_p90=recall_at_precision(p, 0.9),
                          top1=float(p.correct.sum() / positives) if positives else float("nan"),
                          n_queries=len(p.score), n_positive=positives)


@dataclass
class SpaceResult:
    """One feature space's scores: over all queries, over held-out disguises, per disguise."""

    space: str
    overall: RetrievalScore
    held_out: RetrievalScore | None
    per_disguise: dict[str, RetrievalScore]
    normalised: RetrievalScore | None = None  # over all queries, scored with background_k (when given)


def evaluate_space(name: str, embed: Callable[[np.ndarray], np.ndarray], reference: np.ndarray,
                   queries: list[QuerySet], device: str = "cpu", background_k: int = 0) -> SpaceResult:
    """Embed the reference images and every query set with ``embed`` and score the
    retrieval per disguise, over the held-out disguises and over all queries; with
    ``background_k`` >= 2 also over all queries with normalised scores."""
    ref_f = np.asarray(embed(reference), dtype=np.float32)
    per, total, held, normalised = {}, None, None, None
    for q in queries:
        query_f = np.asarray(embed(q.x), dtype=np.float32)
        p = predict(query_f, q.source, ref_f, device)
        per[q.name] = summarise(p)
        total = p if total is None else total + p
        if q.held_out:
            held = p if held is None else held + p
        if background_k >= 2:
            pn = predict(query_f, q.source, ref_f, device, background_k)
            normalised = pn if normalised is None else normalised + pn
    if total is None:
        raise ValueError("no query sets to score")
    return SpaceResult(name, summarise(total), summarise(held) if held is not None else None, per,
                       summarise(normalised) if normalised is not None else None)
