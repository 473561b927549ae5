"""Microscopy files through bioio and its reader plug-ins: CZI (Zeiss), ND2 (Nikon), LIF (Leica),
and the reading of OME-TIFF and OME-Zarr (ome_tiff.py, ome_zarr.py).

bioio gives every file one dimension order, TCZYX (and S, samples, for RGB): each time point,
channel and Z slice is a plane, in that order, and the samples are its channels, so a 1-channel
generator translates every fluorescence channel and slice of a stack. ``meta`` keeps what the
OME writers need to write the planes back with the same layout: ``tcz`` (the T, C, Z sizes),
``physical`` (Z, Y, X pixel sizes in microns, None where unknown), ``channel_names`` and
``size`` (the input's (H, W), so physical sizes follow a resize). Only the first scene of a
multi-scene file is read (one note). The proprietary formats cannot be written: their outputs are
OME-TIFF (``written_as``), which keeps the pixel sizes.

Each plug-in is a package of its own (``bioio-czi``, ``bioio-nd2``, ``bioio-lif``, in the bio
extra); a missing one is one line naming it.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np

from .scan import BIO_EXTRA, Library, Scan, ScanError, ScanFormat, exact_dtype, first_line

logger = logging.getLogger(__name__)
bioio = Library("bioio")


def _image(path: Path, plugin: str):
    """The bioio image of ``path`` read by the plug-in module ``plugin`` (its ``Reader``), first scene."""
    if not path.exists():
        raise ScanError(f"{path}: file not found")
    try:
        img = bioio.BioImage(path, reader=importlib.import_module(plugin).Reader)
        if len(img.scenes) > 1:
            logger.warning("%s: %d scenes; the first (%s) is read", path, len(img.scenes), img.scenes[0])
        return img
    except Exception as e:  # noqa: BLE001 - each plug-in raises its own errors for a bad file
        raise ScanError(f"{path}: cannot read it with {plugin} ({first_line(e)})") from None


def read_bioio(path: Path, plugin: str, name: str) -> Scan:
    """All planes of ``path`` as (T*C*Z, H, W, S) in the stored dtype, and the OME writers' ``meta``."""
    img = _image(path, plugin)
    order = "TCZYXS" if "S" in img.dims.order else "TCZYX"
    try:
        data = np.asarray(img.get_image_data(order))
    except Exception as e:  # noqa: BLE001 - decoders of the plug-ins
        raise ScanError(f"{path}: cannot decode the image data ({first_line(e)})") from None
    if order == "TCZYX":
        data = data[..., None]
    t, c, z, h, w, s = data.shape
    sizes = img.physical_pixel_sizes
    meta = {"tcz": (t, c, z), "size": (h, w), "physical": tuple(_microns(v) for v in (sizes.Z, sizes.Y, sizes.X)),
            "channel_names": [str(n) for n in (img.channel_names or [])][:c] or None}
    planes = np.ascontiguousarray(exact_dtype(data.reshape(t * c * z, h, w, s), path))
    return Scan(path, planes, name, meta)


def _microns(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) and value > 0 else None


class BioioFormat(ScanFormat):
    """A microscopy format read by one bioio plug-in (``plugin``, its module), written as OME-TIFF."""

    install = BIO_EXTRA
    written_as = "ome_tiff"

    def __init__(self, name: str, label: str, suffixes: tuple[str, ...], plugin: str) -> None:
        self.name, self.label, self.suffixes, self.plugin = name, label, suffixes, plugin
        self.libraries = ("bioio", plugin)

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        """Every T, C and Z plane (``axis``/``volume``: unused); see the module docstring."""
        return read_bioio(path, self.plugin, self.name)

    def units(self, scan: Scan) -> str:
        return f"stored {self.label} values ({scan.planes.dtype})"


CZI = BioioFormat("czi", "CZI", (".czi",), "bioio_czi")
ND2 = BioioFormat("nd2", "ND2", (".nd2",), "bioio_nd2")
LIF = BioioFormat("lif", "LIF", (".lif",), "bioio_lif")
