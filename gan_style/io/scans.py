"""Scientific and medical images in the data's own units: the exact path (no 8-bit step).

A file becomes a ``Scan``: its 2-D planes as one array ``(S, H, W, C)`` in the data's units,
with the stored dtype kept (uint8, uint16, int16, float32 ...), and what its format's writer
needs to write a derived file of the same kind (``meta``):

- ``image``: PNG and other PIL formats (S = 1): 8/16-bit grayscale, RGB, RGBA, 32-bit float;
- ``tiff``:  TIFF and BigTIFF (tifffile): 8/16/32-bit integer and float, pages = planes;
- ``dicom``: one DICOM file (pydicom): RescaleSlope/Intercept applied (CT in HU), MONOCHROME1
  inverted to MONOCHROME2's sense (bright = high); frames = planes;
- ``nifti``: .nii / .nii.gz (nibabel): a 3-D volume cut into slices along ``axis``; a 4-D one
  needs ``volume`` (which 3-D volume), else one line.

``write_scan`` writes planes back in the format, dtype, header and geometry of the scan they
came from, atomically. Readers raise ``ScanError`` (one line naming the file and the fix).
The 8-bit RGB path of photos (``images.read_rgb``) is separate and unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import write_atomic

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".pgm", ".ppm", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
SCAN_SUFFIXES = IMAGE_SUFFIXES + TIFF_SUFFIXES + DICOM_SUFFIXES + NIFTI_SUFFIXES
SCIENCE_EXTRA = "pip install 'gan_style[science]' (make setup installs it)"


KEPT_DTYPES = (np.uint8, np.uint16, np.int16, np.int32, np.float32)  # stored as they are; others: exact_dtype


class ScanError(ValueError):
    """A scientific image that cannot be read or written; the message names the file and the fix."""


@dataclass
class Scan:
    """One file's planes in the data's own units, and what is needed to write a derived file."""

    path: Path
    planes: np.ndarray  # (S, H, W, C), the stored dtype (DICOM / scaled NIfTI: float32 in physical units)
    format: str  # image | tiff | dicom | nifti
    meta: dict = field(default_factory=dict)  # the format's own: header, affine, axis, resolution ...

    @property
    def channels(self) -> int:
        return int(self.planes.shape[-1])


def exact_dtype(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` in one of the kept dtypes, native byte order.

    bool -> uint8 (0/1), int8 -> int16 (exact); float16 -> float32 (exact), float64 -> float32
    (rounded to float32's 24-bit precision); uint32/int64/uint64 -> float32 (exact up to 2**24, a
    warning above). Complex data raise ``ValueError``.
    """
    if arr.dtype.names or arr.dtype.kind == "c":
        raise ScanError(f"{path}: {arr.dtype} values (RGB records or complex) are not supported; convert to real values")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype in KEPT_DTYPES:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.int8:
        return arr.astype(np.int16)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        if arr.size and max(abs(int(arr.min())), abs(int(arr.max()))) > 2**24:
            logger.warning("%s: %s values beyond 2**24 are rounded to float32 precision", path, arr.dtype)
        return arr.astype(np.float32)
    raise ScanError(f"{path}: {arr.dtype} values are not supported; convert them to real numbers")



