"""The chance rows the core stores beside every memorization value, for stores written
by hand (``chance_rows``)."""
from __future__ import annotations


def chance_rows(metric: str, mean: float, sd: float, memorizes: str = "higher", min_excess: float = 0.01,
                draws: int = 50, ref: str = "train") -> list:
    """The ``<metric>.chance`` / ``.chance_sd`` rows the Evaluator stores beside a memorization
    metric, for stores written by hand."""
    from benchbase.contracts import EvalRow

    params = {"chance": {"draws": draws, "memorizes": memorizes, "min_excess": min_excess, "source": "test"}}
    return [EvalRow(f"{metric}.chance", mean, ref, params=params), EvalRow(f"{metric}.chance_sd", sd, ref, params=params)]
