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
from typing import Any, Callable, ClassVar, Mapping, NamedTuple

import numpy as np

from benchbase.fleet_protocol import Fleet  # noqa: F401  (re-exported: part of the plugin contract)

#: Families the built-in models use, and common ones. The set is open: a model may
#: declare any lowercase name (``[a-z][a-z0-9_-]*``); leaderboards show it as declared.
#: ``oracle`` is the one family with a meaning to the core: only oracles may draw
#: fresh data (``TrainData.sample_fresh``).
FAMILIES = ("gan", "vae", "wae", "diffusion", "flow", "autoregressive", "energy", "nonparametric",
            "baseline", "external", "oracle")
FAMILY_PATTERN = r"[a-z][a-z0-9_-]*"
#: Conformance clauses a model may opt out of (``Model.opt_outs``), and when that is right.
OPT_OUTS = {
    "init.uses_seed": "the initial state does not depend on the seed (fitted in closed form, a fixed start)",
    "sample.uses_key": "the samples do not depend on the key (replayed from files)",
}
FRAMEWORKS = ("torch", "jax", "numpy")
DIRECTIONS = ("higher", "lower", "target")
MEMORIZES = ("higher", "lower")  # which way a memorization metric moves when samples copy
MODALITIES = ("vector", "image")
CAPABILITIES = ("heldout_loss", "denoise", "log_prob", "encode", "fleet")
#: interrupted: stopped by Ctrl-C (or SIGINT) while running; the next run resumes it
RUN_STATUSES = ("pending", "running", "interrupted", "done", "failed", "diverged", "timeout")
FINAL_STATUSES = ("done", "diverged")  # outcomes a rerun does not repeat


@dataclass
class EmptyConfig:
    """Config of a plugin without hyperparameters."""


def location(default: Any = None) -> Any:
    """A config field that says where or how to load, not what is computed (a data
    folder, a download switch, a cache switch). It stays out of run ids, so moving
    the data does not orphan results; the data's content hash is in the id instead."""
    return field(default=default, metadata={"identity": False})


def added(default: Any) -> Any:
    """A config field added after runs were committed: the stored spec and the run id
    carry it only when it differs from its default, so runs made before it keep their ids."""
    return field(default=default, metadata={"identity": "unless_default"})


def without_unset(config_cls: type, plain: dict) -> dict:
    """``plain`` without the ``added`` fields that hold their defaults."""
    if not dataclasses.is_dataclass(config_cls):
        return plain
    unset = {f.name for f in dataclasses.fields(config_cls)
             if f.metadata.get("identity") == "unless_default" and plain.get(f.name, f.default) == f.default}
    return {k: v for k, v in plain.items() if k not in unset}


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
    split, those the metrics do not see when the suite caps them (``eval.n_test``)
    (``fresh_source``: true_sampler, held_out_test or test_split). Only oracles should
    need it.
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
    #: False for a model the core does not train: it is fitted at ``init`` from the
    #: training subset (a kernel density estimate, a nearest-neighbour sampler, an
    #: oracle) or replays samples made elsewhere (see ``eval_steps``). The core never
    #: calls ``train_step``, spends no budget and evaluates it once, at step 0.
    trains: ClassVar[bool] = True
    #: With the ``fleet`` capability: the config fields whose values may differ between
    #: the members of one fleet (everything else, the data's shape and the batch size
    #: are shared).
    fleet_varying: ClassVar[frozenset] = frozenset()
    #: Conformance clauses this model opts out of, each with the reason (keys from
    #: :data:`OPT_OUTS`); the kit reports them as skipped with that reason.
    opt_outs: ClassVar[Mapping[str, str]] = {}

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
        """Every number the model holds to generate (weights, or the training values a
        non-parametric model keeps). Read at every evaluation, so it may grow."""
        return 0

    # -- models that do not train here (trains = False) ------------------------------
    def eval_steps(self) -> list[int] | None:
        """For a model whose samples were made elsewhere along a training run: the
        training steps it has samples for. The core evaluates at exactly these steps,
        calling ``seek`` before each, instead of once at step 0. Known when the model
        is built from its config (a suite is validated with it)."""
        return None

    def seek(self, state: Any, step: int) -> Any:
        """The state in which ``sample`` gives the samples of training step ``step``
        (one of ``eval_steps()``)."""
        return state

    def origin(self) -> dict | None:
        """Where samples made elsewhere come from: ``path`` (where they live) and what
        identifies their content (e.g. the files' sha256). Recorded in the run's
        provenance; everything but ``path`` is part of the run id, so changed files
        are a new run and a moved folder is not."""
        return None

    def problems(self, spec: DataSpec, n_samples: int) -> list[str]:
        """What is wrong with running this model on data described by ``spec`` at
        ``eval.n_samples`` samples, found when the suite is validated (e.g. sample files
        of another shape). Empty when all is well."""
        return []

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
    # def fleet(self, members: list[Model]) -> Fleet
    #     K runs of this model as one vectorized program (see Fleet); called on
    #     members[0] after every member's ``init`` or ``load``


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


def unmet_requirements(metric_cls, model_cls, spec) -> list[str]:
    """What a metric ``requires`` that the model class or the dataset (its DataSpec,
    None when the data was not read) lacks."""
    missing = []
    for req in getattr(metric_cls, "requires", ()):
        if req.startswith("capability:"):
            cap = req.split(":", 1)[1]
            if cap not in getattr(model_cls, "capabilities", ()):
                missing.append(f"model capability '{cap}'")
        elif req == "true_sampler":
            if spec is not None and not spec.has_true_sampler:
                missing.append("a dataset with a true sampler")
        elif req == "labels":
            if spec is not None and spec.num_classes == 0:
                missing.append("class labels")
        elif req.startswith("modality:"):
            if spec is not None and spec.modality != req.split(":", 1)[1]:
                missing.append(f"{req.split(':', 1)[1]} data")
    return missing


