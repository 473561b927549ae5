"""DICOM scans (pydicom): one file, its frames as planes, in the modality's units.

Reading: the stored values of MONOCHROME1 images are first inverted to MONOCHROME2's sense
(``v -> max + min - v`` over the representation's range, so bright = high), then the modality
rescale is applied when RescaleSlope/RescaleIntercept exist (top level or functional groups):
``stored * slope + intercept`` as float32 (CT in Hounsfield units; exact for integer slope and
intercept). Without rescale the stored integers keep their dtype (int8 widened to int16).
Frames are the planes S; SamplesPerPixel 3 gives C = 3 (YBR decoded to RGB by pydicom).

Writing: a derived instance of the input (new SOP Instance and Series UIDs, derived
deterministically so that every file of one input series lands in one new series), the pixels
stored back in the input's representation, uncompressed where the input was compressed.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from typing import TYPE_CHECKING

import numpy as np

from .scan import Library, ModuleFormat, Representation, Scan, ScanError, first_line, with_meta

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from pydicom.uid import UID

logger = logging.getLogger(__name__)
pydicom = Library("pydicom")

DERIVED_BY = "gan_style"  # default ``meta["derivation"]``: seeds the new UIDs and the descriptions
# Elements that describe the grayscale values: meaningless once the output is RGB.
_GRAY_ONLY = ("RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth",
              "WindowCenterWidthExplanation", "VOILUTFunction", "VOILUTSequence", "ModalityLUTSequence",
              "PixelPaddingValue", "PixelPaddingRangeLimit", "SmallestImagePixelValue", "LargestImagePixelValue")


def _dcmread(path: Path, header_only: bool) -> Dataset:
    """The dataset of ``path`` (without pixel data when ``header_only``); ScanError if not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except FileNotFoundError:
        raise ScanError(f"{path}: file not found") from None
    except pydicom.errors.InvalidDicomError:
        raise ScanError(f"{path}: not a DICOM file (no DICM preamble); remove it or convert it") from None
    except (OSError, ValueError, EOFError, KeyError, TypeError) as e:
        raise ScanError(f"{path}: cannot read the DICOM file ({first_line(e)})") from None


def _require_image(path: Path, ds: Dataset, header_only: bool) -> None:
    if "Rows" not in ds or (not header_only and "PixelData" not in ds):
        raise ScanError(f"{path}: DICOM without pixel data (a report or structured document?); skipped")


