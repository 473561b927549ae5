"""Gigapixel slides: translate a TIFF too large for memory, tile by tile, from disk to disk.

    translate_slide(load_generator("runs/stain/last.pt"), Path("slide.tif"), Path("out/slide.tif"))

The exact tiling of ``tiling.py`` runs on a lazy input: each rectangle the first layers ask for
is read from the TIFF (only the TIFF tiles it touches are decoded, through tifffile's zarr view),
mirrored beyond the slide's edge (the generator wants sides that are multiples of 4) and mapped to
[-1, 1] by the generator's source intensity. Whole-slide InstanceNorm statistics are measured by
streaming; the 1/4-resolution activations that the exact result needs are spilled to chunked
arrays in a temporary folder when they exceed ``CACHE_LIMIT`` (so resident memory stays bounded
whatever the slide's size: docs/science.md measures it). Output tiles are mapped back to the
target's units and streamed into a tiled BigTIFF, optionally with a pyramid of 2x reductions in
SubIFDs. Everything is written under a temporary name and moved into place at the end: Ctrl-C or
a crash leaves no partial output (and removes the temporary files).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..io.atomic import temporary_path
from ..io.intensity import Intensity, cast_to
from ..io.scans import ScanError, scan_format
from .scans import side_intensity
from .tiling import Node, Region, Spill, build, whole_image_passes
from .translate import BLOCKS, Generator

logger = logging.getLogger(__name__)

CACHE_LIMIT = 256 * 2**20  # bytes: larger whole-slide activations live on disk
COMPUTE_TILE = 1024  # pixels: the tiling's own rectangles
LOSSLESS = ("none", "zlib", "deflate", "adobe_deflate", "lzw", "zstd", "lzma")


def is_slide(path: Path, force: bool = False) -> bool:
    """A TIFF whose first page is too large to read whole (or any TIFF when ``force``)."""
    if scan_format(path) != "tiff":
        return False
    try:
        from ..io import tiff
    except ImportError:  # without gan_style[science], TIFFs are photos (PIL refuses huge ones in one line)
        return False

    h, w, c, dtype, _ = tiff.page_shape(path)
    return force or h * w * c * np.dtype(dtype).itemsize > tiff.MAX_WHOLE_BYTES


class SlideInput(Node):
    """Level 0 of a TIFF as the tiling's input: (1, C, H', W') with H', W' rounded up to
    multiples of 4 by mirroring, read rectangle by rectangle and normalised on the way."""

    def __init__(self, array, height: int, width: int, intensity: Intensity, device: torch.device) -> None:
        self.array, self.h, self.w, self.intensity, self.device = array, height, width, intensity, device
        self.channels = intensity.channels
        self.height, self.width = -(-height // 4) * 4, -(-width // 4) * 4
        self.scale = 1.0

    def pull(self, r: Region) -> torch.Tensor:
        rows, cols = _mirror(r[0], r[1], self.h), _mirror(r[2], r[3], self.w)
        block = np.asarray(self.array[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
        block = block.reshape(block.shape[0], block.shape[1], -1)[rows - rows.min()][:, cols - cols.min()]
        x = torch.from_numpy(self.intensity.to_model(block)).permute(2, 0, 1)[None]  # (1, C, h, w)
        return x.to(self.device)


def _mirror(start: int, stop: int, n: int) -> np.ndarray:
    """Indices start..stop-1 with those past ``n`` mirrored back (reflection without the edge)."""
    idx = np.arange(start, stop)
    return np.where(idx < n, idx, 2 * (n - 1) - idx).clip(0, n - 1)


def _open_level0(src: Path):
    """(zarr array of level 0 as (H, W[, C]), TiffPage) of a TIFF; ScanError if it is not YX[S]."""
    import tifffile
    import zarr

    with tifffile.TiffFile(src) as tif:
        series = tif.series[0]
        axes, page = series.levels[0].axes, series.levels[0].pages[0]
        info = {"resolution": page.resolution, "resolutionunit": int(page.resolutionunit),
                "compression": page.compression.name.lower(), "photometric": page.photometric.name.lower()}
    if axes not in ("YX", "YXS"):
        raise ScanError(f"{src}: a slide must be one YX or YXS image (this TIFF is {axes}): use a 2-D slide")
    store = tifffile.imread(src, aszarr=True, series=0, level=0)
    return zarr.open_array(store, mode="r"), info


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


def _write_options(info: dict, channels: int, dtype: np.dtype, tile: int) -> dict:
    photometric = "rgb" if channels == 3 and dtype in (np.uint8, np.uint16) else "minisblack"
    compression = info["compression"] if info["compression"] in LOSSLESS else "zlib"
    return {"tile": (tile, tile), "photometric": photometric, "dtype": dtype,
            "compression": None if compression == "none" else compression, "planarconfig": "contig"}


def translate_slide(gen: Generator, src: Path, dest: Path, tile: int = 512, pyramid: bool = False) -> Path:
    """Translate the slide ``src`` into the tiled BigTIFF ``dest`` (see the module doc): ``tile``:
    the output's TIFF tile (a multiple of 16); ``pyramid``: also 2x, 4x ... reductions down to one tile."""
    import tifffile

    if tile % 16:
        raise ScanError(f"slide tile {tile}: TIFF tiles are multiples of 16 (e.g. 512)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    array, info = _open_level0(src)
    h, w = array.shape[:2]
    source, target = side_intensity(gen.info, "source"), side_intensity(gen.info, "target")
    c_in = array.shape[2] if array.ndim == 3 else 1
    if c_in != source.channels:
        raise ScanError(f"{src}: {c_in} channel(s), but {gen.info.origin} takes {source.channels}")
    dtype = np.dtype(array.dtype)
    with tempfile.TemporaryDirectory(prefix="gan_style-slide-", dir=dest.parent) as tmp, \
            temporary_path(dest) as out_path, torch.inference_mode(), gen.autocast():
        block_dtype = torch.bfloat16 if gen.precision == BLOCKS else None
        node = build(list(gen.net.children()), SlideInput(array, h, w, source, gen.device), COMPUTE_TILE,
                     block_dtype, spill=Spill(CACHE_LIMIT, Path(tmp)))
        n_tiles = -(-h // tile) * -(-w // tile)
        write = _write_options(info, node.channels, dtype, tile)
        # One bar for both stages: the whole-slide passes (statistics, 1/4-resolution caches), then the output tiles.
        with tqdm(unit="tile", desc=src.name, leave=False) as bar:
            passes = whole_image_passes(node, bar)
            bar.total = passes + n_tiles
            logger.info("%s: %d x %d px: %d tiles of whole-slide passes, then %d output tiles", src, w, h, passes,
                        n_tiles)
            level0 = Path(tmp) / "level0.tif"
            with tifffile.TiffWriter(level0, bigtiff=True) as tw:
                tw.write(output_tiles(node, h, w, tile, target, dtype, bar), shape=_shape(h, w, node.channels),
                         resolution=info["resolution"], resolutionunit=info["resolutionunit"], **write)
        _finish(level0, out_path, pyramid, info, write, Path(tmp))
    return dest


def _shape(h: int, w: int, c: int) -> tuple[int, ...]:
    return (h, w) if c == 1 else (h, w, c)


def _finish(level0: Path, out_path: Path, pyramid: bool, info: dict, write: dict, tmp: Path) -> None:
    """Move level 0 into place, or copy it with 2x reductions as SubIFDs (each made from the last)."""
    import tifffile

    if not pyramid:
        level0.replace(out_path)
        return
    levels = [level0]
    while min(_level_shape(levels[-1])[:2]) > write["tile"][0]:
        levels.append(_reduce(levels[-1], tmp / f"level{len(levels)}.tif", write))
    with tifffile.TiffWriter(out_path, bigtiff=True) as tw:
        for k, level in enumerate(levels):
            res = tuple(r / 2**k for r in info["resolution"])
            tw.write(_read_tiles(level, write["tile"][0]), shape=_level_shape(level), resolution=res,
                     resolutionunit=info["resolutionunit"], subifds=len(levels) - 1 if k == 0 else None,
                     subfiletype=1 if k else 0, **write)


def _level_shape(path: Path) -> tuple[int, ...]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return tif.series[0].shape


def _read_tiles(path: Path, tile: int) -> Iterator[np.ndarray]:
    """The tiles of a tiled TIFF, row by row, (tile, tile[, C]) with zero-padded edges."""
    import tifffile
    import zarr

    array = zarr.open_array(tifffile.imread(path, aszarr=True), mode="r")
    h, w = array.shape[:2]
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            block = np.asarray(array[y : y + tile, x : x + tile])
            full = np.zeros((tile, tile) + block.shape[2:], block.dtype)
            full[: block.shape[0], : block.shape[1]] = block
            yield full


def _reduce(src: Path, dest: Path, write: dict) -> Path:
    """``src`` halved (2 x 2 means, rounded for integers) as a tiled TIFF, two tile rows at a time."""
    import tifffile
    import zarr

    array = zarr.open_array(tifffile.imread(src, aszarr=True), mode="r")
    h, w = array.shape[:2]
    tile, dtype = write["tile"][0], np.dtype(write["dtype"])
    oh, ow = h // 2, w // 2
    with tifffile.TiffWriter(dest, bigtiff=True) as tw:
        tw.write(_reduced_tiles(array, oh, ow, tile, dtype), shape=(oh, ow) + tuple(array.shape[2:]), **write)
    return dest


def _reduced_tiles(array, oh: int, ow: int, tile: int, dtype: np.dtype) -> Iterator[np.ndarray]:
    for y in range(0, oh, tile):
        for x in range(0, ow, tile):
            block = np.asarray(array[2 * y : 2 * min(y + tile, oh), 2 * x : 2 * min(x + tile, ow)], dtype=np.float64)
            half = block.reshape(block.shape[0] // 2, 2, block.shape[1] // 2, 2, *block.shape[2:]).mean((1, 3))
            values, _ = cast_to(half, dtype)
            full = np.zeros((tile, tile) + values.shape[2:], dtype)
            full[: values.shape[0], : values.shape[1]] = values
            yield full
