"""One large plane translated tile by tile between arrays in data units: no whole-plane float copies.

The in-memory path (scans.py's ``translated_plane``) maps a plane to float32 in [-1, 1], runs the
exact tiling over it and keeps the float32 result: 4 bytes per pixel and channel each, beside the
data (2 GB for a 16,384 px square of one channel). Here the tiling's input is the plane itself,
mapped rectangle by rectangle as a slide's is (``slide.SlideInput``, with the plane's own window),
and each output rectangle goes straight into the output array in its dtype: the same values bit
for bit (tested), in the memory of the two arrays, the whole-image caches (or ``Spill``) and one tile.
Scans stream whenever they are tiled exactly (scans.py); photos only when the in-memory path does
not fit the budget even with its caches on disk (``translate_photo``, batch.py).

    fit = stream_plan(gen, plane.shape, "auto", io_bytes=4)   # None: translate it in memory
    clipped = translate_streamed(gen, plane, fit, out, intensity, intensity.window(plane), convert)
    pixels = translate_photo(gen, rgb, "auto")                  # a photo: in memory, or streamed if over the budget
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io.tensors import float_to_uint8, float_to_uint8_hwc, uint8_to_float
from . import memory
from .slide import SlideInput, plain_layers
from .spill import Spill
from .tiling import Whole, build, regions
from .translate import (BLOCKS, Generator, fit_memory, note_once, padded_size, resolve_tile, spill_folder,
                        translate_tensor)


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
    padded = padded_size(h, w)
    step = resolve_tile(tile, *padded, gen)
    if not step or min(h, w) < 8 or gen.info.multiple != 4 or plain_layers(gen) is None:
        return None
    return fit_memory(gen, (1, c, *padded), step, io_bytes, streamed=True)


def translate_streamed(gen: Generator, plane: np.ndarray, fit: memory.Plan, out: np.ndarray, units,
                       window: tuple[float, float] | None, convert) -> float:
    """``plane`` (H, W, C) -> ``out`` (H, W, C_out) in ``fit.tile`` px tiles, caches on disk if
    ``fit.spill``. ``units``: what maps the plane to [-1, 1] (an Intensity with ``window``, or
    PHOTO); ``convert(y)``: a rectangle's output (h, w, C_out) float32 in [-1, 1] -> (its values in
    ``out``'s dtype, the fraction clipped). Returns the fraction of the values that were clipped."""
    h, w = plane.shape[:2]
    inp = SlideInput(ArrayPlane(plane), units, gen.device, window)
    block_dtype = torch.bfloat16 if gen.precision == BLOCKS else None
    clipped = 0.0
    with torch.inference_mode(), gen.autocast(), spill_folder(fit.spill) as folder:
        spill = Spill(memory.SPILL_LIMIT, Path(folder)) if folder else None
        node = build(plain_layers(gen), inp, fit.tile, block_dtype, plan=Whole(fit.tile, spill))
        for r in regions(node, fit.tile):  # translate_tiled's rectangles: the same arithmetic
            if r[0] >= h or r[2] >= w:
                continue  # all padding
            y = node.pull(r).float()[0].permute(1, 2, 0).cpu().numpy()[: h - r[0], : w - r[2]]  # (h', w', C_out)
            out[r[0] : r[0] + y.shape[0], r[2] : r[2] + y.shape[1]], part = convert(y)
            clipped += part * y.size
    return clipped / out.size if out.size else 0.0


class PhotoUnits:
    """8-bit RGB pixels to [-1, 1] as photos are mapped (io/tensors.uint8_to_float: the same float32
    operations, so the same values), for ``SlideInput``."""

    channels = 3

    @staticmethod
    def to_model(block: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
        return torch.from_numpy(np.ascontiguousarray(block)).float().div_(127.5).sub_(1.0).numpy()


PHOTO = PhotoUnits()


def photo_pixels(y: np.ndarray) -> tuple[np.ndarray, float]:
    """A rectangle's output (h, w, 3) in [-1, 1] -> uint8 pixels as photos are written (float_to_uint8)."""
    return float_to_uint8(torch.from_numpy(y)).numpy(), 0.0


def translate_photo(gen: Generator, pixels: np.ndarray, tile: int | str | None) -> np.ndarray:
    """One 8-bit RGB photo (H, W, 3) -> its translation (H, W, 3) uint8: in memory (float32 copies,
    ``translate_tensor``) when that fits ``gen.max_memory``, else streamed from and into pixel
    arrays. MemoryBudgetError when neither fits."""
    h, w = pixels.shape[:2]
    padded = padded_size(h, w)
    try:
        fit_memory(gen, (1, 3, *padded), resolve_tile(tile, *padded, gen))
    except memory.MemoryBudgetError:
        fit = stream_plan(gen, pixels.shape, tile, io_bytes=2)
        if fit is None:
            raise
        note_once(("streamed", w, h, gen.max_memory), "%d x %d px: over --max-memory %s even with caches on disk, "
                  "so streamed from its pixels", w, h, memory.size_text(gen.max_memory))
        out = np.empty((h, w, 3), dtype=np.uint8)
        translate_streamed(gen, pixels, fit, out, PHOTO, None, photo_pixels)
        return out
    return float_to_uint8_hwc(translate_tensor(gen, uint8_to_float(pixels)[None], tile=tile)[0])
