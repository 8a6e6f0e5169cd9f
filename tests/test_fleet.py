"""Fleet training (benchbase.fleet): members equal their runs trained alone, up to
floating-point reordering, whatever they differ in (seed, n, lr, the step they resume
from); a member that diverges, fails or runs out of time stops alone."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.fleet import FleetTask, execute, execute_fleet
from benchbase.runner import Evaluated, Finished, RunTask, SinkError, Started, execute_task
from benchbase.store import Checkpoint

# Measured on the 2-core development box: members agree with their runs alone to about
# 3e-7 relative on every stored value (fd, swd, losses), 1e-6 absolute on differences of
# losses (heldout_gap); these bounds leave a factor of ~30.
RTOL, ATOL = 1e-5, 3e-5

MODELS = {
    "rectified_flow": {"width": 32, "depth": 2, "sample_steps": 5},
    "ddpm": {"width": 32, "depth": 2, "sample_steps": 5, "T": 50},
    "vae": {"width": 32, "depth": 2},
}


def _cases():
    out = []
    for framework in ("torch", "jax"):
        for name in MODELS:
            marks = [pytest.mark.slow] if framework == "jax" else []
            out.append(pytest.param(name, framework, id=f"{name}-{framework}", marks=marks))
    return out


def _tasks(registry, name="rectified_flow", framework="torch", config=None, **overrides):
    suite = tiny_suite(
        seeds=[0, 1], models=[{"name": name, "framework": framework, "config": config or MODELS[name]}],
        metrics=["fd", {"name": "swd", "config": {"n_projections": 16}},
                 {"name": "heldout_gap", "config": {"min_evaluations": 64, "max_points": 64}}],
        sweep={"n": [32, 64], "model.lr": [1e-3, 3e-3]},
        budget={"batch_size": 16, "steps": 40}, eval={"points": 3, "n_samples": 64, "at_init": True})
    suite.update(overrides)
    built = build_suite(suite, "<test>", registry=registry)
    return [RunTask(spec=s, policy=registry.policy, registry=registry) for s in built.runs]


class Events:
    """What the driver would store, per run: values, checkpoints, outcome."""

    def __init__(self, stop_after_checkpoints: int | None = None):
        self.values: dict = {}
        self.checkpoints: dict = {}
        self.finished: dict = {}
        self.started: dict = {}
        self.stop_after = stop_after_checkpoints
        self.checkpoint_events = 0

    def __call__(self, event) -> None:
        if isinstance(event, Started):
            self.started[event.run_id] = event
        elif isinstance(event, Evaluated):
            for r in event.rows:
                self.values[(event.run_id, event.step, r.metric, r.ref)] = r.value
            if event.checkpoint is not None:
                self.checkpoints[event.run_id] = Checkpoint(event.step, event.examples, event.wall_time,
                                                            event.checkpoint)
                self.checkpoint_events += 1
                if self.stop_after is not None and self.checkpoint_events >= self.stop_after:
                    raise RuntimeError("driver gone")  # like a kill: the worker's emit fails
        elif isinstance(event, Finished):
            self.finished[event.run_id] = event


def _alone(tasks) -> Events:
    events = Events()
    for task in tasks:
        execute_task(task, events)
    return events


def _assert_close(a: Events, b: Events, runs=None) -> None:
    keys = {k for k in a.values if runs is None or k[0] in runs}
    assert keys == {k for k in b.values if runs is None or k[0] in runs}
    for key in keys:
        assert b.values[key] == pytest.approx(a.values[key], rel=RTOL, abs=ATOL), key


@pytest.mark.parametrize("name,framework", _cases())
def test_members_equal_their_runs_trained_alone(registry, name, framework):
    tasks = _tasks(registry, name, framework)
    alone = _alone(tasks)
    together = Events()
    statuses = execute_fleet(FleetTask(tasks), together)
    assert statuses == {t.spec.run_id: "done" for t in tasks}
    assert {rid: f.status for rid, f in alone.finished.items()} == statuses
    _assert_close(alone, together)
    for task in tasks:
        summary = together.finished[task.spec.run_id].summary
        assert summary["steps"] == 40 and summary["param_count"] == alone.finished[task.spec.run_id].summary[
            "param_count"]
        fleet = together.started[task.spec.run_id].provenance["fleet"]
        assert fleet["size"] == len(tasks) == 8 and fleet["members"] == [t.spec.run_id for t in tasks]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rectified_flow", "vae"])
def test_jax_runs_that_differ_in_lr_share_one_compiled_step_and_keep_their_own_lr(registry, name):
    """A learning-rate sweep compiles each JAX program once per process: instances whose
    configs differ only in ``fleet_varying`` fields get the same jitted functions, and
    each still steps with its own lr (Adam's first update moves every weight by about lr),
    bit for bit as a step with its lr compiled in."""
    pytest.importorskip("jax")
    from support.model_harness import ModelHarness

    slow, fast = (ModelHarness(registry, name, "jax", "gmm2d", {**MODELS[name], "lr": lr}) for lr in (1e-3, 3e-3))
    init = [h.model.init(h.data, 0) for h in (slow, fast)]
    jitted = ["_train_step", "_sample", "_heldout"] + (["_loglik"] if name == "rectified_flow" else [])
    for attr in jitted:
        assert getattr(slow.model, attr) is getattr(fast.model, attr), attr
    moved = []
    for h, state in zip((slow, fast), init):
        before = np.concatenate([np.ravel(v) for v in _leaves(state)])
        after = np.concatenate([np.ravel(v) for v in _leaves(h.train(state, 1)[0])])
        moved.append(np.abs(after - before).max())
    assert moved[0] == pytest.approx(1e-3, rel=1e-3) and moved[1] == pytest.approx(3e-3, rel=1e-3)

    import jax  # the traced lr changes no bit: the step with lr baked in as a constant, as before

    model, constant = fast.model, jax.jit(lambda s, b, k: fast.model._step_fn(s, b, k, {"lr": 3e-3}))
    traced = baked = init[1]
    for step in range(3):
        batch, key = fast.draw(step)
        traced, _ = model.train_step(traced, batch, key)
        baked, _ = constant(baked, batch, key)
    for a, b in zip(_leaves(traced), _leaves(baked)):
        np.testing.assert_array_equal(a, b)


def _leaves(state) -> list:
    """The trained parameters of every part of a JAX model's state (no optimiser state)."""
    import jax

    return [np.asarray(leaf) for part in state.values() for leaf in jax.tree_util.tree_leaves(part["params"])]


def test_a_member_numbers_do_not_depend_on_the_other_members(registry):
    """Bit for bit: what a member stores is the same in a fleet of one and of four."""
    tasks = _tasks(registry)
    four, one = Events(), Events()
    execute_fleet(FleetTask(tasks), four)
    execute_fleet(FleetTask(tasks[2:3]), one)
    rid = tasks[2].spec.run_id
    mine = {k: v for k, v in four.values.items() if k[0] == rid}
    assert mine == one.values


def test_a_cpu_torch_fleet_keeps_freed_heap_memory(registry, monkeypatch):
    """A fleet's per-step tensors are megabytes: on a CPU it asks glibc to keep freed
    heap memory, so a step does not fault the same pages in again."""
    import platform

    from benchbase_plugins.models import torch_fleet

    asked = []
    monkeypatch.setattr(torch_fleet, "keep_freed_memory", lambda: asked.append(True) or True)
    assert set(execute_fleet(FleetTask(_tasks(registry)[:2]), Events()).values()) == {"done"}
    assert asked
    monkeypatch.undo()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert torch_fleet.keep_freed_memory() is True


def _frameworks():
    """PyTorch, and JAX with its CPU fleets forced into two parts (the tests' xdist workers
    give XLA one thread, which would keep every JAX fleet in one part)."""
    return [pytest.param("torch", id="torch"), pytest.param("jax", id="jax-in-parts", marks=pytest.mark.slow)]


@pytest.fixture
def in_parts(monkeypatch):
    """``in_parts(framework)``: JAX fleets step in two parts from here on; returns the
    part sizes of every JAX fleet stacked (to check the parts were used)."""
    sizes: list[list[int]] = []

    def force(framework: str) -> list[list[int]]:
        if framework == "jax":
            jax_fleet = pytest.importorskip("benchbase_plugins.models.jax_fleet")
            monkeypatch.setattr(jax_fleet, "xla_cpu_threads", lambda: 2)
            stack = jax_fleet.JaxFleet.stack

            def recorded(self, states):
                out = stack(self, states)
                sizes.append(self.part_sizes)
                return out
            monkeypatch.setattr(jax_fleet.JaxFleet, "stack", recorded)
        return sizes
    return force


@pytest.mark.parametrize("framework", _frameworks())
def test_a_diverging_member_stops_alone(registry, framework, in_parts):
    parts = in_parts(framework)
    tasks = _tasks(registry, framework=framework, sweep={"n": [32, 64], "model.lr": [1e-3, 1e30]})
    alone = _alone(tasks)
    together = Events()
    statuses = execute_fleet(FleetTask(tasks), together)
    blown = {t.spec.run_id for t in tasks if t.spec.model.config["lr"] == 1e30}
    assert {rid for rid, s in statuses.items() if s == "diverged"} == blown
    assert all(statuses[t.spec.run_id] == "done" for t in tasks if t.spec.run_id not in blown)
    for rid in blown:
        assert together.finished[rid].summary["diverged_at"] == alone.finished[rid].summary["diverged_at"]
        assert alone.finished[rid].status == "diverged"
    _assert_close(alone, together)
    if framework == "jax":  # 8 members in two parts, then the 4 that did not diverge in one
        assert parts == [[4, 4], [4]], parts


@pytest.mark.parametrize("framework", _frameworks())
def test_members_resume_from_their_own_checkpoints(registry, framework, in_parts):
    """A fleet killed after its first checkpoints resumes each member where its own
    checkpoint left it, some at an older step than others, and ends as if uninterrupted."""
    parts = in_parts(framework)
    tasks = _tasks(registry, framework=framework)
    alone = _alone(tasks)
    first = Events(stop_after_checkpoints=len(tasks) + 3)  # every member at step 0, three at the next
    with pytest.raises(SinkError):
        execute_fleet(FleetTask(tasks), first)
    assert len(first.checkpoints) == len(tasks) and not first.finished
    # a fourth member that never started, and one resumed from an older checkpoint
    old = Events(stop_after_checkpoints=2)
    with pytest.raises(SinkError):
        execute_task(tasks[0], old)
    checkpoints = {**first.checkpoints, tasks[0].spec.run_id: old.checkpoints[tasks[0].spec.run_id]}
    assert len({c.step for c in checkpoints.values()}) > 1
    resumed = [dataclasses.replace(t, checkpoint=checkpoints.get(t.spec.run_id)) for t in tasks]
    second = Events()
    assert set(execute_fleet(FleetTask(resumed), second).values()) == {"done"}
    assert {rid: s.resumed_from for rid, s in second.started.items()} == {
        t.spec.run_id: checkpoints[t.spec.run_id].step if t.spec.run_id in checkpoints else 0 for t in tasks}
    merged = Events()
    merged.values = {**{k: v for k, v in first.values.items() if k[1] <= checkpoints.get(k[0], Checkpoint(
        -1, 0, 0, b"")).step}, **second.values}
    _assert_close(alone, merged)
    assert framework != "jax" or parts.count([4, 4]) == 2, parts


def test_a_member_that_cannot_start_fails_alone(registry):
    tasks = _tasks(registry)
    broken = dataclasses.replace(tasks[1].spec, subset=dataclasses.replace(tasks[1].spec.subset, content_hash="0" * 16))
    tasks[1] = dataclasses.replace(tasks[1], spec=broken)
    events = Events()
    statuses = execute_fleet(FleetTask(tasks), events)
    assert statuses[broken.run_id] == "failed"
    assert "changed since the suite was validated" in events.finished[broken.run_id].summary["reason"]
    assert [s for rid, s in statuses.items() if rid != broken.run_id] == ["done"] * 7


def test_a_member_out_of_time_stops_alone(registry):
    tasks = _tasks(registry, time_limit=3600)
    late = tasks[3]
    alone = Events(stop_after_checkpoints=1)
    with pytest.raises(SinkError):
        execute_task(late, alone)
    ckpt = alone.checkpoints[late.spec.run_id]
    tasks[3] = dataclasses.replace(late, checkpoint=dataclasses.replace(ckpt, wall_time=3599.999))
    events = Events()
    statuses = execute_fleet(FleetTask(tasks), events)
    assert statuses[late.spec.run_id] == "timeout"
    assert "time limit" in events.finished[late.spec.run_id].summary["reason"]
    assert [s for rid, s in statuses.items() if rid != late.spec.run_id] == ["done"] * 7


def test_execute_runs_a_fleet_task_or_a_single_run(registry):
    tasks = _tasks(registry)[:2]
    events = Events()
    execute(FleetTask(tasks), events)
    execute(tasks[0], events)
    assert set(events.finished) == {t.spec.run_id for t in tasks}
    assert all(f.status == "done" for f in events.finished.values())


def test_a_model_without_the_capability_is_refused_by_fleet(registry):
    reg = registry.get("model", "gan", "torch")
    assert "fleet" not in reg.cls.capabilities
    for name in MODELS:
        for framework in ("torch", "jax"):
            cls = registry.get("model", name, framework).cls
            assert "fleet" in cls.capabilities and cls.fleet_varying == frozenset({"lr"})


def test_pool_rows_point_at_each_members_subset(registry):
    """Members with different n draw from their own examples only."""
    from benchbase.frameworks import get_framework

    fw = get_framework("torch")
    pool = np.arange(20, dtype=np.float32)[:, None]
    rows = [np.array([3, 4]), np.arange(10, 20)]
    draw = fw.fleet_drawer(fw.put(pool, "cpu"), None, rows, 64, [1, 2], [0, 5], fw.device("cpu"))
    batch, keys = draw(7)
    x = fw.to_numpy(batch.x)
    assert set(x[0, :, 0]) <= {3.0, 4.0} and set(x[1, :, 0]) <= set(range(10, 20))
    assert len(keys) == 2


@pytest.mark.parametrize("fleet", [False, True])
def test_jax_batches_depend_on_the_step_alone_not_on_the_order_of_draws(fleet):
    """The JAX drawers keep the step on the device between draws; a step out of sequence
    (a resume, a repeated draw) must give the batch of that step all the same."""
    jax = pytest.importorskip("jax")
    from benchbase.frameworks import get_framework

    fw, device = get_framework("jax"), jax.devices("cpu")[0]
    x = jax.device_put(np.arange(200, dtype=np.float32).reshape(100, 2), device)

    def drawer():
        if fleet:
            return fw.fleet_drawer(x, None, [np.arange(30), np.arange(60)], 8, [0, 1], [0, 7], device)
        return fw.drawer(x, None, 8, 3, device)

    def batch(draw, step):
        return np.asarray(draw(step)[0].x)

    in_order = drawer()
    expected = [batch(in_order, step) for step in range(6)]
    assert not np.array_equal(expected[0], expected[1])
    resumed = drawer()
    assert [np.array_equal(batch(resumed, s), expected[s]) for s in (3, 4, 5, 2, 2, 0)] == [True] * 6
