"""Gigapixel slides: translate a TIFF too large for memory, tile by tile, from disk to disk.

    translate_slide(load_generator("runs/stain/last.pt"), Path("slide.tif"), Path("out/slide.tif"))

The tiling of ``tiling.py`` runs on a lazy input: each rectangle the first layers ask for
is read from the slide (io/slides.py's reader of its format: TIFF tiles or OpenSlide regions),
mirrored beyond the slide's edge (the generator wants sides that are multiples of 4) and mapped to
[-1, 1] by the generator's source intensity. The InstanceNorms' statistics come from one of
``MODES`` (``norm``):

- ``exact``: whole-slide statistics measured by streaming; the 1/4-resolution activations that
  the exact result needs are spilled to files in a temporary folder (spill.py) when they exceed
  ``CACHE_LIMIT`` (so resident memory stays bounded whatever the slide's size), about 3·ngf
  bytes of temporary disk per pixel;
- ``kernel`` and ``thumbnail`` (slide_norm.py): no whole-slide activations, constant disk;
- ``auto``: exact when its estimated temporary disk (``disk_needs``) fits ``max_disk``, else
  kernel, with a note; a budget too small for the mode is one ScanError before anything is written.

docs/science.md measures them. Output tiles are mapped back to the
target's units and streamed into a tiled BigTIFF, optionally with a pyramid of 2x reductions in
SubIFDs: an OME-TIFF with the slide's physical pixel size (or, for an output named ``.ome.zarr``,
an OME-Zarr). Everything is written under a temporary name and moved into place at the end: Ctrl-C or
a crash leaves no partial output (and removes the temporary files).
"""

from __future__ import annotations

import logging
import math
import shutil
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
from .slide_norm import Grid, collect, first_pass_tiles, kernel_plan, thumbnail_plan, thumbnail_shape
from .spill import Spill
from .tiling import Input, Node, Region, Whole, build, upstream, whole_image_passes
from .translate import BLOCKS, Generator, one_pass_layers
from .weights import side_intensity

logger = logging.getLogger(__name__)

CACHE_LIMIT = 256 * 2**20  # bytes: larger whole-slide activations live on disk
COMPUTE_TILE = 1024  # pixels: the tiling's own rectangles, and the output's at most (COMPUTE_TILE^2 pixels)
RECT_BYTES = 128 * 2**20  # an output rectangle's widest activation at most, fp32 (ngf 64: 512 x 1024 px, not 1024^2)
CAST_ROWS = 128  # output rows converted to the target's units at a time (float64 temporaries)
BAND_BYTES = 128 * 2**20  # output rows kept at once, to write them as tiles: at most this (or one tile row)
MODES = ("auto", "exact", "kernel", "thumbnail")  # how the norms get their statistics (module doc)
MAX_DISK = 20 * 10**9  # bytes of temporary disk by default (or half the free space, if less)


