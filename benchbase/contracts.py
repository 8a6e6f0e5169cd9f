"""What a plugin implements, and what the core hands it.

Plugins may subclass these bases (to inherit defaults) or just match them: the
registry checks the attributes it needs when a plugin registers. Arrays cross the
plugin boundary as float32 numpy arrays, images NCHW in [-1, 1]; inside ``init``,
``train_step`` and ``sample`` a model sees its own framework's arrays, already on
its device.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np

FAMILIES = ("gan", "vae", "wae", "diffusion", "flow", "oracle")
FRAMEWORKS = ("torch", "jax", "numpy")
DIRECTIONS = ("higher", "lower", "target")
MODALITIES = ("vector", "image")
CAPABILITIES = ("heldout_loss", "denoise", "log_prob", "encode")
RUN_STATUSES = ("pending", "running", "done", "failed", "diverged", "timeout")
FINAL_STATUSES = ("done", "diverged")  # outcomes a rerun does not repeat


@dataclass
class EmptyConfig:
    """Config of a plugin without hyperparameters."""


def location(default: Any = None) -> Any:
    """A config field that says where or how to load, not what is computed (a data
    folder, a download switch, a cache switch). It stays out of run ids, so moving
    the data does not orphan results; the data's content hash is in the id instead."""
    return field(default=default, metadata={"identity": False})


def volatile_fields(config_cls: type) -> list[str]:
    """Names of a Config's ``location`` fields."""
    if not dataclasses.is_dataclass(config_cls):
        return []
    return sorted(f.name for f in dataclasses.fields(config_cls) if f.metadata.get("identity") is False)


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataSpec:
    """What every sample of a dataset looks like."""

    shape: tuple[int, ...]  # one example, e.g. (2,) or (1, 8, 8)
    modality: str = "vector"  # vector | image
    num_classes: int = 0  # 0: unlabelled
    has_true_sampler: bool = False
    value_range: tuple[float, float] = (-1.0, 1.0)

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class DataSplits:
    """A dataset's full, fixed train and test splits (the core takes subsets)."""

    train: np.ndarray
    test: np.ndarray
    spec: DataSpec
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None


class Batch(NamedTuple):
    """One batch handed to ``train_step``: ``x`` (B, *shape) and labels ``y`` or None.

    A NamedTuple so it is a pytree in JAX and unpacks naturally in PyTorch.
    """

    x: Any
    y: Any = None


@dataclass
class TrainData:
    """The training subset as the model's framework sees it, already on the device.

    ``sample_fresh(n, seed)`` returns fresh draws from the data distribution as numpy:
    the dataset's exact sampler when it has one, otherwise points of the held-out test
    split (``fresh_source`` says which). Only oracles should need it.
    """

    x: Any
    y: Any
    spec: DataSpec
    device: Any
    x_numpy: np.ndarray
    sample_fresh: Callable[[int, int], np.ndarray]
    fresh_source: str = "true_sampler"


# --------------------------------------------------------------------------- plugins


class Configurable:
    """What every plugin class shares: a ``Config`` dataclass holding its parameters
    (each with a default), a ``version`` that goes into run ids (bump it when the
    numbers change), and instances made from a config (the defaults when none)."""

    Config: ClassVar[type] = EmptyConfig
    version: ClassVar[str] = "1"

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()


class Dataset(Configurable):
    """Base for dataset plugins."""

    name: ClassVar[str]

    def load(self) -> DataSplits:
        raise NotImplementedError

    # Optional: ``def sample_true(self, n: int, seed: int) -> np.ndarray``


