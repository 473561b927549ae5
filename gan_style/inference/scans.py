"""Translate scientific and medical files exactly: data units in, the target domain's units out.

    gen = load_generator("runs/ct2mr/last.pt")
    translate_scan_file(gen, Path("case1.nii.gz"), Path("out/case1.nii.gz"))

Each plane of a scan (io/scans.py: (S, H, W, C) in data units) is mapped to [-1, 1] by the
generator's recorded source intensity, translated (padded to a multiple of 4; tiled when large,
with the same result, and then streamed from and into the arrays: plane.py), mapped back by the
target intensity and written in the input's format with its header and geometry, in the
**target domain's representation** as the checkpoint records it
(its dtype and window: an MR stored as uint16 becomes CT in int16 HU, negative values kept; each
format's ``represent`` says how, e.g. DICOM's bits, sign and rescale). ``keep_input_dtype``
writes the input's dtype instead. Integers are rounded and clipped; the clipped fraction is
reported. Generators without a record (the reference's ``input_nc=1`` weights) read 8-bit data
as the reference does, [0, 255] -> [-1, 1], and write the input's dtype.

TIFF pages too large to read whole are slides: ``route.py`` sends them to ``slide.py`` (streamed
tile by tile) instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io.intensity import Intensity, cast_to, nonfinite
from ..io.scans import Representation, Scan, ScanError, read_scan, represent, write_scan
from .plane import stream_plan, translate_streamed
from .translate import Generator, translate_tensor
from .weights import side_intensity

logger = logging.getLogger(__name__)

BAND_ROWS = 256  # rows converted between data units and the model's range at once


@dataclass(frozen=True)
class ScanOptions:
    """How files are read and tiled: NIfTI ``axis`` and 4-D ``volume``; ``tile`` as translate's; slides."""

    axis: int = 2
    volume: int | None = None
    tile: int | str | None = "auto"
    size: int | None = None  # resize each plane so its short side is this many pixels (writers keep the field of view)
    slide_tile: int = 512  # slides (TIFFs too large to read whole): the output's TIFF tile
    pyramid: bool = False  # slides: also write 2x, 4x ... reductions
    force_slide: bool = False  # stream every TIFF tile by tile, not only those too large to read whole
    keep_input_dtype: bool = False  # write the input's dtype, not the target domain's representation
    slide_norm: str = "auto"  # slides: where the norms' statistics come from (inference/slide.py's MODES)
    max_disk: int | None = None  # slides: bytes of temporary disk at most (None: 20 GB, or half the free space)
    kernel_sigma: float | None = None  # slides, kernel mode: local statistics over this many px (None: global)


def check_channels(scan: Scan, gen: Generator) -> None:
    wanted = gen.info.arch.get("in_channels", 3)
    if scan.channels != wanted:
        raise ScanError(f"{scan.path}: {scan.channels} channel(s), but {gen.info.origin} takes {wanted} "
                        f"(its model.input_nc): use a generator trained on such data")


def short_side(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """(1, C, H, W) resized (bilinear, antialiased) so its short side is ``size``; None keeps it."""
    h, w = x.shape[-2:]
    if not size or min(h, w) == size:
        return x
    scale = size / min(h, w)
    return F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                         antialias=True, align_corners=False)


def translate_planes(gen: Generator, planes: np.ndarray, tile: int | str | None = "auto",
                     size: int | None = None) -> np.ndarray:
    """(S, H, W, C) in source units -> (S, H', W', C_out) float64 in target units, plane by plane
    (H', W' = H, W, or the short side ``size``)."""
    target = side_intensity(gen.info, "target")
    return np.stack([target.from_model(translated_plane(gen, plane, tile, size)) for plane in planes])


def translated_plane(gen: Generator, plane: np.ndarray, tile: int | str | None, size: int | None) -> np.ndarray:
    """One plane (H, W, C) in source units -> the generator's output (H', W', C_out) float32 in [-1, 1].
    Mapped to the model's range by bands of rows: the float64 arithmetic never holds the whole plane."""
    source = side_intensity(gen.info, "source")
    window = source.window(plane)
    x = np.empty(plane.shape, dtype=np.float32)
    for r in range(0, plane.shape[0], BAND_ROWS):
        x[r : r + BAND_ROWS] = source.to_model(plane[r : r + BAND_ROWS], window)
    x = torch.from_numpy(x).permute(2, 0, 1)[None]  # (1, C, H, W)
    return translate_tensor(gen, short_side(x, size), tile=tile)[0].permute(1, 2, 0).numpy()