class Metric(Configurable):
    """Base for metric plugins. ``compute`` returns ``{name: value, name.detail: ...}``.

    A memorization or novelty metric declares ``memorizes``: which way its value moves
    when samples copy the training set ("higher" for a fraction of copies, "lower"
    for a distance or an authentic fraction). The core then measures its chance level
    (the value that held-out data gets against the same training subset, same feature
    space, same sample size), stores it beside every value and judges the metric by
    its excess over chance in that direction (benchbase.chance); ``min_excess`` is
    the smallest excess, in the metric's own units, that counts as memorization.
    Such a metric must depend on the generated samples only through the points
    themselves (no model capability), so that held-out points can be scored in their
    place.
    """

    name: ClassVar[str]
    direction: ClassVar[str]  # higher | lower | target
    target: ClassVar[float | None] = None
    memorizes: ClassVar[str | None] = None  # higher | lower | None (not a memorization metric)
    min_excess: ClassVar[float] = 0.0  # smallest excess over chance that counts as memorization
    requires: ClassVar[frozenset] = frozenset()
    references: ClassVar[tuple] = ("train",)

    def params(self) -> dict:
        """Parameters stored with every value (thresholds, k, sample counts)."""
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}

    def min_points(self) -> int:
        """The fewest points this configuration needs in every set it compares: the
        generated samples and each of its ``references`` (a k-NN radius needs k + 1, a
        covariance 2). Declared so that a suite giving fewer (``eval.n_samples``, a
        dataset's ``n``, ``eval.n_test``) is refused when it is validated, instead of
        every run failing at its first evaluation."""
        return 1

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError


class FeatureExtractor(Configurable):
    """Base for feature spaces. ``embed`` maps (N, *shape) float32 to (N, d) float32."""

    name: ClassVar[str]
    modalities: ClassVar[tuple] = MODALITIES
    #: the cosine similarity above which this space calls two examples copies, as the
    #: space calibrates it (a learned space may set it in ``prepare``); None: not
    #: calibrated, and copy_cosine falls back to its own default
    cosine_copy_threshold: float | None = None

    def __init__(self, config: Any = None):
        super().__init__(config)
        #: set by the core before ``prepare``: a folder next to the results where a
        #: learned space may cache what it fitted (None: no cache), and the dataset's
        #: full train split (a space fitted on it is the same for every subset size)
        self.cache_dir: str | None = None
        self.train_split: np.ndarray | None = None
        #: set by the core before ``prepare``: where a space that fits for minutes says
        #: how the fit is going, one line at a time (shown beside the run's progress,
        #: silenced by --quiet); None: nobody listens
        self.report: Callable[[str], None] | None = None

    def check_available(self) -> None:
        """Raise :class:`~benchbase.errors.MissingDataError` naming the file when something
        this space needs is not on the machine (weights). Called when a suite is
        validated, before anything runs; must not import a framework."""

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


# -------------------------------------------------------------------------- trackers


@dataclass(frozen=True)
class RenderedLeaderboard:
    """A suite's leaderboard rendered by one publisher, ready to be saved as a file."""

    format: str  # the publisher's name (markdown, csv, json, ...)
    extension: str  # file extension without the dot
    text: str


@dataclass
class SuiteOutcome:
    """What a tracker is told when a suite ends.

    ``statuses`` maps every run id of the suite to its status in the store;
    ``tables`` are the suite's leaderboard tables (:class:`benchbase.leaderboard.Table`,
    final values, as ``benchbase leaderboard`` shows them); ``render(format)`` renders
    them with a publisher plugin (``markdown``, ``csv``, ``json``, ...).
    """

    statuses: dict[str, str]
    tables: list
    render: Callable[[str], RenderedLeaderboard]


class Tracker:
    """Base for experiment trackers: mirror a suite's runs in an outside tool.

    One instance per suite run, called from one thread (its own) in the driver
    process, in event order: ``open``, then per run ``run_started``, ``evaluated`` at
    every evaluation point, ``run_finished``, and finally ``close``. ``__init__`` must
    not import the tool's library (``open`` does), so that validating a suite stays
    cheap and a missing library is reported as bad input, not a crash.
    """

    name: ClassVar[str]
    Config: ClassVar[type] = EmptyConfig
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()  # modules imported by open(); checked at validation
    install: ClassVar[str] = ""  # pip argument that installs them, for the error message

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def requirements(self) -> tuple[str, ...]:
        """Modules this configuration needs (``requires`` unless the config changes it)."""
        return tuple(self.requires)

    def open(self, suite: Any, results_dir: Any) -> None:
        """Connect: ``suite`` is the validated :class:`benchbase.config.Suite`,
        ``results_dir`` the results store's :class:`pathlib.Path` (write local files
        under it unless configured otherwise)."""

    def run_started(self, spec: Any, run_id: str, provenance: dict, resumed_from: int) -> None:
        """A run starts, or resumes from the checkpoint at ``resumed_from``."""

    def evaluated(self, spec: Any, run_id: str, step: int, examples: int, results: list,
                  samples: np.ndarray | None) -> None:
        """An evaluation point is stored: log ``results`` (EvalRows) at ``step``."""

    def run_finished(self, spec: Any, run_id: str, status: str, summary: dict) -> None:
        """A run ended with ``status``."""

    def close(self, suite: Any, outcome: SuiteOutcome) -> None:
        """The suite ended: publish what belongs to it as a whole, flush, disconnect."""
