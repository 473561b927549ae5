"""TIFF and BigTIFF scans (tifffile): the planes of a stack, each with its samples as channels.

The first series of the file is read (level 0 of a pyramid). Its axes (tifffile's letters) are
sorted into three groups: ``Y`` and ``X`` give (H, W); the samples ``S`` and channels ``C``
(planar or not) become the channel axis C, last; every other axis (pages ``I``, depth ``Z``,
time ``T``, ``Q`` ...) is flattened, in the file's order, into the planes S. So ``YX`` is
(1, H, W, 1), ``YXS`` (1, H, W, S), ``IYX`` / ``ZYX`` / ``QYX`` (N, H, W, 1), ``CYX`` (1, H, W, C)
and ImageJ's ``TZCYX`` (T*Z, H, W, C).

Pixels keep their stored dtype (uint8, uint16, int16, int32, float32); the few others are widened
or converted losslessly where possible (see ``scan.exact_dtype``: float64 becomes float32). Palette
images are expanded through their colour map to 16-bit RGB. A page too large to hold in memory
(``MAX_WHOLE_BYTES``) raises ``ScanError``: such slides are streamed tile by tile (slides.py), from
``page_shape``'s description.
"""

from __future__ import annotations

import logging
import math
import struct
from pathlib import Path
from typing import IO

import numpy as np

from .scan import Library, ModuleFormat, Scan, ScanError, exact_dtype, first_line

logger = logging.getLogger(__name__)
tifffile = Library("tifffile")

MAX_WHOLE_BYTES = 2 * 2**30  # one plane larger than this is a slide: never decoded whole
BIGTIFF_BYTES = 3_900_000_000  # classic TIFF offsets are 32-bit: write BigTIFF above this
_CHANNEL_AXES = "SC"  # tifffile's samples (colour) and channels
# Input compressions written again as they were (lossless ones tifffile can encode); others: none.
_REWRITE_COMPRESSION = {"ADOBE_DEFLATE": "zlib", "DEFLATE": "zlib", "LZW": "lzw", "ZSTD": "zstd"}


def _open(path: Path) -> tifffile.TiffFile:
    tif = None
    try:
        tif = tifffile.TiffFile(path)
        if tif.series:  # parsed lazily: a damaged IFD fails here
            return tif
        error = "a TIFF without images"
    except FileNotFoundError:
        error = "file not found"
    except (OSError, ValueError, KeyError, IndexError, struct.error) as e:
        error = f"not a readable TIFF ({first_line(e)})"
    if tif is not None:
        tif.close()
    raise ScanError(f"{path}: {error}")


def _groups(axes: str, path: Path) -> tuple[list[int], list[int], list[int]]:
    """Indices of the plane axes, of (Y, X) and of the channel axes in a series' ``axes``."""
    if "Y" not in axes or "X" not in axes:
        raise ScanError(f"{path}: TIFF series with axes {axes!r} has no Y/X image plane")
    planes = [i for i, a in enumerate(axes) if a not in "YX" + _CHANNEL_AXES]
    channels = [i for i, a in enumerate(axes) if a in _CHANNEL_AXES]
    return planes, [axes.index("Y"), axes.index("X")], channels


