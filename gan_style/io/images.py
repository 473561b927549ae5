"""Read any image a user may have as 8-bit RGB, and write results (atomically: ``write_image``).

Shared by training data and inference: grayscale, palette, RGBA/LA (composited on white),
16-bit PNG (scaled, not clipped), CMYK, and EXIF-rotated JPEGs (turned upright) all come
out as an upright ``PIL.Image`` in mode RGB. Unreadable or truncated files raise
``ImageReadError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import write_atomic
from .files import list_files

# Encoder options used when a writer passes none: high-quality JPEG (no chroma subsampling) and WebP.
SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}}
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"})


class ImageReadError(OSError):
    """An image file that cannot be decoded; the message names the file."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path, recursive: bool = False, accept: Callable[[Path], bool] = is_image_file) -> list[Path]:
    """Image files (or the files ``accept`` takes) in ``folder``, sorted so runs are reproducible
    (``files.list_files``: hidden files and folders skipped)."""
    return list_files(folder, recursive, accept)


def _to_8bit(img: Image.Image) -> Image.Image:
    # 16/32-bit integer grayscale ('I;16', 'I'): scale the used range down to 8 bits
    # (PIL's convert('L') would clip everything above 255 to white).
    arr = np.asarray(img, dtype=np.float64)
    peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert an opened image of any mode to upright 8-bit RGB."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        img = _to_8bit(img)
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels have arbitrary colour underneath: show them as white, as a viewer would.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def read_rgb(path: str | Path) -> Image.Image:
    """Read ``path`` as upright 8-bit RGB; raise ``ImageReadError`` naming the file on failure."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later in a worker
            return to_rgb(img)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{path}: cannot read image ({e.__class__.__name__}: {e})") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: {e}") from None


def write_image(path: str | Path, image: Image.Image | np.ndarray, format: str | None = None, **options) -> Path:
    """Write ``image`` (a PIL image, or (H, W, 3) uint8 pixels) to ``path`` atomically; returns ``path``.

    ``format``: a PIL format name (PNG, JPEG, ...); default: the one ``path``'s extension names
    (KeyError for an unknown extension). ``options``: the encoder's (e.g. ``quality=92``), in place
    of the defaults in ``SAVE_OPTIONS``. Missing folders are created.
    """
    path = Path(path)
    img = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    fmt = format or Image.registered_extensions()[path.suffix.lower()]
    options = options or SAVE_OPTIONS.get(fmt, {})
    return write_atomic(path, lambda f: img.save(f, format=fmt, **options), binary=True)
