"""The kit catches each way a dataset can break its contract (each a one-change edit of
the kit's own ToyVectors, which passes)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchbase.contracts import DataSpec, DataSplits
from benchbase.testing import ContractViolation, ToyImages, ToyVectors, check_dataset


def broken(clause: str, dataset_cls) -> ContractViolation:
    with pytest.raises(ContractViolation) as info:
        check_dataset(dataset_cls)
    assert info.value.clause == clause, str(info.value)
    return info.value


def test_good_toys_pass():
    assert "sample_true.matches_splits" in check_dataset(ToyVectors).checked
    assert "labels.range" in check_dataset(ToyImages).checked


class Float64(ToyVectors):
    """Splits in float64."""

    def load(self):
        s = super().load()
        return dataclasses.replace(s, train=s.train.astype(np.float64))


class SpecLies(ToyVectors):
    """Declares 3-D examples, returns 2-D ones."""

    def load(self):
        s = super().load()
        return dataclasses.replace(s, spec=dataclasses.replace(s.spec, shape=(3,)))


class Overlapping(ToyVectors):
    """The test split starts with 50 training points."""

    def load(self):
        s = super().load()
        return dataclasses.replace(s, test=np.concatenate([s.train[:50], s.test[50:]]))


class GlobalShuffle(ToyVectors):
    """Shuffles with numpy's global RNG."""

    def load(self):
        s = super().load()
        return dataclasses.replace(s, train=s.train[np.random.permutation(len(s.train))])


class OutOfRange(ToyVectors):
    """Scales the data beyond its declared range."""

    def load(self):
        s = super().load()
        return dataclasses.replace(s, train=s.train * 10)


class SamplerShape(ToyVectors):
    """sample_true returns one value per example."""

    def sample_true(self, n, seed):
        return super().sample_true(n, seed)[:, :1]

    def load(self):
        return dataclasses.replace(super().load(), train=ToyVectors().sample_true(256, 100),
                                   test=ToyVectors().sample_true(128, 101))


class SamplerDrifted(ToyVectors):
    """sample_true shifted away from the distribution the splits come from."""

    def sample_true(self, n, seed):
        return super().sample_true(n, seed) + np.float32(0.3)

    def load(self):
        return dataclasses.replace(super().load(), train=ToyVectors().sample_true(256, 100),
                                   test=ToyVectors().sample_true(128, 101))


class NoSampler(ToyImages):
    """Claims an exact sampler it does not have."""

    def load(self):
        s = super().load()
        return dataclasses.replace(s, spec=dataclasses.replace(s.spec, has_true_sampler=True))


class BadLabels(ToyImages):
    """Labels outside 0..num_classes-1."""

    def load(self):
        s = super().load()
        return dataclasses.replace(s, train_labels=s.train_labels + 5)


@pytest.mark.parametrize("dataset_cls,clause", [
    (Float64, "splits.float32"), (SpecLies, "splits.shape"), (Overlapping, "splits.disjoint"),
    (GlobalShuffle, "load.deterministic"), (OutOfRange, "values.range"), (SamplerShape, "sample_true.shape"),
    (SamplerDrifted, "sample_true.matches_splits"), (NoSampler, "sample_true.present"),
    (BadLabels, "labels.range"),
])
def test_broken_datasets_are_caught(dataset_cls, clause):
    broken(clause, dataset_cls)


class Coins(ToyVectors):
    """Three fair coins as +-1: train and test share rows by chance, as independent draws do."""

    def sample_true(self, n, seed):
        return np.random.default_rng(seed).choice([-1.0, 1.0], size=(n, 3)).astype(np.float32)

    def load(self):
        return DataSplits(train=self.sample_true(200, 0), test=self.sample_true(100, 1),
                          spec=DataSpec(shape=(3,), has_true_sampler=True))


def test_chance_overlap_of_a_discrete_sampler_is_allowed():
    assert "splits.disjoint" in check_dataset(Coins).checked


def test_overlap_without_a_sampler_names_the_count():
    err = broken("splits.disjoint", Overlapping)
    assert "50 of 128" in err.problem
