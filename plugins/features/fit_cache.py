"""Where a learned feature space keeps what it fitted: ``<results>/cache/encoders/``.

A fit is keyed by the content hash of the data it was fitted on, the space's config
and version, written atomically and read back with ``torch.load(weights_only=True)``
(tensors and plain values only: nothing in the cache can run code). A file that is
absent, unreadable or cannot be written costs a refit, never a failure.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path


def fit_path(cache_dir: str | None, data_hash: str, config, version: str) -> Path | None:
    """The cache file of a fit of ``config`` (a dataclass, or the dict of the fields
    that decide the fit) on data with ``data_hash``; None without a cache folder."""
    if not cache_dir:
        return None
    fields = config if isinstance(config, dict) else asdict(config)
    key = json.dumps({"data": data_hash, "config": fields, "version": version}, sort_keys=True)
    return Path(cache_dir) / "encoders" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"


def read_fit(path: Path | None) -> dict | None:
    """A fit written by ``write_fit``, or None (absent or unreadable: the caller refits)."""
    import torch

    if path is None or not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt cache file is refitted
        return None


def write_fit(path: Path | None, state: dict) -> None:
    """Save ``state`` (tensors and plain values) to ``path`` atomically."""
    import torch

    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(state, buf)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)
    except OSError:
        pass  # a cache is an optimisation, never a failure
