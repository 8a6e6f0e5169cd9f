"""Configs of the diffusion/flow family, one dataclass per model name shared by its
PyTorch and JAX plugins, so both frameworks read the same hyperparameters and defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .diffusion_process import check_choice

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


@dataclass
class GuidanceFields:
    """Optional class conditioning with classifier-free guidance (Ho & Salimans 2022)."""

    class_conditional: bool = False  # condition on Batch.y (the dataset must have labels)
    label_dropout: float = 0.1  # training: probability of replacing a label by "no label"
    guidance: float = 0.0  # sampling: w in (1 + w) cond - w uncond; 0 = plain conditional


@dataclass
class SamplingFields:
    sample_steps: int = 50  # sampler steps (Heun evaluates the network about twice per step)


@dataclass
class FlowGridFields(SamplingFields):
    """Where the flow sampler puts its steps in t."""

    time_grid: str = "uniform"  # flow: uniform | karras (noise levels of Karras et al. 2022)
    sigma_min: float = 0.002  # flow, karras grid: last noise level evaluated
    sigma_max: float = 80.0  # flow, karras grid: first noise level after pure noise


@dataclass
class DDPMScheduleFields:
    """The DDPM forward process: T steps with a linear or cosine beta schedule."""

    T: int = 1000  # diffusion steps
    schedule: str = "linear"  # linear | cosine
    beta_start: float = 1e-4  # linear schedule: first beta
    beta_end: float = 0.02  # linear schedule: last beta
    ddim_eta: float = 0.0  # sampler ddim: 0 deterministic, 1 equals ancestral


@dataclass
class RectifiedFlowConfig(BackboneFields, GuidanceFields, FlowGridFields):
    lr: float = 1e-3  # Adam learning rate (betas 0.9, 0.999)
    sampler: str = "euler"  # euler | heun


@dataclass
class DDPMConfig(BackboneFields, GuidanceFields, SamplingFields, DDPMScheduleFields):
    lr: float = 1e-3  # Adam learning rate (betas 0.9, 0.999)
    sampler: str = "ancestral"  # ancestral | ddim


def resolve_backbone(cfg: BackboneFields, spec) -> tuple[str, int]:
    """(backbone, width) after ``auto`` and ``width: null``: unet for images, mlp otherwise."""
    check_choice(cfg.backbone, BACKBONES, "backbone")
    kind = cfg.backbone
    if kind == "auto":
        kind = "unet" if spec.modality == "image" and len(spec.shape) == 3 else "mlp"
    width = cfg.width if cfg.width is not None else (UNET_WIDTH if kind == "unet" else MLP_WIDTH)
    if width < 1:
        raise ValueError(f"model config 'width' must be >= 1; got {width}")
    return kind, width


def check_conditioning(cfg: GuidanceFields, spec) -> int:
    """The number of classes the network embeds (0: unconditional)."""
    if not cfg.class_conditional:
        return 0
    if spec.num_classes < 1:
        raise ValueError("model config 'class_conditional: true' needs a labelled dataset "
                         "(the dataset's spec has num_classes = 0)")
    if not 0.0 <= cfg.label_dropout <= 1.0:
        raise ValueError(f"model config 'label_dropout' must be in [0, 1]; got {cfg.label_dropout}")
    return int(spec.num_classes)
