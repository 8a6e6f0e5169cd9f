"""The noising processes of the diffusion/flow family and their samplers, written once
for every framework.

Everything here is either host-side numpy (schedules, per-step coefficient tables)
or plain arithmetic on arrays (``+``, ``*``, ``/`` and scalars), so the same update
runs on torch tensors, JAX arrays (inside ``lax.fori_loop``) and numpy arrays. A
framework supplies only the loop, the random draws and the network: that is how the
PyTorch and JAX models and the ``empirical_denoiser`` oracle share one sampler.

Two processes, both written as x_t = a(t) x + b(t) eps for a clean point x:

- ``flow`` (rectified flow): a = t, b = 1 - t, t from 0 (noise) to 1 (data); the
  network predicts the velocity x - eps.
- ``ddpm`` (variance preserving, discrete): a = sqrt(abar_k), b = sqrt(1 - abar_k),
  k = 0..T-1; the network predicts eps and sees the time (k + 1) / T.

Both map onto the variance-exploding convention x_noisy = x + sigma * eps used by
``denoise``: x_t / a = x + (b / a) eps, so sigma = b / a. For flow
sigma = (1 - t) / t, i.e. t = 1 / (1 + sigma); for ddpm sigma^2 = (1 - abar) / abar,
i.e. abar = 1 / (1 + sigma^2) (see docs/contracts.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .backbones import check_choice

PROCESSES = ("flow", "ddpm")
FLOW_SAMPLERS = ("euler", "heun")
DDPM_SAMPLERS = ("ancestral", "ddim")
TIME_GRIDS = ("uniform", "karras")
SCHEDULES = ("linear", "cosine")


# ---------------------------------------------------------------------- schedules


def ddpm_alphas_bar(schedule: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """abar_k = prod_{j<=k} (1 - beta_j), float64, for k = 0..T-1.

    linear: betas evenly spaced in [beta_start, beta_end] (Ho et al. 2020);
    cosine: abar(k) = f(k + 1) / f(0), f(s) = cos^2(((s / T) + 0.008) / 1.008 * pi / 2),
    betas clipped to 0.999 (Nichol & Dhariwal 2021).
    """
    check_choice(schedule, SCHEDULES, "schedule")
    if T < 1:
        raise ValueError(f"model config 'T' must be >= 1; got {T}")
    if schedule == "linear":
        betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
    else:
        s = 0.008
        f = np.cos(((np.arange(T + 1, dtype=np.float64) / T) + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def ddpm_sigmas(alphas_bar: np.ndarray) -> np.ndarray:
    """The VE noise level of every DDPM timestep: sigma_k = sqrt((1 - abar_k) / abar_k)."""
    return np.sqrt((1.0 - alphas_bar) / alphas_bar)


def ddpm_time_for_sigma(sigma: np.ndarray, alphas_bar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(network time, sqrt(abar)) for VE noise levels ``sigma`` (host numpy, float64).

    abar = 1 / (1 + sigma^2) exactly, so x_t = sqrt(abar) * x_noisy is a VP state at that
    noise level; the timestep is interpolated in log sigma between the schedule's steps
    (clamped to [0, T-1]: outside that range the network extrapolates) and fed as
    (k + 1) / T like in training.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    table = np.log(ddpm_sigmas(alphas_bar))
    k = np.interp(np.log(np.maximum(sigma, 1e-30)), table, np.arange(len(alphas_bar), dtype=np.float64))
    return (k + 1.0) / len(alphas_bar), np.sqrt(1.0 / (1.0 + sigma ** 2))


def sigma_per_example(sigma, n: int) -> np.ndarray:
    """``denoise``'s sigma (a float, or one per example) as a writable float64 (n,) array."""
    return np.array(np.broadcast_to(np.asarray(sigma, dtype=np.float64).reshape(-1), (n,)))


def flow_time_for_sigma(sigma: np.ndarray) -> np.ndarray:
    """t = 1 / (1 + sigma): x_t = t * x_noisy is the flow's state at time t."""
    return 1.0 / (1.0 + np.asarray(sigma, dtype=np.float64))


# ------------------------------------------------------------- prediction algebra
# Plain arithmetic: works on torch, JAX and numpy arrays, and on Python floats.


def flow_clean_estimate(x_t, v, t):
    """E[x | x_t] from a velocity prediction: x_t + (1 - t) v."""
    return x_t + (1 - t) * v


def ddpm_clean_estimate(x_t, eps, sqrt_ab):
    """E[x | x_t] from an epsilon prediction: (x_t - sqrt(1 - abar) eps) / sqrt(abar)."""
    return (x_t - (1 - sqrt_ab ** 2) ** 0.5 * eps) / sqrt_ab


def flow_velocity_from_clean(x_t, x_hat, t):
    """The velocity that the clean estimate implies: (x_hat - x_t) / (1 - t), t < 1."""
    return (x_hat - x_t) / (1 - t)


def ddpm_eps_from_clean(x_t, x_hat, sqrt_ab):
    """The noise that the clean estimate implies: (x_t - sqrt(abar) x_hat) / sqrt(1 - abar)."""
    return (x_t - sqrt_ab * x_hat) / (1 - sqrt_ab ** 2) ** 0.5


