"""The copy-detection benchmark on digits (the protocol of
benchmarks/bench_copy_detection.py, default arguments): the numbers of the table in
docs/metrics.md, kept with a tolerance. Pixel space needs no training (fast); the
learned spaces fit first (slow). Where SSCD's weight file is present, it is ranked
beside the self-trained descriptor; elsewhere that test is skipped and says why. So is
the check of the nine-member descriptor that meets issue 20's target, where its fits
are not in results/cache (2.8 CPU hours to fit; it never fits).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from benchbase.copy_detection import Protocol, ScoreNormalisation, evaluate_space
from benchbase.errors import MissingDataError
from benchbase.structured import plugin_config
from benchbase_plugins.disguises import make_query_sets
from support.learned_spaces import TEST_DESCRIPTOR_CONFIG

# docs/metrics.md, "Copy detection" (benchmarks/bench_copy_detection.py, seed 0, n 300, strength 1)
EXPECTED_UAP = {"pixels": 0.390, "random_conv": 0.282, "trained_encoder": 0.335, "copy_descriptor": 0.626}  # two-block trunk (support/learned_spaces.py)
TOLERANCE = {"pixels": 1e-3, "random_conv": 1e-3, "trained_encoder": 0.05, "copy_descriptor": 0.03}
# the same queries scored as SSCD's DISC21 evaluation does: 10 predictions per query, score normalisation 1.0[0,2]
# against the held-out images (each query skipping those it was made from); lower in every space
SSCD_PROTOCOL = Protocol(10, ScoreNormalisation(1.0, 0, 2))
EXPECTED_UAP_SSCD = {"pixels": 0.246, "random_conv": 0.193, "copy_descriptor": 0.605}


@pytest.fixture(scope="module")
def digits():
    from benchbase_plugins.datasets.digits import Digits

    splits = Digits().load()
    return splits, make_query_sets(splits.train, splits.test, n=300, strength=1.0, seed=0,
                                   value_range=splits.spec.value_range)


def score(name: str, digits, config=None, cache_dir=None):
    from benchbase.plugins import PluginPolicy, build_registry

    splits, queries = digits
    reg = build_registry(PluginPolicy(entry_points=False, strict=True)).get("feature", name)
    space = reg.cls(plugin_config(reg, config or {}, "<test>", f"{name}.config")[0])
    space.cache_dir, space.train_split = cache_dir, splits.train
    space.prepare(splits.train, splits.spec, "cpu")
    return evaluate_space(name, space.embed, splits.train, queries, background=splits.test, compare=(SSCD_PROTOCOL,))


@pytest.mark.parametrize("name", ["pixels", "random_conv"])
def test_fixed_spaces_keep_their_numbers(digits, name):
    result = score(name, digits)
    assert result.overall.uap == pytest.approx(EXPECTED_UAP[name], abs=TOLERANCE[name])
    sscd = result.compared[SSCD_PROTOCOL.label].uap
    assert sscd == pytest.approx(EXPECTED_UAP_SSCD[name], abs=TOLERANCE[name])


@pytest.fixture(scope="module")
def learned(digits, learned_space_results):
    """The two learned spaces, fitted once per session."""
    cache = str(learned_space_results / "cache")
    return {"trained_encoder": score("trained_encoder", digits, cache_dir=cache),
            "copy_descriptor": score("copy_descriptor", digits, TEST_DESCRIPTOR_CONFIG, cache_dir=cache)}


@pytest.mark.slow
def test_the_copy_descriptor_sees_through_disguises_better_than_pixels(digits, learned):
    pixels = score("pixels", digits)
    encoder, desc = learned["trained_encoder"], learned["copy_descriptor"]
    assert encoder.overall.uap == pytest.approx(EXPECTED_UAP["trained_encoder"], abs=TOLERANCE["trained_encoder"])
    assert desc.overall.uap == pytest.approx(EXPECTED_UAP["copy_descriptor"], abs=TOLERANCE["copy_descriptor"])
    assert desc.compared[SSCD_PROTOCOL.label].uap == pytest.approx(EXPECTED_UAP_SSCD["copy_descriptor"],
                                                                  abs=TOLERANCE["copy_descriptor"])
    assert desc.overall.uap > 1.5 * pixels.overall.uap and desc.overall.uap > 1.5 * encoder.overall.uap
    assert desc.overall.recall_at_p90 > pixels.overall.recall_at_p90
    for name in ("shift", "hflip", "invert", "combo"):  # edits that pixel distances miss entirely
        assert desc.per_disguise[name].uap > 0.75 > 0.05 > pixels.per_disguise[name].uap, name


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="one fit does not reach issue 20's target (uAP >= 0.8 and at least twice "
                                       "pixel space's 0.390): 0.626 (the tests' two-block fit) / 0.703 (the "
                                       "default); nine whitened members do (0.802: the test below, where their "
                                       "fits are cached; docs/metrics.md, Nine whitened members)")
def test_the_copy_descriptor_reaches_the_issues_target(digits, learned):
    uap = learned["copy_descriptor"].overall.uap
    assert uap >= 0.8 and uap >= 2 * score("pixels", digits).overall.uap


NINE_MEMBERS = {"members": 5, "low_pass_members": 4, "whitening": 0.1}
FITS = Path(__file__).resolve().parents[1] / "results" / "cache"  # where bench_copy_detection.py caches them


@pytest.mark.slow
def test_nine_whitened_members_reach_the_issues_target_where_their_fits_are_cached(digits):
    """2.8 CPU hours of fitting are beyond CI: this reads the nine fits from the cache
    ``python benchmarks/bench_copy_detection.py --space-config '{"copy_descriptor": ...}'``
    fills, and is skipped where they are absent (never fits)."""
    import numpy as np

    from benchbase.data import content_hash
    from benchbase_plugins.features.copy_descriptor import CopyDescriptor, ensemble, fit_key
    from benchbase_plugins.features.fit_cache import fit_path

    splits, _ = digits
    config = plugin_config(_descriptor_registration(), NINE_MEMBERS, "<test>", "c")[0]
    fitted_on = content_hash(np.asarray(splits.train, np.float32)[: config.max_train])
    missing = [m.seed for m in ensemble(config)
               if not fit_path(str(FITS), fitted_on, fit_key(m), CopyDescriptor.version).is_file()]
    if missing:
        pytest.skip(f"{len(missing)} of the nine fits are not in {FITS} (about 1,100 CPU s each to fit)")
    uap = score("copy_descriptor", digits, NINE_MEMBERS, cache_dir=str(FITS)).overall.uap
    assert uap == pytest.approx(0.802, abs=0.01)
    assert uap >= 0.8 and uap >= 2 * score("pixels", digits).overall.uap


def _descriptor_registration():
    from benchbase.plugins import PluginPolicy, build_registry

    return build_registry(PluginPolicy(entry_points=False, strict=True)).get("feature", "copy_descriptor")


@pytest.mark.slow
def test_sscd_weights_are_ranked_beside_the_self_trained_descriptor(digits, request):
    try:
        sscd = score("sscd", digits)
    except MissingDataError as exc:
        pytest.skip(f"SSCD's weight file is absent, so there is nothing to rank: {str(exc).splitlines()[0]}")
    desc = request.getfixturevalue("learned")["copy_descriptor"]
    print(f"\nuAP on digits: sscd {sscd.overall.uap:.3f}, copy_descriptor {desc.overall.uap:.3f}")
    for name, s in sscd.per_disguise.items():
        print(f"  {name:12s} sscd {s.uap:.3f}  copy_descriptor {desc.per_disguise[name].uap:.3f}")
    assert 0.0 <= sscd.overall.uap <= 1.0 and sscd.overall.n_queries == desc.overall.n_queries
    assert sscd.overall.uap > score("pixels", digits).overall.uap  # a copy detector beats raw pixels


@pytest.mark.parametrize("option,value,says", [
    ("--compare", "x", "'x' is not k or k:<norm>"),
    ("--score-norm", "1.0[", "score normalisation '1.0[' is not <beta>[<first>,<last>]"),
    ("--spaces", "pixels,nope", "unknown feature space 'nope'; choose from copy_descriptor,"),
    ("--space-config", '{"copy_descriptor": {"widht": 3}}', "unknown key 'widht'. Did you mean 'width'?"),
    ("--space-config", "{", "--space-config is not JSON"),
    ("--disguises", "shift,twirl", "unknown disguise 'twirl'; choose from shift, hflip"),
    ("--dataset", "mnits", "unknown dataset 'mnits'; choose from"),
])
def test_the_benchmark_refuses_bad_options_before_fitting_anything(option, value, says, capsys, monkeypatch):
    """Options are read when the script starts: a typo in the last space's config or in
    --compare used to raise a traceback after the earlier spaces had fitted (minutes)."""
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench = importlib.import_module("bench_copy_detection")
    monkeypatch.setattr(bench, "run", lambda args: pytest.fail("started working on bad options"))
    assert bench.main([option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    sys.modules.pop("bench_copy_detection", None)
