"""The kit catches each way a model can break its contract, and names the clause.

Every broken model is a small edit of KitMean (a numpy model that passes), so each
test changes exactly one thing."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from benchbase import Model, hookimpl
from benchbase.testing import ContractViolation, check_model
from benchbase.testing.kit_plugins import KitMean


def broken(clause: str, model_cls, **kwargs) -> ContractViolation:
    with pytest.raises(ContractViolation) as info:
        check_model(model_cls, **kwargs)
    assert info.value.clause == clause, str(info.value)
    assert "How to fix:" in str(info.value) and model_cls.name in str(info.value)
    return info.value


def test_a_good_model_passes_on_both_toys():
    for modality in ("vector", "image"):
        report = check_model(KitMean, dataset=modality)
        assert {"train_step.only_batches", "train_step.uses_batch", "save_load.resume",
                "train_step.deterministic", "sample.shape"} <= set(report.checked)


def test_violation_is_an_assertion_error():
    assert issubclass(ContractViolation, AssertionError)


class IgnoresBatch(KitMean):
    """Moves towards a constant, whatever the batch."""

    def train_step(self, state, batch, key):
        return {**state, "mean": state["mean"] * 0.5}, {"gap": np.float32(0)}


def test_ignoring_the_batch_is_caught():
    broken("train_step.uses_batch", IgnoresBatch)


class FirstChunkOnly(KitMean):
    """Asks for two batches per step but learns from the first only."""

    def batches_per_step(self):
        return 2

    def train_step(self, state, batch, key):
        half = len(batch.x) // 2
        return super().train_step(state, batch._replace(x=batch.x[:half]), key)


def test_ignoring_part_of_a_multi_batch_step_is_caught():
    err = broken("train_step.uses_batch", FirstChunkOnly)
    assert "batch 2 of the 2" in err.problem


class ReadsTrainingData(KitMean):
    """Keeps the training data and learns from all of it every step."""

    def init(self, data, seed):
        return {**super().init(data, seed), "data": data}

    def train_step(self, state, batch, key):
        everything = state["data"].x_numpy
        return super().train_step(state, batch._replace(x=everything), key)


def test_reading_the_training_data_outside_batches_is_caught():
    broken("train_step.only_batches", ReadsTrainingData)


class GlobalRandomness(KitMean):
    """Draws its noise from numpy's global RNG."""

    def train_step(self, state, batch, key):
        return super().train_step(state, batch, np.random.default_rng(np.random.randint(1 << 30)))


def test_global_randomness_is_caught():
    broken("train_step.deterministic", GlobalRandomness)


class DrawsFreshData(KitMean):
    """Trains on fresh draws of the true distribution: examples outside the budget."""

    def init(self, data, seed):
        return {**super().init(data, seed), "fresh": data.sample_fresh}

    def train_step(self, state, batch, key):
        extra = state["fresh"](len(batch.x), 0)
        return super().train_step(state, batch._replace(x=np.concatenate([batch.x, extra])), key)


def test_drawing_fresh_data_is_caught():
    broken("train_step.no_fresh_data", DrawsFreshData)


class IgnoresSeed(KitMean):
    """Initialises every instance identically."""

    def init(self, data, seed):
        return super().init(data, 0)


def test_ignoring_the_init_seed_is_caught():
    broken("init.uses_seed", IgnoresSeed)


class NeverLearns(KitMean):
    """Says it trains, changes nothing."""

    def train_step(self, state, batch, key):
        return state, {"gap": np.float32(0)}


def test_a_model_that_never_updates_is_caught():
    broken("train_step.updates", NeverLearns)


class WrongShape(KitMean):
    """One value too many per sample."""

    def sample(self, state, n, key):
        return np.zeros((n, int(np.prod(state["shape"])) + 1), np.float32)


class Float64Samples(KitMean):
    """Samples in float64: allowed, the core converts them to float32 (as in a run)."""

    def sample(self, state, n, key):
        return super().sample(state, n, key).astype(np.float64)


class IntegerSamples(KitMean):
    """Samples rounded to integers."""

    def sample(self, state, n, key):
        return np.rint(10 * super().sample(state, n, key)).astype(np.int64)


def test_float64_samples_keep_the_contract():
    assert "sample.type.dtype" in check_model(Float64Samples).checked


class NoNoise(KitMean):
    """Returns its mean n times: the sampler ignores its key."""

    def sample(self, state, n, key):
        return np.repeat(state["mean"][None], n, axis=0)


class NaNSamples(KitMean):
    """Divides by zero when sampling."""

    def sample(self, state, n, key):
        return super().sample(state, n, key) / np.float32(0.0) * 0


@pytest.mark.parametrize("model_cls,clause", [(WrongShape, "sample.shape"), (IntegerSamples, "sample.type.dtype"),
                                              (NoNoise, "sample.uses_key"), (NaNSamples, "sample.finite")])
def test_bad_samples_are_caught(model_cls, clause):
    with np.errstate(all="ignore"):
        broken(clause, model_cls)


