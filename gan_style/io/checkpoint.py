"""Checkpoint files: atomic writes and safe reads.

A checkpoint is plain data (dicts, lists, numbers, strings and tensors), so it loads with
``torch.load(weights_only=True)``: a file from a stranger cannot run code when opened. It is
written to a temporary file in the same folder and moved into place with ``os.replace``, so
a crash or Ctrl-C during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import torch

from .atomic import write_atomic

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` via a temporary file, fsync and ``os.replace``."""
    return write_atomic(path, lambda f: torch.save(obj, f), binary=True, fsync=True)


def load_safe(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors naming the file.

    A pickle that would construct arbitrary objects (e.g. call ``os.system``) is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unpickling failed"
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(
                f"{path}: refused to load: the file contains Python objects other than tensors and plain data, "
                "which could run code when unpickled; only load checkpoints you trust, re-saved as plain state_dicts"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError, struct.error) as e:  # struct: a short non-pickle file
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt? ({first})") from None
