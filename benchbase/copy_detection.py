"""Copy detection scored as a retrieval benchmark (the DISC21 protocol of Douze et al.
2021, simplified): does a feature space find the source of a disguised copy, and
does it rank true matches above the best match of a query that has none?

Each query is an edited image; its source is the index of the reference image it was
made from, or -1 for a distractor made from an image outside the reference set. Every
query predicts its nearest reference image (L2 in the feature space, as the
memorization metrics measure it), or its k nearest, each scored by minus its
distance (or a normalised score, below). All predictions of all queries are ranked
together by score:

- micro average precision (uAP): the area under the precision-recall curve of that
  single ranking, recall counted over the queries that have a source (a prediction
  is correct when it names the query's source; a source not among a query's
  predictions is lost recall);
- recall at 90% precision: the largest recall at which the ranking's precision is
  still at least 0.9.

Distractors make the benchmark honest: a space that maps everything close together
finds many right sources, but cannot rank them above the distractors' matches.

Scoring protocols (``Protocol``): a query may predict its ``predictions`` nearest
references (DISC21's descriptor track scores several per query: SSCD's evaluation
keeps 10), and scores may be normalised as in SSCD (Pizzi et al. 2022, eq. 8; their
``disc_eval.py`` default ``1.0[0,2]``): from a match's similarity subtract beta times
the query's mean similarity to its ``first``..``last`` nearest images of a background
set, so that a query in a crowded region of the space (a fresh digit among many
alike) does not outrank a clear copy. The background must share no image with the
references, and none with the query itself: DISC21 uses its training images, disjoint
from references and queries by construction. Here it is a held-out image set (the
benchmark passes the pool its distractors are drawn from), and each query skips the
background images it was made from (``QuerySet.made_from``), so a distractor is never
normalised against its own source. Distances stand in for similarities: the score of
a match r is beta * mean_i d(q, b_i)^2 - d(q, r)^2, for unit descriptors a positive
multiple of SSCD's s(q, r) - beta * mean_i s(q, b_i) plus a constant (d^2 = 2 - 2 s),
so the same ranking. The retrieved images never change; only how predictions of
different queries rank against each other.

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
    made_from: np.ndarray | None = None  # (N, m) indices of the background images each query was made
    # from (its own source when a distractor, the second image of a blend; -1: none): skipped in its background


@dataclass(frozen=True)
class ScoreNormalisation:
    """SSCD's score normalisation: subtract ``beta`` times the mean similarity to the
    ``first``..``last`` (0-based, inclusive) nearest background images. SSCD's
    ``disc_eval.py`` default, ``1.0[0,2]``, reproduces its paper's uAP_SN."""

    beta: float = 1.0
    first: int = 0
    last: int = 2

    def __post_init__(self):
        if not 0 <= self.first <= self.last:
            raise ValueError(f"score normalisation needs 0 <= first <= last, got [{self.first},{self.last}]")

    @classmethod
    def parse(cls, spec: str) -> "ScoreNormalisation":
        """SSCD's notation ``<beta>[<first>,<last>]`` (or ``<beta>[<n>]``)."""
        try:
            beta, rest = spec.strip().split("[", 1)
            ends = rest.rstrip("]").split(",")
            return cls(float(beta), int(ends[0]), int(ends[-1]))
        except (ValueError, IndexError):
            raise ValueError(f"score normalisation '{spec}' is not <beta>[<first>,<last>], e.g. 1.0[0,2]") from None

    def __str__(self) -> str:
        return f"{self.beta:g}[{self.first},{self.last}]"


@dataclass(frozen=True)
class Protocol:
    """How queries are scored: ``predictions`` nearest references per query, scores
    normalised against a background set or not (``normalisation`` None)."""

    predictions: int = 1
    normalisation: ScoreNormalisation | None = None

    def __post_init__(self):
        if self.predictions < 1:
            raise ValueError(f"a query makes at least 1 prediction, got {self.predictions}")

    @property
    def label(self) -> str:
        norm = f"normalised {self.normalisation}" if self.normalisation else "raw"
        return f"k = {self.predictions}, {norm}"


@dataclass
class Predictions:
    """Predictions of queries: score (higher: more confident), whether each is right,
    and its rank among its query's predictions (0: the nearest reference)."""

    score: np.ndarray
    correct: np.ndarray
    n_positive: int  # queries that have a source
    rank: np.ndarray | None = None  # None: one prediction per query

    def __post_init__(self):
        if self.rank is None:
            self.rank = np.zeros(len(self.score), dtype=np.int64)

    def __add__(self, other: "Predictions") -> "Predictions":
        return Predictions(np.concatenate([self.score, other.score]), np.concatenate([self.correct, other.correct]),
                           self.n_positive + other.n_positive, np.concatenate([self.rank, other.rank]))


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


