"""Accumulate, batch by batch, what the metrics of a generator's translations need.

One pass over any number of batches collects the fakes' 8-bit colour histogram, their Inception
features (with an extractor) and, given the input and its reconstruction (A -> B -> A), the
per-image cycle metrics (``PAIR_METRICS``: l1, psnr, ssim). Used by the per-epoch evaluation
during training (training/evaluation.py) and by ``gan-style eval --weights`` (generate.py), so
both measure the same way.

Fakes are quantised to 8 bits before colours and features are taken, exactly as if saved to PNG
and read back; cycle metrics compare the reconstruction with the input in [0, 1] (float64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..io.tensors import float_to_uint8
from .colour import ColourHistogram
from .cycle import to_unit
from .registry import PAIR_METRICS

Extractor = Callable[[list[torch.Tensor]], np.ndarray]  # uint8 (3, H, W) images -> (n, d) features


@dataclass
class Measured:
    """What a pass over the fakes produced."""

    features: np.ndarray | None  # (n, d) Inception features of the fakes (None without an extractor)
    colours: ColourHistogram  # of the 8-bit fakes
    cycle: dict[str, float]  # PAIR_METRICS name -> mean over images of rec vs x ({} without rec)


class Accumulator:
    """``add`` each batch, then read ``result()``; holds per-image values, not the images."""

    def __init__(self, extractor: Extractor | None = None) -> None:
        self.extractor = extractor
        self.colours = ColourHistogram()
        self.features: list[np.ndarray] = []  # one (N, d) block per batch
        self.per_image: dict[str, list[torch.Tensor]] = {key: [] for key in PAIR_METRICS}  # (N,) per batch

    def add(self, fake: torch.Tensor, x: torch.Tensor | None = None, rec: torch.Tensor | None = None) -> None:
        """fake: (N, 3, H, W) translations in [-1, 1], any device and float dtype. rec: their
        reconstructions, same shape, compared with the inputs x for the cycle metrics (without rec,
        x is not used)."""
        if rec is not None and x is None:
            raise ValueError("cycle metrics compare rec with the inputs: pass x too")
        fake_u8 = float_to_uint8(fake.float().cpu())  # (N, 3, H, W) uint8: what a saved PNG holds
        self.colours.add(fake_u8)
        if self.extractor is not None:
            self.features.append(self.extractor(list(fake_u8)))
        if rec is not None:
            rec_unit, x_unit = to_unit(rec.cpu()), to_unit(x.cpu())
            for key, fn in PAIR_METRICS.items():
                self.per_image[key].append(fn(rec_unit, x_unit))

    def result(self) -> Measured:
        cycle = {key: float(torch.cat(values).mean()) for key, values in self.per_image.items() if values}
        features = np.concatenate(self.features) if self.features else None
        return Measured(features, self.colours, cycle)
