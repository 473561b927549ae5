"""Gigapixel slides: translate a TIFF too large for memory, tile by tile, from disk to disk.

    translate_slide(load_generator("runs/stain/last.pt"), Path("slide.tif"), Path("out/slide.tif"))

The exact tiling of ``tiling.py`` runs on a lazy input: each rectangle the first layers ask for
is read from the slide (io/slides.py's reader of its format: TIFF tiles or OpenSlide regions),
mirrored beyond the slide's edge (the generator wants sides that are multiples of 4) and mapped to
[-1, 1] by the generator's source intensity. Whole-slide InstanceNorm statistics are measured by
streaming; the 1/4-resolution activations that the exact result needs are spilled to chunked
arrays in a temporary folder when they exceed ``CACHE_LIMIT`` (so resident memory stays bounded
whatever the slide's size: docs/science.md measures it). Output tiles are mapped back to the
target's units and streamed into a tiled BigTIFF, optionally with a pyramid of 2x reductions in
SubIFDs: an OME-TIFF with the slide's physical pixel size (or, for an output named ``.ome.zarr``,
an OME-Zarr). Everything is written under a temporary name and moved into place at the end: Ctrl-C or
a crash leaves no partial output (and removes the temporary files).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..io.atomic import temporary_folder, temporary_path
from ..io.intensity import Intensity, cast_to
from ..io.ome_zarr import names_store, require_writer, write_slide
from ..io.scan import ScanError
from ..io.slides import finish, open_slide, tiled_shape, write_options, write_tiled
from ..nets import one_pass_conditions
from .tiling import Node, Region, Spill, build, whole_image_passes
from .translate import BLOCKS, Generator
from .weights import side_intensity

logger = logging.getLogger(__name__)

CACHE_LIMIT = 256 * 2**20  # bytes: larger whole-slide activations live on disk
COMPUTE_TILE = 1024  # pixels: the tiling's own rectangles


class SlideInput(Node):
    """Level 0 of a slide as the tiling's input: (1, C, H', W') with H', W' rounded up to
    multiples of 4 by mirroring, read rectangle by rectangle and normalised on the way."""

    def __init__(self, slide, intensity: Intensity, device: torch.device) -> None:
        self.slide, self.h, self.w, self.intensity, self.device = slide, slide.height, slide.width, intensity, device
        self.channels = intensity.channels
        self.height, self.width = -(-self.h // 4) * 4, -(-self.w // 4) * 4
        self.scale = 1.0

    def pull(self, r: Region) -> torch.Tensor:
        rows, cols = _mirror(r[0], r[1], self.h), _mirror(r[2], r[3], self.w)
        block = self.slide.read(rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        block = block[rows - rows.min()][:, cols - cols.min()]
        x = torch.from_numpy(self.intensity.to_model(block)).permute(2, 0, 1)[None]  # (1, C, h, w)
        return x.to(self.device)


def _mirror(start: int, stop: int, n: int) -> np.ndarray:
    """Indices start..stop-1 with those past ``n`` mirrored back (reflection without the edge)."""
    idx = np.arange(start, stop)
    return np.where(idx < n, idx, 2 * (n - 1) - idx).clip(0, n - 1)


def output_tiles(node: Node, height: int, width: int, tile: int, target: Intensity, dtype: np.dtype,
                 bar: tqdm) -> Iterator[np.ndarray]:
    """(tile, tile[, C]) arrays in the target's units and ``dtype``, row by row (edge tiles zero-padded)."""
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            r = (y, min(y + tile, height), x, min(x + tile, width))
            out = node.pull(r).float()[0].permute(1, 2, 0).cpu().numpy()  # (h, w, C)
            values, _ = cast_to(target.from_model(out), dtype)
            full = np.zeros((tile, tile, values.shape[-1]), dtype)
            full[: values.shape[0], : values.shape[1]] = values
            bar.update(1)
            yield full if full.shape[-1] > 1 else full[..., 0]


