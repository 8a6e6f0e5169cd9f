"""Disguised memorizers: oracles that return training images edited so that pixel
distances no longer see the copy.

Diffusion models' replicas are rarely exact (Somepalli et al. 2023): shifted,
cropped, mirrored, recoloured or recomposed training images. These oracles pin what
a memorization metric in a given feature space can and cannot see:

- ``augmented_copy``: a training image under one named disguise of
  ``benchbase_plugins.disguises`` (``shift``, ``hflip``, ``crop``, ``recolour``,
  ``rotate``, ``blur``, ``invert``, ``combo``, ...) at a chosen ``strength``;
- ``blend_copy``: a mix of two training images (mixup with ``weight`` on the first,
  or a cutmix box of ``1 - weight`` of the area).

Like the other oracles they train nothing and are evaluated once, at step 0; the
disguise is drawn from the sampling key, so a run repeats exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import hookimpl
from benchbase_plugins.disguises import DISGUISES, disguise

from benchbase_plugins.models.memorizers import pick_training_points
from benchbase_plugins.models.oracles import Oracle


def _torch_key(key: np.random.Generator):
    import torch

    return torch.Generator().manual_seed(int(key.integers(0, 2**63 - 1)))


@dataclass
class AugmentedCopyConfig:
    disguise: str = "shift"  # one of benchbase_plugins.disguises.DISGUISES
    strength: float = 1.0  # 1: the strength the disguise's description gives; 0: an exact copy for most


class AugmentedCopy(Oracle):
    """Training images under one disguise (shift, flip, crop-and-rescale, recolour, ...) at a chosen strength.

    ``disguise`` names an edit of ``benchbase_plugins.disguises`` (``shift``: moved by
    at least 1 px and up to strength x 25% of the side; ``hflip``; ``crop``: 1 - 0.5
    strength of the area rescaled to full size; ``recolour``: gamma, contrast,
    brightness and saturation; ``rotate``; ``blur``; ``invert``; ``combo``; ...).
    Images only. Edits that need a second image take another training image.
    """

    name = "augmented_copy"
    modalities = ("image",)
    Config = AugmentedCopyConfig

    def __init__(self, config=None):
        super().__init__(config)
        if self.config.disguise not in DISGUISES:
            raise ValueError(f"disguise must be one of {', '.join(DISGUISES)}; "
                             f"got '{self.config.disguise}'")
        if not 0.0 <= self.config.strength <= 4.0:
            raise ValueError(f"strength must lie in [0, 4], got {self.config.strength}")

    def init(self, data, seed):
        if len(data.spec.shape) != 3:
            raise ValueError(f"augmented_copy needs images (C, H, W); the data has shape {data.spec.shape}")
        return {"x": data.x_numpy, "range": tuple(float(v) for v in data.spec.value_range)}

    def sample(self, state, n, key: np.random.Generator):
        import torch

        x = state["x"]
        picked = torch.from_numpy(np.ascontiguousarray(x[pick_training_points(len(x), n, key)], dtype=np.float32))
        partners = torch.from_numpy(np.ascontiguousarray(x[key.integers(0, len(x), n)], dtype=np.float32))
        lo, hi = state["range"]
        return disguise(self.config.disguise, picked, partners, self.config.strength, _torch_key(key), lo,
                        hi).numpy()


@dataclass
class BlendCopyConfig:
    weight: float = 0.5  # share of the first image (mixup) or of the area it keeps (cutmix)
    mode: str = "mixup"  # mixup | cutmix


class BlendCopy(Oracle):
    """A blend of two different training images: mixup (weight on the first) or a cutmix box.

    ``mixup``: weight x a + (1 - weight) x b; ``cutmix``: a with a box of b covering
    1 - weight of the area pasted in at a random place. Works on vectors (mixup only)
    and images.
    """

    name = "blend_copy"
    Config = BlendCopyConfig

    def __init__(self, config=None):
        super().__init__(config)
        if self.config.mode not in ("mixup", "cutmix"):
            raise ValueError(f"mode must be one of mixup, cutmix, got '{self.config.mode}'")
        if not 0.0 <= self.config.weight <= 1.0:
            raise ValueError(f"weight must lie in [0, 1], got {self.config.weight}")

    def init(self, data, seed):
        if self.config.mode == "cutmix" and len(data.spec.shape) != 3:
            raise ValueError("blend_copy mode 'cutmix' needs images (C, H, W); use mode 'mixup' for vectors")
        return {"x": data.x_numpy}

    def sample(self, state, n, key: np.random.Generator):
        import torch

        from benchbase_plugins.image_edits import blend, paste_box

        x = state["x"]
        first = pick_training_points(len(x), n, key)
        second = (first + key.integers(1, max(len(x), 2), n)) % len(x)  # another image when there is one
        a = torch.from_numpy(np.ascontiguousarray(x[first], dtype=np.float32))
        b = torch.from_numpy(np.ascontiguousarray(x[second], dtype=np.float32))
        w = torch.full((n,), float(self.config.weight))
        if self.config.mode == "mixup":
            flat_a, flat_b = a.reshape(n, 1, 1, -1), b.reshape(n, 1, 1, -1)
            return blend(flat_a, flat_b, w).reshape(a.shape).numpy()
        return paste_box(a, b, 1 - w, _torch_key(key)).numpy()


@hookimpl
def benchbase_register_models(register):
    register(AugmentedCopy)
    register(BlendCopy)
