"""Scientific and medical images in the data's own units: the exact path (no 8-bit step).

The formats, one module each, are registered in ``SCAN_FORMATS``; the functions here find a
file's format by its suffix and call it, so callers never name a format:

- ``image``: PNG and other PIL formats (S = 1): 8/16-bit grayscale, RGB, RGBA, 32-bit float (pil_scan.py);
- ``tiff``:  TIFF and BigTIFF (tifffile): 8/16/32-bit integer and float, pages = planes (tiff.py);
- ``dicom``: one DICOM file (pydicom): RescaleSlope/Intercept applied (CT in HU), MONOCHROME1
  inverted to MONOCHROME2's sense (bright = high); frames = planes (dicom.py);
- ``nifti``: .nii / .nii.gz (nibabel): a 3-D volume cut into slices along ``axis``; a 4-D one
  needs ``volume`` (which 3-D volume), else one line (nifti.py);
- ``npy``: NumPy stacks (npy.py);
- ``ome_tiff``, ``ome_zarr``: OME-TIFF and OME-Zarr (bioio reads, tifffile / ome-zarr write):
  T, C and Z planes, physical pixel sizes kept (ome_tiff.py, ome_zarr.py);
- ``czi``, ``nd2``, ``lif``: microscopy through bioio's plug-ins, written as OME-TIFF (bioio_scan.py);
- ``openslide``: SVS, NDPI, MRXS ... slides (OpenSlide), streamed by translate, written as
  OME-TIFF (openslide_scan.py).

A file becomes a ``Scan`` (scan.py: planes (S, H, W, C) in data units, the stored dtype, ``meta``).
``write_scan`` writes planes back in the format, dtype, header and geometry of the scan they
came from, atomically. Everything raises ``ScanError`` (one line naming the file and the fix).
The 8-bit RGB path of photos (``images.read_rgb``) is separate and unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import temporary_folder, write_atomic
from .bioio_scan import CZI, LIF, ND2
from .dicom import DICOM
from .nifti import NIFTI
from .npy import NPY
from .ome_tiff import OME_TIFF
from .ome_zarr import OME_ZARR
from .openslide_scan import OPENSLIDE
from .pil_scan import PIL_IMAGE
from .scan import KEPT_DTYPES, SCIENCE_EXTRA, Representation, Scan, ScanError, ScanFormat, exact_dtype
from .tiff import TIFF

__all__ = ["KEPT_DTYPES", "SCAN_FORMATS", "SCIENCE_EXTRA", "Representation", "Scan", "ScanError", "ScanFormat",
           "exact_dtype", "format_of", "is_scan_file", "is_scan_store", "plane_count", "read_plane", "read_scan",
           "output_name", "represent", "scan_format", "scan_suffixes", "write_scan", "writer_of"]

# name -> format: one line per format (docs/architecture.md, "Adding a file format").
SCAN_FORMATS: dict[str, ScanFormat] = {
    "image": PIL_IMAGE,
    "tiff": TIFF,
    "dicom": DICOM,
    "nifti": NIFTI,
    "npy": NPY,
    "ome_tiff": OME_TIFF,
    "ome_zarr": OME_ZARR,
    "czi": CZI,
    "nd2": ND2,
    "lif": LIF,
    "openslide": OPENSLIDE,
}


def scan_suffixes() -> tuple[str, ...]:
    """Every registered suffix, for messages and for matching files by name."""
    return tuple(s for fmt in SCAN_FORMATS.values() for s in fmt.suffixes)


def scan_format(path: str | Path) -> ScanFormat | None:
    """The format whose suffix ends ``path``'s name (the longest match: .nii.gz is NIfTI whatever
    claims .gz); None for other names and for hidden files."""
    if Path(path).name.startswith("."):
        return None
    length, best = max(((fmt.suffix_length(path), fmt) for fmt in SCAN_FORMATS.values()), key=lambda m: m[0],
                       default=(0, None))
    return best if length else None


def format_of(scan: Scan) -> ScanFormat:
    """The registered format that read ``scan``."""
    try:
        return SCAN_FORMATS[scan.format]
    except KeyError:
        raise ScanError(f"{scan.path}: no registered scan format {scan.format!r}") from None


def is_scan_file(path: Path) -> bool:
    """A file of a registered format, or a folder of a folder-shaped one (a .zarr store)."""
    fmt = scan_format(path)
    return fmt is not None and (path.is_dir() if fmt.folder else path.is_file())


def is_scan_store(path: Path) -> bool:
    """A folder that is one scan (a folder-shaped format's store): found as one input, never entered."""
    fmt = scan_format(path)
    return fmt is not None and fmt.folder and path.is_dir()


def _format_for_reading(path: Path) -> ScanFormat:
    fmt = scan_format(path)
    if fmt is None:
        raise ScanError(f"{path}: not a scientific image file (use {', '.join(scan_suffixes())})")
    if not is_scan_file(path):
        raise ScanError(f"{path}: {'folder' if fmt.folder else 'file'} not found")
    fmt.require(path)
    return fmt


def read_scan(path: str | Path, axis: int = 2, volume: int | None = None) -> Scan:
    """All planes of ``path``. ``axis``: NIfTI slicing axis (0, 1, 2); ``volume``: 4-D NIfTI volume."""
    path = Path(path)
    return _format_for_reading(path).read(path, axis, volume)


def plane_count(path: str | Path, axis: int = 2, volume: int | None = None) -> int:
    """How many planes ``read_scan`` would give, from the header where the format allows."""
    path = Path(path)
    return _format_for_reading(path).count(path, axis, volume)


def read_plane(path: str | Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
    """Plane ``index`` of ``path`` as (H, W, C) in the data's units (training reads one at a time)."""
    path = Path(path)
    return _format_for_reading(path).read_plane(path, index, axis, volume)


def represent(like: Scan, dtype: np.dtype | str, window: tuple[float, float], channels: int) -> Representation:
    """How ``like``'s format writes values of ``dtype`` in ``window`` (the target domain's
    representation: ``ScanFormat.represent``); ScanError when the format cannot hold them."""
    return writer_of(format_of(like)).represent(like, np.dtype(dtype), (float(window[0]), float(window[1])), channels)


def writer_of(fmt: ScanFormat) -> ScanFormat:
    """The format that writes ``fmt``'s outputs: itself, or the one a read-only format names (``written_as``)."""
    return SCAN_FORMATS[fmt.written_as] if fmt.written_as else fmt


def output_name(path: str | Path) -> Path:
    """Where the output of a file named ``path`` goes: the same name, or for a read-only format the
    name with its writer's suffix (``slide.svs`` -> ``slide.ome.tif``)."""
    path = Path(path)
    fmt = scan_format(path)
    if fmt is None or not fmt.written_as:
        return path
    return path.with_name(path.name[: len(path.name) - fmt.suffix_length(path)] + writer_of(fmt).suffixes[0])


def write_scan(path: str | Path, like: Scan, planes: np.ndarray) -> Path:
    """Write ``planes`` (S, H, W, C), already in ``like``'s dtype and units, as a file of ``like``'s
    format (or the one it is written as: ``output_name``), header and geometry (atomically). The
    suffix of ``path`` must be of that format."""
    path = Path(path)
    fmt, named = writer_of(format_of(like)), scan_format(path)
    if named is None or named.name != fmt.name:
        raise ScanError(f"{path}: a {like.format} scan must be written as {fmt.name} ({output_name(like.path).name})")
    fmt.require(path)
    if fmt.folder:  # a store: filled under a temporary name, then moved into place
        with temporary_folder(path) as tmp:
            fmt.write(None, tmp, like, planes)
        return path
    return write_atomic(path, lambda f: fmt.write(f, path, like, planes), binary=True)