def per_example(coef, like):
    """(B,) -> (B, 1, ..., 1), to scale each example of ``like``."""
    return coef.reshape((-1,) + (1,) * (len(like.shape) - 1))


def guided(cond, uncond, weight: float):
    """Classifier-free guidance (Ho & Salimans 2022): (1 + w) cond - w uncond."""
    return cond + weight * (cond - uncond)


# ------------------------------------------------------------------------ samplers


@dataclass(frozen=True)
class SamplerPlan:
    """A sampler as data: per-step coefficient tables and an arithmetic update.

    ``update(x, c, predict, z, clip)`` advances one step; ``c`` maps a table name to
    this step's scalar, ``predict(x, t)`` is the model output at network time ``t``,
    ``z`` is standard normal noise shaped like ``x`` (None unless ``stochastic``) and
    ``clip`` bounds a clean estimate (DDPM only).
    The first ``loop_steps`` steps use ``update``; a remaining last step (Heun's,
    which would need the network at t = 1) uses ``tail``.
    """

    tables: dict
    update: Callable
    loop_steps: int
    tail: Optional[Callable] = None
    stochastic: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return self.loop_steps + (1 if self.tail is not None else 0)

    def at(self, i: int) -> dict:
        """Host float coefficients of step ``i`` (for Python loops)."""
        return {k: float(v[i]) for k, v in self.tables.items()}


def _euler(x, c, predict, z, clip):
    return x + c["dt"] * predict(x, c["t"])


def _heun(x, c, predict, z, clip):
    v = predict(x, c["t"])
    x_euler = x + c["dt"] * v
    return x + (0.5 * c["dt"]) * (v + predict(x_euler, c["t_next"]))


def _ddim(x, c, predict, z, clip):
    eps = predict(x, c["t"])
    x0 = clip((x - c["s1a"] * eps) / c["sa"])
    eps = (x - c["sa"] * x0) / c["s1a"]  # the noise the (clipped) clean estimate implies
    out = c["sap"] * x0 + c["cdir"] * eps
    return out if z is None else out + c["cz"] * z


def _identity(x):
    return x


def flow_time_grid(steps: int, grid: str = "uniform", sigma_min: float = 0.002,
                   sigma_max: float = 80.0, rho: float = 7.0) -> np.ndarray:
    """steps + 1 times from 0 (noise) to 1 (data).

    uniform: evenly spaced. karras: t = 1 / (1 + sigma) at the noise levels of Karras et
    al. 2022 (rho-spaced from sigma_max down to sigma_min), between t = 0 and t = 1;
    the last evaluated noise level is sigma_min, which decides how sharply a sampler
    can land on a single point (the empirical denoiser needs it small).
    """
    check_choice(grid, TIME_GRIDS, "time_grid")
    if steps < 1:
        raise ValueError(f"model config 'sample_steps' must be >= 1; got {steps}")
    if grid == "uniform" or steps == 1:
        return np.linspace(0.0, 1.0, steps + 1)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
    ramp = np.linspace(0.0, 1.0, steps - 1)
    inv = 1.0 / rho
    sig = (sigma_max ** inv + ramp * (sigma_min ** inv - sigma_max ** inv)) ** rho
    return np.concatenate([[0.0], 1.0 / (1.0 + sig), [1.0]])


def flow_plan(steps: int, sampler: str = "euler", grid: str = "uniform", sigma_min: float = 0.002,
              sigma_max: float = 80.0) -> SamplerPlan:
    """Integrate dx/dt = v(x, t) from t = 0 to 1: Euler, or Heun (2nd order) with a final
    Euler step so the network is never evaluated at t = 1 (as in Karras et al. 2022)."""
    check_choice(sampler, FLOW_SAMPLERS, "sampler")
    t = flow_time_grid(steps, grid, sigma_min, sigma_max)
    tables = {"t": t[:-1], "t_next": t[1:], "dt": np.diff(t)}
    if sampler == "euler":
        return SamplerPlan(tables, _euler, loop_steps=steps)
    return SamplerPlan(tables, _heun, loop_steps=steps - 1, tail=_euler)


