"""Slides: images too large to read whole, read rectangle by rectangle and written tile by tile.

A slide reader opens level 0 of one file and reads rectangles of it (``height``, ``width``,
``channels``, ``dtype``, ``info``, ``read(top, bottom, left, right)``); ``SLIDE_READERS`` names one
per scan format, a plain dict: TIFF and OME-TIFF through tifffile's zarr view (``Slide``: a
rectangle decodes only the TIFF tiles it touches), the OpenSlide formats (SVS, NDPI, MRXS ...)
through OpenSlide (openslide_scan.py). ``write_tiled`` streams tiles into a tiled BigTIFF with
OME-XML (the physical pixel size from ``info["mpp"]``); ``finish`` moves it into place, or first
adds a pyramid of 2x reductions (SubIFDs, as OME-TIFF pyramids are), each made from the last, a
few tile rows at a time. OME-Zarr outputs are ome_zarr.py's. The translation itself is
inference/slide.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from .intensity import cast_to
from .ome_tiff import ome_metadata
from .ome_zarr import names_store
from .openslide_scan import OpenSlideSlide
from .scan import Library, ScanError, require_library
from .scans import scan_format
from .tiff import MAX_WHOLE_BYTES, page_shape

tifffile, zarr = Library("tifffile"), Library("zarr")

LOSSLESS = ("none", "zlib", "deflate", "adobe_deflate", "lzw", "zstd", "lzma")


def is_slide(path: Path, force: bool = False) -> bool:
    """A file of a slide format (SVS ...), or a TIFF whose first page is too large to read whole (any
    TIFF when ``force``)."""
    fmt = scan_format(path)
    if fmt is None or fmt.name not in SLIDE_READERS:
        return False
    if fmt.slide:
        return True  # without its library too: open_slide says which to install
    if not fmt.available():
        return False  # without gan_style[science], TIFFs are photos (PIL refuses huge ones in one line)
    h, w, c, dtype, _ = page_shape(path)
    return force or h * w * c * np.dtype(dtype).itemsize > MAX_WHOLE_BYTES


def open_slide(path: Path):
    """The slide reader of ``path``'s format (``SLIDE_READERS``); ScanError naming what to install."""
    fmt = scan_format(path)
    if fmt is None or fmt.name not in SLIDE_READERS:
        raise ScanError(f"{path}: not a slide format (use {', '.join(SLIDE_READERS)} files)")
    require_library(path, f"{fmt.label} files", *fmt.libraries, install=fmt.install)
    return SLIDE_READERS[fmt.name](path)


def slide_output_name(dest: Path) -> Path:
    """A slide's output is a TIFF or an OME-Zarr: another name (a photo generator's .png) becomes .ome.tif."""
    if dest.name.lower().endswith((".tif", ".tiff")) or names_store(dest):
        return dest
    return dest.with_name((dest.name[: -len(dest.suffix)] if dest.suffix else dest.name) + ".ome.tif")


def mpp_of(resolution: tuple[float, float] | None, unit: int) -> tuple[float, float] | None:
    """Microns per pixel (x, y) from TIFF resolution (pixels per inch, 2, or per centimetre, 3)."""
    per_unit = {2: 25400.0, 3: 10000.0}.get(unit)
    if not resolution or per_unit is None or min(resolution) <= 0:
        return None
    return per_unit / resolution[0], per_unit / resolution[1]


class Slide:
    """Level 0 of a TIFF (or OME-TIFF), read rectangle by rectangle: ``height``, ``width``, ``channels``, ``dtype``
    and ``info`` (resolution, resolutionunit, compression, photometric: what the output keeps).
    ScanError if it is not one YX or YXS image."""

    def __init__(self, path: Path) -> None:
        require_library(path, "slides", "tifffile", "zarr")
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, page = series.levels[0].axes, series.levels[0].pages[0]
            self.info = {"resolution": page.resolution, "resolutionunit": int(page.resolutionunit),
                         "compression": page.compression.name.lower(), "photometric": page.photometric.name.lower(),
                         "mpp": mpp_of(page.resolution, int(page.resolutionunit))}
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


def _resolution(info: dict, level: int = 0) -> dict:
    """tifffile's resolution options of pyramid ``level`` (none when the slide has no resolution)."""
    if not info.get("resolution"):
        return {}
    return {"resolution": tuple(r / 2**level for r in info["resolution"]), "resolutionunit": info["resolutionunit"]}


def _ome(shape: tuple[int, ...], info: dict) -> dict:
    """The OME-XML metadata of a slide output: YX or YXS, PhysicalSizeX/Y in microns when known."""
    mpp = info.get("mpp")
    return ome_metadata("YX" if len(shape) == 2 else "YXS", (None, mpp[1], mpp[0]) if mpp else (None, None, None))


def write_tiled(path: Path, tiles: Iterable[np.ndarray], shape: tuple[int, ...], info: dict, write: dict) -> None:
    """Stream ``tiles`` ((tile, tile[, C]), row by row) into the tiled OME BigTIFF ``path`` of ``shape``."""
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(tiles, shape=shape, metadata=_ome(shape, info), **_resolution(info), **write)


def finish(level0: Path, out_path: Path, pyramid: bool, info: dict, write: dict, tmp: Path) -> None:
    """Move level 0 into place, or copy it with 2x reductions as SubIFDs (each made from the last):
    an OME-TIFF pyramid."""
    if not pyramid:
        level0.replace(out_path)
        return
    levels = [level0]
    while min(_level_shape(levels[-1])[:2]) > write["tile"][0]:
        levels.append(_reduce(levels[-1], tmp / f"level{len(levels)}.tif", write))
    shape = _level_shape(level0)
    with tifffile.TiffWriter(out_path, bigtiff=True, ome=True) as tw:
        for k, level in enumerate(levels):
            tw.write(_read_tiles(level, write["tile"][0]), shape=_level_shape(level), **_resolution(info, k),
                     subifds=len(levels) - 1 if k == 0 else None, subfiletype=1 if k else 0,
                     metadata=_ome(shape, info) if k == 0 else None, **write)


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
    with tifffile.TiffWriter(dest, bigtiff=True) as tw:  # a temporary level: no OME-XML
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


# scan format name -> slide reader (one line per format; its libraries are the format's).
SLIDE_READERS: dict[str, Callable[[Path], object]] = {
    "tiff": Slide,
    "ome_tiff": Slide,
    "openslide": OpenSlideSlide,
}
