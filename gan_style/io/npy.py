"""NumPy .npy arrays as scans: stacks of planes as labs save them with ``np.save``.

Shapes: (H, W) is one plane; (S, H, W) is S planes of one channel; (S, H, W, C) is taken as it
is. The file is memory-mapped: the count comes from its header and one plane reads only its
bytes. Values keep their dtype (``exact_dtype``: float64 becomes float32, int8 int16 ...);
object arrays are refused (no pickles are loaded). Written back with the input's number of
dimensions, in the planes' dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from .scan import Scan, ScanError, ScanFormat, exact_dtype, first_line

MAGIC = b"\x93NUMPY"  # how every .npy file begins


class NpyFormat(ScanFormat):
    name = "npy"
    label = "NumPy .npy"
    suffixes = (".npy",)

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        """All planes as (S, H, W, C) (``axis``/``volume``: unused); ``meta``: ndim (of the file's array)."""
        arr = _open(path)
        return Scan(path, np.ascontiguousarray(exact_dtype(_as_planes(arr, path), path)), self.name,
                    {"ndim": arr.ndim})

    def count(self, path: Path, axis: int = 2, volume: int | None = None) -> int:
        return _as_planes(_open(path), path).shape[0]

    def read_plane(self, path: Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
        planes = _as_planes(_open(path), path)
        if not 0 <= index < len(planes):
            raise ScanError(f"{path}: plane {index} does not exist (the array has {len(planes)})")
        return np.ascontiguousarray(exact_dtype(np.asarray(planes[index]), path))

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        """``planes`` with ``like``'s number of dimensions: (H, W) and (S, H, W) need one channel."""
        ndim, (s, _, _, c) = like.meta.get("ndim", 4), planes.shape
        if ndim == 2 and (s, c) == (1, 1):
            planes = planes[0, ..., 0]
        elif ndim == 3 and c == 1:
            planes = planes[..., 0]
        np.save(f, planes, allow_pickle=False)


def _open(path: Path) -> np.ndarray:
    """The array, memory-mapped (nothing read but the header). np.load alone would take a file
    without the .npy header for a pickle and say so, which misleads: that is checked first."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(MAGIC))
    except FileNotFoundError:
        raise ScanError(f"{path}: file not found") from None
    if magic != MAGIC:
        raise ScanError(f"{path}: not a .npy file (no NumPy header): write arrays with numpy.save")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # truncated, or an object array (never unpickled)
        raise ScanError(f"{path}: cannot read the .npy array ({first_line(e)})") from None


def _as_planes(arr: np.ndarray, path: Path) -> np.ndarray:
    """The array as (S, H, W, C), without reading it."""
    if arr.ndim == 2:
        return arr[None, ..., None]
    if arr.ndim == 3:
        return arr[..., None]
    if arr.ndim == 4:
        return arr
    raise ScanError(f"{path}: a {arr.ndim}-D array {arr.shape}; .npy scans are (H, W), (S, H, W) or (S, H, W, C)")


NPY = NpyFormat()
