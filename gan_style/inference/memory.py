"""How much memory translating one image takes, and fitting it to a budget (``translate --max-memory``).

The in-memory path holds, for an H x W image (P = H·W pixels) with C_in and C_out channels:

- the whole image: the decoded input and output and their float32 copies (with the copies made on
  the way, about 1.1 x (4·C_in + 4·C_out + the decoded bytes)), and, when tiled, the exact
  tiling's whole-image caches (tiling.Cache: 1/4 resolution activations of 4·ngf channels, a few
  alive at once), about 1.85·ngf bytes per pixel;
- one tile's activations, (29 + 10.6·ngf) bytes per pixel of the tile, 1.2 times that with its
  halo; untiled, the tile is the image;
- about 23 MB whatever the size (buffers of the allocator and the kernels).

The constants are a least-squares fit (relative errors) to 14 peaks measured on this CPU (AMD
EPYC; ResNet generators of 9 blocks, ngf 8 to 64, 0.8 to 12 MP, whole and in 256 to 1024 px
tiles, fp32): every one within 23 % (docs/translate.md, ``gan-style bench --only memory``), and
``tests/test_memory.py`` checks two against a fresh measurement. What does not fit is made to fit, cheapest first: tiling (``AUTO_TILE``),
smaller tiles, then the caches spilled to disk (``Spill``, as slides are); an image that does not
fit even then is refused in one line. TIFFs that do not fit are streamed as slides (route.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CAP = 4 * 2**30  # the default budget's ceiling: 4 GiB (or half the RAM, if less)
TILES = (1024, 512, 256)  # smaller tiles tried when one does not fit, largest (fewest passes on a GPU) first
SPILL_LIMIT = 64 * 2**20  # bytes: caches larger than this go to disk when spilling
# The fit of the module doc: bytes per pixel (of the image, of the tile), and bytes.
FRAMES, CACHES_PER_NGF, TILE_BASE, TILE_PER_NGF, HALO, FIXED = 1.1, 1.85, 29.0, 10.6, 1.2, 23e6


class MemoryBudgetError(ValueError):
    """An image that cannot be translated within the memory budget (one line, for the CLI)."""


@dataclass(frozen=True)
class Plan:
    """How one image is translated within the budget: ``tile`` (0 = whole), caches on disk
    (``spill``), and the estimated peak in bytes."""

    tile: int
    spill: bool
    peak: int


def default_budget() -> int:
    """min(4 GiB, half the RAM)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return CAP
    return min(CAP, ram // 2)


def peak_bytes(ngf: int, h: int, w: int, c_in: int, c_out: int, tile: int, spill: bool = False,
               io_bytes: float = 2.0, streamed: bool = False) -> int:
    """The estimated peak of translating one H x W image: ``tile`` 0 whole, else in tiles of ``tile``
    pixels, with the whole-image caches in memory or (``spill``) on disk. ``io_bytes``: bytes per
    pixel and channel of the decoded input plus the written output (1 + 1 for 8-bit images).
    ``streamed``: tiles are converted from and into those arrays (plane.py), with no float32 copies."""
    pixels = h * w
    floats = 0 if streamed and tile else 4 * (c_in + c_out)
    frames = FRAMES * pixels * (floats + io_bytes * max(c_in, c_out))  # float32 copies, decoded in/out
    per_tile_px = TILE_BASE + TILE_PER_NGF * ngf
    if not tile or pixels <= tile * tile:
        return int(FIXED + frames + pixels * per_tile_px)
    caches = SPILL_LIMIT * 3 if spill else pixels * CACHES_PER_NGF * ngf
    return int(FIXED + frames + caches + HALO * tile * tile * per_tile_px)


def plan(ngf: int, h: int, w: int, c_in: int, c_out: int, tile: int, budget: int | None,
         io_bytes: float = 2.0, what: str = "the image", streamed: bool = False) -> Plan:
    """The cheapest way to translate an H x W image within ``budget`` bytes (None: no budget,
    ``tile`` as given). ``tile`` (0 = whole) is kept when it fits. MemoryBudgetError when nothing does.
    ``streamed``: tiled plans convert tile by tile (``peak_bytes``)."""
    def at(t: int, spill: bool = False) -> Plan:
        return Plan(t, spill, peak_bytes(ngf, h, w, c_in, c_out, t, spill, io_bytes, streamed))

    first = at(tile)
    if budget is None or first.peak <= budget:
        return first
    smaller = [t for t in TILES if not tile or t < tile]
    tried = [at(t) for t in smaller] + [at(t, True) for t in [tile] * bool(tile) + smaller]
    for option in tried:
        if option.peak <= budget:
            return option
    least = min(tried, key=lambda p: p.peak)
    raise MemoryBudgetError(f"{what} ({w} x {h} px) needs about {size_text(least.peak)} even in {least.tile} px "
                            f"tiles with caches on disk, over --max-memory {size_text(budget)}: raise --max-memory or translate "
                            "it smaller (--size)")


def describe(p: Plan) -> str:
    """How a plan translates: "whole", "in 512 px tiles, caches on disk"."""
    return f"in {p.tile} px tiles" + (", caches on disk" if p.spill else "") if p.tile else "whole"


def size_text(n: float) -> str:
    """Bytes as a short text: 3.2 GB, 640 MB."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"