class ForgetsOnSave(KitMean):
    """Saves nothing; load re-initialises."""

    def save(self, state):
        return b""

    def load(self, blob, data):
        return self.init(data, 123)


def test_a_lossy_checkpoint_is_caught():
    broken("save_load.samples", ForgetsOnSave)


class Momentum(KitMean):
    """SGD with momentum whose checkpoint keeps the mean but not the velocity."""

    def init(self, data, seed):
        state = super().init(data, seed)
        return {**state, "velocity": np.zeros_like(state["mean"])}

    def train_step(self, state, batch, key):
        velocity = 0.9 * state["velocity"] + (batch.x.mean(0) - state["mean"])
        mean = (state["mean"] + 0.1 * velocity).astype(np.float32)
        return {**state, "mean": mean, "velocity": velocity}, {"gap": np.float32(0)}

    def load(self, blob, data):
        state = super().load(blob, data)
        return {**state, "velocity": np.zeros_like(state["mean"])}


def test_a_checkpoint_without_optimiser_state_is_caught():
    broken("save_load.resume", Momentum)


@dataclass
class EpochsConfig:
    lr: float = 0.2
    epochs: int = 10


class OwnBudget(KitMean):
    """Carries its own number of epochs."""

    Config = EpochsConfig


def test_a_model_with_its_own_budget_is_caught():
    broken("config.no_budget", OwnBudget)


# KitMean's methods on a class whose only docstring is benchbase's base Model's.
Undocumented = type("Undocumented", (Model,), {k: v for k, v in vars(KitMean).items()
                                                if k not in ("__doc__", "__dict__", "__weakref__")})


def test_a_model_without_a_docstring_is_caught():
    broken("docstring", Undocumented)


class FittedAtInit(KitMean):
    """A baseline fitted in closed form at init: the data mean, whatever the seed."""

    trains = False
    opt_outs = {"init.uses_seed": "the mean of the training data has nothing random in it"}

    def init(self, data, seed):
        return {"mean": data.x_numpy.mean(0).astype(np.float32), "shape": data.spec.shape}


def test_a_model_that_does_not_train_need_not_be_an_oracle():
    report = check_model(FittedAtInit)
    assert ("train_step", "trains=False: the core never calls train_step") in report.skipped
    assert {"init.deterministic", "fresh_data.oracles_only", "save_load.samples"} <= set(report.checked)


class DeterministicInit(KitMean):
    """Trains from the origin whatever the seed."""

    def init(self, data, seed):
        return {"mean": np.zeros(data.spec.shape, np.float32), "shape": data.spec.shape}


class DeclaresDeterministicInit(DeterministicInit):
    """Trains from the origin whatever the seed, and says so."""

    opt_outs = {"init.uses_seed": "every run starts at the origin"}


def test_a_declared_opt_out_is_respected_and_reported():
    broken("init.uses_seed", DeterministicInit)
    report = check_model(DeclaresDeterministicInit)
    assert ("init.uses_seed", "opted out: every run starts at the origin") in report.skipped
    assert "init.uses_seed" not in report.checked


class PeeksAtTheTruth(FittedAtInit):
    """A baseline (not an oracle) that samples fresh draws of the true distribution."""

    def init(self, data, seed):
        return {**super().init(data, seed), "fresh": data.sample_fresh}

    def sample(self, state, n, key):
        return state["fresh"](n, int(key.integers(1 << 30)))


def test_only_oracles_draw_fresh_data():
    broken("fresh_data.oracles_only", PeeksAtTheTruth)


@pytest.mark.parametrize("opt_outs,match", [({"sample.finite": "NaN is fine"}, "cannot opt out of 'sample.finite'"),
                                            ({"init.uses_seed": ""}, "needs the reason")])
def test_only_known_opt_outs_with_a_reason_register(opt_outs, match):
    from benchbase.errors import PluginError
    from benchbase.plugins import _validate_component

    cls = type("Bad", (KitMean,), {"opt_outs": opt_outs, "__doc__": "Bad."})
    with pytest.raises(PluginError, match=match):
        _validate_component("model", cls, "test")


def test_families_are_open_and_lowercase():
    from benchbase.errors import PluginError
    from benchbase.plugins import _validate_component

    _validate_component("model", type("Kde", (KitMean,), {"family": "kernel_density"}), "test")
    with pytest.raises(PluginError, match="lowercase name"):
        _validate_component("model", type("Bad", (KitMean,), {"family": "Kernel Density"}), "test")


class VectorLogs(KitMean):
    """Logs a vector instead of a scalar."""

    def train_step(self, state, batch, key):
        state, _ = super().train_step(state, batch, key)
        return state, {"gap": np.ones(3, np.float32)}


class NaNLogs(KitMean):
    """Logs NaN."""

    def train_step(self, state, batch, key):
        state, _ = super().train_step(state, batch, key)
        return state, {"gap": np.float32("nan")}


