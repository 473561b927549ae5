"""What every scan format shares: ``Scan``, ``ScanError``, ``exact_dtype`` and ``ScanFormat``.

A file becomes a ``Scan``: its 2-D planes as one array ``(S, H, W, C)`` in the data's units,
with the stored dtype kept (uint8, uint16, int16, float32 ...), and what its format's writer
needs to write a derived file of the same kind (``meta``). A format is one module of ``io/``
defining a ``ScanFormat`` (pil_scan.py, tiff.py, dicom.py, nifti.py), registered by one line in
``scans.SCAN_FORMATS``; everything else reaches it through ``scans.py``. This module imports no
format, so the format modules import it without an import circle.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import numpy as np

logger = logging.getLogger(__name__)

SCIENCE_EXTRA = "pip install 'gan_style[science]' (make setup installs it)"
BIO_EXTRA = "pip install 'gan_style[bio]' (make setup installs it)"  # OME-TIFF, OME-Zarr, CZI, ND2, LIF
SLIDES_EXTRA = "pip install 'gan_style[slides]' (make setup installs it)"  # OpenSlide: SVS, NDPI, MRXS ...
_PACKAGES = {"openslide": "openslide-python", "skimage": "scikit-image"}  # import name -> package, where they differ
KEPT_DTYPES = (np.uint8, np.uint16, np.int16, np.int32, np.float32)  # stored as they are; others: exact_dtype


class ScanError(ValueError):
    """A scientific image that cannot be read or written; the message names the file and the fix."""


@dataclass
class Scan:
    """One file's planes in the data's own units, and what is needed to write a derived file."""

    path: Path
    planes: np.ndarray  # (S, H, W, C), the stored dtype (DICOM / scaled NIfTI: float32 in physical units)
    format: str  # the name of its ScanFormat in scans.SCAN_FORMATS: image | tiff | dicom | nifti ...
    # The format's own: header, affine, axis, resolution ... Callers may add "derivation" (what made the
    # planes written back, e.g. the generator's label): formats that record provenance (DICOM) write it.
    meta: dict = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.planes.shape[-1])


@dataclass(frozen=True)
class Representation:
    """How translated values are stored in a file: ``like`` is the scan the writer gets (its header
    and ``meta`` set for this representation), ``dtype`` what the values are cast to before writing
    (in data units), ``limits`` the values the file can hold, in data units (None: ``dtype``'s own
    range), and ``note`` one line to log when the representation cannot hold the values exactly."""

    like: Scan
    dtype: np.dtype
    limits: tuple[float, float] | None = None
    note: str | None = None


def with_meta(scan: Scan, **changes) -> Scan:
    """A shallow copy of ``scan`` whose ``meta`` has ``changes`` (the input's own is left alone)."""
    return replace(scan, meta={**scan.meta, **changes})


def first_line(e: BaseException) -> str:
    """An exception as one line (libraries' messages may span several)."""
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0]}" if text else e.__class__.__name__


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


