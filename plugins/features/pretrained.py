"""Feature spaces from pretrained image networks, loaded from local files only.

Nothing is downloaded at run time: each network's file is looked up at a configured
path or in the torch hub cache (``torch.hub.get_dir()/checkpoints``), and a missing
file is one MissingDataError that says which file, where to put it and where to get
it. ``inception`` is InceptionV3 pool3 (FID's space) built in plain PyTorch for the
pytorch-fid weights (loaded with ``weights_only=True``); ``sscd`` (copy detection,
Pizzi et al. 2022) and ``dinov2`` (Oquab et al. 2023) are TorchScript files. Only load
files you trust: a TorchScript archive carries code.

Images arrive NCHW in [-1, 1]; each space converts grey to RGB, resizes and
normalises as its network expects.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchbase import FeatureExtractor, hookimpl
from benchbase.contracts import location
from benchbase.errors import MissingDataError
from benchbase.neighbors import torch_device
from benchbase_plugins.models.config_checks import SelfChecked, check_at_least

from .weights import FID_WEIGHTS_FILE, FID_WEIGHTS_URL, find_weights


def to_rgb(x, space: str):
    """(N, C, H, W) torch images -> 3 channels (grey repeated); other channel counts fail."""
    if x.ndim != 4:
        raise ValueError(f"feature space '{space}' takes NCHW images, got shape {tuple(x.shape)}")
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"feature space '{space}' takes 1- or 3-channel images, got {x.shape[1]} channels")
    return x


def resize(x, size: int):
    """Bilinear resize to size x size (antialiased when shrinking, as PIL would)."""
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == (size, size):
        return x
    shrink = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalise(x):
    """[-1, 1] images -> [0, 1] -> ImageNet mean/std normalisation (SSCD, DINOv2)."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype)[None, :, None, None]
    return ((x + 1) / 2 - mean) / std


class _NetworkSpace(FeatureExtractor):
    """A frozen network applied in batches on the metric device."""

    modalities = ("image",)

    def __init__(self, config=None):
        super().__init__(config)
        self.net = None
        self.device = "cpu"

    def prepare(self, train, spec, device) -> None:
        self.device = torch_device(device)
        if self.net is None:
            self.net = self.load().to(self.device).eval()

    def weights(self) -> Path:
        """The weights file (MissingDataError when it is not on the machine)."""
        raise NotImplementedError

    def check_available(self) -> None:
        self.weights()

    def load(self):
        raise NotImplementedError

    def preprocess(self, x):
        raise NotImplementedError

    def embed(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.net is None:
            self.prepare(None, None, self.device)
        parts = []
        with torch.no_grad():
            for s in range(0, len(x), self.config.batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[s:s + self.config.batch_size], dtype=np.float32))
                out = self.net(self.preprocess(xb.to(self.device)))
                parts.append(self.postprocess(out).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def postprocess(self, out):
        return out.reshape(len(out), -1)


class BatchChecked(SelfChecked):
    """A network space's Config: a batch of 0 images embedded nothing and every run failed,
    so ``batch_size`` is refused at ``validate``."""

    def validate(self) -> None:
        check_at_least(self, 1, "batch_size")


@dataclass
class InceptionConfig(BatchChecked):
    weights: str = location("")  # path to pt_inception-2015-12-05-6726825d.pth; "" = torch hub cache
    batch_size: int = 64


class Inception(_NetworkSpace):
    """InceptionV3 pool3 features (2048-d), the FID space, from pytorch-fid's weights file.

    The network (TensorFlow's 2015-12-05 Inception with pytorch-fid's FID patches)
    is implemented in plain PyTorch and loads ``pt_inception-2015-12-05-6726825d.pth``
    with ``torch.load(weights_only=True)``. Images: grey -> RGB, bilinear resize to
    299x299 (pytorch-fid's resize), values kept in [-1, 1] (pytorch-fid's input
    normalisation). fd in this space is FID.
    """

    name = "inception"
    Config = InceptionConfig

    def weights(self) -> Path:
        return find_weights(self.config.weights, FID_WEIGHTS_FILE, self.name,
                            f"Download it from {FID_WEIGHTS_URL} (pytorch-fid's FID Inception weights).")

    def load(self):
        import torch

        from .inception_net import FIDInceptionV3, load_fid_weights

        path = self.weights()
        net = FIDInceptionV3()
        load_fid_weights(net, torch.load(path, map_location="cpu", weights_only=True), str(path))
        return net

    def preprocess(self, x):
        return resize(to_rgb(x, self.name), 299)


@dataclass
class TorchScriptConfig(BatchChecked):
    weights: str = location("")  # path to the TorchScript file; "" = <torch hub dir>/checkpoints/<default file>
    batch_size: int = 64
    normalize: bool = True  # L2-normalise the descriptors (cosine similarity = dot product)


class _TorchScriptSpace(_NetworkSpace):
    filename: str = ""
    source: str = ""
    size: int = 224

    def weights(self) -> Path:
        return find_weights(self.config.weights, self.filename, self.name, self.source)

    def load(self):
        import torch

        path = self.weights()
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is how these ship
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise MissingDataError(f"feature space '{self.name}': {path} is not a loadable TorchScript "
                                   f"file ({type(exc).__name__}: {exc}). {self.source}") from None

    def preprocess(self, x):
        return imagenet_normalise(resize(to_rgb(x, self.name), self.size))

    def postprocess(self, out):
        import torch

        out = out.reshape(len(out), -1)
        return torch.nn.functional.normalize(out, dim=1) if self.config.normalize else out


class SSCD(_TorchScriptSpace):
    """SSCD copy-detection descriptors (Pizzi et al. 2022) from a local TorchScript file.

    Default file ``sscd_disc_mixup.torchscript.pt`` (512-d), as Somepalli et al. 2023
    use for copy_cosine, whose threshold here is theirs (0.5). Images: grey -> RGB,
    resize to 288x288, ImageNet normalisation; descriptors L2-normalised.
    """

    name = "sscd"
    Config = TorchScriptConfig
    cosine_copy_threshold = 0.5  # Somepalli et al. 2023 (SSCD's README: 0.75 for 90% precision on DISC21)
    filename = "sscd_disc_mixup.torchscript.pt"
    size = 288
    source = ("Download it from https://dl.fbaipublicfiles.com/sscd-copy-detection/"
              "sscd_disc_mixup.torchscript.pt (facebookresearch/sscd-copy-detection).")


@dataclass
class DINOv2Config(TorchScriptConfig):
    normalize: bool = False  # raw class tokens, as FD_DINOv2 (Stein et al. 2023) uses them


class DINOv2(_TorchScriptSpace):
    """DINOv2 ViT class-token embeddings (Oquab et al. 2023) from a local TorchScript export.

    Default file ``dinov2_vitl14.torchscript.pt``, exported once with network access:
    ``torch.jit.trace(torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14').eval(),
    torch.zeros(1, 3, 224, 224)).save(path)``. Images: grey -> RGB, resize to
    224x224, ImageNet normalisation; raw embeddings (``normalize: true`` for cosine).
    """

    name = "dinov2"
    Config = DINOv2Config
    filename = "dinov2_vitl14.torchscript.pt"
    size = 224
    source = ("Export it once where the network is reachable: torch.jit.trace(torch.hub.load("
              "'facebookresearch/dinov2', 'dinov2_vitl14').eval(), torch.zeros(1, 3, 224, 224))"
              ".save('dinov2_vitl14.torchscript.pt').")


@hookimpl
def benchbase_register_features(register):
    register(Inception)
    register(SSCD)
    register(DINOv2)
