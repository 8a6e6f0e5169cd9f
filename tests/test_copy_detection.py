"""Copy detection scored as retrieval (benchbase/copy_detection.py): micro average
precision and recall at 90% precision against scikit-learn's ranking metrics, and the
prediction step on hand-made features."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from benchbase.copy_detection import (Predictions, Protocol, QuerySet, ScoreNormalisation, background_offset,
                                      evaluate_space, micro_average_precision, predict, recall_at_precision, summarise)


def random_predictions(seed: int, n: int = 400, missed: int = 0) -> Predictions:
    """Predictions of n queries, half with a source; ``missed`` of those retrieve a wrong one."""
    rng = np.random.default_rng(seed)
    has_source = np.arange(n) < n // 2
    score = rng.normal(size=n) + 1.5 * has_source
    correct = has_source.copy()
    correct[rng.choice(n // 2, missed, replace=False)] = False
    return Predictions(score, correct, n_positive=n // 2)


def test_uap_is_sklearn_average_precision_when_every_source_is_retrieved():
    for seed in range(5):
        p = random_predictions(seed)
        assert micro_average_precision(p) == pytest.approx(average_precision_score(p.correct, p.score), rel=1e-12)


def test_uap_counts_sources_never_retrieved_as_lost_recall():
    # scikit-learn's AP normalises by the correct predictions; uAP by all queries with a
    # source, so a query whose nearest reference is wrong scales AP by hits / positives
    for seed in range(5):
        p = random_predictions(seed, missed=40)
        hits = p.correct.sum()
        expected = average_precision_score(p.correct, p.score) * hits / p.n_positive
        assert micro_average_precision(p) == pytest.approx(expected, rel=1e-12)


def test_recall_at_90_precision_matches_the_precision_recall_curve():
    for seed in range(5):
        p = random_predictions(seed, missed=30)
        precision, recall, _ = precision_recall_curve(p.correct, p.score)
        scale = p.correct.sum() / p.n_positive
        expected = max((r * scale for pr, r in zip(precision, recall) if pr >= 0.9), default=0.0)
        assert recall_at_precision(p, 0.9) == pytest.approx(expected, abs=1e-12)


def test_perfect_and_hopeless_rankings():
    perfect = Predictions(np.array([3.0, 2.0, 1.0, 0.0]), np.array([True, True, False, False]), 2)
    assert micro_average_precision(perfect) == 1.0 and recall_at_precision(perfect) == 1.0
    reversed_ = Predictions(np.array([0.0, 1.0, 2.0, 3.0]), np.array([True, True, False, False]), 2)
    assert micro_average_precision(reversed_) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert recall_at_precision(reversed_) == 0.0
    nothing = Predictions(np.zeros(0), np.zeros(0, bool), 0)
    assert np.isnan(micro_average_precision(nothing))


def test_predict_names_the_nearest_reference_and_never_credits_distractors():
    ref = np.eye(4, dtype=np.float32)
    queries = np.array([[0.9, 0.1, 0, 0], [0, 0, 0.8, 0], [0, 0, 0, 0.7], [0.4, 0.6, 0, 0]], np.float32)
    source = np.array([0, 3, -1, 0])
    p = predict(queries, source, ref)
    assert p.correct.tolist() == [True, False, False, False]  # 2nd and 4th retrieve the wrong one; 3rd is a distractor
    assert p.n_positive == 3
    np.testing.assert_allclose(-p.score, np.linalg.norm(queries - ref[[0, 2, 3, 1]], axis=1), atol=1e-6)
    s = summarise(p)
    assert s.top1 == pytest.approx(1 / 3) and s.n_queries == 4


def test_evaluate_space_pools_disguises_and_held_out_ones():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 8)).astype(np.float32)
    near = QuerySet("near", ref[:20] + 0.01 * rng.normal(size=(20, 8)).astype(np.float32), np.arange(20))
    far = QuerySet("far", rng.normal(size=(20, 8)).astype(np.float32), np.full(20, -1), held_out=True)
    mixed = QuerySet("mixed", np.concatenate([ref[20:30] + 0.01, rng.normal(size=(10, 8)).astype(np.float32)]),
                     np.concatenate([np.arange(20, 30), np.full(10, -1)]), held_out=True)
    result = evaluate_space("identity", lambda x: x, ref, [near, far, mixed])
    assert result.per_disguise["near"].uap == 1.0
    assert np.isnan(result.per_disguise["far"].uap)  # no query with a source
    assert result.overall.n_queries == 60 and result.overall.n_positive == 30
    assert result.held_out.n_queries == 40 and result.held_out.uap == 1.0
    assert result.overall.uap == 1.0  # near copies at distance ~0.03 rank above every distractor


def test_several_predictions_per_query_count_a_source_found_below_the_top():
    ref = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], np.float32)
    queries = np.array([[0.4, 0], [0.1, 0.9], [5, 6]], np.float32)
    source = np.array([1, 2, -1])  # the first query's source is its 2nd nearest reference
    one, three = predict(queries, source, ref), predict(queries, source, ref, predictions=3)
    assert one.correct.tolist() == [False, True, False] and len(three.score) == 9
    assert three.correct.reshape(3, 3).tolist() == [[False, True, False], [True, False, False], [False] * 3]
    assert three.rank.tolist() == [0, 1, 2] * 3
    d = np.sort(np.linalg.norm(queries[:, None] - ref[None], axis=2), axis=1)[:, :3]
    np.testing.assert_allclose(-three.score, d.ravel(), atol=1e-6)
    assert summarise(three).top1 == summarise(one).top1 == 0.5  # top-1 reads the nearest reference only
    assert summarise(three).n_queries == 3 and summarise(three).n_positive == 2
    # the found 2nd neighbour adds recall; the wrong predictions ranked above it cost precision
    assert micro_average_precision(one) == 0.5
    assert micro_average_precision(three) == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_score_normalisation_parses_sscd_notation_and_rejects_nonsense():
    assert ScoreNormalisation.parse("1.0[0,2]") == ScoreNormalisation() == ScoreNormalisation(1.0, 0, 2)
    assert ScoreNormalisation.parse("0.5[3]") == ScoreNormalisation(0.5, 3, 3)
    assert str(ScoreNormalisation(0.5, 0, 2)) == "0.5[0,2]"
    for bad in ("1.0", "x[0,2]", "1.0[2,0]", "1.0[a]"):
        with pytest.raises(ValueError, match="first|beta"):
            ScoreNormalisation.parse(bad)
    with pytest.raises(ValueError, match="at least 1 prediction"):
        Protocol(0)


def test_background_offset_skips_the_images_a_query_was_made_from():
    background = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], np.float32)
    queries = np.array([[0, 0], [0, 0]], np.float32)
    norm = ScoreNormalisation(2.0, 0, 1)
    made_from = np.array([[0, -1], [-1, -1]])  # the first query was made from background image 0
    offset = background_offset(queries, background, norm, made_from)
    np.testing.assert_allclose(offset, [2.0 * (1 + 4) / 2, 2.0 * (0 + 1) / 2])
    np.testing.assert_allclose(background_offset(queries, background, norm), [1.0, 1.0])
    with pytest.raises(ValueError, match="at least 4 background images"):
        background_offset(queries, background[:3], ScoreNormalisation(1.0, 0, 1), made_from[:, :2])


def test_background_normalised_scores_rank_a_lone_copy_above_a_query_in_a_crowd():
    # a distractor amid look-alikes sits closer to its nearest reference than a copy does
    # to its source, but it is just as close to the background: its normalised score is low
    ref = np.array([[0, 0], [5, 5]], np.float32)
    background = np.array([[0.05, 0], [0, 0.05], [-0.05, 0], [9, -9]], np.float32)
    queries = np.array([[0.01, 0.01], [5.2, 5.0]], np.float32)
    source = np.array([-1, 1])
    raw = predict(queries, source, ref)
    assert raw.score[0] > raw.score[1] and micro_average_precision(raw) == 0.5
    norm = ScoreNormalisation(1.0, 0, 2)
    offset = background_offset(queries, background, norm)
    normed = predict(queries, source, ref, offset=offset)
    d_ref = np.linalg.norm(queries[:, None] - ref[None], axis=2).min(axis=1)
    d_back = np.sort(np.linalg.norm(queries[:, None] - background[None], axis=2), axis=1)[:, :3]
    np.testing.assert_allclose(normed.score, (d_back ** 2).mean(axis=1) - d_ref ** 2, rtol=1e-5)
    assert normed.correct.tolist() == raw.correct.tolist() and micro_average_precision(normed) == 1.0
    queryset = QuerySet("q", queries, source, made_from=np.full((2, 1), -1))
    sscd = Protocol(10, norm)
    result = evaluate_space("identity", lambda x: x, ref, [queryset], protocol=sscd, background=background,
                            compare=(Protocol(), Protocol(1, norm)))
    assert result.protocol == sscd and result.overall.uap == 1.0 and result.overall.top1 == 1.0
    assert result.compared == {Protocol().label: summarise(raw), Protocol(1, norm).label: summarise(normed)}
    with pytest.raises(ValueError, match="background"):
        evaluate_space("identity", lambda x: x, ref, [queryset], protocol=sscd)
