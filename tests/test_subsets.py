"""Training subsets in the core: first n, random n, disjoint splits, near-duplicate removal."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from benchbase.cli import main
from benchbase.config import build_suite, plugin_config
from benchbase.contracts import DataSpec, DataSplits
from benchbase.data import DataCatalog, _dedup_view, content_hash, dedup_greedy, select_subset
from benchbase.driver import run_suite
from benchbase.errors import BenchbaseInputError, ConfigError
from benchbase.progress import Reporter
from benchbase.store import Store


def distinct_images(n: int, side: int = 8, seed: int = 0) -> np.ndarray:
    """Random images: pairwise correlations are near 0, far below any dedup threshold."""
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 1, side, side)).astype(np.float32)


def splits_of(x: np.ndarray, labels: bool = False) -> DataSplits:
    y = (np.arange(len(x)) % 3).astype(np.int64) if labels else None
    return DataSplits(train=x, test=x[:4].copy(), train_labels=y, test_labels=y[:4].copy() if labels else None,
                      spec=DataSpec(shape=x.shape[1:], modality="image", num_classes=3 if labels else 0))


def subset(n=None, mode="first", seed=0, split=None, dedup=None) -> dict:
    return {"n": n, "mode": mode, "seed": seed, "split": split, "dedup": dedup}


# ------------------------------------------------------------------------ selection


def test_first_n_is_the_prefix_and_carries_labels():
    s = splits_of(distinct_images(50), labels=True)
    sub = select_subset(s, subset(n=10))
    np.testing.assert_array_equal(sub.indices, np.arange(10))
    np.testing.assert_array_equal(sub.x, s.train[:10])
    np.testing.assert_array_equal(sub.y, s.train_labels[:10])
    assert sub.content_hash == content_hash(s.train[:10], s.train_labels[:10])
    assert sub.provenance["index_ranges"] == [[0, 10]] and sub.provenance["n"] == 10


def test_random_n_depends_on_the_seed_and_is_nested_in_n():
    s = splits_of(distinct_images(200))
    a = select_subset(s, subset(n=20, mode="random", seed=1))
    b = select_subset(s, subset(n=20, mode="random", seed=1))
    c = select_subset(s, subset(n=20, mode="random", seed=2))
    big = select_subset(s, subset(n=60, mode="random", seed=1))
    np.testing.assert_array_equal(a.indices, b.indices)
    assert set(a.indices) != set(c.indices) and len(set(a.indices)) == 20
    assert set(a.indices) <= set(big.indices)
    assert a.content_hash != c.content_hash


@pytest.mark.parametrize("mode,seeds", [("first", (0, 0)), ("random", (0, 0)), ("random", (3, 4))])
def test_split_parts_are_disjoint_whatever_mode_and_seed(mode, seeds):
    s = splits_of(distinct_images(101))
    parts = [select_subset(s, subset(n=30, mode=mode, seed=seeds[k % 2], split=[k + 1, 3])).indices
             for k in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not set(parts[i]) & set(parts[j])
    assert all(len(p) == 30 for p in parts)


def test_split_parts_are_contiguous_and_nested_in_n():
    s = splits_of(distinct_images(100))
    small = select_subset(s, subset(n=10, split="2 of 2"))
    large = select_subset(s, subset(n=40, split="2 of 2"))
    assert small.provenance["index_ranges"] == [[50, 60]] and small.provenance["split"] == "2 of 2"
    assert set(small.indices) <= set(large.indices)


def test_n_larger_than_the_part_names_the_sizes():
    s = splits_of(distinct_images(20))
    with pytest.raises(BenchbaseInputError, match=r"n=11 is larger than the 10 examples of part 1 of 2 .*20"):
        select_subset(s, subset(n=11, split=[1, 2]))


# ------------------------------------------------------------------------ dedup


def plant_duplicates(x: np.ndarray, pairs: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    """Copy x[src] to x[dst] with a contrast change and a little noise (correlation ~0.99+)."""
    x = x.copy()
    rng = np.random.default_rng(seed)
    for src, dst in pairs:
        x[dst] = 0.7 * x[src] + 0.1 + 0.02 * rng.standard_normal(x[src].shape)
    return x


def test_dedup_drops_exactly_the_planted_duplicates():
    pairs = [(0, 5), (3, 17), (3, 30), (8, 9), (40, 41)]
    x = plant_duplicates(distinct_images(60), pairs)
    sub = select_subset(splits_of(x), subset(dedup=0.95))
    dropped = {dst for _, dst in pairs}
    assert sub.provenance["dedup"]["dropped"] == len(dropped)
    assert set(sub.indices) == set(range(60)) - dropped
    view = _dedup_view(sub.x).astype(np.float64)
    corr = view @ view.T
    np.fill_diagonal(corr, 0)
    assert corr.max() < 0.95


def test_dedup_first_n_walk_equals_the_prefix_of_the_full_pass():
    x = plant_duplicates(distinct_images(300), [(i, i + 1) for i in range(0, 290, 7)])
    full, dropped_all = dedup_greedy(x, np.arange(300), 0.9)
    walk = select_subset(splits_of(x), subset(n=100, dedup=0.9))
    np.testing.assert_array_equal(walk.indices, full[:100])
    assert walk.provenance["dedup"]["dropped"] <= dropped_all
    small_blocks, _ = dedup_greedy(x, np.arange(300), 0.9, block=16, column_block=8)
    np.testing.assert_array_equal(small_blocks, full)  # blocking does not change decisions


def test_dedup_with_split_removes_duplicates_across_parts():
    # originals in the first half, their near-copies in the second: a plain split would
    # put the same image in both parts
    pairs = [(i, 50 + i) for i in range(0, 20, 2)]
    x = plant_duplicates(distinct_images(100), pairs)
    p1 = select_subset(splits_of(x), subset(split=[1, 2], dedup=0.95))
    p2 = select_subset(splits_of(x), subset(split=[2, 2], dedup=0.95))
    assert not set(p1.indices) & set(p2.indices)
    assert not {dst for _, dst in pairs} & (set(p1.indices) | set(p2.indices))
    a, b = _dedup_view(p1.x).astype(np.float64), _dedup_view(p2.x).astype(np.float64)
    assert (a @ b.T).max() < 0.95
    assert p1.provenance["dedup"]["scope"] == "whole train split" and p1.provenance["dedup"]["dropped"] == 10
    plain = [select_subset(splits_of(x), subset(split=[k, 2])) for k in (1, 2)]
    va, vb = (_dedup_view(p.x).astype(np.float64) for p in plain)
    assert (va @ vb.T).max() > 0.95  # without dedup the near-copies do straddle the parts


def test_dedup_leaving_too_few_is_an_error():
    x = np.repeat(distinct_images(5), 4, axis=0)  # 5 images, each 4 times
    with pytest.raises(BenchbaseInputError, match=r"n=10 is larger than the 5 examples.*after dropping 15"):
        select_subset(splits_of(x), subset(n=10, mode="random", dedup=0.99))


def test_dedup_on_vector_data_is_refused():
    s = DataSplits(train=np.zeros((10, 2), np.float32), test=np.zeros((2, 2), np.float32), spec=DataSpec(shape=(2,)))
    with pytest.raises(BenchbaseInputError, match="vector data"):
        select_subset(s, subset(dedup=0.9))


def test_dedup_on_real_digits_is_deterministic(registry):
    reg = registry.get("dataset", "digits")
    obj, plain = plugin_config(reg, {}, "<t>", "config")
    _, s = DataCatalog().load(reg, obj, plain)
    x = plant_duplicates(s.train, [(0, 1), (2, 3)])
    a = select_subset(splits_of(x), subset(n=200, dedup=0.97))
    b = select_subset(splits_of(x), subset(n=200, dedup=0.97))
    np.testing.assert_array_equal(a.indices, b.indices)
    assert 1 not in a.indices and 3 not in a.indices and a.provenance["dedup"]["dropped"] >= 2


# ------------------------------------------------------------------------ through a suite


def digits_suite(**overrides) -> dict:
    suite = {
        "name": "subsets", "seeds": [0], "device": "cpu",
        "datasets": [{"name": "digits", "n": 100}],
        "models": [{"name": "rectified_flow", "framework": "torch",
                    "config": {"backbone": "mlp", "width": 16, "depth": 1, "sample_steps": 2}}],
        "metrics": ["mem_ratio"],
        "budget": {"batch_size": 16, "steps": 3},
        "eval": {"points": 1, "n_samples": 20},
    }
    suite.update(overrides)
    return suite


def run_and_read(registry, results_dir, suite_dict) -> tuple[list, dict]:
    suite = build_suite(suite_dict, "<test>", registry=registry)
    with Store(results_dir) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok
        runs = {r.run_id: r for r in store.runs(suite=suite.name)}
    return suite.runs, runs


def ranges_to_set(ranges) -> set:
    return {i for a, b in ranges for i in range(a, b)}


def assert_disjoint_runs(registry, specs, stored) -> None:
    reg = registry.get("dataset", "digits")
    obj, plain = plugin_config(reg, {}, "<t>", "config")
    _, splits = DataCatalog().load(reg, obj, plain)
    used, ranges = [], []
    for spec in specs:
        prov = stored[spec.run_id].provenance
        again = select_subset(splits, spec.subset)  # the run's subset, re-derived from its spec
        assert prov["subset"]["indices_sha256"] == again.provenance["indices_sha256"]
        assert prov["dataset_content_hash"] == again.content_hash
        if "index_ranges" in prov["subset"]:
            assert ranges_to_set(prov["subset"]["index_ranges"]) == set(again.indices.tolist())
        lo, hi = prov["subset"]["part_range"]
        assert lo <= again.indices.min() and again.indices.max() < hi
        used.append(set(again.indices.tolist()))
        ranges.append((lo, hi))
    assert len(used) == 2 and len(used[0]) == len(used[1]) == 100 and not used[0] & used[1]
    (a0, a1), (b0, b1) = sorted(ranges)
    assert a1 <= b0  # the stored part ranges alone prove the two runs' data are disjoint


def test_sweep_over_subset_split_trains_on_disjoint_sets(registry, results_dir):
    specs, stored = run_and_read(registry, results_dir,
                                 digits_suite(sweep={"subset.split": ["1 of 2", "2 of 2"]}))
    assert sorted(s.subset.split[0] for s in specs) == [1, 2]
    assert_disjoint_runs(registry, specs, stored)


def test_subset_split_in_dataset_entries_trains_on_disjoint_sets(registry, results_dir):
    datasets = [{"name": "digits", "label": f"digits-{k}of2", "n": 100,
                 "subset": {"mode": "random", "seed": k, "split": f"{k} of 2"}} for k in (1, 2)]
    specs, stored = run_and_read(registry, results_dir, digits_suite(datasets=datasets))
    assert_disjoint_runs(registry, specs, stored)


def test_dedup_is_reported_in_the_run_provenance(registry, results_dir):
    datasets = [{"name": "digits", "n": 100, "subset": {"dedup": 0.9}}]
    specs, stored = run_and_read(registry, results_dir, digits_suite(datasets=datasets))
    prov = stored[specs[0].run_id].provenance["subset"]
    assert prov["dedup"]["threshold"] == 0.9 and prov["dedup"]["dropped"] >= 0 and prov["n"] == 100


def test_n_larger_than_the_dataset_is_a_config_error(registry):
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.n: n=5000 is larger than dataset 'digits'.* 1300 "):
        build_suite(digits_suite(datasets=[{"name": "digits", "n": 5000}]), "<test>", registry=registry)
    with pytest.raises(ConfigError, match=r"sweep\.n: n=700 .* 650 examples \(one of 2 disjoint parts of 1300\)"):
        build_suite(digits_suite(sweep={"n": [100, 700]}, datasets=[{"name": "digits", "subset": {"split": "1 of 2"}}]),
                    "<test>", registry=registry)


def test_bad_subset_settings_are_config_errors(registry):
    with pytest.raises(ConfigError, match=r"subset\.split: must look like 'k of K'"):
        build_suite(digits_suite(datasets=[{"name": "digits", "subset": {"split": "half"}}]), "<t>", registry=registry)
    with pytest.raises(ConfigError, match="k must be between 1 and K"):
        build_suite(digits_suite(datasets=[{"name": "digits", "subset": {"split": "3 of 2"}}]), "<t>", registry=registry)
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.subset: dedup compares downsampled images"):
        build_suite(digits_suite(datasets=[{"name": "gmm2d", "subset": {"dedup": 0.9}}]), "<t>", registry=registry)
    with pytest.raises(ConfigError, match=r"correlation threshold in \(0, 1\]"):
        build_suite(digits_suite(datasets=[{"name": "digits", "subset": {"dedup": 1.5}}]), "<t>", registry=registry)


def test_invalid_n_through_the_cli_writes_nothing(tmp_path, capsys):
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump(digits_suite(datasets=[{"name": "digits", "n": 99999}])))
    results = tmp_path / "results"
    assert main(["run", str(suite_file), "--results", str(results), "--quiet"]) == 2
    assert "n=99999 is larger than dataset 'digits', whose train split has 1300 examples" in capsys.readouterr().err
    assert not results.exists() or not any(results.iterdir())


# ------------------------------------------------------------------------ holdout


@pytest.mark.parametrize("mode", ["first", "random"])
def test_holdout_folds_partition_the_selection(mode):
    """S without fold k, for k = 1..K: the held-out folds are disjoint, cover S, and each
    run trains on exactly S minus its fold (in S's order)."""
    s = splits_of(distinct_images(100))
    full = select_subset(s, subset(n=30, mode=mode, seed=5))
    held, trained = [], []
    for k in range(1, 5):
        sub = select_subset(s, {**subset(n=30, mode=mode, seed=5), "holdout": f"{k} of 4"})
        assert sub.provenance["n"] == 30 and sub.provenance["holdout"]["fold"] == f"{k} of 4"
        assert not set(sub.indices) & set(sub.heldout_indices)
        assert set(sub.indices) | set(sub.heldout_indices) == set(full.indices)
        np.testing.assert_array_equal(sub.x, s.train[sub.indices])
        np.testing.assert_array_equal(sub.heldout_x, s.train[sub.heldout_indices])
        assert list(sub.indices) == [i for i in full.indices if i not in set(sub.heldout_indices)]
        held.append(set(sub.heldout_indices.tolist()))
        trained.append(sub.content_hash)
    assert sorted(len(h) for h in held) == [7, 7, 8, 8]
    assert set().union(*held) == set(full.indices.tolist()) and sum(map(len, held)) == 30
    assert len(set(trained) | {full.content_hash}) == 5
    assert full.heldout_x is None and "holdout" not in full.provenance


def test_holdout_is_validated_before_anything_runs(registry):
    with pytest.raises(ConfigError, match=r"subset\.holdout: must look like 'k of K'"):
        build_suite(digits_suite(sweep={"subset.holdout": ["first"]}), "<t>", registry=registry)
    with pytest.raises(ConfigError, match=r"subset\.holdout: 200 folds of n=100 examples: K must be <= n"):
        build_suite(digits_suite(datasets=[{"name": "digits", "n": 100, "subset": {"holdout": "1 of 200"}}]),
                    "<t>", registry=registry)


def test_holdout_of_the_only_fold_is_refused(registry):
    """'1 of 1' holds out every chosen example: every model would train on nothing."""
    suite = digits_suite(datasets=[{"name": "digits", "n": 100, "subset": {"holdout": "1 of 1"}}])
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.subset\.holdout: K must be at least 2: one fold holds out every"):
        build_suite(suite, "<t>", registry=registry)


def test_holdout_sweep_keeps_the_ids_of_runs_without_it(registry):
    """``subset.holdout`` enters a spec only when set: a suite without it plans the same
    run ids as before the option existed, and the null member of a holdout sweep is
    that very run."""
    plain = build_suite(digits_suite(), "<t>", registry=registry)
    assert plain.runs[0].subset.holdout is None and "holdout" not in plain.runs[0].subset.to_dict()
    swept = build_suite(digits_suite(sweep={"subset.holdout": [None, "1 of 2", "2 of 2"]}), "<t>", registry=registry)
    assert plain.runs[0].run_id in {s.run_id for s in swept.runs}
    assert sorted(str(s.subset.holdout) for s in swept.runs) == ["(1, 2)", "(2, 2)", "None"]
