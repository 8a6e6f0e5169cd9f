"""The exact log-likelihood of a flow model by its probability-flow ODE, written once
for every framework (the arithmetic of ``diffusion_process.py``'s samplers).

Rectified flow moves noise x_0 ~ N(0, I) to data x_1 along dx/dt = v(x, t), t from 0
to 1; the network's velocity *is* the probability-flow ODE. By the instantaneous
change of variables (Chen et al. 2018), along a trajectory

    d log p_t(x_t) / dt = -div v(x_t, t),

so log p_1(x) = log N(x_0; 0, I) - int_0^1 div v(x_t, t) dt, where x_t solves the ODE
backwards from x_1 = x. We integrate the augmented state (x, a) with
d(x, a)/dt = (v, div v) from t = 1 down to t = 0 (dt < 0), a(1) = 0, so that
a(0) = -int_0^1 div v dt and log p_1(x) = log N(x_0) + a(0).

The divergence is exact (the trace of the Jacobian, one forward-mode JVP per
dimension: cheap in 2-D and affordable in 64-D) or Hutchinson's unbiased estimate
eps^T J eps with Rademacher probes drawn once per solve (Grathwohl et al. 2019: the
same probes at every step keep the estimate an unbiased one of the integral).
Solvers: Euler, Heun and classical RK4 on a uniform grid, fixed steps; the error
against the exact density of a flow whose velocity is known in closed form is
measured in tests/test_flow_likelihood.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchbase.contracts import added

from .config_checks import check_at_least, check_choice

LOGLIK_SOLVERS = ("euler", "heun", "rk4")
DIVERGENCES = ("exact", "hutchinson")


@dataclass
class LikelihoodFields:
    """How ``log_prob`` integrates the probability-flow ODE (not used in training)."""

    loglik_steps: int = added(64)  # fixed solver steps from t = 1 to t = 0
    loglik_solver: str = added("rk4")  # euler | heun | rk4 (network calls per step: 1, 2, 4)
    loglik_divergence: str = added("exact")  # exact (one JVP per dimension) | hutchinson (one JVP per probe)
    loglik_probes: int = added(1)  # hutchinson: Rademacher probes per example, fixed through the solve
    loglik_chunk: int = added(256)  # examples per solve (exact divergence holds dim x chunk network inputs)

    def validate(self) -> None:
        check_choice(self.loglik_solver, LOGLIK_SOLVERS, "loglik_solver")
        check_choice(self.loglik_divergence, DIVERGENCES, "loglik_divergence")
        check_at_least(self, 1, "loglik_steps", "loglik_probes", "loglik_chunk")


def ode_times(steps: int) -> np.ndarray:
    """steps + 1 times from 1 (data) down to 0 (noise), uniform."""
    return np.linspace(1.0, 0.0, steps + 1)


def _axpy(state, h, deriv):
    """state + h * deriv for (x, a) pairs (plain arithmetic on any array type)."""
    return state[0] + h * deriv[0], state[1] + h * deriv[1]


def solver_step(solver: str, field: Callable, state, t: float, h: float):
    """One step of ``solver`` on d(x, a)/dt = field(x, t) from t to t + h (h < 0 here)."""
    if solver == "euler":
        return _axpy(state, h, field(state[0], t))
    if solver == "heun":
        k1 = field(state[0], t)
        k2 = field(state[0] + h * k1[0], t + h)
        return state[0] + 0.5 * h * (k1[0] + k2[0]), state[1] + 0.5 * h * (k1[1] + k2[1])
    k1 = field(state[0], t)
    k2 = field(state[0] + 0.5 * h * k1[0], t + 0.5 * h)
    k3 = field(state[0] + 0.5 * h * k2[0], t + 0.5 * h)
    k4 = field(state[0] + h * k3[0], t + h)
    return (state[0] + (h / 6.0) * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]),
            state[1] + (h / 6.0) * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]))


def integrate_loglik(field: Callable, x, a0, steps: int, solver: str, loop: Callable | None = None):
    """Solve the augmented ODE from t = 1 to 0: returns (x_0, a(0)).

    ``field(x, t) -> (v, div)`` with x flattened (B, D) and div (B,); ``loop(n, body,
    state)`` is a Python loop or ``lax.fori_loop`` (then ``t`` arrives traced).
    """
    check_choice(solver, LOGLIK_SOLVERS, "loglik_solver")
    h = -1.0 / steps

    def body(i, state):
        return solver_step(solver, field, state, 1.0 + i * h, h)

    if loop is None:
        state = (x, a0)
        for i in range(steps):
            state = body(i, state)
        return state
    return loop(steps, body, (x, a0))


def standard_normal_logpdf_const(dim: int) -> float:
    """-D/2 log(2 pi): add -||x_0||^2 / 2 per example to get log N(x_0; 0, I)."""
    return -0.5 * dim * math.log(2 * math.pi)
