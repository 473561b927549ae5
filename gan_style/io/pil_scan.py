"""PNG and other PIL formats as scans (one plane): 8/16-bit grayscale, RGB, RGBA, 32-bit float, exactly.

The 8-bit RGB path of photos (``images.read_rgb``) is separate: this one keeps the stored dtype
(a 16-bit PNG stays uint16) and writes the same mode back.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .scan import Representation, Scan, ScanError, ScanFormat

# PIL mode -> (dtype, channels) kept exactly; other modes are converted to RGB (8-bit).
_EXACT_MODES = {"L": (np.uint8, 1), "I;16": (np.uint16, 1), "I;16B": (np.uint16, 1), "I;16L": (np.uint16, 1),
                "I": (np.int32, 1), "F": (np.float32, 1), "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4),
                "LA": (np.uint8, 2)}


class PilFormat(ScanFormat):
    name = "image"
    label = "image"
    suffixes = (".png", ".pgm", ".ppm", ".bmp")

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        """The image as (1, H, W, C) in its stored dtype (``axis``/``volume``: unused); ``meta``: mode."""
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
        return Scan(path, planes, self.name, {"mode": img.mode})

    def count(self, path: Path, axis: int = 2, volume: int | None = None) -> int:
        return 1  # without opening it: a damaged image is reported when its plane is read

    def represent(self, like: Scan, dtype: np.dtype, window: tuple[float, float], channels: int) -> Representation:
        """uint8, or uint16 with one channel: what these formats hold; others are one line."""
        if dtype == np.uint8 or (dtype == np.uint16 and channels == 1):
            return Representation(like, np.dtype(dtype))
        raise ScanError(f"{like.path}: a {like.path.suffix} file cannot hold the target domain's {channels}-channel "
                        f"{dtype} values: convert the input to .tif, or pass --keep-input-dtype")

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        """One plane: uint8 with 1 to 4 channels (L, LA, RGB, RGBA) or uint16 gray; others refused."""
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


PIL_IMAGE = PilFormat()
