"""The histogram anchor (``train.lambda_histogram``): an L1 pull of each generator's output towards
histogram matching of its input onto the other domain (data/histograms.py), learned from the
training data before the first step.

Unpaired intensity tasks admit cycle-consistent inversions: a CycleGAN can map bright to dark in
both directions and satisfy every loss it has. Histogram matching is monotone and needs no
learning; anchored to it, a generator starts from what the data alone says and learns only the
departures that the discriminator pays for (docs/science.md, "Learning that holds").
"""

from __future__ import annotations

import torch

from ..data.histograms import domain_quantiles, matching_table
from ..data.dataset import UnpairedDataset
from ..nets.anchored import matched

__all__ = ["matched", "matching_tables"]


def matching_tables(dataset: UnpairedDataset) -> dict[str, torch.Tensor]:
    """{"A": the map of A's values onto B's, "B": of B's onto A's}: (C, GRID) float32 tables."""
    q = {d: domain_quantiles(dataset, d) for d in "AB"}
    return {"A": torch.from_numpy(matching_table(q["A"], q["B"])),
            "B": torch.from_numpy(matching_table(q["B"], q["A"]))}