def ddpm_plan(alphas_bar: np.ndarray, steps: int, eta: float) -> SamplerPlan:
    """Generalised DDIM update (Song et al. 2021) on ``steps`` timesteps spaced evenly
    from T-1 down to 0:

        x' = sqrt(abar') x0_hat + sqrt(1 - abar' - s^2) eps_hat + s z,
        s = eta sqrt((1 - abar') / (1 - abar) (1 - abar / abar')),

    with abar' = 1 after the last step. eta = 1 is DDPM's ancestral sampler with the
    posterior variance beta_tilde (respaced when steps < T); eta = 0 is deterministic
    DDIM. x0_hat = (x - sqrt(1 - abar) eps_hat) / sqrt(abar) goes through the driver's
    ``clip`` (DDPM's clip_denoised: with the cosine schedule abar at T-1 is ~1e-9, and
    an unclipped x0_hat amplifies the network's error by 1 / sqrt(abar)), and eps_hat is
    then recomputed from the clipped x0_hat.
    """
    T = len(alphas_bar)
    if not 1 <= steps <= T:
        raise ValueError(f"model config 'sample_steps' must be in [1, T={T}]; got {steps}")
    ks = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(np.int64))[::-1]
    ab = alphas_bar[ks]
    ab_prev = np.concatenate([alphas_bar[ks[1:]], [1.0]])
    s = eta * np.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    sa, s1a = np.sqrt(ab), np.sqrt(1 - ab)
    tables = {"t": (ks + 1.0) / T, "sa": sa, "s1a": s1a, "sap": np.sqrt(ab_prev),
              "cdir": np.sqrt(np.clip(1 - ab_prev - s ** 2, 0.0, None)), "cz": s}
    return SamplerPlan(tables, _ddim, loop_steps=len(ks), stochastic=bool(eta > 0),
                       extra={"timesteps": ks})


def integrate(plan: SamplerPlan, x, predict: Callable, noise: Callable, loop: Callable, coef: Callable,
              clip: Callable | None = None):
    """Run ``plan`` from the initial noise ``x``.

    The framework provides ``loop(n, body, x)`` (a Python loop or ``lax.fori_loop``),
    ``coef(i)`` (step i's coefficients as scalars it can use), ``noise(i, x)``
    (standard normal like ``x``; called only for stochastic plans) and optionally
    ``clip`` (applied to DDPM's clean estimate; none by default).
    """
    clip = clip or _identity

    def body(i, x):
        return plan.update(x, coef(i), predict, noise(i, x) if plan.stochastic else None, clip)

    x = loop(plan.loop_steps, body, x)
    if plan.tail is not None:
        last = plan.loop_steps
        x = plan.tail(x, coef(last), predict, noise(last, x) if plan.stochastic else None, clip)
    return x


def python_loop(n: int, body: Callable, x: Any) -> Any:
    for i in range(n):
        x = body(i, x)
    return x


# ----------------------------------------------------------------------- processes


class FlowProcess:
    """Rectified flow: x_t = t x + (1 - t) eps; the network predicts v = x - eps at time t."""

    name = "flow"
    samplers = FLOW_SAMPLERS

    def __init__(self, cfg):
        self.cfg = cfg

    def plan(self, sampler: str) -> SamplerPlan:
        c = self.cfg
        return flow_plan(c.sample_steps, sampler, c.time_grid, c.sigma_min, c.sigma_max)

    def at_time(self, t: float) -> tuple[float, float]:
        """(a, b) of x_t = a x + b eps at network time t (host floats)."""
        return t, 1.0 - t

    def at_sigma(self, sigma) -> tuple[np.ndarray, np.ndarray]:
        """(a, network time) for VE noise levels: x_t = a * x_noisy (t = 1 / (1 + sigma))."""
        t = flow_time_for_sigma(sigma)
        return t, t

    @staticmethod
    def target(x, eps):
        return x - eps

    @staticmethod
    def clean(x_t, prediction, a):
        return flow_clean_estimate(x_t, prediction, a)

    @staticmethod
    def prediction(x_t, x_hat, a):
        return flow_velocity_from_clean(x_t, x_hat, a)


class DDPMProcess:
    """DDPM: x_k = sqrt(abar_k) x + sqrt(1 - abar_k) eps; the network predicts eps at
    time (k + 1) / T."""

    name = "ddpm"
    samplers = DDPM_SAMPLERS

    def __init__(self, cfg):
        self.cfg = cfg
        self.alphas_bar = ddpm_alphas_bar(cfg.schedule, cfg.T, cfg.beta_start, cfg.beta_end)
        self.sqrt_ab = np.sqrt(self.alphas_bar)
        self.sqrt_1m_ab = np.sqrt(1.0 - self.alphas_bar)

    def plan(self, sampler: str) -> SamplerPlan:
        check_choice(sampler, DDPM_SAMPLERS, "sampler")
        eta = 1.0 if sampler == "ancestral" else float(self.cfg.ddim_eta)
        return ddpm_plan(self.alphas_bar, self.cfg.sample_steps, eta)

    def at_time(self, t: float) -> tuple[float, float]:
        k = int(round(t * len(self.alphas_bar))) - 1
        return float(self.sqrt_ab[k]), float(self.sqrt_1m_ab[k])

    def at_sigma(self, sigma) -> tuple[np.ndarray, np.ndarray]:
        t, sqrt_ab = ddpm_time_for_sigma(sigma, self.alphas_bar)
        return sqrt_ab, t

    @staticmethod
    def target(x, eps):
        return eps

    @staticmethod
    def clean(x_t, prediction, a):
        return ddpm_clean_estimate(x_t, prediction, a)

    @staticmethod
    def prediction(x_t, x_hat, a):
        return ddpm_eps_from_clean(x_t, x_hat, a)


def make_process(name: str, cfg):
    check_choice(name, PROCESSES, "process")
    return FlowProcess(cfg) if name == "flow" else DDPMProcess(cfg)
