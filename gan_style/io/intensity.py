"""Intensity normalisation: a domain's data units <-> the networks' [-1, 1], both ways.

A window [low, high] in the data's units maps linearly onto [-1, 1]; values outside it are
clipped. Three ways to choose the window, declared per domain in the config
(``data.intensity.A`` / ``.B``, see ``config.IntensityConfig``):

- ``window``: fixed numbers, e.g. CT [-1000, 2000] HU;
- ``percentile``: the [p_low, p_high] percentiles, per image (each image its own window) or per
  dataset (computed once over the training data at start, then fixed);
- ``range``: the full range of the stored dtype (uint16: [0, 65535]).

The resolved ``Intensity`` (with its numbers) is printed at start, recorded in run_info.json and
saved in every checkpoint and export, so ``translate`` maps outputs back into the target domain's
units with ``from_model``. A per-image percentile target has no image to measure: its outputs use
the median of the training images' windows, which is what ``low``/``high`` hold in that mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MODES = ("window", "percentile", "range")


class IntensityError(ValueError):
    """An intensity setting that cannot be used (one line naming the key)."""


def dtype_range(dtype: np.dtype | str) -> tuple[float, float]:
    """The full range of an integer dtype; a float dtype has none (one-line error)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        raise IntensityError(f"mode=range needs integer data, not {dtype}: use mode=window or mode=percentile")
    info = np.iinfo(dtype)
    return float(info.min), float(info.max)


@dataclass(frozen=True)
class Intensity:
    """A resolved normalisation: ``low`` -> -1, ``high`` -> +1 (data units)."""

    mode: str  # window | percentile | range
    low: float
    high: float
    per_image: bool = False  # percentile only: each image's own window on the way in
    percentiles: tuple[float, float] = (0.5, 99.5)  # percentile only
    dtype: str = "float32"  # the domain's stored dtype (its first file's)
    channels: int = 1

    def window(self, x: np.ndarray) -> tuple[float, float]:
        """The window used for ``x`` (data units): its own percentiles per image, else the fixed one."""
        if not self.per_image:
            return self.low, self.high
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            return self.low, self.high
        lo, hi = np.percentile(finite, self.percentiles)
        return float(lo), float(max(hi, lo + 1e-6))  # a constant image: everything maps to -1

    def to_model(self, x: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
        """Data units (any shape) -> float32 in [-1, 1]; NaN -> -1, +-Inf -> the clipped ends.
        ``window``: the one ``window`` gave for the whole image, when ``x`` is a part of it."""
        lo, hi = window if window is not None else self.window(x)
        y = (np.asarray(x, dtype=np.float64) - lo) * (2.0 / (hi - lo)) - 1.0
        return np.nan_to_num(np.clip(y, -1.0, 1.0), nan=-1.0).astype(np.float32)

    def from_model(self, y: np.ndarray) -> np.ndarray:
        """[-1, 1] (any shape) -> float64 in data units with the fixed window (``low``, ``high``)."""
        return (np.asarray(y, dtype=np.float64) + 1.0) * ((self.high - self.low) / 2.0) + self.low

    def describe(self) -> str:
        how = {"window": "fixed window",
               "percentile": f"percentiles {self.percentiles[0]:g}-{self.percentiles[1]:g} "
                             f"{'per image' if self.per_image else 'of the dataset'}",
               "range": f"full {self.dtype} range"}[self.mode]
        median = " (median window, for outputs)" if self.per_image else ""
        return f"{how}: [{self.low:g}, {self.high:g}]{median} -> [-1, 1], {self.channels} channel(s), {self.dtype}"

    def to_dict(self) -> dict:
        return asdict(self) | {"percentiles": list(self.percentiles)}

    @classmethod
    def from_dict(cls, d: dict) -> Intensity:
        d = dict(d)
        d["percentiles"] = tuple(d.get("percentiles", (0.5, 99.5)))
        return cls(**d)


def cast_to(values: np.ndarray, dtype: np.dtype | str,
            limits: tuple[float, float] | None = None) -> tuple[np.ndarray, float]:
    """Data-unit values -> ``dtype`` (integers rounded half to even and clipped to the dtype's
    range; ``limits``: a narrower range in data units the values are clipped to first, e.g. what a
    DICOM's stored bits and rescale hold). Also returns the fraction of values that had to be
    clipped (callers warn)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        lo, hi = limits if limits is not None else (-np.inf, np.inf)
        values = np.asarray(values)
    else:
        lo, hi = dtype_range(dtype)
        if limits is not None:
            lo, hi = max(lo, limits[0]), min(hi, limits[1])
        values = np.rint(values)
    clipped = float(np.mean((values < lo) | (values > hi))) if values.size else 0.0
    if clipped:
        values = np.clip(values, lo, hi)
    return values.astype(dtype), clipped


def nonfinite(x: np.ndarray) -> int:
    """How many NaN / Inf values ``x`` holds (0 for integer data)."""
    return int(x.size - np.count_nonzero(np.isfinite(x))) if x.dtype.kind == "f" else 0
