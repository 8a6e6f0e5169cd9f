"""benchbase: comparative benchmarks for deep generative models.

Plugins import what they need from here: the hook marker and the contracts.
"""
from benchbase.arrays import pack_arrays, unpack_arrays
from benchbase.contracts import (
    Batch,
    DataSpec,
    DataSplits,
    Dataset,
    EmptyConfig,
    EvalContext,
    Executor,
    FeatureExtractor,
    Metric,
    Model,
    Publisher,
    Tracker,
    TrainData,
)
from benchbase.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Batch", "DataSpec", "DataSplits", "Dataset", "EmptyConfig", "EvalContext", "Executor",
    "FeatureExtractor", "Metric", "Model", "Publisher", "Tracker", "TrainData", "hookimpl", "pack_arrays",
    "unpack_arrays", "__version__",
]
