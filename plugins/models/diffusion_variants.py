"""What each diffusion/flow model is, independent of the framework that runs it: its
config (one dataclass per model name, shared by the PyTorch and JAX plugins, so both
read the same hyperparameters and defaults), and a variant mixin with its name,
family, process and documentation. A plugin class is
``class TorchDDPM(DDPMVariant, TorchDiffusionBase)`` (the pattern of variants.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .config_checks import SelfChecked, check_at_least, check_choice, check_each, check_non_negative, \
    check_learning_rate
from .diffusion_process import DDPM_SAMPLERS, FLOW_SAMPLERS, SCHEDULES, TIME_GRIDS
from .flow_likelihood import LikelihoodFields

BACKBONES = ("auto", "mlp", "unet")
MLP_WIDTH, UNET_WIDTH = 256, 32  # the defaults ``width: null`` stands for


@dataclass
class BackboneFields:
    """The network: an MLP for vectors, a U-Net for images (``auto`` picks by modality)."""

    backbone: str = "auto"  # auto | mlp | unet
    width: Optional[int] = None  # model-size knob: mlp hidden units (256) | unet base channels (32)
    depth: int = 3  # mlp: hidden layers
    time_features: int = 32  # mlp: sinusoidal features of t fed with x (and the class embedding size)
    channel_mult: Tuple[int, ...] = (1, 2, 4)  # unet: channels per level, as multiples of width
    res_blocks: int = 2  # unet: residual blocks per level (down path; up path has one more)
    attn_resolutions: Tuple[int, ...] = (16,)  # unet: self-attention at these feature-map sizes
    mid_attention: bool = True  # unet: self-attention in the middle block
    norm_groups: int = 8  # unet: GroupNorm groups (gcd with the channel count)

    def validate(self) -> None:
        check_choice(self.backbone, BACKBONES, "backbone")
        check_at_least(self, 1, "depth", "time_features", "res_blocks", "norm_groups")
        if self.width is not None and self.width < 1:
            raise ValueError(f"width must be >= 1 (or null for the default), got {self.width}")
        check_each(self, "channel_mult", 1)


@dataclass
class GuidanceFields:
    """Optional class conditioning with classifier-free guidance (Ho & Salimans 2022)."""

    class_conditional: bool = False  # condition on Batch.y (the dataset must have labels)
    label_dropout: float = 0.1  # training: probability of replacing a label by "no label"
    guidance: float = 0.0  # sampling: w in (1 + w) cond - w uncond; 0 = plain conditional

    def validate(self) -> None:
        if not 0.0 <= self.label_dropout <= 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1], got {self.label_dropout}")


@dataclass
class SamplingFields:
    sample_steps: int = 50  # sampler steps (Heun evaluates the network about twice per step)

    def validate(self) -> None:
        check_at_least(self, 1, "sample_steps")


@dataclass
class FlowGridFields(SamplingFields):
    """Where the flow sampler puts its steps in t."""

    time_grid: str = "uniform"  # flow: uniform | karras (noise levels of Karras et al. 2022)
    sigma_min: float = 0.002  # flow, karras grid: last noise level evaluated
    sigma_max: float = 80.0  # flow, karras grid: first noise level after pure noise

    def validate(self) -> None:
        super().validate()
        check_choice(self.time_grid, TIME_GRIDS, "time_grid")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min must lie in (0, sigma_max), got sigma_min {self.sigma_min}, "
                             f"sigma_max {self.sigma_max}")


@dataclass
class DDPMScheduleFields:
    """The DDPM forward process: T steps with a linear or cosine beta schedule."""

    T: int = 1000  # diffusion steps
    schedule: str = "linear"  # linear | cosine
    beta_start: float = 1e-4  # linear schedule: first beta
    beta_end: float = 0.02  # linear schedule: last beta
    ddim_eta: float = 0.0  # sampler ddim: 0 deterministic, 1 equals ancestral

    def validate(self) -> None:
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_at_least(self, 1, "T")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError(f"beta_start must lie in (0, beta_end] and beta_end in [beta_start, 1), got beta_start "
                             f"{self.beta_start}, beta_end {self.beta_end}")
        check_non_negative(self, "ddim_eta")


@dataclass
class RectifiedFlowConfig(SelfChecked, BackboneFields, GuidanceFields, FlowGridFields, LikelihoodFields):
    lr: float = 1e-3  # Adam learning rate (betas 0.9, 0.999)
    sampler: str = "euler"  # euler | heun

    def validate(self) -> None:
        for base in (BackboneFields, GuidanceFields, FlowGridFields, LikelihoodFields):
            base.validate(self)
        check_choice(self.sampler, FLOW_SAMPLERS, "sampler")
        check_learning_rate(self, "lr")


@dataclass
class DDPMConfig(SelfChecked, BackboneFields, GuidanceFields, SamplingFields, DDPMScheduleFields):
    lr: float = 1e-3  # Adam learning rate (betas 0.9, 0.999)
    sampler: str = "ancestral"  # ancestral | ddim
    clip_x0: bool = True  # sampling: clip the clean estimate to the dataset's value range

    def validate(self) -> None:
        for base in (BackboneFields, GuidanceFields, SamplingFields, DDPMScheduleFields):
            base.validate(self)
        check_choice(self.sampler, DDPM_SAMPLERS, "sampler")
        check_learning_rate(self, "lr")
        if self.sample_steps > self.T:
            raise ValueError(f"sample_steps must be <= T ({self.T}), got {self.sample_steps}")


def resolve_backbone(cfg: BackboneFields, spec) -> tuple[str, int]:
    """(backbone, width) after ``auto`` and ``width: null``: unet for images, mlp otherwise."""
    kind = cfg.backbone
    if kind == "auto":
        kind = "unet" if spec.modality == "image" and len(spec.shape) == 3 else "mlp"
    width = cfg.width if cfg.width is not None else (UNET_WIDTH if kind == "unet" else MLP_WIDTH)
    return kind, width


def backbone_args(cfg, spec) -> tuple[str, tuple]:
    """("mlp", ConditionalMLP arguments) or ("unet", UNet arguments): one recipe for
    the networks of both frameworks (torch_diffusion / jax_diffusion)."""
    kind, width = resolve_backbone(cfg, spec)
    classes = check_conditioning(cfg, spec)
    if kind == "mlp":
        return kind, (spec.dim, width, cfg.depth, cfg.time_features, classes)
    return kind, (tuple(spec.shape), width, tuple(cfg.channel_mult), cfg.res_blocks,
                  tuple(cfg.attn_resolutions), cfg.mid_attention, classes, cfg.norm_groups)


def clip_range(cfg, spec) -> tuple[float, float] | None:
    """The bounds of DDPM's clean estimates while sampling (``clip_x0``): the dataset's
    value range; None for flow models and with clip_x0 off."""
    if not getattr(cfg, "clip_x0", False):
        return None
    return float(spec.value_range[0]), float(spec.value_range[1])


def check_conditioning(cfg: GuidanceFields, spec) -> int:
    """The number of classes the network embeds (0: unconditional)."""
    if not cfg.class_conditional:
        return 0
    if spec.num_classes < 1:
        raise ValueError("model config 'class_conditional: true' needs a labelled dataset "
                         "(the dataset's spec has num_classes = 0)")
    return int(spec.num_classes)


# ------------------------------------------------------------------------ variants


class _Validated:
    def __init__(self, config=None):
        super().__init__(config)
        self.config.validate()


class RectifiedFlowVariant(_Validated):
    """Rectified flow (velocity prediction), MLP or U-Net; Euler or Heun sampling; optional CFG.

    One step spends one batch: t ~ U(0, 1), x0 ~ N(0, I), x_t = t x + (1 - t) x0, MSE
    of the predicted velocity to x - x0, one Adam step (Liu et al. 2023; Lipman et al.
    2023). Sampling integrates dx/dt = v from t = 0 to 1 from the core's fixed noise.
    ``denoise(x_noisy, sigma)`` uses t = 1 / (1 + sigma): x_t = t x_noisy, and
    E[x | x_t] = x_t + (1 - t) v(x_t, t). ``log_prob`` integrates the probability-flow
    ODE (the velocity field itself) back from the data to the noise with the exact
    divergence or Hutchinson's estimate (flow_likelihood.py; the ``loglik_*`` config),
    in nats; a class-conditional model is scored with the "no label" input.
    """

    name = "rectified_flow"
    family = "flow"
    Config = RectifiedFlowConfig
    capabilities = frozenset({"heldout_loss", "denoise", "log_prob", "fleet"})
    fleet_varying = frozenset({"lr"})
    process_name = "flow"


class DDPMVariant(_Validated):
    """DDPM (epsilon prediction), linear/cosine betas, ancestral or DDIM sampling; optional CFG.

    One step spends one batch: k ~ U{0..T-1}, eps ~ N(0, I), x_k = sqrt(abar_k) x +
    sqrt(1 - abar_k) eps, MSE of the predicted eps, one Adam step (Ho et al. 2020); the
    network sees the time (k + 1) / T. ``denoise(x_noisy, sigma)`` uses
    abar = 1 / (1 + sigma^2): x_k = sqrt(abar) x_noisy at the timestep interpolated in
    log sigma, E[x | x_k] = (x_k - sqrt(1 - abar) eps_hat) / sqrt(abar).
    """

    name = "ddpm"
    family = "diffusion"
    Config = DDPMConfig
    capabilities = frozenset({"heldout_loss", "denoise", "fleet"})
    fleet_varying = frozenset({"lr"})
    process_name = "ddpm"
