"""Every hook benchbase calls. The docstrings here are the reference documentation:
``docs/hooks.md`` is generated from them (``benchbase docs hooks``) and a test fails when
a hook has no docstring or the committed page is stale.

Registrar hooks receive a ``register`` callable and call it once per component they
provide. The core calls every implementation; a component's name must be unique
within its kind (for models: unique per ``(name, framework)``).

Observer hooks are called in the driver process (the one that owns the results
store), in the order events happen, whatever executor ran the work. An exception in
an observer is reported as a warning and never stops a suite. Experiment trackers
(``benchbase_register_trackers``) are fed from these hooks too, each on a thread of
its own, so a slow tracker never delays training.
"""
from __future__ import annotations

import pluggy

PROJECT_NAME = "benchbase"
#: what registrar hooks provide: ``benchbase_register_<kind>s`` registers components of ``kind``
KINDS = ("model", "dataset", "metric", "feature", "executor", "publisher", "tracker")

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def benchbase_register_models(register):
    """Register model plugins.

    Call ``register(ModelClass)`` for each model. ``ModelClass`` follows
    :class:`benchbase.contracts.Model`: class attributes ``name``, ``family`` (a
    lowercase name, shown on leaderboards as declared: gan, vae, wae, diffusion, flow,
    nonparametric, external, oracle, or your own), ``framework`` (torch, jax or
    numpy), a ``Config`` dataclass holding every hyperparameter with its default, and
    the methods ``init``, ``train_step``, ``sample``, ``save``, ``load`` and
    ``param_count``. Optional capabilities that metrics can ask for are declared in
    ``capabilities`` (``heldout_loss``, ``denoise``, ``log_prob``, ``encode``, ``fleet``)
    and implemented as methods of the same name (``encode`` comes with ``decode``).
    A model that handles only some data declares ``modalities`` (e.g. ``("image",)``):
    suites pairing it with other data fail validation. A model the core does not train
    (fitted at ``init``, or replaying samples made elsewhere) sets ``trains = False``;
    ``opt_outs`` names conformance clauses that do not apply to it, with the reason.

    The core owns the training loop: ``train_step`` receives one batch drawn by the
    core from the training subset already on the device, and must not iterate over
    data itself. A model that needs several batches per update (a GAN critic)
    declares ``batches_per_step`` and receives them concatenated; the budget counts
    every example handed out.

    Example::

        @hookimpl
        def benchbase_register_models(register):
            register(MyFlow)
    """


@hookspec
def benchbase_register_datasets(register):
    """Register dataset plugins.

    Call ``register(DatasetClass)`` for each dataset. ``DatasetClass`` follows
    :class:`benchbase.contracts.Dataset`: ``name``, a ``Config`` dataclass, and
    ``load() -> DataSplits`` returning float32 numpy arrays (images NCHW in [-1, 1])
    for a fixed train and test split plus a :class:`~benchbase.contracts.DataSpec`.
    A dataset whose true distribution can be sampled also implements
    ``sample_true(n, seed)``, which enables exact oracles and checks.

    Subsets (first n, random n, disjoint splits, deduplication) are done by the core,
    so a dataset only returns its full splits. Missing files raise
    :class:`benchbase.errors.MissingDataError` naming the expected path and files.
    """


@hookspec
def benchbase_register_metrics(register):
    """Register metric plugins.

    Call ``register(MetricClass)`` for each metric. ``MetricClass`` follows
    :class:`benchbase.contracts.Metric`: ``name``, ``direction`` (``higher``,
    ``lower`` or ``target`` with a ``target`` value), ``requires`` (for example
    ``{"capability:heldout_loss"}``), ``references`` (which splits the metric is
    computed against: ``("train",)``, ``("test", "train")``), a ``Config`` dataclass
    and ``compute(ctx) -> dict[str, float]``. The returned dict holds the metric's
    own name as its headline value and may add ``name.detail`` entries (confidence
    bounds, percentiles). The core stores the feature space and the metric's
    parameters with every value.
    """


@hookspec
def benchbase_register_features(register):
    """Register feature extractors (the spaces metrics are computed in).

    Call ``register(FeatureClass)`` for each extractor. ``FeatureClass`` follows
    :class:`benchbase.contracts.FeatureExtractor`: ``name``, ``modalities`` it
    accepts, a ``Config`` dataclass, ``embed(x) -> (N, d) float32`` and optionally
    ``prepare(train, spec, device)`` for extractors fitted to the data. Features of
    the training subset and test split are cached by the core per (dataset content
    hash, extractor name, config, version); bump ``version`` when the output of
    ``embed`` changes. A space that knows the cosine similarity above which two of
    its embeddings are copies sets ``cosine_copy_threshold`` (``copy_cosine`` uses
    it unless a suite sets ``tau``). A space whose fit takes long reports how it is
    going through ``self.report(line)`` when the core has set it (a line every half
    minute or so), so a run does not look hung before its first evaluation.
    """