def background_offset(query_f: np.ndarray, background_f: np.ndarray, norm: ScoreNormalisation,
                      made_from: np.ndarray | None = None, device: str = "cpu") -> np.ndarray:
    """beta * mean squared distance from each query to its ``first``..``last`` nearest
    background images, skipping those it was made from (``made_from`` rows, -1: none)."""
    skip = 0 if made_from is None else made_from.shape[1]
    k = norm.last + 1 + skip
    if len(background_f) < k:
        raise ValueError(f"score normalisation {norm} needs at least {k} background images, got {len(background_f)}")
    d, idx = knn(np.ascontiguousarray(query_f, dtype=np.float32), np.ascontiguousarray(background_f, dtype=np.float32),
                 k=k, device=device)
    if skip:
        own = (idx[:, :, None] == np.asarray(made_from)[:, None, :]).any(axis=2)
        d = np.take_along_axis(d, np.argsort(own, axis=1, kind="stable"), axis=1)  # own images last
    return norm.beta * (d[:, norm.first:norm.last + 1].astype(np.float64) ** 2).mean(axis=1)


def predict(query_f: np.ndarray, source: np.ndarray, ref_f: np.ndarray, device: str = "cpu",
            predictions: int = 1, offset: np.ndarray | None = None) -> Predictions:
    """The ``predictions`` nearest references of every query, each correct when it is
    the query's source; score = -distance, or with a background ``offset`` (one per
    query, ``background_offset``) the normalised offset - distance^2."""
    k = min(max(1, int(predictions)), len(ref_f))
    d, idx = knn(np.ascontiguousarray(query_f, dtype=np.float32), np.ascontiguousarray(ref_f, dtype=np.float32),
                 k=k, device=device)
    d = d.astype(np.float64)
    score = -d if offset is None else offset[:, None] - d ** 2
    correct = (idx == source[:, None]) & (source[:, None] >= 0)
    rank = np.broadcast_to(np.arange(k), idx.shape)
    return Predictions(score.ravel(), correct.ravel(), int((source >= 0).sum()), rank.ravel().copy())


def summarise(p: Predictions) -> RetrievalScore:
    positives = p.n_positive
    top1 = float((p.correct & (p.rank == 0)).sum() / positives) if positives else float("nan")
    return RetrievalScore(uap=micro_average_precision(p), recall_at_p90=recall_at_precision(p, 0.9), top1=top1,
                          n_queries=int((p.rank == 0).sum()), n_positive=positives)


@dataclass
class SpaceResult:
    """One feature space's scores under its main protocol: over all queries, over
    held-out disguises, per disguise; ``compared``: over all queries under each other
    protocol asked for (keyed by ``Protocol.label``)."""

    space: str
    overall: RetrievalScore
    held_out: RetrievalScore | None
    per_disguise: dict[str, RetrievalScore]
    protocol: Protocol = Protocol()
    compared: dict[str, RetrievalScore] | None = None


def evaluate_space(name: str, embed: Callable[[np.ndarray], np.ndarray], reference: np.ndarray,
                   queries: list[QuerySet], device: str = "cpu", protocol: Protocol = Protocol(),
                   background: np.ndarray | None = None, compare: tuple[Protocol, ...] = ()) -> SpaceResult:
    """Embed the reference images, the ``background`` images (needed by normalised
    protocols) and every query set with ``embed``, and score the retrieval under
    ``protocol`` per disguise, over the held-out disguises and over all queries, and
    over all queries under each protocol of ``compare``."""
    if not queries:
        raise ValueError("no query sets to score")
    protocols = (protocol,) + tuple(c for c in compare if c != protocol)
    if any(p.normalisation for p in protocols) and background is None:
        raise ValueError("a normalised protocol needs a background image set, disjoint from the references")
    ref_f = np.asarray(embed(reference), dtype=np.float32)
    back_f = np.asarray(embed(background), dtype=np.float32) if background is not None else None
    per, held = {}, None
    totals: dict[Protocol, Predictions] = {}
    for q in queries:
        query_f = np.asarray(embed(q.x), dtype=np.float32)
        offsets = {}
        for proto in protocols:
            norm = proto.normalisation
            if norm is not None and norm not in offsets:
                offsets[norm] = background_offset(query_f, back_f, norm, q.made_from, device)
            p = predict(query_f, q.source, ref_f, device, proto.predictions,
                        offsets[norm] if norm is not None else None)
            totals[proto] = totals[proto] + p if proto in totals else p
            if proto == protocol:
                per[q.name] = summarise(p)
                if q.held_out:
                    held = p if held is None else held + p
    compared = {p.label: summarise(totals[p]) for p in protocols[1:]}
    return SpaceResult(name, summarise(totals[protocol]), summarise(held) if held is not None else None, per,
                       protocol, compared or None)