def _frames(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def _transfer_syntax(ds: Dataset) -> UID:
    return pydicom.uid.UID(ds.file_meta.get("TransferSyntaxUID") or pydicom.uid.ExplicitVRLittleEndian)


def _decode_error(path: Path, ds: Dataset, e: Exception) -> ScanError:
    """One line for a decoding failure: which decoder to install when none is, else the cause."""
    ts = _transfer_syntax(ds)
    try:
        decoder = pydicom.pixels.get_decoder(ts)
    except (NotImplementedError, ValueError):
        decoder = None
    if ts.is_compressed and (decoder is None or not decoder.is_available):
        installs = []  # "pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1" -> pip install ...
        for dependency in getattr(decoder, "missing_dependencies", []):
            names = re.findall(r"([A-Za-z][\w.-]*?)[<>=]=", dependency.partition(" - requires ")[2])
            if names:
                installs.append("pip install " + " ".join(names))
        hint = " or ".join(installs) or "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"
        return ScanError(f"{path}: DICOM compressed as {ts.name}; no installed decoder ({hint})")
    return ScanError(f"{path}: cannot decode the DICOM pixel data ({ts.name}; {first_line(e)})")


def _stored(path: Path, ds: Dataset, index: int | None = None) -> np.ndarray:
    """The stored values of all frames, or of frame ``index`` when given (read from ``path`` alone)."""
    try:
        return pydicom.pixels.pixel_array(ds if index is None else path, index=index)
    except Exception as e:  # decoders raise RuntimeError, ValueError, NotImplementedError ...
        raise _decode_error(path, ds, e) from None


def _rescale(path: Path, ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) of the modality rescale: top level, shared or (all equal) per-frame groups."""
    def of(item: Dataset) -> tuple[float, float] | None:
        if "RescaleSlope" not in item and "RescaleIntercept" not in item:
            return None
        slope, intercept = item.get("RescaleSlope"), item.get("RescaleIntercept")  # either may be empty
        return float(slope) if slope not in (None, "") else 1.0, float(intercept) if intercept not in (None, "") else 0.0

    found = of(ds)
    for group in ds.get("SharedFunctionalGroupsSequence") or []:
        for item in group.get("PixelValueTransformationSequence") or []:
            found = found or of(item)
    per_frame = {of(item) for group in ds.get("PerFrameFunctionalGroupsSequence") or []
                 for item in group.get("PixelValueTransformationSequence") or []}
    per_frame.discard(None)
    if len(per_frame) > 1:
        raise ScanError(f"{path}: frames with different RescaleSlope/Intercept are not supported; split the frames")
    return found or (per_frame.pop() if per_frame else None)


def _stored_range(ds: Dataset) -> tuple[int, int]:
    """(min, max) of the stored representation: BitsStored bits, signed or unsigned."""
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _invert(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """MONOCHROME1 <-> MONOCHROME2 on stored values: v -> max + min - v (its own inverse)."""
    lo, hi = _stored_range(ds)
    return (hi + lo - stored.astype(np.int64)).astype(stored.dtype)


def _values(path: Path, ds: Dataset, stored: np.ndarray, frames: int) -> np.ndarray:
    """Stored pixels of ``frames`` frames as (S, H, W, C) values (see the module docstring)."""
    rows, cols, samples = int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1))
    stored = stored.reshape(frames, rows, cols, samples)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        stored = _invert(stored, ds)
    rescale = _rescale(path, ds)
    if rescale is not None:
        slope, intercept = rescale
        return (stored.astype(np.float64) * slope + intercept).astype(np.float32)
    if not stored.dtype.isnative:
        stored = stored.astype(stored.dtype.newbyteorder("="))
    if stored.dtype in (np.int8, np.uint32):
        return stored.astype(np.int16 if stored.dtype == np.int8 else np.float32)  # kept dtypes only
    return np.ascontiguousarray(stored)


def read(path: Path, axis: int = 2, volume: int | None = None) -> Scan:
    """All frames as (S, H, W, C) values (``axis``/``volume``: unused).

    ``meta``: dataset (the input's Dataset without its PixelData: the header to derive from),
    transfer_syntax (name), rescale ((slope, intercept) or None), photometric (as stored),
    frames, modality ('CT', 'MR' ... or None). The writer also reads ``derivation`` (a string,
    default 'gan_style'; set by the caller) for the new UIDs and descriptions.
    """
    ds = _dcmread(path, header_only=False)
    _require_image(path, ds, header_only=False)
    frames = _frames(ds)
    planes = _values(path, ds, _stored(path, ds), frames)
    del ds.PixelData  # the header is what the writer needs; the pixels are in planes
    meta = {"dataset": ds, "transfer_syntax": _transfer_syntax(ds).name, "rescale": _rescale(path, ds),
            "photometric": str(ds.get("PhotometricInterpretation", "")), "frames": frames,
            "modality": str(ds.get("Modality", "")) or None}
    return Scan(path, planes, DicomFormat.name, meta)


def count(path: Path, axis: int = 2, volume: int | None = None) -> int:
    """NumberOfFrames (1 when absent), from the header alone."""
    ds = _dcmread(path, header_only=True)
    _require_image(path, ds, header_only=True)
    return _frames(ds)


def read_plane(path: Path, index: int, axis: int = 2, volume: int | None = None) -> np.ndarray:
    """Frame ``index`` as (H, W, C), as ``read(path).planes[index]``; only that frame is decoded."""
    ds = _dcmread(path, header_only=True)
    _require_image(path, ds, header_only=True)
    frames = _frames(ds)
    if not 0 <= index < frames:
        raise ScanError(f"{path}: frame {index} does not exist (the DICOM has {frames})")
    return _values(path, ds, _stored(path, ds, index), 1)[0]


def _derive(ds: Dataset, meta: dict, path: Path) -> None:
    """Make ``ds`` a derived instance: new UIDs (deterministic), ImageType, descriptions, source."""
    derivation = str(meta.get("derivation", DERIVED_BY))
    old_sop, old_series = str(ds.get("SOPInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
    series_uid = pydicom.uid.generate_uid(entropy_srcs=[old_series or str(path.parent), derivation])
    sop_uid = pydicom.uid.generate_uid(entropy_srcs=[old_series, old_sop or path.name, derivation])
    if old_sop and "SOPClassUID" in ds:
        source = pydicom.dataset.Dataset()
        source.ReferencedSOPClassUID = ds.SOPClassUID
        source.ReferencedSOPInstanceUID = old_sop
        ds.SourceImageSequence = [source]
    ds.SOPInstanceUID, ds.SeriesInstanceUID = sop_uid, series_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    kept = list(ds.ImageType)[2:] if "ImageType" in ds and ds.ImageType else []
    ds.ImageType = ["DERIVED", "SECONDARY", *kept]
    ds.DerivationDescription = f"translated by gan_style: {derivation}"[:1024]
    suffix = f" ({derivation})"
    ds.SeriesDescription = (str(ds.get("SeriesDescription", ""))[: max(0, 64 - len(suffix))] + suffix)[:64].strip()


def _resize_geometry(ds: Dataset, h: int, w: int) -> None:
    """Keep the field of view of planes resized to (h, w): PixelSpacing scaled, and the first
    pixel's centre (ImagePositionPatient) moved so that the image's corner stays in place."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    if (rows, cols) == (h, w) or "PixelSpacing" not in ds:
        return
    old = np.array([float(v) for v in ds.PixelSpacing])  # (between rows, between columns) in mm
    new = old * np.array([rows / h, cols / w])
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        along_row, along_col = np.reshape([float(v) for v in ds.ImageOrientationPatient], (2, 3))
        shift = 0.5 * ((new[1] - old[1]) * along_row + (new[0] - old[0]) * along_col)
        ds.ImagePositionPatient = [f"{v:.10g}" for v in np.array([float(v) for v in ds.ImagePositionPatient]) + shift]
    ds.PixelSpacing = [f"{v:.10g}" for v in new]
    logger.info("%s x %s planes for a %s x %s DICOM: PixelSpacing scaled to %s", w, h, cols, rows, list(ds.PixelSpacing))


def _encode_gray(ds: Dataset, values: np.ndarray, rescale: tuple[float, float] | None) -> tuple[np.ndarray, int]:
    """(S, H, W) values -> stored pixels in ``ds``'s representation, and BitsStored."""
    bits_allocated = int(ds.BitsAllocated)
    if bits_allocated not in (8, 16, 32):
        raise ValueError(f"{bits_allocated}-bit pixels cannot be written")
    slope, intercept = rescale or (1.0, 0.0)
    lo, hi = _stored_range(ds)
    stored = np.clip(np.rint((values.astype(np.float64) - intercept) / slope), lo, hi)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    stored = stored.astype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        stored = _invert(stored, ds)
    return stored, int(ds.BitsStored)


def _encode_rgb(ds: Dataset, values: np.ndarray) -> tuple[np.ndarray, int]:
    """(S, H, W, 3) values -> uint8 (8-bit input) or uint16 RGB, and BitsStored."""
    bits = 8 if int(ds.BitsAllocated) == 8 else 16
    stored = np.clip(np.rint(values.astype(np.float64)), 0, 2**bits - 1).astype(np.uint8 if bits == 8 else np.uint16)
    for keyword in _GRAY_ONLY:
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelRepresentation = 0
    return stored, bits


def write(f: IO[bytes], path: Path, like: Scan, planes: np.ndarray) -> None:
    """Write (S, H, W, C) values to ``f`` as a DICOM derived from ``like``.

    The header is ``like``'s, with new SOP Instance / Series UIDs generated from the input's UIDs
    and ``meta['derivation']``, ImageType DERIVED\\SECONDARY, DerivationDescription, a suffixed
    SeriesDescription and a SourceImageSequence naming the input. C = 1: stored =
    round((v - intercept) / slope), clipped to the representation (BitsStored, signed or not),
    MONOCHROME1 inverted back. C = 3: RGB, 8- or 16-bit, no rescale. Planes of another size than
    the input keep its field of view (PixelSpacing scaled). S must be 1 for a single-frame input
    (a multi-frame one gets NumberOfFrames = S). Compressed or big-endian inputs are written as
    Explicit VR Little Endian, others in their own transfer syntax.
    """
    planes = np.asarray(planes)
    if planes.ndim != 4 or planes.shape[-1] not in (1, 3):
        raise ScanError(f"{path}: DICOM planes must be (S, H, W, 1 or 3), got shape {planes.shape}")
    meta = like.meta
    ds = copy.deepcopy(meta["dataset"])
    single = meta.get("frames", 1) == 1 and "NumberOfFrames" not in ds
    if single and planes.shape[0] != 1:
        raise ScanError(f"{path}: {planes.shape[0]} planes for a single-frame DICOM; write one file per plane")
    ts = _transfer_syntax(ds)
    if ts.is_compressed or not ts.is_little_endian:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    _derive(ds, meta, path)
    _resize_geometry(ds, planes.shape[1], planes.shape[2])
    try:
        if planes.shape[-1] == 3:
            stored, bits = _encode_rgb(ds, planes)
            photometric = "RGB"
        else:
            stored, bits = _encode_gray(ds, planes[..., 0], meta.get("rescale"))
            photometric = "MONOCHROME1" if ds.get("PhotometricInterpretation") == "MONOCHROME1" else "MONOCHROME2"
        ds.set_pixel_data(stored[0] if single else stored, photometric, bits, generate_instance_uid=False)
        pydicom.dcmwrite(f, ds, enforce_file_format=True)  # unlike save_as, may leave big endian
    except (ValueError, AttributeError, TypeError) as e:
        raise ScanError(f"{path}: cannot write the derived DICOM ({first_line(e)})") from None


# ---------------------------------------------------------------- the target's representation


@dataclass(frozen=True)
class Stored:
    """A gray pixel representation: ``bits`` allocated (and stored), signed or not, and the modality
    rescale ``value = stored * slope + intercept``."""

    bits: int
    signed: bool
    slope: float = 1.0
    intercept: float = 0.0

    @property
    def limits(self) -> tuple[float, float]:
        """The values it holds, in data units."""
        lo, hi = (-(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1) if self.signed else (0, 2**self.bits - 1)
        return lo * self.slope + self.intercept, hi * self.slope + self.intercept

    def holds(self, other: Stored, window: tuple[float, float]) -> bool:
        """Whether it holds ``window`` with ``other``'s step (so it may be kept instead of ``other``)."""
        lo, hi = self.limits
        return math.isclose(self.slope, other.slope, rel_tol=1e-9) and lo <= window[0] and window[1] <= hi


def choose_stored(dtype: np.dtype, window: tuple[float, float]) -> tuple[Stored, str | None]:
    """The 16-bit (8-bit for uint8) representation of a target domain of ``dtype`` and ``window``.

    Integers of at most 16 bits are stored as they are. Integer steps (slope 1) are kept for
    integer windows wider than 255 (HU in [-1000, 2000] as int16, as CT is stored), with an
    intercept where the window lies outside both int16 and uint16. Other windows (float data in
    [0, 1], integer windows wider than 65,535) get 65,536 steps over the window, and a note: the
    CT, MR and secondary-capture images this writes hold no float pixels (DICOM allows them only
    in parametric maps)."""
    lo, hi = window
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        return Stored(8 * dtype.itemsize, dtype.kind == "i"), None
    integral = lo == round(lo) and hi == round(hi) and (dtype.kind in "ui" or hi - lo > 255)
    if integral and hi - lo <= 65535:
        if -32768 <= lo and hi <= 32767:
            return Stored(16, True), None
        return Stored(16, False, 1.0, 0.0 if 0 <= lo and hi <= 65535 else lo), None
    slope = (hi - lo) / 65535 if hi > lo else 1.0
    note = (f"the target's {dtype} values in [{lo:g}, {hi:g}] are stored as 16-bit steps of {slope:.6g} "
            "(RescaleSlope): DICOM images of this kind hold no float pixels")
    return Stored(16, False, slope, lo), note


def _stored_of(ds: Dataset, rescale: tuple[float, float] | None) -> Stored:
    slope, intercept = rescale or (1.0, 0.0)
    return Stored(int(ds.BitsStored), int(ds.get("PixelRepresentation", 0)) == 1, slope, intercept)


def _set_rescale(ds: Dataset, stored: Stored) -> None:
    """Write ``stored``'s rescale where the input had one (top level and functional groups), or at
    the top level when it is not the identity."""
    slope, intercept = f"{stored.slope:.10g}", f"{stored.intercept:.10g}"
    items = [item for key in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
             for group in ds.get(key) or [] for item in group.get("PixelValueTransformationSequence") or []]
    if "RescaleSlope" in ds or "RescaleIntercept" in ds or not items and (stored.slope, stored.intercept) != (1, 0):
        items.append(ds)
    for item in items:
        item.RescaleSlope, item.RescaleIntercept = slope, intercept


def _set_stored(ds: Dataset, stored: Stored, window: tuple[float, float]) -> None:
    """Make ``ds``'s header describe ``stored``: bits, sign, rescale, and the target's window for display."""
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
                    "PixelPaddingRangeLimit", "VOILUTSequence", "WindowCenterWidthExplanation"):
        if keyword in ds:  # their values (and VR, US or SS) belong to the input's representation
            delattr(ds, keyword)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = stored.bits, stored.bits, stored.bits - 1
    ds.PixelRepresentation = int(stored.signed)
    _set_rescale(ds, stored)
    ds.WindowCenter, ds.WindowWidth = f"{(window[0] + window[1]) / 2:.10g}", f"{max(window[1] - window[0], 1):.10g}"


def represent(like: Scan, dtype: np.dtype, window: tuple[float, float], channels: int) -> Representation:
    """The target's values in a DICOM derived from ``like`` (``choose_stored``); the input's own
    representation is kept when it holds the window with the same step."""
    ds = like.meta["dataset"]
    if channels != 1:  # RGB: 8 or 16 bits, no rescale (see write)
        ds = copy.deepcopy(ds)
        ds.BitsAllocated = 8 if dtype == np.uint8 else 16
        return Representation(with_meta(like, dataset=ds), np.dtype(np.uint8 if dtype == np.uint8 else np.uint16))
    wanted, note = choose_stored(dtype, window)
    current = _stored_of(ds, like.meta.get("rescale"))
    if current.holds(wanted, window):
        stored, note = current, None
    else:
        stored, ds = wanted, copy.deepcopy(ds)
        _set_stored(ds, stored, window)
    rescale = _rescale(like.path, ds)  # as a reader will see it: top level or functional groups
    if rescale is not None:
        values = np.dtype(np.float32)
    else:
        values = np.dtype(f"{'i' if stored.signed else 'u'}{int(ds.BitsAllocated) // 8}")
    return Representation(with_meta(like, dataset=ds, rescale=rescale), values, stored.limits, note)


class DicomFormat(ModuleFormat):
    """One DICOM file, its frames as planes: this module's functions."""

    name = "dicom"
    label = "DICOM"
    suffixes = (".dcm", ".dicom")
    libraries = ("pydicom",)

    def represent(self, like: Scan, dtype: np.dtype, window: tuple[float, float], channels: int) -> Representation:
        return represent(like, dtype, window, channels)

    def units(self, scan: Scan) -> str:
        modality = scan.meta.get("modality")
        return "HU" if modality in (None, "CT") else f"{modality} values (DICOM rescale applied)"


DICOM = DicomFormat(__name__)
