"""The kit catches each way a metric can break its contract, and checks model-aware
metrics through the scenario models (exact mixtures behind the core's ModelHandle)."""
from __future__ import annotations

import numpy as np
import pytest

from benchbase import Metric
from benchbase.testing import ContractViolation, check_metric
from benchbase.testing.scenarios import make_world


class MeanGap(Metric):
    """Distance between the means of generated and reference features (0 when equal)."""

    name = "mean_gap"
    direction = "lower"
    references = ("test", "train")
    conformance = {"identical": 0.0}

    def compute(self, ctx):
        return {"mean_gap": float(np.linalg.norm(ctx.gen.mean(0) - ctx.ref.mean(0)))}


def broken(clause: str, metric_cls, **kwargs) -> ContractViolation:
    with pytest.raises(ContractViolation) as info:
        check_metric(metric_cls, **kwargs)
    assert info.value.clause == clause, str(info.value)
    return info.value


def test_a_good_metric_passes_with_its_declared_expectations():
    report = check_metric(MeanGap)
    assert {"direction", "identical", "invariance.permutation", "edge.tiny", "edge.duplicates",
            "compute.read_only"} <= set(report.checked)


class Reversed(MeanGap):
    """Declares the wrong direction."""

    direction = "higher"


def test_a_reversed_direction_is_caught():
    err = broken("direction", Reversed)
    assert "'true'" in err.problem and "'noise'" in err.problem


def test_target_direction_ranks_by_distance_to_target():
    class Targeted(MeanGap):
        """Same value, judged by its distance to 0."""

        direction = "target"
        target = 0.0

    check_metric(Targeted)


class FirstSampleOnly(MeanGap):
    """Looks at the first generated sample only."""

    def compute(self, ctx):
        return {"mean_gap": float(np.linalg.norm(ctx.gen[0] - ctx.ref.mean(0)))}


class DividesByDistance(MeanGap):
    """Nearest-neighbour ratio without a guard against zero distances."""

    def compute(self, ctx):
        d = np.sort(np.linalg.norm(ctx.gen[:, None] - ctx.ref[None], axis=-1), axis=1)
        with np.errstate(all="ignore"):
            return {"mean_gap": float(np.mean(d[:, 0] / d[:, 1]))}


class CentersInPlace(MeanGap):
    """Centres the generated features in place."""

    def compute(self, ctx):
        ctx.gen -= ctx.ref.mean(0)
        return {"mean_gap": float(np.linalg.norm(ctx.gen.mean(0)))}


class NoHeadline(MeanGap):
    """Reports under another name."""

    def compute(self, ctx):
        return {"gap": 0.0}


class StrayKey(MeanGap):
    """Adds a value outside its own name."""

    def compute(self, ctx):
        return {**super().compute(ctx), "other": 1.0}


class Jittery(MeanGap):
    """Adds global-RNG noise."""

    def compute(self, ctx):
        return {"mean_gap": super().compute(ctx)["mean_gap"] + float(np.random.rand())}


class Biased(MeanGap):
    """Off by a constant."""

    def compute(self, ctx):
        return {"mean_gap": super().compute(ctx)["mean_gap"] + 1e-3}


@pytest.mark.parametrize("metric_cls,clause", [
    (FirstSampleOnly, "invariance.permutation"), (DividesByDistance, "edge.duplicates"),
    (CentersInPlace, "compute.read_only"), (NoHeadline, "compute.headline"), (StrayKey, "compute.names"),
    (Jittery, "compute.deterministic"), (Biased, "identical"),
])
def test_broken_metrics_are_caught(metric_cls, clause):
    broken(clause, metric_cls)


def test_explicit_arguments_override_the_class_declaration():
    check_metric(Biased, identical=None)  # no ideal value checked
    broken("identical", MeanGap, identical=1.0)


class CopyFraction(Metric):
    """Fraction of samples within 1e-6 of a training point (a memorization metric)."""

    name = "copy_fraction"
    direction = "lower"
    conformance = {"pairs": [("true", "copies"), ("collapsed", "copies")], "identical": 1.0}

    def compute(self, ctx):
        d = np.linalg.norm(ctx.gen[:, None] - ctx.train[None], axis=-1).min(1)
        return {"copy_fraction": float((d < 1e-6).mean())}


def test_memorization_metrics_declare_copies_as_the_worse_case():
    check_metric(CopyFraction)
    broken("direction", CopyFraction, pairs=[("true", "noise")])  # both 0: not ordered


def test_a_memorization_metric_moves_the_declared_memorizes_way_on_copies():
    class Declared(CopyFraction):
        """Copy fraction with its memorization direction declared."""

        memorizes = "higher"

    class Misdeclared(CopyFraction):
        """Copy fraction declaring that copies lower it."""

        memorizes = "lower"

    assert "memorizes" in check_metric(Declared).checked
    err = broken("memorizes", Misdeclared)
    assert "copies" in err.problem


class TinyRefusal(MeanGap):
    """Needs at least 5 samples, and says so."""

    def compute(self, ctx):
        if len(ctx.gen) < 5:
            raise ValueError("mean_gap needs at least 5 generated samples")
        return super().compute(ctx)


def test_a_clear_refusal_on_tiny_inputs_is_accepted():
    report = check_metric(TinyRefusal)
    assert any(clause == "edge.tiny" and "at least 5" in why for clause, why in report.skipped)


class HeldoutGap(Metric):
    """Held-out loss on the test split minus that on the training subset."""

    name = "kit_heldout_gap"
    direction = "lower"
    requires = frozenset({"capability:heldout_loss"})
    conformance = {"pairs": [("true", "copies")]}

    def compute(self, ctx):
        gap = ctx.model.heldout_loss(ctx.test_data) - ctx.model.heldout_loss(ctx.train_data)
        return {"kit_heldout_gap": float(gap)}


class DenoiserGap(Metric):
    """Mean distance of the model's denoiser to the training set's optimal denoiser."""

    name = "kit_denoiser_gap"
    direction = "higher"  # far from the memorizing denoiser is better
    requires = frozenset({"capability:denoise"})
    conformance = {"pairs": [("true", "copies")]}

    def compute(self, ctx):
        from benchbase.testing.scenarios import Mixture

        empirical = Mixture(ctx.train_data.reshape(len(ctx.train_data), -1).astype(np.float64), 0.0 + 1e-3)
        rng = ctx.rng(0)
        x = ctx.test_data[:50]
        noisy = (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32)
        gap = np.linalg.norm(ctx.model.denoise(noisy, 0.3) - empirical.denoise(noisy, 0.3), axis=-1).mean()
        return {"kit_denoiser_gap": float(gap)}


def test_model_aware_metrics_see_a_memorizing_and_a_generalizing_model():
    check_metric(HeldoutGap)
    check_metric(DenoiserGap)
    broken("direction", HeldoutGap, pairs=[("copies", "true")])


def test_scenario_denoiser_is_the_posterior_mean():
    """At tiny sigma the exact denoiser returns its input; at huge sigma the mixture mean."""
    world = make_world((3,), 50, 50)
    x = world.test[:5]
    assert np.allclose(world.truth.denoise(x, 1e-4), x, atol=1e-3)
    assert np.allclose(world.truth.denoise(x, 1e4), world.truth.means.mean(0), atol=1e-2)