def _to_planes(arr: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """An array with tifffile ``axes`` as (S, H, W, C): plane axes flattened in order, channels last."""
    planes, yx, channels = _groups(axes, path)
    arr = arr.transpose(planes + yx + channels)
    h, w = arr.shape[len(planes)], arr.shape[len(planes) + 1]
    return arr.reshape(-1, h, w, math.prod(arr.shape[len(planes) + 2:]))


def _plane_info(series, path: Path) -> tuple[int, int, int, int]:
    """(S, H, W, C) of a series, from its header."""
    axes, shape = series.axes, series.shape
    planes, (y, x), channels = _groups(axes, path)
    return (math.prod(shape[i] for i in planes), shape[y], shape[x], math.prod(shape[i] for i in channels))


def _check_size(path: Path, series) -> None:
    """Refuse to decode one plane larger than ``MAX_WHOLE_BYTES`` (a slide, streamed elsewhere)."""
    _, h, w, c = _plane_info(series, path)
    nbytes = h * w * c * np.dtype(series.dtype).itemsize
    if nbytes > MAX_WHOLE_BYTES:
        gb = nbytes / 2**30
        raise ScanError(f"{path}: {w} x {h} px ({gb:.1f} GB) is too large to read whole: gan-style translate "
                        "streams it as a slide; to train on it, cut it into tiles (e.g. 2048 px TIFFs)")


def _values(planes: np.ndarray, page, path: Path) -> np.ndarray:
    """Stored (S, H, W, C) planes as returned to callers: palette expanded, dtype made exact."""
    if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None and planes.shape[-1] == 1:
        colormap = np.asarray(page.colormap)  # (3, 2**bits) uint16 RGB
        planes = np.moveaxis(colormap[:, planes[..., 0]], 0, -1)  # (S, H, W, 3)
    try:
        return np.ascontiguousarray(exact_dtype(planes, path))
    except ValueError as e:
        raise ScanError(f"{path}: {e} (convert the TIFF to real or integer pixels)") from None


def _description(page) -> str | None:
    """The page's own ImageDescription; None when it is tifffile's shape JSON, ImageJ's or OME-XML
    (those describe the input's layout, which the written file does not keep)."""
    text = page.description
    if not text or page.is_imagej or page.is_ome or text == page.shaped_description:
        return None
    if text.startswith("ImageJ=") or text.lstrip().startswith("<?xml"):
        return None
    return text


def _meta(tif: tifffile.TiffFile, series, path: Path) -> dict:
    """What ``write`` needs to write a file of the same kind (see ``read``)."""
    page = series.keyframe
    _, h, w, _ = _plane_info(series, path)
    tags = page.tags
    resolution = None
    if "XResolution" in tags and "YResolution" in tags:
        resolution = (tuple(tags["XResolution"].value), tuple(tags["YResolution"].value))  # (num, den) each
    compression = getattr(page.compression, "name", str(page.compression))
    return {
        "axes": series.axes,
        "shape": tuple(series.shape),
        "dtype": str(series.dtype),
        "size": (h, w),
        "photometric": getattr(page.photometric, "name", str(page.photometric)).lower(),
        "planar": page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and page.samplesperpixel > 1,
        "extrasamples": tuple(int(e) for e in page.extrasamples),
        "resolution": resolution,
        "resolutionunit": int(page.resolutionunit),
        "description": _description(page),
        "source_compression": compression,
        "compression": _REWRITE_COMPRESSION.get(compression),
        "predictor": int(page.predictor) > 1,
        "bigtiff": bool(tif.is_bigtiff),
        "tile": (int(page.tilelength), int(page.tilewidth)) if page.is_tiled else None,
    }


def read(path: Path, axis: int = 2, volume: int | None = None) -> Scan:
    """All planes of the first series as (S, H, W, C) in the stored dtype (``axis``/``volume``: unused).

    ``meta``: axes, shape, dtype (as stored), size ((H, W)), photometric ('minisblack', 'rgb', ...), planar,
    extrasamples, resolution ((num, den) for X and Y, or None), resolutionunit, description (or
    None), source_compression, compression (what ``write`` uses: 'zlib', 'lzw', 'zstd' or None),
    predictor, bigtiff, tile ((height, width) or None).
    """
    with _open(path) as tif:
        series = tif.series[0]
        _check_size(path, series)
        try:
            arr = series.asarray()
        except Exception as e:  # any decoder failure of a damaged or exotic file
            raise ScanError(f"{path}: cannot decode the TIFF ({first_line(e)})") from None
        meta = _meta(tif, series, path)
        planes = _values(_to_planes(arr, series.axes, path), series.keyframe, path)
    return Scan(path, planes, TiffFormat.name, meta)


def count(path: Path, axis: int = 2, volume: int | None = None) -> int:
    """Number of planes of the first series, from the header."""
    with _open(path) as tif:
        return _plane_info(tif.series[0], path)[0]


def page_shape(path: Path) -> tuple[int, int, int, np.dtype, bool]:
    """(H, W, C, stored dtype, is_tiled) of one plane of the first series' level 0, from the header."""
    with _open(path) as tif:
        series = tif.series[0]
        _, h, w, c = _plane_info(series, path)
        return h, w, c, np.dtype(series.dtype), bool(series.keyframe.is_tiled)


def _plane_from_zarr(series, index: int, path: Path) -> np.ndarray:
    """Plane ``index`` through tifffile's zarr store: only its pages / tiles are decoded."""
    import zarr

    planes, _, _ = _groups(series.axes, path)
    key: list = [slice(None)] * len(series.axes)
    for i, k in zip(planes, np.unravel_index(index, [series.shape[i] for i in planes])):
        key[i] = int(k)
    store = series.aszarr(level=0)
    try:
        arr = zarr.open(store)[tuple(key)]
    finally:
        store.close()
    rest = "".join(a for i, a in enumerate(series.axes) if i not in planes)
    return _to_planes(np.asarray(arr), rest, path)


def read_plane(path: Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
    """Plane ``index`` as (H, W, C), as ``read(path).planes[index]``; decodes only that plane's pages."""
    with _open(path) as tif:
        series = tif.series[0]
        n = _plane_info(series, path)[0]
        if not 0 <= index < n:
            raise ScanError(f"{path}: plane {index} does not exist (the TIFF has {n})")
        _check_size(path, series)
        try:
            page = series.pages[index] if len(series.pages) == n else None
            if page is not None:  # one page per plane: the usual stack
                planes = _to_planes(page.asarray(), page.axes, path)
            else:  # planes spread over pages (ImageJ channels) or inside one (volumetric)
                try:
                    planes = _plane_from_zarr(series, index, path)
                except ImportError:
                    planes = _to_planes(series.asarray(), series.axes, path)[index:index + 1]
        except ScanError:
            raise
        except Exception as e:  # any decoder failure of a damaged or exotic file
            raise ScanError(f"{path}: cannot decode the TIFF ({first_line(e)})") from None
        return _values(planes, series.keyframe, path)[0]


def _photometric(c: int, dtype: np.dtype, meta: dict) -> tuple[str, tuple | None]:
    """(photometric, extrasamples) for C channels: 1 gray, 3 (or RGBA 4) RGB when 8/16-bit, else
    gray with C - 1 unspecified extra samples."""
    rgb_dtype = dtype in (np.uint8, np.uint16)
    if c == 1:
        return ("miniswhite" if meta.get("photometric") == "miniswhite" else "minisblack"), None
    if c == 3 and rgb_dtype:
        return "rgb", None
    if c == 4 and rgb_dtype and meta.get("photometric") in ("rgb", "palette", "ycbcr"):
        extra = tuple(meta.get("extrasamples") or ()) or (tifffile.EXTRASAMPLE.UNASSALPHA,)
        return "rgb", extra[:1]
    return "minisblack", None


def _resolution(meta: dict, h: int, w: int) -> tuple | None:
    """The input's resolution (pixels per unit), scaled when the planes' size differs from the input's."""
    res, size = meta.get("resolution"), meta.get("size")
    if res is None or size is None or tuple(size) == (h, w):
        return res  # exact rationals, as read
    (xn, xd), (yn, yd) = res
    return (xn / xd * w / size[1], yn / yd * h / size[0])


def write(f: IO[bytes], path: Path, like: Scan, planes: np.ndarray) -> None:
    """Write (S, H, W, C) ``planes`` to ``f`` as a TIFF of their dtype, one page per plane.

    Kept from ``like``: resolution (scaled if H, W changed), resolution unit, description,
    compression (zlib/lzw/zstd, with its predictor; any other compression is written
    uncompressed), tiling and BigTIFF (also used above ~3.9 GB). C = 1: gray pages; C = 3
    (8/16-bit): RGB; other C: gray with extra samples, or planar when the input was.
    """
    planes = np.asarray(planes)
    if planes.ndim != 4:
        raise ScanError(f"{path}: planes must be (S, H, W, C), got shape {planes.shape}")
    _, h, w, c = planes.shape
    meta = like.meta
    photometric, extrasamples = _photometric(c, planes.dtype, meta)
    planar = bool(meta.get("planar")) and c > 1
    if c == 1:
        data = planes[..., 0]  # (S, H, W): one gray page per plane
    else:
        data = planes.transpose(0, 3, 1, 2) if planar else planes  # (S, C, H, W) or (S, H, W, C)
    compression = meta.get("compression")
    resolution = _resolution(meta, h, w)
    description = meta.get("description")  # UTF-8 bytes: tifffile refuses non-ASCII str
    tifffile.imwrite(
        f, data,
        bigtiff=bool(meta.get("bigtiff")) or planes.nbytes > BIGTIFF_BYTES,
        photometric=photometric,
        planarconfig=None if c == 1 else ("separate" if planar else "contig"),
        extrasamples=extrasamples,
        tile=meta.get("tile"),
        compression=compression,
        predictor=True if compression and meta.get("predictor") else None,
        resolution=resolution,
        resolutionunit=meta.get("resolutionunit") if resolution else None,
        description=description.encode() if description else None,
        software="gan_style",
        metadata=None,  # no tifffile JSON: the pages alone describe the stack
    )


class TiffFormat(ModuleFormat):
    """TIFF and BigTIFF: this module's functions."""

    name = "tiff"
    label = "TIFF"
    suffixes = (".tif", ".tiff")
    libraries = ("tifffile",)


TIFF = TiffFormat(__name__)
