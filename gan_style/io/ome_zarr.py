"""OME-Zarr (.ome.zarr, NGFF): read through bioio's OME-Zarr plug-in, written by ``ome-zarr``.

A folder-shaped store: found as one input and written into a temporary folder moved into place
(``ScanFormat.folder``). Reading: every T, C and Z plane (bioio_scan.py). Writing: NGFF 0.4
(zarr format 2, which Bio-Formats, QuPath and napari-ome-zarr read) with axes t, c, z, y, x, the
physical sizes as the scale of each level in micrometres, and the channel axis holding the
samples too (NGFF has no sample axis: an RGB plane becomes three channels). Slides stream into
the same layout, tile by tile, with a pyramid of 2x means on request (``write_slide``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from .bioio_scan import read_bioio
from .intensity import cast_to
from .ome_tiff import physical_sizes
from .scan import BIO_EXTRA, Library, Scan, ScanError, ScanFormat, require_library

zarr = Library("zarr")
AXES = "tczyx"


def _format():
    from ome_zarr.format import FormatV04

    return FormatV04()


def _axes(names: str) -> list[dict]:
    kinds = {"t": "time", "c": "channel"}
    return [{"name": a, "type": kinds.get(a, "space")} | ({"unit": "micrometer"} if a in "zyx" else {}) for a in names]


def _scale(names: str, physical: dict[str, float | None], factor: int = 1) -> list[dict]:
    """One level's coordinate transformation: the physical size of a pixel along each axis."""
    sizes = [(physical.get(a) or 1.0) * (factor if a in "yx" else 1) for a in names]
    return [{"type": "scale", "scale": sizes}]


def write(path: Path, like: Scan, planes: np.ndarray) -> None:
    """(S, H, W, C) planes as a one-level OME-Zarr of ``like``'s T, C, Z layout in the new folder ``path``."""
    from ome_zarr.writer import write_multiscales_metadata

    n, h, w, c = planes.shape
    t, ch, z = like.meta.get("tcz") or (1, 1, n)
    if t * ch * z != n:
        t, ch, z = 1, 1, n
    data = planes.reshape(t, ch, z, h, w, c).transpose(0, 1, 5, 2, 3, 4).reshape(t, ch * c, z, h, w)
    zs, ys, xs = physical_sizes(like.meta, h, w)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=data, chunks=(1, 1, 1, min(h, 1024), min(w, 1024)))
    datasets = [{"path": "0", "coordinateTransformations": _scale(AXES, {"z": zs, "y": ys, "x": xs})}]
    write_multiscales_metadata(group, datasets, fmt=_format(), axes=_axes(AXES), name=like.path.name)


def names_store(path: Path) -> bool:
    """Whether an output named ``path`` is an OME-Zarr store (a slide written as OME-Zarr)."""
    return OME_ZARR.suffix_length(path) > 0


def require_writer(path: Path) -> None:
    """ScanError naming ``path`` and the package when the OME-Zarr writer's libraries are missing."""
    require_library(path, "OME-Zarr outputs", "zarr", "ome_zarr", install=BIO_EXTRA)


def write_slide(path: Path, tiles: Iterable[np.ndarray], shape: tuple[int, int, int], tile: int, dtype: np.dtype,
                mpp: tuple[float, float] | None, pyramid: bool, name: str) -> None:
    """Stream (tile, tile[, C]) ``tiles`` (row by row, edges zero-padded) into level 0 (c, y, x) of a
    new OME-Zarr ``path``; with ``pyramid``, 2x means down to one tile, each made from the last."""
    from ome_zarr.writer import write_multiscales_metadata

    h, w, c = shape
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    level = group.create_array("0", shape=(c, h, w), chunks=(1, tile, tile), dtype=dtype)
    per_row = -(-w // tile)
    for i, block in enumerate(tiles):
        y, x = (i // per_row) * tile, (i % per_row) * tile
        block = block.reshape(tile, tile, -1)[: min(tile, h - y), : min(tile, w - x)]
        level[:, y : y + block.shape[0], x : x + block.shape[1]] = block.transpose(2, 0, 1)
    levels = [level]
    while pyramid and min(levels[-1].shape[1:]) > tile:
        levels.append(_halve(group, levels[-1], str(len(levels)), tile, dtype))
    physical = {"y": mpp[1], "x": mpp[0]} if mpp else {}
    datasets = [{"path": str(k), "coordinateTransformations": _scale("cyx", physical, 2**k)} for k in range(len(levels))]
    write_multiscales_metadata(group, datasets, fmt=_format(), axes=_axes("cyx"), name=name)


def _halve(group, src, key: str, tile: int, dtype: np.dtype):
    """``src`` (c, y, x) halved by 2 x 2 means (rounded for integers), one output tile at a time."""
    c, h, w = src.shape
    oh, ow = h // 2, w // 2
    dest = group.create_array(key, shape=(c, oh, ow), chunks=(1, tile, tile), dtype=dtype)
    for y in range(0, oh, tile):
        for x in range(0, ow, tile):
            rows, cols = min(tile, oh - y), min(tile, ow - x)
            block = np.asarray(src[:, 2 * y : 2 * (y + rows), 2 * x : 2 * (x + cols)], dtype=np.float64)
            dest[:, y : y + rows, x : x + cols] = cast_to(block.reshape(c, rows, 2, cols, 2).mean((2, 4)), dtype)[0]
    return dest


class OmeZarrFormat(ScanFormat):
    name = "ome_zarr"
    label = "OME-Zarr"
    suffixes = (".ome.zarr",)
    libraries = ("zarr", "ome_zarr", "bioio", "bioio_ome_zarr")
    install = BIO_EXTRA
    folder = True

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        """Every T, C and Z plane of level 0 (``axis``/``volume``: unused); ``meta``: see bioio_scan.py."""
        if not (path / ".zattrs").exists() and not (path / "zarr.json").exists():
            raise ScanError(f"{path}: not an OME-Zarr store (no .zattrs or zarr.json)")
        return read_bioio(path, "bioio_ome_zarr", self.name)

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        write(path, like, planes)


OME_ZARR = OmeZarrFormat()