def scan_format(path: str | Path) -> str | None:
    """image, tiff, dicom or nifti by the file name; None for other files."""
    name = Path(path).name.lower()
    if name.startswith("."):
        return None
    for fmt, suffixes in (("nifti", NIFTI_SUFFIXES), ("tiff", TIFF_SUFFIXES), ("dicom", DICOM_SUFFIXES),
                          ("image", IMAGE_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    return None


def is_scan_file(path: Path) -> bool:
    return path.is_file() and scan_format(path) is not None


def _module(fmt: str):
    """The reader/writer module of a format; its library is imported only when needed."""
    try:
        if fmt == "tiff":
            from . import tiff as module
        elif fmt == "dicom":
            from . import dicom as module
        elif fmt == "nifti":
            from . import nifti as module
        else:
            module = None
    except ImportError as e:
        if (e.name or "").startswith("gan_style"):
            raise
        raise ScanError(f"{fmt.upper()} files need {e.name}: {SCIENCE_EXTRA}") from None
    return module


def _format_of(path: Path) -> str:
    fmt = scan_format(path)
    if fmt is None:
        raise ScanError(f"{path}: not a scientific image file (use {', '.join(SCAN_SUFFIXES)})")
    if not path.is_file():
        raise ScanError(f"{path}: file not found")
    return fmt


def read_scan(path: str | Path, axis: int = 2, volume: int | None = None) -> Scan:
    """All planes of ``path``. ``axis``: NIfTI slicing axis (0, 1, 2); ``volume``: 4-D NIfTI volume."""
    path = Path(path)
    fmt = _format_of(path)
    module = _module(fmt)
    return module.read(path, axis, volume) if module else _read_image(path)


def plane_count(path: str | Path, axis: int = 2, volume: int | None = None) -> int:
    """How many planes ``read_scan`` would give, from the header where the format allows."""
    path = Path(path)
    fmt = _format_of(path)
    module = _module(fmt)
    return module.count(path, axis, volume) if module else 1


def read_plane(path: str | Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
    """Plane ``index`` of ``path`` as (H, W, C) in the data's units (training reads one at a time)."""
    path = Path(path)
    fmt = _format_of(path)
    module = _module(fmt)
    return module.read_plane(path, index, axis, volume) if module else _read_image(path).planes[0]


def write_scan(path: str | Path, like: Scan, planes: np.ndarray) -> Path:
    """Write ``planes`` (S, H, W, C), already in ``like``'s dtype and units, as a file of ``like``'s
    format, header and geometry (atomically). The suffix of ``path`` must be of the same format."""
    path = Path(path)
    if scan_format(path) != like.format:
        raise ScanError(f"{path}: a {like.format} scan must be written as {like.format} (same suffix as {like.path.name})")
    module = _module(like.format)
    writer = module.write if module else _write_image
    return write_atomic(path, lambda f: writer(f, path, like, planes), binary=True)


# ---------------------------------------------------------------- PNG and other PIL formats

# PIL mode -> (dtype, channels) kept exactly; other modes are converted to RGB (8-bit).
_EXACT_MODES = {"L": (np.uint8, 1), "I;16": (np.uint16, 1), "I;16B": (np.uint16, 1), "I;16L": (np.uint16, 1),
                "I": (np.int32, 1), "F": (np.float32, 1), "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4),
                "LA": (np.uint8, 2)}


def _read_image(path: Path) -> Scan:
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode == "1":  # bilevel: one 8-bit channel (0 / 255)
                img = img.convert("L")
            elif img.mode not in _EXACT_MODES:
                img = img.convert("RGBA" if "transparency" in img.info or "A" in img.mode else "RGB")
            dtype, channels = _EXACT_MODES[img.mode]
            arr = np.asarray(img).astype(dtype, copy=False)
    except FileNotFoundError:
        raise ScanError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ScanError(f"{path}: cannot read image ({e.__class__.__name__}: {e})") from None
    if arr.dtype == np.int32 and arr.min(initial=0) >= 0 and arr.max(initial=0) <= 65535:
        arr = arr.astype(np.uint16)  # PIL opens some 16-bit PNGs as 'I'
    planes = arr.reshape(1, arr.shape[0], arr.shape[1], channels)
    return Scan(path, planes, "image", {"mode": img.mode})


def _write_image(f: IO[bytes], path: Path, like: Scan, planes: np.ndarray) -> None:
    if planes.shape[0] != 1:
        raise ScanError(f"{path}: {planes.shape[0]} planes cannot be written as one {path.suffix} image (use .tif)")
    arr = planes[0]
    c, dtype = arr.shape[-1], arr.dtype
    if dtype == np.uint8 and c in (1, 2, 3, 4):
        img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode={1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c])
    elif dtype == np.uint16 and c == 1:
        img = Image.fromarray(arr[..., 0])  # mode I;16
    else:
        raise ScanError(f"{path}: {path.suffix} cannot store {c}-channel {dtype} pixels exactly (write .tif instead)")
    img.save(f, format=Image.registered_extensions()[path.suffix.lower()])
