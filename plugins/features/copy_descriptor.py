"""A copy-detection descriptor trained offline on the dataset's own training split,
with the recipe of SSCD (Pizzi et al., CVPR 2022).

Why: memorization metrics in pixel space (or in an autoencoder's latent space) call a
training image shifted by one pixel, mirrored or recoloured "novel", while diffusion
models' replicas are exactly such edits (Somepalli et al., CVPR 2023). SSCD's
published descriptor sees through them, but its weights cannot be downloaded
everywhere and it was trained on photographs at 288x288. This space trains a small
convolutional descriptor the same way on the data at hand:

- two disguised views of every image of a batch (``benchbase_plugins.disguises``:
  resized crops, shifts with any fill, flips, rotations, colour and intensity changes,
  inversion, blur, noise; a fraction of the views blended with another image by mixup
  or cutmix, which makes them copies of both images);
- SSCD's InfoNCE loss (temperature 0.05) over every pair of views that share content,
  against every pair that shares none, plus the KoLeo entropy regularizer (the log of
  the distance to the nearest non-matching descriptor, Sablayrolles et al. 2019) that
  spreads descriptors over the sphere;
- L2-normalised output: cosine similarity is the score, and L2 distance ranks the
  same way (||u - v||^2 = 2 - 2 cos).

The backbone is a plain ResNet-like conv net (3x3 convolutions, batch norm in eval
mode at embedding time, stride-2 stages down to 2x2 or 4x4) with GeM pooling and a
linear projection, so it takes 8x8 digits as well as 32x32 or 64x64 images; training
runs on the run's metric device (the GPU when the model runs on one).

Fitted once on the dataset's full train split (not a run's subset), seeded and
deterministic on the CPU, cached like ``trained_encoder``
(``<results>/cache/encoders/<key>.pt``, atomic writes, ``weights_only=True`` reads),
keyed by the content hash of the fitting data and the config.

The last ``calibration_fraction`` of the split is kept out of training: the
cosine threshold above which two images are called copies (``cosine_copy_threshold``,
read by ``copy_cosine``) is the (1 - ``calibration_fpr``) quantile of those unseen
images' maximum similarity to the fitting images, so a fresh image of the data is
called a copy with probability ``calibration_fpr``, the way SSCD's own threshold is
read off its precision on held-out pairs.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from benchbase import FeatureExtractor, hookimpl
from benchbase.data import content_hash
from benchbase.neighbors import torch_device
from benchbase_plugins.disguises import ViewRecipe
from benchbase_plugins.features.fit_cache import fit_path, read_fit, write_fit
from benchbase_plugins.models.config_checks import (SelfChecked, check_at_least, check_learning_rate,
                                                    check_non_negative, check_positive)


MIX_POSITIVES = ("both", "dominant")
#: stronger blur, zooming out and blending than the default views: a member fitted on them
#: reads downscaled copies 0.108 -> 0.299 uAP and blends 0.199 -> 0.256, shifts and
#: mirrors less well (docs/metrics.md, "Where the gap is")
LOW_PASS_VIEWS = ViewRecipe(max_blur=0.15, p_blur=0.35, zoom_out=0.3, p_mix=0.35)


@dataclass
class CopyDescriptorConfig(SelfChecked):
    dim: int = 128  # descriptor dimension; 256 reads +0.011 uAP on digits (docs/metrics.md)
    width: int = 16  # channels of the first conv; doubled per stage and block (at most 8x)
    steps: int = 3000  # optimiser steps (1500 read uAP 0.668 on digits, 3000 0.706: docs/metrics.md)
    batch_size: int = 128  # images per step
    views_per_image: int = 2  # one milder anchor view and this many minus one strong views of each image; every
    # pair of them is a positive (SSCD: 2; 4 gained nothing at the same compute on digits: docs/metrics.md)
    lr: float = 2e-3  # AdamW, linear warm-up then cosine decay
    weight_decay: float = 1e-4
    temperature: float = 0.05  # InfoNCE (SSCD)
    koleo_weight: float = 1.0  # entropy regularizer weight (10 stalls InfoNCE on digits: docs/metrics.md)
    final_size: int = 8  # stride-2 stages (doubling the channels) until the feature map is at most this size
    blocks: int = 3  # then residual blocks at that size, each doubling the channels (at most 8x width):
    # 3 ends in 8x width = 128 channels, a full-rank 128-d descriptor (2 ends in 64: rank 64, docs/metrics.md)
    photometric_invariance: bool = True  # standardise each image and take |first conv|: exact invariance
    # to brightness, contrast and negation (the rest is learned from the views)
    gem_p: float = 3.0  # generalised-mean pooling exponent
    views: ViewRecipe = field(default_factory=ViewRecipe)  # how strongly the training views are disguised
    mix_positives: str = "both"  # a blended view is a copy of "both" images (SSCD's recipe) or only of the
    # "dominant" one, its larger share, and neither positive nor negative to the other (docs/metrics.md)
    anchor_strength: float = 0.3  # the first view of a pair is this much milder: references are clean images
    warmup_views: float = 0.3  # fraction of the steps over which the views' strength ramps up from 0.2 to 1
    seed: int = 0  # initialisation, views and batch order
    members: int = 1  # > 1: an ensemble of fits seeded seed, seed + 1, ..., each cached on its own, whose
    # unit descriptors are concatenated (members x dim, renormalised): docs/metrics.md measures the gain
    low_pass_members: int = 0  # more members, fitted on ``low_pass_views`` (seeded seed, seed + 1, ...), whose
    # descriptors join the others': they see blends and downscaled copies that the default views trade away.
    # members 5, low_pass_members 4, whitening 0.1 read 0.802 uAP on digits, the target (docs/metrics.md)
    low_pass_views: ViewRecipe = field(default_factory=lambda: replace(LOW_PASS_VIEWS))
    look_alikes: int = 0  # > 1: after the views' warm-up, batches are groups of this many look-alikes (an
    # image and its nearest neighbours in the descriptor being trained), so negatives are near-twins
    look_alike_refresh: int = 100  # steps between recomputing the neighbours
    whitening: float = 0.0  # > 0: learned whitening of the (concatenated) descriptors (Radenovic et al. 2018),
    # shrunk towards the identity by this fraction of the mean eigenvalue; 0.1 read +0.011 uAP for one fit,
    # +0.027 for three members and +0.034 for five (0.785) on digits (docs/metrics.md). Post hoc: fits unchanged
    whitening_views: int = 8  # training views of every fitting image that the whitening is estimated from
    max_train: int = 20000  # fit (and calibrate) on at most the first this many training examples
    calibration_fraction: float = 0.15  # of those, kept out of training to calibrate the threshold
    calibration_fpr: float = 0.01  # fraction of fresh images the calibrated threshold calls copies
    embed_batch: int = 512

    def validate(self) -> None:
        """Each message starts with its key (the suite error puts it on its path); a zero
        count or rate passed validate and failed (or silently skipped) every fit."""
        check_at_least(self, 1, "dim", "width", "steps", "batch_size", "final_size", "max_train",
                       "embed_batch", "members", "look_alike_refresh", "whitening_views")
        check_at_least(self, 0, "blocks", "look_alikes", "low_pass_members")
        check_at_least(self, 2, "views_per_image")
        check_learning_rate(self, "lr")
        check_non_negative(self, "weight_decay", "koleo_weight", "whitening")
        check_positive(self, "temperature", "gem_p")
        if self.mix_positives not in MIX_POSITIVES:
            raise ValueError(f"mix_positives must be one of {', '.join(MIX_POSITIVES)}; "
                             f"got {self.mix_positives!r}")


def build_descriptor(shape: tuple, cfg: CopyDescriptorConfig):
    """The descriptor network for images of ``shape`` (C, H, W), initialised under a
    private seed: output (N, dim), L2-normalised."""
    import torch
    from torch import nn

    class Block(nn.Module):
        """Two 3x3 convs with a residual path; the first may halve the resolution."""

        def __init__(self, c_in: int, c_out: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
            self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    class Descriptor(nn.Module):
        def __init__(self):
            super().__init__()
            c, h, w = shape
            self.stem = nn.Conv2d(c, cfg.width, 3, 1, 1, bias=False)
            layers, width, side = [nn.BatchNorm2d(cfg.width), nn.ReLU(inplace=True)], cfg.width, min(h, w)
            while side > cfg.final_size:  # stride-2 stages down to final_size, doubling the channels
                out = min(2 * width, 8 * cfg.width)
                layers.append(Block(width, out, 2))
                width, side = out, side // 2
            for _ in range(cfg.blocks):  # then blocks at the final size, doubling the channels
                out = min(2 * width, 8 * cfg.width)
                layers.append(Block(width, out, 1))
                width = out
            self.features = nn.Sequential(*layers)
            self.project = nn.Linear(width, cfg.dim)
            self.p = cfg.gem_p
            self.invariant = cfg.photometric_invariance

        def forward(self, x):
            if self.invariant:  # brightness, contrast and negation leave |stem(x)| unchanged
                flat = x.flatten(1)
                mean = flat.mean(1).reshape(-1, 1, 1, 1)
                std = flat.std(1).reshape(-1, 1, 1, 1)
                x = (x - mean) / (std + 1e-3)
                f = self.stem(x).abs()
            else:
                f = self.stem(x)
            f = self.features(f).clamp_min(1e-6)
            pooled = f.pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
            return nn.functional.normalize(self.project(pooled), dim=1)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return Descriptor()


def sscd_loss(z, content, temperature: float, koleo_weight: float, copies_of=None):
    """SSCD's objective on L2-normalised descriptors ``z`` (M, d).

    ``content`` (M, K) marks which source images each view contains (two for a blended
    view). Pairs that share a source are positives, pairs that share none negatives.
    ``copies_of`` (M, K), when given, narrows the positives to pairs that share a
    source marked there (a blend's dominant image only); pairs that share content but
    no such source count as neither.
    InfoNCE: for each view i and positive j, -log(e^{s_ij/T} / (e^{s_ij/T} + sum over
    negatives k of e^{s_ik/T})), averaged over i's positives, then over i. KoLeo:
    -mean_i log ||z_i - z_nn(i)||, nn(i) the most similar negative.
    Returns (loss, InfoNCE, KoLeo) tensors.
    """
    import torch

    sim = z @ z.T
    match = (content.float() @ content.float().T) > 0
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    positive = (match if copies_of is None else (copies_of.float() @ copies_of.float().T) > 0) & ~eye
    negative = ~match
    logits = sim / temperature
    neg_logits = torch.where(negative, logits, torch.finfo(logits.dtype).min)
    neg_lse = torch.logsumexp(neg_logits, dim=1, keepdim=True)
    log_prob = logits - torch.logaddexp(logits, neg_lse)
    infonce = (-(log_prob * positive).sum(1) / positive.sum(1).clamp_min(1)).mean()
    nearest = torch.where(negative, sim, -2.0).amax(dim=1)
    koleo = -torch.log((2 - 2 * nearest).clamp_min(1e-8).sqrt()).mean()
    return infonce + koleo_weight * koleo, infonce, koleo


@dataclass
class FitReport:
    """What fitting cost and how it ended (kept with the cached weights)."""

    seconds: float  # wall clock
    steps: int
    images: int
    final_infonce: float
    final_koleo: float
    cpu_seconds: float = float("nan")  # CPU time of the fit (on a shared machine wall time is mostly waiting)


def nearest_neighbours(net, data, k: int, batch: int):
    """(N, k) indices of each image's k nearest other images under ``net`` (clean
    images, eval mode; the net is put back in training mode)."""
    import torch

    net.eval()
    with torch.no_grad():
        z = torch.cat([net(data[s:s + batch]) for s in range(0, len(data), batch)])
        sim = z @ z.T
        sim.fill_diagonal_(-float("inf"))
        out = sim.topk(min(k, len(data) - 1), dim=1).indices
    net.train()
    return out


def look_alike_batch(neighbours, b: int, gen):
    """``b`` distinct images: random anchors, each followed by its nearest neighbours,
    in order until the batch is full (an image already taken is skipped)."""
    import torch

    n = len(neighbours)
    anchors = torch.randperm(n, generator=gen, device=neighbours.device)
    candidates = torch.cat([anchors[:, None], neighbours[anchors]], dim=1).flatten().cpu().numpy()
    _, first = np.unique(candidates, return_index=True)
    picked = candidates[np.sort(first)][:b]
    return torch.from_numpy(picked).to(neighbours.device)


def fit_descriptor(x: np.ndarray, cfg: CopyDescriptorConfig, device, value_range=(-1.0, 1.0),
                   progress=None) -> tuple[dict, FitReport]:
    """Train the descriptor on images ``x`` (N, C, H, W); returns (state dict on the
    CPU, report). ``progress(step, steps, infonce)`` is called every 100 steps."""
    import torch

    from benchbase_plugins.image_edits import random_views

    start, cpu_start = time.perf_counter(), time.process_time()
    lo, hi = (float(v) for v in value_range)
    recipe = cfg.views
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    net = build_descriptor(tuple(data.shape[1:]), cfg).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, cfg.steps) / max(cfg.steps, 1))))
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    n = len(data)
    b = min(cfg.batch_size, n)
    order, pos = torch.randperm(n, generator=gen, device=device), 0
    infonce = koleo = torch.zeros(())
    hard_from = int(cfg.warmup_views * cfg.steps) if cfg.look_alikes > 1 else cfg.steps
    neighbours = None
    for step in range(cfg.steps):
        if step >= hard_from:
            if (step - hard_from) % cfg.look_alike_refresh == 0:
                neighbours = nearest_neighbours(net, data, cfg.look_alikes - 1, cfg.embed_batch)
            idx = look_alike_batch(neighbours, b, gen)
        else:
            if pos + b > n:
                order, pos = torch.randperm(n, generator=gen, device=device), 0
            idx = order[pos:pos + b]
            pos += b
        batch = data[idx]
        ramp = min(1.0, 0.2 + 0.8 * step / max(1.0, cfg.warmup_views * cfg.steps))
        views = [random_views(batch, recipe, gen, lo, hi, ramp * cfg.anchor_strength)] + [
            random_views(batch, recipe, gen, lo, hi, ramp) for _ in range(cfg.views_per_image - 1)]
        content = torch.zeros((len(views) * b, b), dtype=torch.bool, device=device)
        rows = torch.arange(b, device=device)
        for k in range(len(views)):
            content[k * b + rows, rows] = True
        dominant = content.clone() if cfg.mix_positives == "dominant" else None
        for k, v in enumerate(views):
            mixed = v.partner >= 0  # the partner's share is below one half: the view's own image dominates
            content[k * b + rows[mixed], v.partner[mixed]] = True
        z = net(torch.cat([v.x for v in views]))
        loss, infonce, koleo = sscd_loss(z, content, cfg.temperature, cfg.koleo_weight, dominant)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None and (step + 1) % 100 == 0:
            progress(step + 1, cfg.steps, float(infonce.detach()))
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return state, FitReport(seconds=time.perf_counter() - start, steps=cfg.steps, images=n,
                            final_infonce=float(infonce.detach()), final_koleo=float(koleo.detach()),
                            cpu_seconds=time.process_time() - cpu_start)


def embed_with(net, x: np.ndarray, device, batch: int) -> np.ndarray:
    import torch

    parts = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch], dtype=np.float32)).to(device)
            parts.append(net(xb).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def fitting_split(data: np.ndarray, calibration_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(the images the descriptor is fitted on, the last ``calibration_fraction`` of
    ``data`` kept out to calibrate its threshold)."""
    n_cal = max(1, int(round(len(data) * calibration_fraction))) if calibration_fraction > 0 else 0
    if len(data) - n_cal < 2:
        raise ValueError(f"copy_descriptor needs at least 2 training images besides the {n_cal} kept "
                         f"for calibration; got {len(data)}")
    return data[: len(data) - n_cal], data[len(data) - n_cal:]