def missing_library(*modules: str) -> str | None:
    """The first of ``modules`` (optional libraries) that cannot be imported, or None."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            if (e.name or "").split(".")[0] == "gan_style":  # our own code broken: not a missing library
                raise
            return e.name or module
    return None


def package_name(module: str) -> str:
    """The package that installs ``module`` (bioio_czi -> bioio-czi, openslide -> openslide-python)."""
    root = module.split(".")[0]
    return _PACKAGES.get(root, root.replace("_", "-"))


def require_library(path: Path, what: str, *modules: str, install: str = SCIENCE_EXTRA) -> None:
    """ScanError naming ``path``, the missing package and the install command when one of ``modules`` is missing."""
    missing = missing_library(*modules)
    if missing:
        raise ScanError(f"{path}: {what} need {package_name(missing)}: {install}")


class Library:
    """An optional library a format module uses, imported on first use (``tifffile = Library("tifffile")``).

    So importing the registry costs no library import (the CLI starts as fast for photos), and a
    missing library fails only when a file of that format is used: the facade first calls
    ``ScanFormat.require``, which names the file and the fix.
    """

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str):
        return getattr(importlib.import_module(self._module), name)


class ScanFormat:
    """One file format of the exact path: its facts, and how to read and write it.

    Subclasses set the class attributes and implement ``read`` and ``write``; ``count`` and
    ``read_plane`` default to reading the whole file, so a format only overrides them where its
    header gives the count or a plane can be read alone. Methods raise ``ScanError`` (one line
    naming the file and the fix) on bad input.
    """

    name: str = ""  # the key in scans.SCAN_FORMATS, and Scan.format
    label: str = ""  # how messages name it: "TIFF"
    suffixes: tuple[str, ...] = ()  # lower case, with the dot: (".nii", ".nii.gz")
    libraries: tuple[str, ...] = ()  # optional modules it needs (gan_style[science]), imported on first use
    install: str = SCIENCE_EXTRA  # how to install ``libraries``
    folder: bool = False  # a folder-shaped store (e.g. .zarr): one input, never a folder to look into
    planes_are_slices: bool = False  # planes are slices of a volume: labelled file[i], even file[0]
    written_as: str | None = None  # a read-only format: the registry name of the format its outputs are written in
    slide: bool = False  # whole-slide images: translate always streams them (io/slides.py's readers)

    def suffix_length(self, path: str | Path) -> int:
        """Length of the longest of ``suffixes`` that ends ``path``'s name (0: none)."""
        name = Path(path).name.lower()
        return max((len(s) for s in self.suffixes if name.endswith(s)), default=0)

    def available(self) -> bool:
        """Whether the libraries it needs can be imported."""
        return missing_library(*self.libraries) is None

    def require(self, path: Path) -> None:
        """ScanError naming ``path`` and the install command when a library it needs is missing."""
        require_library(path, f"{self.label} files", *self.libraries, install=self.install)

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        """All planes as (S, H, W, C) in the data's units. ``axis``: the slicing axis of volumes;
        ``volume``: which volume of a 4-D file. Formats without volumes ignore both."""
        raise NotImplementedError

    def count(self, path: Path, axis: int = 2, volume: int | None = None) -> int:
        """How many planes ``read`` would give (from the header where the format allows)."""
        return int(self.read(path, axis, volume).planes.shape[0])

    def read_plane(self, path: Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
        """Plane ``index`` as (H, W, C), as ``read(...).planes[index]`` (only it, where the format allows)."""
        planes = self.read(path, axis, volume).planes
        if not 0 <= index < len(planes):
            raise ScanError(f"{path}: plane {index} does not exist (the file has {len(planes)})")
        return planes[index]

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        """Write ``planes`` (S, H, W, C), already in ``like``'s dtype and units, in ``like``'s header
        and geometry: to ``f`` (``path`` names the file: its suffix may matter); a folder-shaped
        format gets ``f`` None and fills the new folder ``path``."""
        raise NotImplementedError

    def represent(self, like: Scan, dtype: np.dtype, window: tuple[float, float], channels: int) -> Representation:
        """How to write values of ``dtype`` in ``window`` (data units; the target domain's, as its
        checkpoint records them) in a file derived from ``like``, with ``channels`` channels. By
        default the values are written in ``dtype``; a format overrides this where its header says
        how values are stored (DICOM, NIfTI) or where it cannot hold ``dtype`` (ScanError)."""
        return Representation(like, np.dtype(dtype))

    def units(self, scan: Scan) -> str:
        """A short note on what the values of ``scan`` are, for reports."""
        return f"stored {self.name} values ({scan.planes.dtype})"


class ModuleFormat(ScanFormat):
    """A format whose ``read``, ``count``, ``read_plane`` and ``write`` are functions of its module
    (``TIFF = TiffFormat(__name__)``): they stay plain functions of that module, documented and
    called there, and are looked up on each call, so a test can replace one."""

    def __init__(self, module: str) -> None:
        self.module = module

    def _function(self, name: str):
        return getattr(sys.modules[self.module], name)

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        return self._function("read")(path, axis, volume)

    def count(self, path: Path, axis: int = 2, volume: int | None = None) -> int:
        return self._function("count")(path, axis, volume)

    def read_plane(self, path: Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
        return self._function("read_plane")(path, index, axis, volume)

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        self._function("write")(f, path, like, planes)
