"""Histogram matching learned from the training data: each domain's per-channel quantiles, and the
map that sends one domain's values onto the other's distribution (x -> F_B^-1(F_A(x))).

It is what an unpaired method can know without learning: the prior of CycleGAN's anchored generators
(``train.histogram_prior``, nets/anchored.py) and the target of its L1 pull (``train.lambda_histogram``)
(docs/science.md, "Learning that holds"). Values are in the networks' units ([-1, 1]), read from up
to ``SAMPLE_ITEMS`` training images spread over the domain.
"""

from __future__ import annotations

import numpy as np

from ..io.images import ImageReadError
from .dataset import DataError, UnpairedDataset
from .scans import spread

SAMPLE_ITEMS = 64  # training images read per domain
SAMPLE_VALUES = 200_000  # pixels kept per image (a strided subsample)
LEVELS = 1025  # quantiles per channel
GRID = 1024  # the map is tabulated at GRID points evenly spread over [-1, 1]


def domain_quantiles(dataset: UnpairedDataset, domain: str) -> np.ndarray:
    """(C, LEVELS) quantiles, at levels 0, 1/(LEVELS-1) ... 1, of the domain's values per channel;
    DataError if none of its sampled images can be read."""
    values = []
    for item in spread(dataset.paths[domain], SAMPLE_ITEMS):
        try:
            x = dataset.model_image(domain, item)  # (H, W, C)
        except ImageReadError:
            continue  # reported when training reads it
        flat = x.reshape(-1, x.shape[-1])
        values.append(flat[:: max(1, len(flat) // SAMPLE_VALUES)])
    if not values:
        raise DataError(f"domain {domain}: none of the sampled images can be read")
    return np.quantile(np.concatenate(values).astype(np.float64), np.linspace(0, 1, LEVELS), axis=0).T


def matching_table(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(C, GRID) float32: the histogram-matching map from quantiles ``source`` (C, LEVELS) onto
    ``target`` (C, LEVELS), evaluated at GRID values evenly spread over [-1, 1]. A value that many
    quantiles share (the air of a scan, a saturated sky) maps to the mean of their targets."""
    grid = np.linspace(-1.0, 1.0, GRID)
    table = np.empty((len(source), GRID), np.float32)
    for c, (src, dst) in enumerate(zip(source, target)):
        xs, group = np.unique(src, return_inverse=True)
        ys = np.bincount(group, weights=dst) / np.bincount(group)
        table[c] = np.interp(grid, xs, ys) if len(xs) > 1 else ys.mean()
    return table