def translate_cast(gen: Generator, planes: np.ndarray, tile: int | str | None, size: int | None,
                   dtype: np.dtype, limits: tuple[float, float] | None) -> tuple[np.ndarray, float]:
    """``cast_to(translate_planes(...), dtype, limits)`` computed by bands of rows into the output:
    the same values, without a float64 copy of the whole scan (memory.py's budget). Planes tiled
    exactly at full size stream from and into the arrays (plane.py): no float32 copies either."""
    target, out, clipped = side_intensity(gen.info, "target"), None, 0.0
    source, convert = side_intensity(gen.info, "source"), partial(in_units, target, dtype, limits)
    c_out, io_bytes = gen.kind.channels(gen.info.arch)[1], planes.dtype.itemsize + np.dtype(dtype).itemsize
    for i, plane in enumerate(planes):
        fit = stream_plan(gen, plane.shape, tile, io_bytes) if size in (None, 0, min(plane.shape[:2])) else None
        if fit is not None:
            out = np.empty((len(planes), *plane.shape[:2], c_out), dtype=dtype) if out is None else out
            clipped += translate_streamed(gen, plane, fit, out[i], source, source.window(plane), convert) * out[i].size
            continue
        y = translated_plane(gen, plane, tile, size)  # (H', W', C_out)
        out = np.empty((len(planes), *y.shape), dtype=dtype) if out is None else out
        for r in range(0, y.shape[0], BAND_ROWS):
            out[i, r : r + BAND_ROWS], part = cast_to(target.from_model(y[r : r + BAND_ROWS]), dtype, limits)
            clipped += part * y[r : r + BAND_ROWS].size
    return out, clipped / out.size if out is not None and out.size else 0.0


def in_units(target: Intensity, dtype: np.dtype, limits: tuple[float, float] | None,
             y: np.ndarray) -> tuple[np.ndarray, float]:
    """Output in [-1, 1] -> ``target``'s units in ``dtype`` (``limits``: as cast_to's), and the fraction clipped."""
    return cast_to(target.from_model(y), dtype, limits)


def representation(gen: Generator, scan: Scan, keep_input_dtype: bool = False) -> Representation:
    """How ``scan``'s translation is written: the target domain's dtype and window as the generator
    records them, or the input's dtype (``keep_input_dtype``, or no record)."""
    if keep_input_dtype or not gen.info.target_intensity:
        return Representation(scan, scan.planes.dtype)
    target = side_intensity(gen.info, "target")
    rep = represent(scan, target.dtype, (target.low, target.high), target.channels)
    if rep.note:
        logger.warning("%s: %s", scan.path, rep.note)
    return rep


def translate_scan(gen: Generator, scan: Scan, tile: int | str | None = "auto", size: int | None = None,
                   keep_input_dtype: bool = False) -> tuple[Scan, np.ndarray]:
    """The translated planes of ``scan`` as ``write_scan`` takes them: (the scan to write them like,
    the planes in its dtype)."""
    check_channels(scan, gen)
    bad = nonfinite(scan.planes)
    if bad:
        logger.warning("%s: %d NaN/Inf value(s) read as the window's ends (NaN -> low)", scan.path, bad)
    rep = representation(gen, scan, keep_input_dtype)  # first: a format that cannot hold it fails before the work
    out, clipped = translate_cast(gen, scan.planes, tile, size, rep.dtype, rep.limits)
    if clipped > 0.001:
        held = f"[{rep.limits[0]:g}, {rep.limits[1]:g}]" if rep.limits else rep.dtype
        logger.warning("%s: %.1f%% of the translated values fall outside %s and were clipped", scan.path,
                       100 * clipped, held)
    return rep.like, out


def translate_scan_file(gen: Generator, src: Path, dest: Path, options: ScanOptions = ScanOptions()) -> Path:
    """Read ``src``, translate it, write ``dest`` (same format and header; the target domain's
    representation unless ``options.keep_input_dtype``); ScanError on bad input (a slide too:
    ``route.translate_exact`` is the one that streams slides)."""
    scan = read_scan(src, options.axis, options.volume)
    scan.meta["derivation"] = gen.info.label  # formats that record provenance (DICOM) name the generator
    like, planes = translate_scan(gen, scan, options.tile, options.size, options.keep_input_dtype)
    return write_scan(dest, like, planes)
