"""A JAX fleet on a CPU is stepped in parts, one per thread of XLA's pool, from threads
of its own (plugins/models/jax_fleet.py): the parts change where members are computed,
not what. Every member's state, loss and samples equal those of the same fleet in one
part up to floating-point reordering, through steps, samples of some members in any
order, and members leaving, each with its own learning rate. Measured: 4.8e-7 of an
array's largest value after six steps (parts of 4, 3 or 2 against one of 8); allowed 1e-5."""
from __future__ import annotations

import numpy as np
import pytest
from support.executor_runs import kit_registry
from support.prepared_runs import fleet_steps, prepared_runs
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.runner import RunTask

jax = pytest.importorskip("jax")
jax_fleet = pytest.importorskip("benchbase_plugins.models.jax_fleet")

FLOW = {"name": "rectified_flow", "framework": "jax", "config": {"width": 32, "depth": 2, "sample_steps": 4}}


def _runs(members: int):
    registry = kit_registry()
    suite = tiny_suite(models=[FLOW], seeds=list(range(members // 4)), sweep={"n": [32, 64], "model.lr": [1e-3, 3e-3]},
                       budget={"batch_size": 16, "steps": 20}, eval={"points": 2, "n_samples": 20})
    built = build_suite(suite, "<jax fleet parts>", registry=registry)
    return prepared_runs([RunTask(spec=s, policy=registry.policy, registry=registry) for s in built.runs])


def _in_parts(parts: int):
    return lambda program: setattr(program, "parts", parts)


def _trained(runs, parts: int, steps: int):
    fleet = fleet_steps(runs, configure=_in_parts(parts))
    state, logs = fleet.state, {}
    for t in range(steps):
        state, logs = fleet.program.step(state, *fleet.draw(t))
    return fleet.program, state, np.asarray(logs["loss"])


SCALE_TOL = 1e-5


def _assert_close(a, b, what: str) -> None:
    """Equal up to ``SCALE_TOL`` of the array's largest magnitude (fp32 reordering)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    assert np.max(np.abs(a - b), initial=0.0) <= SCALE_TOL * np.max(np.abs(a), initial=0.0), what


def _assert_same_members(program_a, state_a, program_b, state_b, members: int) -> None:
    for i in range(members):
        a = jax.tree_util.tree_leaves(program_a.unstack(state_a, i))
        b = jax.tree_util.tree_leaves(program_b.unstack(state_b, i))
        assert len(a) == len(b) > 0
        for j, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"member {i}, leaf {j}")


def test_parts_split_the_members_evenly_and_follow_xla_s_pool(monkeypatch):
    assert jax_fleet.split(16, 2) == [(0, 8), (8, 16)]
    assert jax_fleet.split(7, 3) == [(0, 2), (2, 4), (4, 7)]
    monkeypatch.setattr(jax_fleet, "usable_cores", lambda: 8)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert jax_fleet.part_count(64, "cpu") == 8
    assert jax_fleet.part_count(12, "cpu") == 3  # parts of at least MIN_PART (4) members
    assert jax_fleet.part_count(3, "cpu") == 1
    assert jax_fleet.part_count(64, "gpu") == 1  # an accelerator runs the fleet in one call
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=2")
    assert jax_fleet.part_count(64, "cpu") == 2


def test_a_fleet_in_parts_trains_its_members_as_in_one_part():
    stack, runs = _runs(8)
    with stack:
        one, one_state, one_loss = _trained(runs, 1, 6)
        three, three_state, three_loss = _trained(runs, 3, 6)
        assert len(three_state) == 3 and len(one_state) == 1
        _assert_close(one_loss, three_loss, "losses")
        assert one_loss.shape == (8,) and np.isfinite(one_loss).all()
        assert len({r.model.config.lr for r in runs}) == 2
        _assert_same_members(one, one_state, three, three_state, 8)


def test_samples_of_some_members_in_any_order_match_one_part():
    stack, runs = _runs(8)
    with stack:
        one, one_state, _ = _trained(runs, 1, 3)
        three, three_state, _ = _trained(runs, 3, 3)
        fw, device = runs[0].fw, runs[0].device
        for members in (list(range(8)), [7, 0, 3], [2], [4, 1]):
            keys = fw.fleet_keys([runs[i].spec.seed + 10 * i for i in members], 7, device)
            a = np.asarray(one.sample(one_state, 20, keys, members))
            b = np.asarray(three.sample(three_state, 20, keys, members))
            assert a.shape[:2] == (len(members), 20)
            _assert_close(a, b, str(members))
        alone = np.asarray(runs[5].model.sample(one.unstack(one_state, 5), 20, keys[1]))
        _assert_close(np.asarray(three.sample(three_state, 20, keys[1:], [5])), alone[None], "member 5 alone")


def test_members_leaving_a_fleet_in_parts_keep_their_state_and_their_part_sizes_follow():
    stack, runs = _runs(8)
    with stack:
        one, one_state, _ = _trained(runs, 1, 3)
        three, three_state, _ = _trained(runs, 3, 3)
        keep = [0, 3, 7, 6]
        one_state, three_state = one.select(one_state, keep), three.select(three_state, keep)
        assert three.part_sizes == [1, 1, 2]  # a part of one member is stacked twice
        assert [h["lr"] for h in three.hparams] == [runs[i].model.config.lr for i in keep]
        _assert_same_members(one, one_state, three, three_state, len(keep))
        kept = [runs[i] for i in keep]
        draw = fleet_steps(kept, start=3).draw
        for t in range(3):
            one_state, one_logs = one.step(one_state, *draw(t))
            three_state, three_logs = three.step(three_state, *draw(t))
        _assert_close(one_logs["loss"], three_logs["loss"], "losses after leaving")
        assert np.asarray(three_logs["loss"]).shape == (4,)
        _assert_same_members(one, one_state, three, three_state, len(keep))


def test_a_one_member_part_sends_nothing_from_the_host():
    """A part of one member (stacked twice) steps without host-to-device copies too."""
    stack, runs = _runs(4)
    with stack:
        fleet = fleet_steps(runs[:3], configure=_in_parts(2))
        program, state, draw = fleet.program, fleet.state, fleet.draw
        assert program.part_sizes == [1, 2]
        state, _ = program.step(state, *draw(0))
        with jax.transfer_guard_host_to_device("disallow"):
            for t in range(1, 6):
                state, logs = program.step(state, *draw(t))
    assert np.asarray(logs["loss"]).shape == (3,) and np.isfinite(np.asarray(logs["loss"])).all()
