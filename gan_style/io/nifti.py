"""NIfTI-1 and NIfTI-2 scans (.nii, .nii.gz; nibabel): a volume cut into slices along ``axis``.

A 3-D volume ``vol`` of shape (X, Y, Z) in voxel order gives the planes
``np.moveaxis(vol, axis, 0)[..., None]``: plane k is ``vol[k]``, ``vol[:, k]`` or ``vol[:, :, k]``
with the two remaining axes kept in their order as (H, W), never flipped or transposed for
display (axis 2: H runs along the voxel i axis, W along j). A 2-D image is one plane. A 4-D
image needs ``volume`` (which 3-D volume, ``data[..., volume]``) unless it holds only one.

Values are in the data's units: with scl_slope / scl_inter set, ``stored * slope + inter`` as
float32; otherwise the stored dtype (int8 widened to int16; float64 and 32/64-bit unsigned
or 64-bit integers converted to float32, exact up to 2**24).
"""

from __future__ import annotations

import functools
import gzip
import logging
from pathlib import Path
from typing import IO

import numpy as np

from .scan import Library, ModuleFormat, Representation, Scan, ScanError, exact_dtype, first_line, with_meta

logger = logging.getLogger(__name__)
nib = Library("nibabel")


def _load(path: Path) -> nib.Nifti1Image:
    """The image (header read, data left on disk: no memory map, so slices read only their bytes)."""
    try:
        img = nib.load(path, mmap=False)
    except FileNotFoundError:
        raise ScanError(f"{path}: file not found") from None
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError) as e:
        raise ScanError(f"{path}: not a readable NIfTI file ({first_line(e)})") from None
    if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise ScanError(f"{path}: not a NIfTI-1/2 image ({type(img).__name__})")
    return img


def _select(path: Path, shape: tuple[int, ...], axis: int, volume: int | None) -> tuple[tuple[int, ...], int | None]:
    """(spatial shape: 2-D or 3-D, the 4-D volume index or None); ScanError when they cannot be chosen."""
    if len(shape) == 4:
        n = shape[3]
        if volume is None and n > 1:
            raise ScanError(f"{path}: a 4-D NIfTI with {n} volumes; choose one with --volume K (data.volume in a config)")
        volume = 0 if volume is None else volume
        if not 0 <= volume < n:
            raise ScanError(f"{path}: volume {volume} does not exist; the 4-D NIfTI has {n} (0 to {n - 1})")
    elif len(shape) in (2, 3):
        volume = None  # ignored: no 4th dimension
    else:
        raise ScanError(f"{path}: a {len(shape)}-D NIfTI {shape}; only 2-D, 3-D and 4-D images are supported")
    spatial = tuple(shape[:3])
    if len(spatial) == 3 and axis not in (0, 1, 2):
        raise ScanError(f"{path}: slicing axis {axis} is not 0, 1 or 2 (--axis / data.axis)")
    return spatial, volume


def _scaling(img: nib.Nifti1Image) -> tuple[float, float]:
    """(slope, inter) nibabel applies when reading; (1.0, 0.0) when unscaled."""
    return float(img.dataobj.slope), float(img.dataobj.inter)


def _exact(path: Path, arr: np.ndarray, scaled: bool) -> np.ndarray:
    """``arr`` (nibabel's output) in a kept dtype, native byte order; scaled data as float32."""
    return exact_dtype(arr.astype(np.float32) if scaled and arr.dtype.kind != "c" and not arr.dtype.names else arr,
                       path)


def _key(spatial: tuple[int, ...], axis: int, volume: int | None, index: int | None) -> tuple:
    """Index into the proxy for the whole spatial block (``index`` None) or one slice along ``axis``."""
    key: list = [slice(None)] * len(spatial)
    if index is not None and len(spatial) == 3:
        key[axis] = index
    return tuple(key) + ((volume,) if volume is not None else ())


def _to_planes(data: np.ndarray, axis: int) -> np.ndarray:
    """(X, Y, Z) -> (S, H, W, 1) slices along ``axis``; (X, Y) -> (1, X, Y, 1)."""
    if data.ndim == 2:
        return data[None, ..., None]
    return np.ascontiguousarray(np.moveaxis(data, axis, 0)[..., None])


