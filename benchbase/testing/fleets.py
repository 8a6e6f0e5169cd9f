"""The ``fleet`` capability's clause of ``check_model``: a fleet of three members (other
seeds, one on half the training subset, one with another value of each
``fleet_varying`` field) trained and sampled as one program equals the three runs
trained alone, up to floating-point reordering (``close``: rtol 1e-4, atol 1e-5 at
the scale of the whole array; the built-in models agree to about 1e-6)."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from benchbase.testing.common import close

STEPS = 3
_FLEET_SALT = 21


def _member_config(cfg: Any, varying: frozenset, index: int) -> Any:
    """Member 2 gets another value of every float field members may vary."""
    if index < 2 or not dataclasses.is_dataclass(cfg):
        return cfg
    changes = {f: getattr(cfg, f) * 0.5 for f in varying
               if isinstance(getattr(cfg, f, None), float) and not isinstance(getattr(cfg, f), bool)}
    return dataclasses.replace(cfg, **changes)


def check_fleet(c, h, model: Any, state: Any, n_samples: int) -> None:
    fw, device = h.fw, h.device
    varying = frozenset(getattr(h.cls, "fleet_varying", ()))
    n = len(h.subset.x)
    rows = [np.arange(n), np.arange(n // 2), np.arange(n)]
    seeds = [h.seed + 1, h.seed + 2, h.seed + 3]
    per_step = h.batch_size * h.k

    def member(i: int):
        m = h.cls(_member_config(h.cfg, varying, i))
        data = h.data()
        fw.seed_everything(seeds[i])
        with c.calling("fleet", f"init(data, seed={seeds[i]})"):
            return m, m.init(data, seeds[i])

    members = [member(i) for i in range(3)]
    with c.calling("fleet", "fleet(members) and Fleet.stack(states)",
                   "return a benchbase.contracts.Fleet whose stack() takes the members' init states"):
        program = members[0][0].fleet([m for m, _ in members])
        fleet_state = program.stack([s for _, s in members])

    pool_x = fw.put(np.ascontiguousarray(h.subset.x), device)
    pool_y = None if h.subset.y is None else fw.put(np.ascontiguousarray(h.subset.y), device)
    draw = fw.fleet_drawer(pool_x, pool_y, rows, per_step, seeds, [0, 0, 0], device)
    fleet_logs = []
    for t in range(STEPS):
        batch, keys = draw(t)
        with c.calling("fleet", "Fleet.step(state, stacked batch, keys)"):
            fleet_state, logs = program.step(fleet_state, batch, keys)
        fleet_logs.append({k: np.array(fw.to_numpy(v)) for k, v in logs.items()})

    alone = []
    for i, (m, s) in enumerate(members):
        sub = h.subset.x[rows[i]]
        y = None if h.subset.y is None else fw.put(np.ascontiguousarray(h.subset.y[rows[i]]), device)
        single_draw = fw.drawer(fw.put(np.ascontiguousarray(sub), device), y, per_step, seeds[i], device)
        for t in range(STEPS):
            batch, key = single_draw(t)
            s, logs = m.train_step(s, batch, key)
            values = fw.scalars(logs)
            c.require(all(k in fleet_logs[t] and close(fleet_logs[t][k][i], v) for k, v in values.items()),
                      "fleet.step", f"member {i}'s logs at step {t + 1} differ from its run alone: "
                                    f"{ {k: float(fleet_logs[t][k][i]) for k in fleet_logs[t]} } vs {values}",
                      "draw each member's noise from its own key in the order train_step does, and give "
                      "every member its own fleet_varying hyperparameters")
        alone.append((m, s))

    keys = fw.fleet_keys(seeds, _FLEET_SALT, device)
    with c.calling("fleet", f"Fleet.sample(state, n={n_samples}, keys)"):
        together = fw.to_numpy(program.sample(fleet_state, n_samples, keys))
    for i, (m, s) in enumerate(alone):
        own = fw.to_numpy(m.sample(s, n_samples, fw.key(seeds[i], _FLEET_SALT, device)))
        c.require(together.shape[1:] == own.shape and close(together[i], own), "fleet.sample",
                  f"member {i}'s samples from Fleet.sample differ from its run's own sample()",
                  "draw each member's sampling noise from its own key, as sample() does")
        with c.calling("fleet", "Fleet.unstack(state, i)"):
            single = program.unstack(fleet_state, i)
        unstacked = fw.to_numpy(m.sample(single, n_samples, fw.key(seeds[i], _FLEET_SALT, device)))
        c.require(close(unstacked, own), "fleet.unstack",
                  f"member {i} unstacked from the fleet samples differently from its run alone",
                  "unstack must return the member's full single-run state (parameters and optimiser)")
    with c.calling("fleet", "Fleet.select(state, [0, 2])"):
        kept = program.select(fleet_state, [0, 2])
    sub_keys = fw.fleet_keys([seeds[0], seeds[2]], _FLEET_SALT, device)
    part = fw.to_numpy(program.sample(kept, n_samples, sub_keys))
    c.require(close(part[1], together[2]), "fleet.select",
              "after select([0, 2]) the second row is not member 2", "keep the members in the order given")
    c.passed("fleet")
