"""benchbase.leaderboard_checks: which metrics a leaderboard judges against chance."""
from __future__ import annotations


def test_memorization_metrics_are_read_from_the_callers_registry():
    from types import SimpleNamespace

    from benchbase.leaderboard_checks import memorization_metrics

    classes = {"copies_seen": SimpleNamespace(memorizes="higher"), "quality": SimpleNamespace()}
    registry = SimpleNamespace(names=lambda kind: sorted(classes),
                               get=lambda kind, name: SimpleNamespace(cls=classes[name]))
    assert memorization_metrics(registry) == frozenset({"copies_seen"})
    assert "mem_ratio" in memorization_metrics()  # without one: the installed metrics
