"""Run monitoring that needs no account: scalars to ``metrics.jsonl``, image panels to ``samples/``.

Only rank 0 creates a ``Monitor``; other ranks get ``NullMonitor``. Scalars use namespaced
keys (``loss/G_A``, ``D/A_real``, ``lr/G``, ``time/img_per_s``, ``mem/peak_gb``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image


class NullMonitor:
    """What non-zero ranks use: every call does nothing."""

    run_id: str | None = None

    def start(self, info: dict[str, Any]) -> None: ...
    def log(self, step: int, scalars: dict[str, float]) -> None: ...
    def log_panels(self, step: int, tag: str, panels: dict[str, torch.Tensor]) -> None: ...
    def finish(self) -> None: ...


class Monitor(NullMonitor):
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.samples_dir = self.run_dir / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", buffering=1)  # line-buffered: survives a crash

    def start(self, info: dict[str, Any]) -> None:
        (self.run_dir / "run_info.json").write_text(json.dumps(info, indent=2, default=str))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        clean = {k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}
        self._metrics.write(json.dumps({"step": step, **clean}) + "\n")

    def log_panels(self, step: int, tag: str, panels: dict[str, torch.Tensor]) -> None:
        """``panels``: name -> (n, 3, H, W) in [-1, 1], each a row of columns real | fake | rec."""
        for name, grid in panels.items():
            save_image(panel_grid(grid), self.samples_dir / f"{tag}_{name}.png")

    def finish(self) -> None:
        self._metrics.close()


def panel_grid(columns: torch.Tensor) -> torch.Tensor:
    """(n, k, 3, H, W) in [-1, 1] -> one (3, n*H, k*W) image in [0, 1]: n rows of k columns."""
    n, k = columns.shape[:2]
    return make_grid(columns.flatten(0, 1), nrow=k, padding=2, normalize=True, value_range=(-1, 1))
