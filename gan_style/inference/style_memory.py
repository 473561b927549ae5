"""How much memory one scale of ``stylize`` takes, and fitting it to a budget (``stylize --max-memory``).

At one scale of P = H·W pixels, the peak holds:

- image-sized float32 RGB buffers (12 bytes per pixel each): the photo, the image being
  optimised and its gradient, the feature network's prepared input and its gradient, the photo's
  prepared input (tiled), the lattice projection's spectra, L-BFGS's working vectors and 2 per
  history pair (Adam: its 2 moments instead), ``BUFFERS`` + 2·history in all;
- whole: the photo's features at the content layers (the content targets), Σ_l C_l / S_l² values
  per pixel (in tiles they are computed again tile by tile);
- the feature network's activations and their gradients: ``ACTIVATION`` bytes per activation
  value (``Geometry.elements`` values per input pixel), over the whole image, or over one tile
  with its halo when tiled (style_tiles.py);
- ``FIXED`` bytes whatever the size.

The constants are a fit to peaks measured on this CPU (AMD EPYC, Inception features, fp32, runs
of 8 to 12 steps so that the history is full; ``gan-style bench --only memory``, docs/style.md);
tests/test_style_tiles.py checks one against a fresh measurement. What does not fit is made to
fit: tiles (``TILES``, largest first), then a shorter L-BFGS history (down to ``MIN_HISTORY``); a
scale that does not fit even then is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .memory import MemoryBudgetError, size_text
from .style_tiles import Geometry

TILES = (1024, 512, 256)  # px, largest (fewest halos, fastest) first
MIN_HISTORY = 3  # L-BFGS pairs; below this it is hardly L-BFGS any more
# The fit of the module doc: image-sized buffers; bytes per activation value, in tiles and whole;
# bytes whatever the size, in tiles (the allocator keeps the tiles' freed blocks) and whole.
BUFFERS, ACTIVATION, ACTIVATION_WHOLE, FIXED, FIXED_WHOLE = 21.0, 18.0, 19.5, 87e6, 36e6


@dataclass(frozen=True)
class StylePlan:
    """One scale: ``tile`` px (0: the whole image at once), L-BFGS ``history`` pairs, and the
    estimated peak in bytes."""

    tile: int
    history: int
    peak: int


def describe(plan: StylePlan, optimizer: str) -> str:
    where = f"in {plan.tile} px tiles" if plan.tile else "whole"
    return f"{where}, L-BFGS history {plan.history}" if optimizer == "lbfgs" else where


def peak_bytes(size: tuple[int, int], geo: Geometry, content_layers: Sequence[str], tile: int, history: int,
               precision: str = "fp32", optimizer: str = "lbfgs") -> int:
    """The estimated peak of optimising an H x W image (``size``) with the feature network of
    ``geo``, in tiles of ``tile`` px (0: whole)."""
    pixels = size[0] * size[1]
    buffers = BUFFERS + (2 * history if optimizer == "lbfgs" else 2)
    value_bytes = 2 if precision == "bf16" else 4
    content = sum(geo.channels[k] / geo.strides[k] ** 2 for k in content_layers) * value_bytes
    if not tile:
        return int(FIXED_WHOLE + pixels * (12 * buffers + content + geo.elements * ACTIVATION_WHOLE))
    active = min(pixels, (tile + 2 * geo.halo) ** 2)  # in tiles, the content targets are recomputed
    return int(FIXED + pixels * 12 * buffers + active * geo.elements * ACTIVATION)


def plan_scale(size: tuple[int, int], geo: Geometry, content_layers: Sequence[str], history: int, precision: str,
               optimizer: str, budget: int | None, tile: int | None = None) -> StylePlan:
    """The fastest way to optimise one scale within ``budget`` bytes (None: whole, unless ``tile``
    is given). MemoryBudgetError when even the smallest tiles and history do not fit."""
    def at(t: int, m: int) -> StylePlan:
        return StylePlan(t, m, peak_bytes(size, geo, content_layers, t, m, precision, optimizer))

    if tile is not None or budget is None:
        return at(tile or 0, history)
    histories = [history] + [m for m in (history // 2, MIN_HISTORY) if MIN_HISTORY <= m < history]
    for candidate in [at(0, history)] + [at(t, m) for m in histories for t in TILES]:
        if candidate.peak <= budget:
            return candidate
    smallest = at(TILES[-1], min(history, MIN_HISTORY))
    raise MemoryBudgetError(f"stylizing at {size[1]}x{size[0]} needs about {size_text(smallest.peak)} even in "
                            f"{TILES[-1]} px tiles, over --max-memory {size_text(budget)}: raise it, or give a "
                            "smaller --size")