def read(path: Path, axis: int = 2, volume: int | None = None) -> Scan:
    """All slices along ``axis`` of the volume (``volume`` of a 4-D image) as (S, H, W, 1).

    ``meta``: header (a copy of the input's), affine, version (1 or 2), shape (of the file),
    spatial_shape (the 2-D or 3-D block read), axis, volume, slope and inter (nibabel's read
    scaling, 1.0 / 0.0 when unscaled), scaled (bool), disk_dtype (the stored dtype).
    """
    img = _load(path)
    spatial, volume = _select(path, img.shape, axis, volume)
    slope, inter = _scaling(img)
    scaled = (slope, inter) != (1.0, 0.0)
    try:
        data = np.asanyarray(img.dataobj[_key(spatial, axis, volume, None)])
    except (OSError, EOFError, ValueError) as e:  # truncated or damaged data
        raise ScanError(f"{path}: cannot read the NIfTI data ({first_line(e)})") from None
    planes = _to_planes(_exact(path, data, scaled), axis)
    meta = {"header": img.header.copy(), "affine": img.affine.copy(), "version": 2 if isinstance(img, nib.Nifti2Image) else 1,
            "shape": tuple(img.shape), "spatial_shape": spatial, "axis": axis, "volume": volume,
            "slope": slope, "inter": inter, "scaled": scaled, "disk_dtype": img.get_data_dtype()}
    return Scan(path, planes, NiftiFormat.name, meta)


def count(path: Path, axis: int = 2, volume: int | None = None) -> int:
    """Number of slices along ``axis`` (1 for a 2-D image), from the header."""
    img = _load(path)
    spatial, _ = _select(path, img.shape, axis, volume)
    return spatial[axis] if len(spatial) == 3 else 1


@functools.lru_cache(maxsize=8)
def _open_for_slices(path: Path, stamp: tuple[int, int]) -> nib.Nifti1Image:
    """``_load`` with the file kept open, per process (``stamp``: mtime and size, so a changed file
    is opened again). For .nii.gz, nibabel then reads through indexed_gzip, which remembers where
    it has been in the compressed stream: a random slice of a 512 x 512 x 300 CT takes ~30 ms
    instead of ~0.5 s (decompressing from the start) once the volume has been read through once."""
    try:
        img = nib.load(path, mmap=False, keep_file_open=True)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError):
        return _load(path)  # the one-line errors
    return img if isinstance(img, nib.Nifti1Image) else _load(path)


