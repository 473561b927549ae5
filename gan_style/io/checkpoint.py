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

from ..domains import dataset_name, default_direction, domain_names
from .atomic import write_atomic

# 3: each generator's record names its kind (``kind``: "resnet", "unsb"; nets/kinds.py).
# 2: checkpoints describe their generators (``generators``: direction -> network, domains, arch).
# 1: v0.1 (commit 81f647a). ``upgrade_checkpoint`` adds what the current version records.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


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


def upgrade_checkpoint(ckpt: dict) -> dict:
    """A training checkpoint in the current format: version 1 gets its ``generators`` description
    from what v0.1 wrote (its networks G_A = A -> B and G_B = B -> A, or one network G trained in
    ``data.direction``, whose default came from the dataset's name; the architecture is left out:
    readers take it from the tensors); versions 1 and 2 held ResNet generators only, so their
    records get ``kind: resnet``. Other versions raise ``CheckpointError``."""
    version = ckpt.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"not a gan_style training checkpoint of a known format (format {version!r}, "
                              f"this version reads {', '.join(map(str, READABLE_VERSIONS))})")
    if version == FORMAT_VERSION:
        return ckpt
    if version == 2:
        described = {d: {"kind": "resnet"} | record for d, record in ckpt["generators"].items()}
        return ckpt | {"format_version": FORMAT_VERSION, "generators": described}
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    dataset = dataset_name(data.get("dataset"), data.get("root"))
    models = ckpt.get("models", {})
    if "G" in models:
        nets = {data.get("direction") or default_direction(dataset): "G"}
    else:
        nets = {"AtoB": "G_A", "BtoA": "G_B"}
    kinds = {net: ("resnet", None) for net in nets.values()}
    return ckpt | {"format_version": FORMAT_VERSION, "generators": describe_generators(nets, domain_names(dataset), kinds)}


def describe_generators(nets: dict[str, str], domains: tuple[str, str], kinds: dict[str, tuple[str, dict | None]],
                        intensity: dict[str, dict | None] | None = None, trained_at: str | None = None) -> dict[str, dict]:
    """What a checkpoint records of its generators: direction -> {"net": name in ``models``,
    "source"/"target": domain names (``domains``: those of A and B), "kind" and "arch": the
    generator's kind and constructor arguments (``kinds``: net -> (kind, arch or None)), and for
    scientific data "source_intensity"/"target_intensity": how each side's units map to [-1, 1]
    (``intensity``: "A"/"B" -> io.intensity.Intensity.to_dict()), and "trained_at": the loss weight of a
    fixed-weight generator (``trained_at``, e.g. "style.strength=0.5")}."""
    a, b = domains
    intensity = intensity or {}
    out = {}
    for direction, net in nets.items():
        (source, target), sides = ((a, b), "AB") if direction == "AtoB" else ((b, a), "BA")
        kind, arch = kinds[net]
        out[direction] = {"net": net, "source": source, "target": target, "kind": kind} | (
            {"arch": arch} if arch is not None else {}) | ({"trained_at": trained_at} if trained_at else {})
        if any(intensity.get(side) for side in sides):
            out[direction] |= {"source_intensity": intensity.get(sides[0]), "target_intensity": intensity.get(sides[1])}
    return out
