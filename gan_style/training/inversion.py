"""Whether a generator has learned an inverted map: the correlation of each translated sample panel
with its input (column 0: the input, column 1: its translation, in every method's panels).

Unpaired intensity tasks admit cycle-consistent inversions (bright structures made dark, and back):
every loss is satisfied and nothing else in the logs shows it. Logged as
``panels/<name>_correlation``; a clearly negative value is a warning in the log and a W&B alert.
"""

from __future__ import annotations

import torch

INVERTED = -0.1  # below this mean correlation the panels are reported as inverted


def panel_correlations(panels: dict[str, torch.Tensor]) -> dict[str, float]:
    """{"panels/<name>_correlation": the mean over rows of the Pearson correlation between the
    input and its translation, each averaged over its channels}, for panels (n, k, C, H, W)."""
    out = {}
    for name, columns in panels.items():
        x, y = (columns[:, i].float().mean(dim=1).flatten(1) for i in (0, 1))  # (n, H*W) each
        x, y = x - x.mean(dim=1, keepdim=True), y - y.mean(dim=1, keepdim=True)
        r = (x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1)).clamp_min(1e-12)  # (n,); 0 for a flat image
        out[f"panels/{name}_correlation"] = float(r.mean())
    return out


def inverted(correlations: dict[str, float]) -> list[str]:
    """The panel names whose translation anti-correlates with its input."""
    return [key.split("/", 1)[1].removesuffix("_correlation") for key, r in correlations.items() if r < INVERTED]