def read_plane(path: Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
    """Slice ``index`` along ``axis`` as (H, W, 1), as ``read(...).planes[index]``; only it is read."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ScanError(f"{path}: file not found") from None
    img = _open_for_slices(path, (stat.st_mtime_ns, stat.st_size))
    spatial, volume = _select(path, img.shape, axis, volume)
    n = spatial[axis] if len(spatial) == 3 else 1
    if not 0 <= index < n:
        raise ScanError(f"{path}: slice {index} does not exist along axis {axis} (the NIfTI has {n})")
    slope, inter = _scaling(img)
    try:
        data = np.asanyarray(img.dataobj[_key(spatial, axis, volume, index)])  # (H, W)
    except (OSError, EOFError, ValueError) as e:
        raise ScanError(f"{path}: cannot read the NIfTI data ({first_line(e)})") from None
    return np.ascontiguousarray(_exact(path, data, (slope, inter) != (1.0, 0.0))[..., None])


def _volume(path: Path, planes: np.ndarray, meta: dict) -> np.ndarray:
    """(S, H, W, 1) planes back to the voxel order of the input's spatial block (inverse of _to_planes)."""
    if planes.ndim != 4 or planes.shape[-1] != 1:
        raise ScanError(f"{path}: NIfTI stores one value per voxel; planes must be (S, H, W, 1), got {planes.shape}")
    spatial = meta["spatial_shape"]
    if len(spatial) == 2:
        if planes.shape[0] != 1:
            raise ScanError(f"{path}: {planes.shape[0]} planes for a 2-D NIfTI; write one plane")
        return planes[0, ..., 0]
    if planes.shape[0] != spatial[meta["axis"]]:
        raise ScanError(f"{path}: {planes.shape[0]} slices for a volume with {spatial[meta['axis']]} along axis {meta['axis']}")
    return np.moveaxis(planes[..., 0], 0, meta["axis"])


def _on_disk(vol: np.ndarray, meta: dict) -> tuple[np.ndarray, tuple[float, float] | None]:
    """(data for nibabel, (slope, inter) to keep or None to let nibabel choose) in the stored dtype.

    A scaled integer input keeps its scaling when the values, rounded to its grid, fit the stored
    dtype (exact for unchanged values, else within slope / 2); otherwise nibabel picks a new one.
    An unscaled integer input gets the values rounded and clipped to its dtype.
    """
    dtype = np.dtype(meta["disk_dtype"])
    if dtype.kind not in "iu":
        return vol.astype(dtype), None
    info = np.iinfo(dtype)
    if meta["scaled"]:
        stored = np.rint((vol.astype(np.float64) - meta["inter"]) / meta["slope"])
        if stored.size == 0 or (stored.min() >= info.min and stored.max() <= info.max):
            return stored.astype(dtype), (meta["slope"], meta["inter"])
        return vol, None
    if vol.dtype.kind == "f":
        vol = np.rint(vol)
    return np.clip(vol, info.min, info.max).astype(dtype), None


def write(f: IO[bytes], path: Path, like: Scan, planes: np.ndarray) -> None:
    """Write (S, H, W, 1) planes to ``f`` as a NIfTI of ``like``'s version, header and stored dtype.

    The slices go back along ``like``'s axis; the header (dims, pixdim, qform/sform, units,
    descrip, extensions) is the input's and the affine too, rescaled about the centre when the
    in-plane size changed. A 4-D input is written as the 3-D result (nibabel sets the dims).
    ``path`` ending in .nii.gz: gzip-compressed.
    """
    meta = like.meta
    vol = _volume(path, np.asarray(planes), meta)
    affine = meta["affine"]
    spatial = meta["spatial_shape"]
    if vol.shape != tuple(spatial):  # resized in-plane: same field of view, new voxel size
        old, new = np.array(spatial + (1,) * (3 - len(spatial))), np.array(vol.shape + (1,) * (3 - vol.ndim))
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))  # voxel sizes along i, j, k
        affine = nib.affines.rescale_affine(affine, old, zooms * old / new, new)
    data, scaling = _on_disk(vol, meta)
    cls = nib.Nifti2Image if meta.get("version") == 2 else nib.Nifti1Image
    img = cls(data, affine, header=meta["header"].copy())
    img.header.set_data_dtype(meta["disk_dtype"])  # the input's, or the target domain's (represent)
    img.header.set_slope_inter(*(scaling or (None, None)))  # given: data written as they are, with this scaling
    raw = img.to_bytes()
    if path.name.lower().endswith(".nii.gz"):
        with gzip.GzipFile(filename=path.name, mode="wb", fileobj=f, mtime=0) as gz:
            gz.write(raw)
    else:
        f.write(raw)


class NiftiFormat(ModuleFormat):
    """NIfTI-1 and NIfTI-2 volumes, cut into slices: this module's functions."""

    name = "nifti"
    label = "NIfTI"
    suffixes = (".nii", ".nii.gz")
    libraries = ("nibabel",)
    planes_are_slices = True

    def represent(self, like: Scan, dtype: np.dtype, window: tuple[float, float], channels: int) -> Representation:
        """The target's dtype on disk, unscaled (NIfTI holds every dtype the domains have)."""
        return Representation(with_meta(like, disk_dtype=np.dtype(dtype), scaled=False, slope=1.0, inter=0.0),
                              np.dtype(dtype))

    def units(self, scan: Scan) -> str:
        return f"NIfTI values ({scan.planes.dtype}, scaling applied)"


NIFTI = NiftiFormat(__name__)
