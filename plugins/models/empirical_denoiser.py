"""The empirical optimal denoiser: the exact minimiser of the denoising loss on the
training set, sampled like a diffusion model. It needs no training and reproduces
training points, so it calibrates memorization metrics for the diffusion family.

For the training points y_1..y_N and x_t = a y + b eps (any process, see
``diffusion_process.py``),

    E[y | x_t] = sum_i softmax_i(-||x_t - a y_i||^2 / (2 b^2)) y_i
               = sum_i softmax_i((a <x_t, y_i> - a^2 ||y_i||^2 / 2) / b^2) y_i,

(the ||x_t||^2 term is the same for every i and cancels), which in the VE convention
(a = 1, b = sigma) is D*(x; sigma) = sum_i softmax_i(-||x - y_i||^2 / (2 sigma^2)) y_i.
Its density at noise level sigma is the Gaussian kernel density of the training
points, p_sigma(x) = (1/N) sum_i N(x; y_i, sigma^2 I): ``log_prob`` gives it at
``sigma_min``, the last noise level of the default (Karras) grid, so the oracle is a
memorizer by construction for likelihood-based metrics too.
It is computed in float64 with batched matmuls, in chunks of queries, on the run's
PyTorch device, and plugged into the SAME sampler code as the trained models
(``torch_diffusion_nets.sample_plan``): the flow process converts it to a velocity, the
ddpm process to an epsilon prediction. With the default Karras grid down to
sigma_min = 1e-4 the sampler lands on single training points (mem_ratio ~ 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchbase import Model, hookimpl

from .config_checks import SelfChecked, check_choice
from .diffusion_process import DDPM_SAMPLERS, FLOW_SAMPLERS, PROCESSES, make_process, sigma_per_example
from .diffusion_variants import DDPMScheduleFields, FlowGridFields
from .torch_base import no_grad

if TYPE_CHECKING:
    import torch

# torch and the sampling driver are imported inside the functions: the plugin registers without torch.

CHUNK_ENTRIES = 1 << 24  # float64 logits per chunk of queries (128 MiB)


@dataclass
class EmpiricalDenoiserConfig(SelfChecked, FlowGridFields, DDPMScheduleFields):
    process: str = "flow"  # flow | ddpm: which process' sampler runs the oracle
    sampler: str = "euler"  # flow: euler | heun; ddpm: ancestral | ddim
    time_grid: str = "karras"  # flow: uniform | karras
    sigma_min: float = 1e-4  # flow, karras grid: the last noise level (small: lands on a point)

    def validate(self) -> None:
        FlowGridFields.validate(self)
        DDPMScheduleFields.validate(self)
        check_choice(self.process, PROCESSES, "process")
        check_choice(self.sampler, FLOW_SAMPLERS if self.process == "flow" else DDPM_SAMPLERS, "sampler")


def kernel_log_density(y: torch.Tensor, half_sq: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """log (1/N) sum_i N(x; y_i, sigma^2 I) for queries ``x`` (B, d), float64, in chunks."""
    import torch

    x = x.to(torch.float64)
    n, d = y.shape
    rows = max(1, CHUNK_ENTRIES // max(n, 1))
    const = -math.log(n) - 0.5 * d * math.log(2 * math.pi * sigma ** 2)
    out = []
    for start in range(0, len(x), rows):
        q = x[start:start + rows]
        logits = (q @ y.T - half_sq - 0.5 * (q * q).sum(1, keepdim=True)) / sigma ** 2
        out.append(torch.logsumexp(logits, dim=1) + const)
    return torch.cat(out) if out else x.new_zeros((0,))


def posterior_mean(y: torch.Tensor, half_sq: torch.Tensor, x: torch.Tensor, a, b) -> torch.Tensor:
    """E[y | x = a y + b eps] over the rows of ``y`` (N, d) for queries ``x`` (B, d),
    float64; ``a``, ``b`` are floats or (B, 1) tensors; ``half_sq`` = ||y_i||^2 / 2."""
    import torch

    x = x.to(torch.float64)
    rows = max(1, CHUNK_ENTRIES // max(len(y), 1))
    out = []
    for start in range(0, len(x), rows):
        sl = slice(start, start + rows)
        a_c = a[sl] if torch.is_tensor(a) else a
        b_c = b[sl] if torch.is_tensor(b) else b
        logits = (a_c * (x[sl] @ y.T) - (a_c * a_c) * half_sq) / (b_c * b_c)
        out.append(torch.softmax(logits, dim=1) @ y)
    return torch.cat(out) if out else x.new_zeros((0, y.shape[1]))


class EmpiricalDenoiser(Model):
    """The training set's exact optimal denoiser, sampled with the diffusion samplers (no training).

    D*(x; sigma) = sum_i softmax_i(-||x - y_i||^2 / 2 sigma^2) y_i over the training
    points (float64). ``process`` and ``sampler`` choose which sampler runs it (the same
    code as ddpm / rectified_flow); ``denoise`` is D* itself; ``log_prob`` the kernel
    density of the training points at ``sigma_min``.
    """

    name = "empirical_denoiser"
    family = "oracle"
    framework = "torch"
    Config = EmpiricalDenoiserConfig
    capabilities = frozenset({"denoise", "log_prob"})
    trains = False

    def __init__(self, config=None):
        super().__init__(config)
        self.config.validate()

    def learning_rate(self) -> float | None:
        return None

    def init(self, data, seed: int) -> dict:
        cfg = self.config
        self.process = make_process(cfg.process, cfg)
        self.plan = self.process.plan(cfg.sampler)
        self.shape = tuple(data.spec.shape)
        import torch

        y = torch.as_tensor(data.x_numpy, device=data.device).reshape(len(data.x_numpy), -1).to(torch.float64)
        return {"y": y, "half_sq": 0.5 * (y * y).sum(1)}

    def train_step(self, state, batch, key):
        return state, {}

    @no_grad
    def sample(self, state: dict, n: int, key: torch.Generator) -> torch.Tensor:
        import torch

        from .torch_diffusion_nets import sample_plan

        def predict(x, t):
            a, b = self.process.at_time(t)
            flat = x.reshape(len(x), -1)
            return self.process.prediction(flat, posterior_mean(state["y"], state["half_sq"], flat, a, b),
                                           a).reshape(x.shape)

        out = sample_plan(self.plan, predict, (n, *self.shape), lambda f: f(key), state["y"].device,
                          dtype=torch.float64)
        return out.float()

    @no_grad
    def denoise(self, state: dict, x_noisy: torch.Tensor, sigma) -> torch.Tensor:
        """D*(x_noisy; sigma) (sigma a float or one per example)."""
        import torch

        n = len(x_noisy)
        sig = sigma_per_example(sigma, n)
        b = torch.as_tensor(sig, dtype=torch.float64, device=state["y"].device).reshape(n, 1)
        out = posterior_mean(state["y"], state["half_sq"], x_noisy.reshape(n, -1), 1.0, b)
        return out.to(x_noisy.dtype).reshape(x_noisy.shape)

    @no_grad
    def log_prob(self, state: dict, x: torch.Tensor, key) -> torch.Tensor:
        """The kernel density of the training points at ``sigma_min`` (exact, computed in
        float64), nats."""
        return kernel_log_density(state["y"], state["half_sq"], x.reshape(len(x), -1),
                                  float(self.config.sigma_min)).float()

    def save(self, state) -> bytes:
        return b""  # a function of the training data alone

    def load(self, blob: bytes, data) -> dict:
        return self.init(data, 0)

    def param_count(self, state) -> int:
        return 0


@hookimpl
def benchbase_register_models(register):
    register(EmpiricalDenoiser)