@pytest.mark.parametrize("model_cls,clause", [(VectorLogs, "train_step.logs"), (NaNLogs, "train_step.finite")])
def test_bad_logs_are_caught(model_cls, clause):
    broken(clause, model_cls)


class WithCapabilities(KitMean):
    """KitMean with the three optional capabilities, done right."""

    capabilities = frozenset({"heldout_loss", "denoise", "log_prob"})

    def heldout_loss(self, state, batch, key):
        return np.float32(((batch.x - state["mean"]) ** 2).mean())

    def denoise(self, state, x_noisy, sigma):
        w = 0.01 / (0.01 + sigma ** 2)  # posterior mean under N(mean, 0.1^2)
        return (w * x_noisy + (1 - w) * state["mean"]).astype(np.float32)

    def log_prob(self, state, x, key):
        flat = (x - state["mean"]).reshape(len(x), -1)
        return (-0.5 * (flat ** 2).sum(1) / 0.01).astype(np.float32)


def test_working_capabilities_pass():
    report = check_model(WithCapabilities, dataset="image")
    assert {"heldout_loss.no_update", "denoise.per_example", "log_prob.shape"} <= set(report.checked)


class LossThatTrains(WithCapabilities):
    """Its held-out loss takes an optimiser step."""

    def heldout_loss(self, state, batch, key):
        state["mean"] += 0.5 * (batch.x.mean(0) - state["mean"])
        return super().heldout_loss(state, batch, key)


class VectorLoss(WithCapabilities):
    """Returns per-example losses."""

    def heldout_loss(self, state, batch, key):
        return ((batch.x - state["mean"]) ** 2).reshape(len(batch.x), -1).mean(1).astype(np.float32)


class TimeNotSigma(WithCapabilities):
    """Reads sigma as a time in [0, 1]: NaN beyond 1."""

    def denoise(self, state, x_noisy, sigma):
        with np.errstate(invalid="ignore"):
            return (np.sqrt(1 - sigma) * x_noisy).astype(np.float32)


class FlatDenoiser(WithCapabilities):
    """Returns flattened images."""

    def denoise(self, state, x_noisy, sigma):
        return super().denoise(state, x_noisy, sigma).reshape(len(x_noisy), -1)


class BatchNormDenoiser(WithCapabilities):
    """Normalises by batch statistics."""

    def denoise(self, state, x_noisy, sigma):
        return (x_noisy - x_noisy.mean(0) + state["mean"]).astype(np.float32)


class ColumnLogProb(WithCapabilities):
    """Returns (n, 1)."""

    def log_prob(self, state, x, key):
        return super().log_prob(state, x, key)[:, None]


@pytest.mark.parametrize("model_cls,clause", [
    (LossThatTrains, "heldout_loss.no_update"), (VectorLoss, "heldout_loss.scalar"),
    (TimeNotSigma, "denoise.finite"), (FlatDenoiser, "denoise.shape"),
    (BatchNormDenoiser, "denoise.per_example"), (ColumnLogProb, "log_prob.shape"),
])
def test_broken_capabilities_are_caught(model_cls, clause):
    broken(clause, model_cls, dataset="image")


def test_a_torch_model_returning_numpy_is_caught():
    pytest.importorskip("torch")
    from benchbase_plugins.models.torch_vae import TorchVAE

    class NumpyOut(TorchVAE):
        """Hands samples back as numpy."""

        def sample(self, state, n, key):
            return super().sample(state, n, key).numpy()

    broken("sample.type", NumpyOut, config={"width": 16})


def test_config_dicts_are_validated_like_a_suite():
    from benchbase.errors import ConfigError

    with pytest.raises(ConfigError, match="lrr"):
        check_model(KitMean, config={"lrr": 0.1})
    assert dataclasses.is_dataclass(KitMean.Config)


class RunsFloat64(Float64Samples):
    """Samples in float64, under a name of its own."""

    name = "float64_samples"


class RunsIntegers(IntegerSamples):
    """Integer samples, under a name of its own."""

    name = "integer_samples"


class _DtypeModels:
    @hookimpl
    def benchbase_register_models(self, register):
        register(RunsFloat64)
        register(RunsIntegers)


def test_a_run_applies_the_kits_dtype_rule(tmp_path):
    """float64 samples pass the kit and run (converted to float32); integer samples fail
    the kit and fail the run, with the same reason."""
    from support.suites import tiny_suite

    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.testing import run_suite_quietly

    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    registry.add_plugin(_DtypeModels(), "dtype-models", source="test")
    registry.collect()
    suite = tiny_suite(models=[{"name": RunsFloat64.name, "framework": "numpy"}], metrics=["fd"],
                       budget={"batch_size": 8, "steps": 4})
    assert run_suite_quietly(suite, tmp_path / "float64", registry=registry).result.ok
    suite["models"] = [{"name": RunsIntegers.name, "framework": "numpy"}]
    result = run_suite_quietly(suite, tmp_path / "int", registry=registry).result
    assert not result.ok
    assert "floating point" in result.failures[0][1]
