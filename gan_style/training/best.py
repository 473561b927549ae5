"""``best.pt``: the checkpoint of the evaluation with the lowest ``eval.best`` metric so far.

Papers report the best epoch's FID while users get the last one; with ``eval.best`` both are kept,
and ``make eval`` can compare them. The best value is part of every checkpoint, so a resumed run
keeps comparing against it.
"""

from __future__ import annotations

import math


class BestTracker:
    def __init__(self, metric: str) -> None:
        self.metric, self.key, self.best = metric, f"eval/{metric}", math.inf

    def improved(self, metrics: dict[str, float]) -> bool:
        """True (and remember it) when ``metrics`` holds a finite value below the best so far."""
        value = metrics.get(self.key)
        if value is None or not math.isfinite(value) or value >= self.best:
            return False
        self.best = value
        return True

    def state_dict(self) -> dict:
        return {"metric": self.metric, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        if state.get("metric") == self.metric:  # another metric than last time: start over
            self.best = state["best"]
