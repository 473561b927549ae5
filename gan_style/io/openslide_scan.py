"""Whole-slide images through OpenSlide (``openslide-python`` with the library from ``openslide-bin``):
Aperio SVS, Hamamatsu NDPI, 3DHISTECH MRXS, Leica SCN, Ventana BIF, Philips and generic tiled TIFFs
named as such.

These files are slides: ``gan-style translate`` always streams them (``ScanFormat.slide``), level 0
read rectangle by rectangle through ``OpenSlideSlide`` (the interface of slides.py's readers),
RGBA composited onto white where the slide has no tissue scanned (OpenSlide's transparent
background), and writes an OME-TIFF (or OME-Zarr) pyramid with the microns per pixel
(``openslide.mpp-x``/``-y``) as its physical pixel size. ``read`` takes a small slide whole (e.g.
for training tiles cut from it), refusing one larger than ``MAX_WHOLE_BYTES`` in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .scan import SLIDES_EXTRA, Library, Scan, ScanError, ScanFormat, first_line
from .tiff import MAX_WHOLE_BYTES

openslide = Library("openslide")


def _open(path: Path):
    if not path.exists():
        raise ScanError(f"{path}: file not found")
    try:
        return openslide.OpenSlide(str(path))
    except Exception as e:  # noqa: BLE001 - OpenSlideUnsupportedFormatError, OpenSlideError
        raise ScanError(f"{path}: OpenSlide cannot read it ({first_line(e)})") from None


def _mpp(properties) -> tuple[float, float] | None:
    """(x, y) microns per pixel of level 0, or None when the slide does not say."""
    try:
        mpp = float(properties["openslide.mpp-x"]), float(properties["openslide.mpp-y"])
    except (KeyError, ValueError):
        return None
    return mpp if min(mpp) > 0 else None


def _rgb(rgba: np.ndarray) -> np.ndarray:
    """RGBA (OpenSlide's, not premultiplied) composited onto white: no tissue scanned reads as white."""
    alpha = rgba[..., 3:4].astype(np.float64) / 255
    return np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)


class OpenSlideSlide:
    """Level 0 of a slide read by OpenSlide, rectangle by rectangle, as 8-bit RGB (slides.py's interface)."""

    channels = 3
    dtype = np.dtype(np.uint8)

    def __init__(self, path: Path) -> None:
        self.path, self.slide = path, _open(path)
        self.width, self.height = self.slide.dimensions
        mpp = _mpp(self.slide.properties)
        self.info = {"mpp": mpp, "resolution": (1e4 / mpp[0], 1e4 / mpp[1]) if mpp else None,
                     "resolutionunit": 3, "compression": "zlib", "photometric": "rgb",
                     "vendor": self.slide.properties.get("openslide.vendor")}

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """Rows top..bottom-1 and columns left..right-1 as (h, w, 3) uint8."""
        try:
            region = self.slide.read_region((left, top), 0, (right - left, bottom - top))
        except Exception as e:  # noqa: BLE001 - a damaged tile
            raise ScanError(f"{self.path}: OpenSlide cannot read the region at ({left}, {top}) ({first_line(e)})") from None
        return _rgb(np.asarray(region))


class OpenSlideFormat(ScanFormat):
    name = "openslide"
    label = "OpenSlide slide"
    suffixes = (".svs", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide")
    libraries = ("openslide",)
    install = SLIDES_EXTRA
    written_as = "ome_tiff"
    slide = True

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        """Level 0 as (1, H, W, 3) uint8 when small enough; ``meta``: the OME writers' (bioio_scan.py)."""
        slide = OpenSlideSlide(path)
        if slide.height * slide.width * 3 > MAX_WHOLE_BYTES:
            raise ScanError(f"{path}: {slide.width} x {slide.height} px is too large to read whole: gan-style translate "
                            "streams it; to train on it, cut it into tiles")
        mpp = slide.info["mpp"]
        meta = {"tcz": (1, 1, 1), "size": (slide.height, slide.width), "channel_names": None,
                "physical": (None, mpp[1], mpp[0]) if mpp else (None, None, None)}
        return Scan(path, slide.read(0, slide.height, 0, slide.width)[None], self.name, meta)

    def units(self, scan: Scan) -> str:
        return "8-bit RGB slide values (uint8)"


OPENSLIDE = OpenSlideFormat()