class Model(Configurable):
    """Base for model plugins: one ``train_step`` the core calls, never a loop.

    ``state`` is whatever the model needs between steps (parameters, optimiser
    state); the core never looks inside it. ``key`` is the framework's randomness for
    that step (a ``torch.Generator`` already seeded for the step, a JAX PRNG key, or
    a ``numpy.random.Generator``): use it and nothing else, so runs repeat exactly.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    framework: ClassVar[str]
    capabilities: ClassVar[frozenset] = frozenset()
    #: False for oracles that need no training: the core evaluates them once.
    trains: ClassVar[bool] = True

    def batches_per_step(self) -> int:
        """How many batches one ``train_step`` consumes (e.g. GAN critic steps)."""
        return 1

    def learning_rate(self) -> float | None:
        """The step size, for normalized-step plots; None if the model has none."""
        return getattr(self.config, "lr", None)

    def init(self, data: TrainData, seed: int) -> Any:
        raise NotImplementedError

    def train_step(self, state: Any, batch: Batch, key: Any) -> tuple[Any, dict]:
        raise NotImplementedError

    def sample(self, state: Any, n: int, key: Any) -> Any:
        raise NotImplementedError

    def save(self, state: Any) -> bytes:
        raise NotImplementedError

    def load(self, blob: bytes, data: TrainData) -> Any:
        raise NotImplementedError

    def param_count(self, state: Any) -> int:
        return 0

    # Optional capabilities (declare them in ``capabilities``):
    # def heldout_loss(self, state, batch: Batch, key) -> scalar
    #     the training objective on ``batch`` without updating (DSM loss, negative ELBO)
    # def denoise(self, state, x_noisy, sigma: float) -> E[x | x_noisy]
    #     in the variance-exploding parametrisation x_noisy = x + sigma * eps, whatever
    #     the model's own schedule (a VP or flow model rescales: see docs/contracts.md),
    #     so every diffusion/flow model is compared with the empirical optimal denoiser
    #     on the same grid of noise levels
    # def log_prob(self, state, x, key) -> per-example log-likelihood estimate (nats)
    # def encode(self, state, x) -> (mean, log_var): the encoder's Gaussian E(x) per example,
    #     (n, latent) each; log_var None for a deterministic encoder (a point mass)
    #     and, with it, def decode(self, state, z) -> the decoder's mean G(z) in data space


@dataclass
class EvalRow:
    """One stored value: a metric (or one of its details) at one evaluation point."""

    metric: str
    value: float
    ref: str = ""  # reference split ("train", "test") or "" when not applicable
    feature_space: str = ""
    params: dict = field(default_factory=dict)


@dataclass
class EvalContext:
    """Everything a metric may read at an evaluation point.

    Feature arrays are float32 numpy (N, d) in ``feature_space``. ``ref``/``ref_name``
    are set when the metric is computed once per reference split (see
    ``Metric.references``). ``model`` is a :class:`benchbase.evaluation.ModelHandle`
    when the metric asked for a model capability, else None.
    """

    gen: np.ndarray
    train: np.ndarray
    test: np.ndarray
    samples: np.ndarray  # generated samples in data space
    train_data: np.ndarray  # training subset in data space
    test_data: np.ndarray  # test split in data space
    spec: DataSpec
    feature_space: str
    step: int
    seed: int
    device: str  # torch device string for metric arithmetic ("cpu", "cuda:0")
    ref: np.ndarray | None = None
    ref_name: str = ""
    model: Any = None
    extractor: Any = None  # the feature extractor, to embed anything else
    train_labels: np.ndarray | None = None  # labels of train_data / test_data (None: unlabelled)
    test_labels: np.ndarray | None = None
    # positions of train_data in the dataset's train split (to join per-example values across runs)
    train_indices: np.ndarray | None = None
    # with ``subset.holdout``: the fold of the selected examples this run did not train on
    heldout_data: np.ndarray | None = None
    heldout_indices: np.ndarray | None = None

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A numpy generator fixed by the run's seed and the eval step."""
        return np.random.default_rng([self.seed, self.step, salt])


class Metric(Configurable):
    """Base for metric plugins. ``compute`` returns ``{name: value, name.detail: ...}``."""

    name: ClassVar[str]
    direction: ClassVar[str]  # higher | lower | target
    target: ClassVar[float | None] = None
    requires: ClassVar[frozenset] = frozenset()
    references: ClassVar[tuple] = ("train",)

    def params(self) -> dict:
        """Parameters stored with every value (thresholds, k, sample counts)."""
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError


class FeatureExtractor(Configurable):
    """Base for feature spaces. ``embed`` maps (N, *shape) float32 to (N, d) float32."""

    name: ClassVar[str]
    modalities: ClassVar[tuple] = MODALITIES

    def __init__(self, config: Any = None):
        super().__init__(config)
        #: set by the core before ``prepare``: a folder next to the results where a
        #: learned space may cache what it fitted (None: no cache), and the dataset's
        #: full train split (a space fitted on it is the same for every subset size)
        self.cache_dir: str | None = None
        self.train_split: np.ndarray | None = None

    def prepare(self, train: np.ndarray, spec: DataSpec, device: str) -> None:
        """Called once per run before ``embed``; fit here if the space is learned."""

    def cache_key(self) -> dict:
        """After ``prepare``: what else (besides name, config, version and the embedded
        data) determines the features, e.g. the hash of the data a space was fitted on.
        Part of the feature-cache key."""
        return {}

    def embed(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Publisher(Configurable):
    """Base for leaderboard renderers."""

    name: ClassVar[str]
    extension: ClassVar[str] = "txt"

    def render(self, tables: list) -> str:
        raise NotImplementedError


class Executor(Configurable):
    """Base for executors: run tasks somewhere, deliver every event to ``sink``."""

    name: ClassVar[str]
    #: runs train on this machine (its devices are checked before a suite starts); False for a cluster
    runs_here: ClassVar[bool] = True

    def execute(self, tasks: list, work: Callable, sink: Callable) -> None:
        raise NotImplementedError