class SlideInput(Node):
    """Level 0 of a slide as the tiling's input: (1, C, H', W') with H', W' rounded up to
    multiples of 4 by mirroring, read rectangle by rectangle and normalised on the way."""

    def __init__(self, slide, intensity: Intensity, device: torch.device,
                 window: tuple[float, float] | None = None) -> None:
        self.slide, self.h, self.w, self.intensity, self.device = slide, slide.height, slide.width, intensity, device
        self.window = window  # the intensity's window for the whole slide (None: its fixed one)
        self.channels = intensity.channels
        self.height, self.width = -(-self.h // 4) * 4, -(-self.w // 4) * 4
        self.scale = 1.0

    def pull(self, r: Region) -> torch.Tensor:
        rows, cols = _mirror(r[0], r[1], self.h), _mirror(r[2], r[3], self.w)
        block = self.slide.read(rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        block = block[rows - rows.min()][:, cols - cols.min()]
        x = torch.from_numpy(self.intensity.to_model(block, self.window)).permute(2, 0, 1)[None]  # (1, C, h, w)
        return x.to(self.device)


def _mirror(start: int, stop: int, n: int) -> np.ndarray:
    """Indices start..stop-1 with those past ``n`` mirrored back (reflection without the edge)."""
    idx = np.arange(start, stop)
    return np.where(idx < n, idx, 2 * (n - 1) - idx).clip(0, n - 1)


def rectangle_pixels(node: Node) -> int:
    """The pixels of an output rectangle: COMPUTE_TILE^2, or fewer where the network's widest
    activation (channels x scale^2 values per input pixel, fp32) would take more than RECT_BYTES
    over it. A rectangle's peak is a few such activations (ngf 64, 9 blocks, bf16-blocks, on this
    CPU: 0.98 GB over 1024 x 1024 px, 0.60 over 512 x 1024), and smaller ones ran as fast per pixel."""
    widest = max(n.channels * n.scale**2 for n in upstream(node))
    return min(COMPUTE_TILE**2, int(RECT_BYTES // (4 * widest)))


def output_tiles(node: Node, height: int, width: int, tile: int, target: Intensity, dtype: np.dtype,
                 bar: tqdm) -> Iterator[np.ndarray]:
    """(tile, tile[, C]) arrays in the target's units and ``dtype``, row by row (edge tiles zero-padded).

    ``node`` is pulled in rectangles of several tiles, about ``rectangle_pixels`` each (fewer halos
    to recompute than tile by tile), in bands of rows of at most BAND_BYTES: a wide slide's bands are
    one tile high and its rectangles wider (60,000 px: a band of 92 MB, not 184)."""
    row_bytes = width * node.channels * np.dtype(dtype).itemsize
    pixels = rectangle_pixels(node)
    step = tile * max(1, min(math.isqrt(pixels) // tile, BAND_BYTES // max(1, tile * row_bytes)))
    across = tile * max(1, pixels // (step * tile))  # columns of a rectangle
    for y in range(0, height, step):
        band = np.zeros((-(-min(step, height - y) // tile) * tile, -(-width // tile) * tile, node.channels), dtype)
        for x in range(0, width, across):
            r = (y, min(y + step, height), x, min(x + across, width))
            out = node.pull(r).float()[0].permute(1, 2, 0).cpu().numpy()  # (h, w, C)
            for a in range(0, out.shape[0], CAST_ROWS):  # float64 temporaries of CAST_ROWS rows, not the rectangle's
                band[a : min(a + CAST_ROWS, r[1] - r[0]), r[2] : r[3]] = cast_to(target.from_model(out[a : a + CAST_ROWS]), dtype)[0]
            del out
        for ty in range(0, band.shape[0], tile):
            for tx in range(0, band.shape[1], tile):
                bar.update(1)
                full = band[ty : ty + tile, tx : tx + tile].copy()  # the writer may hold a tile, never the band
                yield full if full.shape[-1] > 1 else full[..., 0]
        del band  # before the next band is allocated


def plain_layers(gen: Generator) -> list[nn.Module] | None:
    """The generator as plain layers at its conditioning, for exact tiling in one evaluation; None
    for multi-step generators and kinds that cannot be tiled exactly."""
    return None if gen.steps != 1 else one_pass_layers(gen)


def streamable_layers(gen: Generator, src: Path) -> list[nn.Module]:
    """The generator as plain layers for streaming (one evaluation, exact tiling), or one line saying why not."""
    if gen.steps != 1:
        raise ScanError(f"{src}: slides are streamed in one network evaluation, and {gen.info.origin} takes "
                        f"{gen.steps} (each step needs the whole slide's previous output): use --steps 1")
    layers = plain_layers(gen)
    if layers is None:
        raise ScanError(f"{src}: a {gen.info.kind} generator cannot be tiled exactly, which streaming a slide needs")
    return layers


def output_dtype(gen: Generator, slide, keep_input_dtype: bool) -> np.dtype:
    """The target domain's dtype as the generator records it, else (or ``keep_input_dtype``) the slide's."""
    if keep_input_dtype or not gen.info.target_intensity:
        return slide.dtype
    return np.dtype(side_intensity(gen.info, "target").dtype)


def default_max_disk(folder: Path) -> int:
    """MAX_DISK, or half the free space where ``folder`` is (or will be made) if that is less."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return min(MAX_DISK, shutil.disk_usage(folder).free // 2)


def cache_disk(layers: list[nn.Module], inp: Node) -> int:
    """Bytes of disk the exact mode's whole-image caches over ``inp`` take at their peak: caches over
    CACHE_LIMIT are spilled, and at most three are alive at once (tiling.py's Cache)."""
    plan = Whole(COMPUTE_TILE, Spill(CACHE_LIMIT, Path()))
    build(layers, inp, COMPUTE_TILE, plan=plan)  # lazy nodes: nothing is read or computed
    spilled = [4 * c.channels * c.height * c.width for c in plan.caches]
    return 3 * max((b for b in spilled if b > CACHE_LIMIT), default=0)


def disk_needs(layers: list[nn.Module], inp: Node, scratch: int) -> dict[str, int]:
    """Each mode's estimated peak temporary disk in bytes for the slide ``inp``: its whole-image
    caches (the slide's for exact, the thumbnail's for thumbnail, none for kernel), plus ``scratch``
    (the pyramid's levels, ``pyramid_scratch``)."""
    small = Input(torch.empty(1, inp.channels, *thumbnail_shape(inp.height, inp.width), device="meta"), inp.device)
    return {"exact": cache_disk(layers, inp) + scratch, "kernel": scratch,
            "thumbnail": cache_disk(layers, small) + scratch}


def pyramid_scratch(shape: tuple[int, int, int], dtype: np.dtype, pyramid: bool, zarr_out: bool) -> int:
    """Temporary bytes of a TIFF pyramid at most: level 0 and its reductions (4/3 of it) are kept
    beside the output while it is assembled (uncompressed sizes: an upper bound). OME-Zarr: none."""
    if not pyramid or zarr_out:
        return 0
    return math.prod(shape) * np.dtype(dtype).itemsize * 4 // 3


def choose_mode(mode: str, needs: dict[str, int], max_disk: int, src: Path) -> str:
    """``mode``, or for auto exact when its temporary disk fits ``max_disk``, else kernel (a note).
    ScanError in one line when the mode's disk does not fit."""
    chosen = mode if mode != "auto" else "exact" if needs["exact"] <= max_disk else "kernel"
    if needs[chosen] > max_disk and chosen == "kernel":
        raise ScanError(f"{src}: --max-disk {_size(max_disk)} is too small even for kernel normalisation, which "
                        f"needs about {_size(needs['kernel'])} of temporary disk for --pyramid's levels: raise "
                        f"--max-disk or leave out --pyramid")
    if needs[chosen] > max_disk:
        raise ScanError(f"{src}: {chosen} normalisation needs about {_size(needs[chosen])} of temporary disk, over "
                        f"--max-disk {_size(max_disk)}: raise --max-disk or use --slide-norm kernel")
    if mode == "auto" and chosen == "kernel":
        logger.info("%s: exact normalisation would need about %s of temporary disk, over --max-disk %s: kernel "
                    "normalisation instead (constant disk, not exact: docs/science.md)", src,
                    _size(needs["exact"]), _size(max_disk))
    return chosen


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 10**8 else f"{n / 1e6:.1f} MB"


def slide_node(mode: str, layers: list[nn.Module], inp: SlideInput, block_dtype: torch.dtype | None,
               tmp: Path, kernel_sigma: float | None = None) -> tuple[Node, Grid | None]:
    """The network over the slide with the norms of ``mode`` (not auto), and kernel mode's grid
    (its first pass, ``collect``, is still to run; ``kernel_sigma``: its kernel in input pixels,
    None: slide_norm's default); the thumbnail pass runs here."""
    spill = Spill(CACHE_LIMIT, tmp)
    if mode == "kernel":
        plan, grid = kernel_plan(layers, inp, COMPUTE_TILE, block_dtype, sigma=kernel_sigma)
        return build(layers, inp, COMPUTE_TILE, block_dtype, plan=plan), grid
    if mode == "thumbnail":
        plan = thumbnail_plan(layers, inp, COMPUTE_TILE, block_dtype, spill, inp.device)
    else:
        plan = Whole(COMPUTE_TILE, spill)
    return build(layers, inp, COMPUTE_TILE, block_dtype, plan=plan), None


def translate_slide(gen: Generator, src: Path, dest: Path, tile: int = 512, pyramid: bool = False,
                    keep_input_dtype: bool = False, norm: str = "auto", max_disk: int | None = None,
                    kernel_sigma: float | None = None) -> Path:
    """Translate the slide ``src`` into the tiled BigTIFF ``dest`` (see the module doc): ``tile``:
    the output's TIFF tile (a multiple of 16); ``pyramid``: also 2x, 4x ... reductions down to one
    tile; in the target domain's dtype unless ``keep_input_dtype``; ``norm``: one of MODES, within
    ``max_disk`` bytes of temporary disk (None: MAX_DISK, or half the free space if less);
    ``kernel_sigma``: kernel mode's kernel in input pixels (None: one set of statistics, slide_norm.SIGMA)."""
    if tile % 16:
        raise ScanError(f"slide tile {tile}: TIFF tiles are multiples of 16 (e.g. 512)")
    if norm not in MODES:
        raise ScanError(f"slide normalisation {norm!r}: use one of {', '.join(MODES)}")
    zarr_out = names_store(dest)
    if zarr_out:
        require_writer(dest)
    slide = open_slide(src)
    h, w = slide.height, slide.width
    source, target = side_intensity(gen.info, "source"), side_intensity(gen.info, "target")
    if slide.channels != source.channels:
        raise ScanError(f"{src}: {slide.channels} channel(s), but {gen.info.origin} takes {source.channels}")
    layers, inp = streamable_layers(gen, src), SlideInput(slide, source, gen.device)
    dtype = output_dtype(gen, slide, keep_input_dtype)
    scratch = pyramid_scratch((h, w, target.channels), dtype, pyramid, zarr_out)
    budget = max_disk if max_disk is not None else default_max_disk(dest.parent)
    mode = choose_mode(norm, disk_needs(layers, inp, scratch), budget, src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gan_style-slide-", dir=dest.parent) as tmp, \
            (temporary_folder if zarr_out else temporary_path)(dest) as out_path, torch.inference_mode(), \
            gen.autocast():
        node, grid = slide_node(mode, layers, inp, torch.bfloat16 if gen.precision == BLOCKS else None, Path(tmp),
                                kernel_sigma)
        n_tiles = -(-h // tile) * -(-w // tile)
        write = write_options(slide.info, node.channels, dtype, tile)
        # One bar for both stages: the whole-slide passes (statistics, caches or kernel cells), then the output tiles.
        with tqdm(unit="tile", desc=src.name, leave=False) as bar:
            passes = whole_image_passes(node, bar) + (first_pass_tiles(grid) if grid else 0)
            bar.total = passes + n_tiles
            logger.info("%s: %d x %d px, %s normalisation: %d tiles of whole-slide passes, then %d output tiles", src,
                        w, h, mode, passes, n_tiles)
            if grid is not None:
                collect(node, grid, meter=bar)
            tiles = output_tiles(node, h, w, tile, target, dtype, bar)
            if zarr_out:
                write_slide(out_path, tiles, (h, w, node.channels), tile, dtype, slide.info.get("mpp"), pyramid,
                            src.name)
                return dest
            level0 = Path(tmp) / "level0.tif"
            write_tiled(level0, tiles, tiled_shape(h, w, node.channels), slide.info, write)
        finish(level0, out_path, pyramid, slide.info, write, Path(tmp))
    return dest
