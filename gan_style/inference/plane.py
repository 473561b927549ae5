"""One large plane translated tile by tile between arrays in data units: no whole-plane float copies.

The in-memory path (scans.py's ``translated_plane``) maps a plane to float32 in [-1, 1], runs the
exact tiling over it and keeps the float32 result: 4 bytes per pixel and channel each, beside the
data (2 GB for a 16,384 px square of one channel). Here the tiling's input is the plane itself,
mapped rectangle by rectangle as a slide's is (``slide.SlideInput``, with the plane's own window),
and each output rectangle goes straight into the output array in its dtype: the same values bit
for bit (tested), in the memory of the two arrays, the whole-image caches (or ``Spill``) and one tile.

    fit = stream_plan(gen, plane.shape, "auto", io_bytes=4)
    clipped = translate_streamed(gen, plane, fit, out, limits=None) if fit else ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io.intensity import cast_to
from . import memory
from .slide import SlideInput, plain_layers
from .tiling import Spill, Whole, build, regions
from .translate import BLOCKS, Generator, fit_memory, resolve_tile, spill_folder
from .weights import side_intensity


class ArrayPlane:
    """An (H, W, C) array read like a slide (what ``SlideInput`` reads: ``height``, ``width``, ``read``)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, (self.height, self.width) = array, array.shape[:2]

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return self.array[top:bottom, left:right]


def stream_plan(gen: Generator, shape: tuple[int, ...], tile: int | str | None, io_bytes: float) -> memory.Plan | None:
    """How a plane of ``shape`` (H, W, C) streams within ``gen.max_memory``: the memory plan (its tile,
    caches on disk or not) when it would be tiled exactly in one evaluation, else None (translate it
    in memory: untiled, too small to mirror, blended or multi-step). ``io_bytes``: as memory.plan's."""
    h, w, c = shape
    # The mirrored edge equals the in-memory path's reflection padding from 8 px up (translate.pad_to_multiple).
    padded = (max(8, -(-h // 4) * 4), max(8, -(-w // 4) * 4))
    step = resolve_tile(tile, *padded)
    if not step or min(h, w) < 8 or gen.info.multiple != 4 or plain_layers(gen) is None:
        return None
    return fit_memory(gen, (1, c, *padded), step, io_bytes, streamed=True)


def translate_streamed(gen: Generator, plane: np.ndarray, fit: memory.Plan, out: np.ndarray,
                       limits: tuple[float, float] | None) -> float:
    """``plane`` (H, W, C) in the source's units -> ``out`` (H, W, C_out) in the target's units and
    ``out``'s dtype (``limits``: as cast_to's), in ``fit.tile`` px tiles, caches on disk if
    ``fit.spill``. Returns the fraction of the values that were clipped."""
    source, target = side_intensity(gen.info, "source"), side_intensity(gen.info, "target")
    h, w = plane.shape[:2]
    inp = SlideInput(ArrayPlane(plane), source, gen.device, source.window(plane))
    block_dtype = torch.bfloat16 if gen.precision == BLOCKS else None
    clipped = 0.0
    with torch.inference_mode(), gen.autocast(), spill_folder(fit.spill) as folder:
        spill = Spill(memory.SPILL_LIMIT, Path(folder)) if folder else None
        node = build(plain_layers(gen), inp, fit.tile, block_dtype, plan=Whole(fit.tile, spill))
        for r in regions(node, fit.tile):  # translate_tiled's rectangles: the same arithmetic
            if r[0] >= h or r[2] >= w:
                continue  # all padding
            y = node.pull(r).float()[0].permute(1, 2, 0).cpu().numpy()[: h - r[0], : w - r[2]]  # (h', w', C_out)
            out[r[0] : r[0] + y.shape[0], r[2] : r[2] + y.shape[1]], part = cast_to(target.from_model(y), out.dtype,
                                                                                    limits)
            clipped += part * y.size
    return clipped / out.size if out.size else 0.0