def streamable_layers(gen: Generator, src: Path) -> list[nn.Module]:
    """The generator as plain layers for streaming (one evaluation, exact tiling), or one line saying why not."""
    kind = gen.kind
    if gen.steps != 1:
        raise ScanError(f"{src}: slides are streamed in one network evaluation, and {gen.info.origin} takes "
                        f"{gen.steps} (each step needs the whole slide's previous output): use --steps 1")
    cond = {k: v.to(gen.device) for k, v in one_pass_conditions(kind, gen.info.arch, gen.seed).items()}
    cond |= gen.conditions(1, gen.device)  # the strength chosen, for strength-conditioned generators
    layers = kind.layers(gen.net, cond)
    if layers is None:
        raise ScanError(f"{src}: a {gen.info.kind} generator cannot be tiled exactly, which streaming a slide needs")
    return layers


def output_dtype(gen: Generator, slide, keep_input_dtype: bool) -> np.dtype:
    """The target domain's dtype as the generator records it, else (or ``keep_input_dtype``) the slide's."""
    if keep_input_dtype or not gen.info.target_intensity:
        return slide.dtype
    return np.dtype(side_intensity(gen.info, "target").dtype)


def translate_slide(gen: Generator, src: Path, dest: Path, tile: int = 512, pyramid: bool = False,
                    keep_input_dtype: bool = False) -> Path:
    """Translate the slide ``src`` into the tiled BigTIFF ``dest`` (see the module doc): ``tile``:
    the output's TIFF tile (a multiple of 16); ``pyramid``: also 2x, 4x ... reductions down to one
    tile; in the target domain's dtype unless ``keep_input_dtype``."""
    if tile % 16:
        raise ScanError(f"slide tile {tile}: TIFF tiles are multiples of 16 (e.g. 512)")
    zarr_out = names_store(dest)
    if zarr_out:
        require_writer(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    slide = open_slide(src)
    h, w = slide.height, slide.width
    source, target = side_intensity(gen.info, "source"), side_intensity(gen.info, "target")
    if slide.channels != source.channels:
        raise ScanError(f"{src}: {slide.channels} channel(s), but {gen.info.origin} takes {source.channels}")
    layers = streamable_layers(gen, src)
    with tempfile.TemporaryDirectory(prefix="gan_style-slide-", dir=dest.parent) as tmp, \
            (temporary_folder if zarr_out else temporary_path)(dest) as out_path, torch.inference_mode(), \
            gen.autocast():
        block_dtype = torch.bfloat16 if gen.precision == BLOCKS else None
        node = build(layers, SlideInput(slide, source, gen.device), COMPUTE_TILE, block_dtype,
                     spill=Spill(CACHE_LIMIT, Path(tmp)))
        n_tiles = -(-h // tile) * -(-w // tile)
        dtype = output_dtype(gen, slide, keep_input_dtype)
        write = write_options(slide.info, node.channels, dtype, tile)
        # One bar for both stages: the whole-slide passes (statistics, 1/4-resolution caches), then the output tiles.
        with tqdm(unit="tile", desc=src.name, leave=False) as bar:
            passes = whole_image_passes(node, bar)
            bar.total = passes + n_tiles
            logger.info("%s: %d x %d px: %d tiles of whole-slide passes, then %d output tiles", src, w, h, passes,
                        n_tiles)
            tiles = output_tiles(node, h, w, tile, target, dtype, bar)
            if zarr_out:
                write_slide(out_path, tiles, (h, w, node.channels), tile, dtype, slide.info.get("mpp"), pyramid,
                            src.name)
                return dest
            level0 = Path(tmp) / "level0.tif"
            write_tiled(level0, tiles, tiled_shape(h, w, node.channels), slide.info, write)
        finish(level0, out_path, pyramid, slide.info, write, Path(tmp))
    return dest
