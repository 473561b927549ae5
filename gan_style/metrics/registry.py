"""The metric registries: plain dicts, name -> function. ``gan-style eval --metrics`` picks by name.

- ``FEATURE_METRICS``: on Inception features, ``fn(gen, real, train, **options) -> {key: value}``
  (``train`` = the images memorisation is measured against; None = ``real``).
- ``PAIR_METRICS``: on two image batches in [0, 1], ``fn(x, y) -> (N,)`` per-image values.
- ``COLOUR_METRICS``: on two ``ColourHistogram``s, ``fn(generated, target) -> float``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import colour, cycle, stats


def _fid(gen: np.ndarray, real: np.ndarray, train: np.ndarray | None, **_) -> dict[str, float]:
    return {"fid": stats.fid(gen, real)}


def _kid(gen: np.ndarray, real: np.ndarray, train: np.ndarray | None, kid_subsets: int = stats.KID_SUBSETS,
         kid_subset_size: int = stats.KID_SUBSET_SIZE, seed: int = 0, **_) -> dict[str, float]:
    mean, std = stats.kid(gen, real, kid_subsets, kid_subset_size, seed)
    return {"kid": mean, "kid_std": std}


def _mifid(gen: np.ndarray, real: np.ndarray, train: np.ndarray | None, **_) -> dict[str, float]:
    return stats.mifid(gen, real, train)


FEATURE_METRICS: dict[str, Callable[..., dict[str, float]]] = {"fid": _fid, "kid": _kid, "mifid": _mifid}
PAIR_METRICS: dict[str, Callable] = {"l1": cycle.l1, "psnr": cycle.psnr, "ssim": cycle.ssim}
COLOUR_METRICS: dict[str, Callable] = {"colour_w1": colour.colour_w1, "colour_tv": colour.colour_tv}
# What --metrics accepts: each feature metric, and the two network-free groups.
GROUPS = (*FEATURE_METRICS, "cycle", "colour")


def feature_metrics(names: list[str], gen: np.ndarray, real: np.ndarray, train: np.ndarray | None = None,
                    **options) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        out |= FEATURE_METRICS[name](gen, real, train, **options)
    return out


def colour_metrics(generated, target) -> dict[str, float]:
    """Every colour metric between two ``ColourHistogram``s: {"colour_w1": ..., "colour_tv": ...}."""
    return {name: fn(generated, target) for name, fn in COLOUR_METRICS.items()}