def inverse_sqrt(cov: np.ndarray, shrink: float) -> np.ndarray:
    """(cov + shrink * mean eigenvalue * I)^(-1/2): the shrinkage keeps directions that
    the covariance barely sees (a rank-deficient descriptor has some) from blowing up."""
    w, v = np.linalg.eigh(np.asarray(cov, np.float64))
    w = np.clip(w, 0.0, None)
    return (v * (w + shrink * w.mean()) ** -0.5) @ v.T


def training_views(x: np.ndarray, recipe: ViewRecipe, copies: int, value_range, seed: int) -> np.ndarray:
    """``copies`` full-strength views of every image of ``x`` under the descriptor's own
    training recipe (``image_edits.random_views``), stacked copy after copy."""
    import torch

    from benchbase_plugins.image_edits import random_views

    gen = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    lo, hi = (float(v) for v in value_range)
    return np.concatenate([random_views(xt, recipe, gen, lo, hi, 1.0).x.numpy() for _ in range(copies)])


@dataclass
class Whitening:
    """A linear map of unit descriptors, then unit rows again: ``unit((z - mean) @ transform)``."""

    mean: np.ndarray
    transform: np.ndarray

    def __call__(self, z: np.ndarray) -> np.ndarray:
        out = (np.asarray(z, np.float64) - self.mean) @ self.transform
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def learned_whitening(anchors: np.ndarray, views: np.ndarray, shrink: float) -> Whitening:
    """Radenovic et al. (TPAMI 2018): the inverse square root of the covariance of the
    differences between each image's descriptor (``anchors``) and those of its views
    (``views[k * n + i]`` a view of image ``i``), so the directions the training disguises
    move a descriptor along count less; centred on the images' mean."""
    moved = np.asarray(views, np.float64) - np.tile(np.asarray(anchors, np.float64), (len(views) // len(anchors), 1))
    return Whitening(np.asarray(anchors, np.float64).mean(axis=0), inverse_sqrt(moved.T @ moved / len(moved), shrink))


WHITENING_STREAM = 1234  # added to the seed: the views the whitening is estimated from are not the fit's


def calibrated_threshold(fresh: np.ndarray, reference: np.ndarray, fpr: float) -> float:
    """The cosine above which a fraction ``fpr`` of ``fresh`` descriptors (images never
    trained on) have a neighbour among ``reference``: the (1 - fpr) quantile of their
    maximum similarity (both unit rows)."""
    if len(fresh) == 0 or len(reference) == 0:
        return float("nan")
    best = (fresh.astype(np.float64) @ reference.astype(np.float64).T).max(axis=1)
    return float(np.quantile(best, 1.0 - fpr, method="higher"))


class FitProgress:
    """The lines a fit reports (``FeatureExtractor.report``): when it starts, then at most
    every ``every`` seconds (elapsed, InfoNCE, time left), and when it ends: on a CPU
    the fit takes minutes before the first evaluation, which otherwise looks like a hang.
    ``label`` names which fit of several (an ensemble member)."""

    def __init__(self, report, images: int, steps: int, path=None, every: float = 30.0, clock=time.monotonic,
                 label: str = ""):
        self.report, self.steps, self.every, self.clock = report, steps, every, clock
        self.name = f"copy_descriptor ({label})" if label else "copy_descriptor"
        self.start = self.last = clock()
        where = f"; cached in {path}" if path else "; not cached (no cache folder)"
        self._say(f"{self.name}: fitting on {images} training images, {steps} steps{where}")

    def _say(self, text: str) -> None:
        if self.report is not None:
            self.report(text)

    def __call__(self, step: int, steps: int, infonce: float) -> None:
        now = self.clock()
        if now - self.last < self.every or step >= steps:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed / step * (steps - step)
        self._say(f"{self.name}: step {step}/{steps}, InfoNCE {infonce:.2f}, "
                  f"{elapsed / 60:.1f} min so far, about {left / 60:.1f} min left")

    def done(self, fit: FitReport) -> None:
        self._say(f"{self.name}: fitted in {fit.seconds / 60:.1f} min "
                  f"({fit.cpu_seconds:.0f} CPU s), final InfoNCE {fit.final_infonce:.2f}")


@dataclass
class MemberFit:
    """One ensemble member: its config (its own seed) and what its fit cached."""

    config: CopyDescriptorConfig
    fitted: dict  # state, cosine_copy_threshold, fit (a FitReport as a dict)
    net: object  # the loaded network, in eval mode


def _drop_default_shares(key: dict) -> None:
    """Leave the view recipes' blend shares out of a cache key where they are the default,
    so that fits and whitenings cached before the option existed stay valid."""
    for name in ("views", "low_pass_views"):
        if tuple(key[name]["mix_share"]) == ViewRecipe.mix_share:
            key[name].pop("mix_share")


def fit_key(member: CopyDescriptorConfig) -> dict:
    """The fields that decide one member's fit: the ensemble's shape does not (a member is
    one fit, its recipe in its own ``views``), nor does the whitening (applied to fitted
    descriptors), nor do the look-alike options while look-alike batches are off, nor
    ``views_per_image`` at SSCD's two, nor the views' blend shares at their default; leaving
    them out keeps fits cached before those options existed valid."""
    key = asdict(member)
    _drop_default_shares(key)
    for post_hoc in ("members", "low_pass_members", "low_pass_views", "whitening", "whitening_views"):
        key.pop(post_hoc)
    if member.views_per_image == 2:
        key.pop("views_per_image")
    if member.look_alikes <= 1:
        key.pop("look_alikes")
        key.pop("look_alike_refresh")
    return key


def ensemble(config: CopyDescriptorConfig) -> list[CopyDescriptorConfig]:
    """The members' own configs, one fit each: ``members`` on ``views`` seeded seed,
    seed + 1, ..., then ``low_pass_members`` on ``low_pass_views`` seeded the same way."""
    one = replace(config, members=1, low_pass_members=0)
    return [replace(one, seed=config.seed + k) for k in range(config.members)] + \
        [replace(one, seed=config.seed + k, views=config.low_pass_views) for k in range(config.low_pass_members)]


def combined_report(reports: list[dict]) -> dict:
    """The fit report of an ensemble: the members' times summed, the rest per member
    (the first member's, for one member)."""
    if len(reports) <= 1:
        return reports[0] if reports else {}
    out = dict(reports[0])
    for k in ("seconds", "cpu_seconds"):
        out[k] = float(sum(r.get(k, float("nan")) for r in reports))
    out["members"] = reports
    return out


class CopyDescriptor(FeatureExtractor):
    """A copy-detection descriptor (SSCD recipe) trained once, seeded, on the dataset's train split, cached.

    Strongly disguised views of each image (two, or ``views_per_image``: crops, shifts,
    flips, rotations, colour, inversion, blur, noise, mixup/cutmix blends), SSCD's
    InfoNCE (temperature 0.05) plus the KoLeo entropy regularizer, a small residual
    conv net with GeM pooling, ``dim``-d L2-normalised output. Fitted on the first
    ``max_train`` training examples minus the last ``calibration_fraction``, which calibrate
    ``cosine_copy_threshold``: the cosine that a fresh image exceeds with probability
    ``calibration_fpr``. Images of any size; trains on the metric device.
    """

    name = "copy_descriptor"
    modalities = ("image",)
    Config = CopyDescriptorConfig
    version = "2"  # 2: 3000 steps by default (features and fits of version 1 are not reused)

    def __init__(self, config=None):
        super().__init__(config)
        self.nets: list = []  # one network per ensemble member
        self.whitening: Whitening | None = None  # set by prepare() when config.whitening > 0
        self.fitted_on = ""
        self.device = torch_device("cpu")
        self.fit_report: dict = {}

    def prepare(self, train, spec, device) -> None:
        self.device = torch_device(device)
        source = self.train_split if self.train_split is not None else train
        data = np.asarray(source, dtype=np.float32)[: self.config.max_train]
        if data.ndim != 4:
            raise ValueError(f"copy_descriptor takes NCHW images, got training data of shape {data.shape}")
        fit, held = fitting_split(data, self.config.calibration_fraction)
        self.fitted_on = content_hash(data)
        value_range = tuple(getattr(spec, "value_range", (-1.0, 1.0))) if spec is not None else (-1.0, 1.0)
        plan = ensemble(self.config)
        members = [self._member_fit(m, f"member {k + 1} of {len(plan)}" if len(plan) > 1 else "", fit, held,
                                    value_range) for k, m in enumerate(plan)]
        self.nets = [m.net for m in members]
        self.whitening = None
        if len(members) == 1 and self.config.whitening <= 0:
            threshold = float(members[0].fitted["cosine_copy_threshold"])
        else:
            threshold = self._post_hoc(fit, held, value_range)
        self.cosine_copy_threshold = threshold if math.isfinite(threshold) else None
        self.fit_report = combined_report([dict(m.fitted.get("fit", {})) for m in members])

    def _post_hoc(self, fit, held, value_range) -> float:
        """Set the whitening of an ensemble or whitened space and return its calibrated
        threshold, from the cache or estimated now and cached: the estimate embeds every
        fitting image's views with every member (about 30 s on a CPU for nine members),
        which each run of a suite would otherwise repeat."""
        import torch

        cfg = self.config
        key = asdict(cfg)
        _drop_default_shares(key)
        path = fit_path(self.cache_dir, self.fitted_on, {"post_hoc": key}, self.version)
        cached = read_fit(path)
        if cached is not None:
            if "transform" in cached:
                self.whitening = Whitening(cached["mean"].numpy(), cached["transform"].numpy())
            return float(cached["threshold"])
        state: dict = {}
        if cfg.whitening > 0:  # estimated on the stronger views when low-pass members are in (measured)
            recipe = cfg.low_pass_views if cfg.low_pass_members else cfg.views
            views = training_views(fit, recipe, cfg.whitening_views, value_range, cfg.seed + WHITENING_STREAM)
            self.whitening = learned_whitening(self._embed(fit), self._embed(views), cfg.whitening)
            state = {"mean": torch.from_numpy(self.whitening.mean),
                     "transform": torch.from_numpy(self.whitening.transform)}
        threshold = calibrated_threshold(self._embed(held), self._embed(fit), cfg.calibration_fpr)
        write_fit(path, {**state, "threshold": threshold})
        return threshold

    def _member_fit(self, member: CopyDescriptorConfig, label: str, fit, held, value_range) -> MemberFit:
        """One member's fit (weights, calibrated threshold, report), from the cache or
        fitted now and cached."""
        path = fit_path(self.cache_dir, self.fitted_on, fit_key(member), self.version)
        cached = read_fit(path)
        if cached is None:
            say = FitProgress(self.report, len(fit), member.steps, path, label=label)
            state, report = fit_descriptor(fit, member, self.device, value_range, progress=say)
            say.done(report)
            net = self._load(fit.shape[1:], member, state)
            threshold = calibrated_threshold(embed_with(net, held, self.device, member.embed_batch),
                                             embed_with(net, fit, self.device, member.embed_batch),
                                             member.calibration_fpr)
            cached = {"state": state, "cosine_copy_threshold": threshold, "fit": asdict(report)}
            write_fit(path, cached)
            return MemberFit(member, cached, net)
        return MemberFit(member, cached, self._load(fit.shape[1:], member, cached["state"]))

    def _load(self, shape, config, state):
        net = build_descriptor(tuple(shape), config)
        net.load_state_dict(state)
        return net.to(self.device).eval()

    def _embed(self, x):
        parts = [embed_with(net, x, self.device, self.config.embed_batch) for net in self.nets]
        z = parts[0] if len(parts) == 1 else \
            np.concatenate(parts, axis=1) / np.float32(math.sqrt(len(parts)))  # unit rows again
        return z if self.whitening is None else self.whitening(z)

    def cache_key(self) -> dict:
        return {"fitted_on": self.fitted_on}

    def embed(self, x: np.ndarray) -> np.ndarray:
        if not self.nets:
            raise RuntimeError("copy_descriptor.embed called before prepare()")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"copy_descriptor takes NCHW images, got shape {x.shape}")
        return self._embed(x)


@hookimpl
def benchbase_register_features(register):
    register(CopyDescriptor)
