"""Slides: TIFFs too large to read whole, read rectangle by rectangle and written tile by tile.

``Slide`` opens level 0 of a TIFF through tifffile's zarr view, so a rectangle decodes only the
TIFF tiles it touches. ``write_tiled`` streams tiles into a tiled BigTIFF; ``finish`` moves it
into place, or first adds a pyramid of 2x reductions (SubIFDs), each made from the last, a few
tile rows at a time. The translation itself is inference/slide.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .intensity import cast_to
from .scan import Library, ScanError, require_library
from .scans import scan_format
from .tiff import MAX_WHOLE_BYTES, TIFF, page_shape

tifffile, zarr = Library("tifffile"), Library("zarr")

LOSSLESS = ("none", "zlib", "deflate", "adobe_deflate", "lzw", "zstd", "lzma")


def is_slide(path: Path, force: bool = False) -> bool:
    """A TIFF whose first page is too large to read whole (or any TIFF when ``force``)."""
    if scan_format(path) is not TIFF or not TIFF.available():
        return False  # without gan_style[science], TIFFs are photos (PIL refuses huge ones in one line)
    h, w, c, dtype, _ = page_shape(path)
    return force or h * w * c * np.dtype(dtype).itemsize > MAX_WHOLE_BYTES


class Slide:
    """Level 0 of a TIFF, read rectangle by rectangle: ``height``, ``width``, ``channels``, ``dtype``
    and ``info`` (resolution, resolutionunit, compression, photometric: what the output keeps).
    ScanError if it is not one YX or YXS image."""

    def __init__(self, path: Path) -> None:
        require_library(path, "slides", "tifffile", "zarr")
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, page = series.levels[0].axes, series.levels[0].pages[0]
            self.info = {"resolution": page.resolution, "resolutionunit": int(page.resolutionunit),
                         "compression": page.compression.name.lower(), "photometric": page.photometric.name.lower()}
        if axes not in ("YX", "YXS"):
            raise ScanError(f"{path}: a slide must be one YX or YXS image (this TIFF is {axes}): use a 2-D slide")
        self.array = zarr.open_array(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r")
        self.height, self.width = self.array.shape[:2]
        self.channels = self.array.shape[2] if self.array.ndim == 3 else 1
        self.dtype = np.dtype(self.array.dtype)

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """Rows top..bottom-1 and columns left..right-1 as (h, w, C), in the stored dtype."""
        block = np.asarray(self.array[top:bottom, left:right])
        return block.reshape(block.shape[0], block.shape[1], -1)


def write_options(info: dict, channels: int, dtype: np.dtype, tile: int) -> dict:
    """tifffile's write options for a tiled output of ``channels`` and ``dtype``: the input's
    compression when lossless, else zlib."""
    photometric = "rgb" if channels == 3 and dtype in (np.uint8, np.uint16) else "minisblack"
    compression = info["compression"] if info["compression"] in LOSSLESS else "zlib"
    return {"tile": (tile, tile), "photometric": photometric, "dtype": dtype,
            "compression": None if compression == "none" else compression, "planarconfig": "contig"}


def tiled_shape(h: int, w: int, c: int) -> tuple[int, ...]:
    return (h, w) if c == 1 else (h, w, c)


def write_tiled(path: Path, tiles: Iterable[np.ndarray], shape: tuple[int, ...], info: dict, write: dict) -> None:
    """Stream ``tiles`` ((tile, tile[, C]), row by row) into the tiled BigTIFF ``path`` of ``shape``."""
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(tiles, shape=shape, resolution=info["resolution"], resolutionunit=info["resolutionunit"], **write)


def finish(level0: Path, out_path: Path, pyramid: bool, info: dict, write: dict, tmp: Path) -> None:
    """Move level 0 into place, or copy it with 2x reductions as SubIFDs (each made from the last)."""
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
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].shape


def _read_tiles(path: Path, tile: int) -> Iterator[np.ndarray]:
    """The tiles of a tiled TIFF, row by row, (tile, tile[, C]) with zero-padded edges."""
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
