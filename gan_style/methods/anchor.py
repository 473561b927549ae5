"""The histogram-matching maps of CycleGAN's training data, both ways (data/histograms.py): the priors of
its anchored generators (``train.histogram_prior``, nets/anchored.py) and the targets of its L1 pull
(``train.lambda_histogram``: each generator's output against histogram matching of its input onto the
other domain; measured worse than the anchored generators, docs/science.md "Learning that holds").

Unpaired intensity tasks admit cycle-consistent inversions, and a ResNet generator cannot see its
input's brightness (its instance norms remove it): histogram matching is monotone, needs no
learning, and carries the absolute levels.
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