@hookspec
def benchbase_register_executors(register):
    """Register executors: the components that run a list of run tasks.

    Call ``register(ExecutorClass)`` for each executor. ``ExecutorClass`` follows
    :class:`benchbase.contracts.Executor`: ``name``, a ``Config`` dataclass and
    ``execute(tasks, work, sink)``. ``work(task, emit)`` is a picklable function that
    trains and evaluates one run and reports events through ``emit``; the executor
    runs it wherever it likes (in process, in subprocesses, on a Ray cluster) and
    must deliver every event to ``sink`` in the driver process, which alone writes
    the results store. A worker that dies must be reported as a failed run, not
    lost. ``tasks`` is iterated lazily and the driver claims each run as it is
    taken, so take a task only when a worker can start it (several drivers may
    share one results store).
    """


@hookspec
def benchbase_register_publishers(register):
    """Register publishers: renderers of leaderboard tables (Markdown, CSV, ...).

    Call ``register(PublisherClass)`` for each publisher. ``PublisherClass`` follows
    :class:`benchbase.contracts.Publisher`: ``name`` (the ``--format`` value),
    ``extension`` and ``render(tables) -> str`` where ``tables`` is a list of
    :class:`benchbase.leaderboard.Table`. Everything that comes from configs or
    plugins must be escaped for the target format.
    """


@hookspec
def benchbase_register_trackers(register):
    """Register experiment trackers: mirrors of a suite's runs in TensorBoard, MLflow,
    Weights & Biases or any other tool researchers already look at.

    Call ``register(TrackerClass)`` for each tracker. ``TrackerClass`` follows
    :class:`benchbase.contracts.Tracker`: ``name`` (what a suite's ``trackers:`` list
    and ``benchbase run --tracker`` name), a ``Config`` dataclass, ``requires`` (the
    modules it imports, checked when a suite is validated, imported only in ``open``)
    and the methods ``open(suite)``, ``run_started``, ``evaluated``, ``run_finished``
    (the observer hooks' arguments) and ``close(suite, outcome)``.

    A suite chooses its trackers; benchbase builds one instance of each per suite run
    and feeds it the observer hooks below in order, on a thread of its own in the
    driver process. A tracker never writes the results store; an exception in it is a
    warning (a tracker that cannot ``open`` is off for that suite), never a lost
    result. Write nothing outside the results directory, and send nothing over the
    network, unless the user configured it.
    """


@hookspec
def benchbase_suite_started(suite, results_dir):
    """Called once when ``benchbase run`` (or ``run_suite``) starts a suite, before any
    run is claimed, even when every run is already done.

    ``suite`` is the validated :class:`benchbase.config.Suite` (name, source file,
    resolved settings, run specs, chosen trackers); ``results_dir`` the
    :class:`pathlib.Path` of the results store.
    """


@hookspec
def benchbase_run_started(spec, run_id, provenance, resumed_from):
    """Called when a run begins (or resumes) training.

    ``spec`` is the frozen, typed :class:`benchbase.specs.RunSpec` (``spec.model.name``,
    ``spec.model.label``, ``spec.dataset.label``, ``spec.subset.n``, ``spec.budget.steps``,
    ``spec.budget.examples_per_step``, ``spec.seed``, ``spec.title``; ``spec.to_dict()``
    for plain JSON), ``run_id`` its id in the results store, ``provenance`` a dict
    (versions, device, dataset content hash, git commit), ``resumed_from`` the step of
    the checkpoint it resumes from (0 for a fresh start: evaluations after that step
    will be reported again). Use it to open a tracker run (TensorBoard, MLflow, W&B).
    """


@hookspec
def benchbase_evaluated(spec, run_id, step, examples, results, samples):
    """Called after every evaluation point, once its rows are safely stored.

    ``spec`` and ``run_id`` identify the run (as in ``benchbase_run_started``);
    ``step`` and ``examples`` say how far training went; ``results`` is a list of
    :class:`benchbase.contracts.EvalRow` (metric, reference split, value, feature
    space, parameters); ``samples`` the generated samples kept with this evaluation
    (float32 numpy, images NCHW in [-1, 1]; ``eval.keep_samples`` of them) or None.
    Use it to log curves and sample grids to a tracker.
    """


@hookspec
def benchbase_run_finished(spec, run_id, status, summary):
    """Called when a run ends, whatever the outcome.

    ``spec`` and ``run_id`` identify the run; ``status`` is one of ``done``, ``failed``, ``diverged``, ``timeout``;
    ``summary`` holds what the run consumed (examples, steps, wall time, parameter
    count) and, for a failed run, the error.
    """


@hookspec
def benchbase_suite_finished(suite, results_dir, statuses):
    """Called once when a suite ends, after its derived quantities are stored, also
    when it ends early (an interrupt, a driver error).

    ``suite`` and ``results_dir`` as in ``benchbase_suite_started``; ``statuses`` maps
    the run id of every run of the suite to its status in the store (``done``,
    ``failed``, ``diverged``, ``timeout``, or ``pending``/``running`` for runs that
    did not finish). Use it to publish the leaderboard and close tracker runs.
    """
