"""OME-TIFF (.ome.tif, .ome.tiff): read through bioio's OME-TIFF plug-in, written by tifffile with
OME-XML, as QuPath, napari and Fiji read them.

Reading: every T, C and Z plane (bioio_scan.py). Writing: the planes back as TCZYX (TCZYXS for
RGB), zlib-compressed, with ``PhysicalSizeX/Y/Z`` in microns (X and Y scaled when the planes
were resized) and the channel names. Other formats' outputs are written this way too (CZI, ND2,
LIF and OpenSlide slides read small: ``written_as``). Slides too large to read whole are
streamed (slides.py) into an OME-TIFF pyramid with the same metadata (``ome_metadata``).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from .bioio_scan import read_bioio
from .scan import BIO_EXTRA, Library, Scan, ScanError, ScanFormat
from .tiff import BIGTIFF_BYTES

tifffile = Library("tifffile")


def physical_sizes(meta: dict, h: int, w: int) -> tuple[float | None, float | None, float | None]:
    """(Z, Y, X) pixel sizes in microns of planes of (h, w): the input's, scaled where resized."""
    z, y, x = meta.get("physical") or (None, None, None)
    size = meta.get("size")
    if size and tuple(size) != (h, w):
        y = y * size[0] / h if y else None
        x = x * size[1] / w if x else None
    return z, y, x


def ome_metadata(axes: str, physical: tuple, channel_names: list[str] | None = None) -> dict:
    """tifffile's ``metadata`` for OME-XML: the axes, the physical sizes known (microns), channel names."""
    meta: dict = {"axes": axes}
    for axis, value in zip("ZYX", physical):
        if value and axis in axes:
            meta[f"PhysicalSize{axis}"], meta[f"PhysicalSize{axis}Unit"] = float(value), "µm"
    if channel_names:
        meta["Channel"] = {"Name": list(channel_names)}
    return meta


def write(f: IO[bytes], path: Path, like: Scan, planes: np.ndarray) -> None:
    """(S, H, W, C) planes as an OME-TIFF of ``like``'s T, C, Z layout (one T*Z*C-plane stack when
    the count differs); C = 1 gray, C = 3 (8/16-bit) RGB samples."""
    n, h, w, c = planes.shape
    t, ch, z = like.meta.get("tcz") or (1, 1, n)
    if t * ch * z != n:
        t, ch, z = 1, 1, n
    rgb = c == 3 and planes.dtype in (np.uint8, np.uint16)
    if c != 1 and not rgb:
        raise ScanError(f"{path}: OME-TIFF planes of {c} {planes.dtype} samples are not written (1 value, or 8/16-bit "
                        "RGB): translate to .tif instead")
    data = planes.reshape(t, ch, z, h, w, c)
    axes = "TCZYXS" if rgb else "TCZYX"
    names = like.meta.get("channel_names")
    meta = ome_metadata(axes, physical_sizes(like.meta, h, w), names if names and len(names) == ch else None)
    tifffile.imwrite(f, data if rgb else data[..., 0], ome=True, metadata=meta, photometric="rgb" if rgb else "minisblack",
                     compression="zlib", bigtiff=planes.nbytes > BIGTIFF_BYTES, software="gan_style")


class OmeTiffFormat(ScanFormat):
    name = "ome_tiff"
    label = "OME-TIFF"
    suffixes = (".ome.tif", ".ome.tiff")
    libraries = ("tifffile", "bioio", "bioio_ome_tiff")
    install = BIO_EXTRA

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        """Every T, C and Z plane (``axis``/``volume``: unused); ``meta``: see bioio_scan.py."""
        return read_bioio(path, "bioio_ome_tiff", self.name)

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        write(f, path, like, planes)


OME_TIFF = OmeTiffFormat()
