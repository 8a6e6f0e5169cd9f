"""Where the pretrained feature spaces find their weight files, without importing
PyTorch: a suite is validated (missing files reported) before any framework loads.

Not a plugin itself (it registers nothing); the feature modules import it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from benchbase.errors import MissingDataError

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE


def hub_dir() -> Path:
    """``torch.hub.get_dir()``: asked of torch when it is loaded (it may have been set),
    else computed as torch does ($TORCH_HOME, else $XDG_CACHE_HOME/torch, else
    ~/.cache/torch; then hub/)."""
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir())
    home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def find_weights(configured: str, filename: str, space: str, source: str) -> Path:
    """The configured file, else ``<torch hub dir>/checkpoints/<filename>``; if neither
    exists, a MissingDataError naming both places and where to get the file."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        raise MissingDataError(f"feature space '{space}': weights file {path} (eval.features.config.weights) "
                               f"does not exist. {source}")
    path = hub_dir() / "checkpoints" / filename
    if path.is_file():
        return path
    raise MissingDataError(f"feature space '{space}' needs the file {filename}, which is not in the torch hub "
                           f"cache ({path}). Put it there, or set eval.features.config.weights to its path. "
                           f"{source}")
