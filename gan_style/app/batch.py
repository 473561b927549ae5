"""Translate the files of one request with ``gan_style.inference.batch``, one file at a time.

A file that is too large, not an image or truncated gets a one-line message naming it (by the
name the user uploaded it under, never the server's temporary path) and the rest of the batch
goes on. Results are written into a folder of the request: a PNG per image, previews for the
page, and a zip of the batch.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..inference.batch import FileRefused, Job, translate_jobs
from ..inference.translate import Generator
from ..io.atomic import write_atomic
from ..io.images import ImageReadError, read_rgb, write_image

PREVIEW_SIDE = 2048  # previews in the page are at most this long; the PNGs keep the full size
Progress = Callable[[float, str], None]  # (fraction done, what is being done)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_megapixels: float = 50.0  # input and output images
    max_upload_mb: float = 100.0  # each file (Gradio enforces it on upload too)
    max_files: int = 50  # files per request


@dataclass
class Result:
    name: str  # the file name the user uploaded
    error: str | None = None  # one line naming the file, when it failed
    png: Path | None = None  # the translated image, full size
    before: Path | None = None  # previews for the page (the input upright, and the output)
    after: Path | None = None
    size: tuple[int, int] | None = None  # output (width, height)
    seconds: float = 0.0


@dataclass
class Batch:
    results: list[Result] = field(default_factory=list)
    zip: Path | None = None
    seconds: float = 0.0

    @property
    def done(self) -> list[Result]:
        return [r for r in self.results if r.error is None]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.error is not None]


class InputRefused(FileRefused):
    """An upload refused before decoding (too big); the message names the file."""


def output_size(w: int, h: int, size: int | None) -> tuple[int, int]:
    """The size ``translate_image`` gives a W x H image with short side ``size`` (None: kept)."""
    if not size:
        return w, h
    scale = size / min(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def check_upload(path: Path, name: str, size: int | None, limits: Limits) -> None:
    """Refuse a file over the upload limit, or an image over the pixel limit (read from its header)."""
    mb = path.stat().st_size / 1e6
    if mb > limits.max_upload_mb:
        raise InputRefused(f"{name}: {mb:.1f} MB, over this server's limit of {limits.max_upload_mb:g} MB per file")
    try:
        with Image.open(path) as img:  # reads the header only
            w, h = img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return  # read_rgb reports what is wrong with it
    for what, (ow, oh) in (("image", (w, h)), ("output", output_size(w, h, size))):
        mp = ow * oh / 1e6
        if mp > limits.max_megapixels:
            raise InputRefused(
                f"{name}: {what} of {ow}x{oh} is {mp:.1f} megapixels, over this server's limit of "
                f"{limits.max_megapixels:g} (choose a smaller output size, or start the server with --max-megapixels)"
            )


def read_upload(path: Path, name: str, size: int | None, limits: Limits) -> Image.Image:
    """The uploaded file as upright RGB, or ``InputRefused``/``ImageReadError`` naming ``name``."""
    check_upload(path, name, size, limits)
    try:
        return read_rgb(path)
    except ImageReadError as e:
        raise ImageReadError(str(e).replace(str(path), name)) from None


def save_png(img: Image.Image, dest: Path) -> Path:
    return write_image(dest, img, "PNG")


def save_preview(img: Image.Image, dest: Path) -> Path:
    """A JPEG at most PREVIEW_SIDE long, for the page (the full image stays in the PNG)."""
    small = img.copy()
    small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    return write_image(dest, small, "JPEG", quality=92)


def preview_path(job: Job, which: str) -> Path:
    """out/previews/photo_monet_before.jpg for the job writing out/photo_monet.png."""
    return job.dest.parent / "previews" / f"{job.dest.stem}_{which}.jpg"


def unique_stem(stem: str, taken: set[str]) -> str:
    """``stem`` made of safe characters (no path), numbered if already in ``taken``."""
    stem = re.sub(r"[^\w.-]+", "_", Path(stem).name).lstrip(".") or "image"
    out, n = stem, 1
    while out in taken:
        n += 1
        out = f"{stem}_{n}"
    taken.add(out)
    return out


def translate_files(
    gen: Generator,
    files: list[tuple[Path, str]],
    out_dir: Path,
    size: int | None = None,
    tile: int | str | None = "auto",
    limits: Limits = Limits(),
    progress: Progress | None = None,
) -> Batch:
    """Translate ``files`` ((path on the server, name the user gave it)) into ``out_dir``.

    Every file gets a ``Result``; failures carry a message and do not stop the others. With more
    than one result the batch also gets a zip of the PNGs.
    """
    if len(files) > limits.max_files:
        raise InputRefused(f"{len(files)} files: this server translates at most {limits.max_files} per request")
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()  # photo.jpg -> photo_monet.png
    jobs = [Job(path, out_dir / f"{unique_stem(f'{Path(name).stem}_{gen.info.target}', taken)}.png", name)
            for path, name in files]
    done = 0

    def read(job: Job) -> Image.Image:
        img = read_upload(job.src, job.name, size, limits)
        save_preview(img, preview_path(job, "before"))
        return img

    def write(job: Job, out: Image.Image) -> tuple[Path, Path]:
        png = save_png(out, job.dest)
        return png, png if max(out.size) <= PREVIEW_SIDE else save_preview(out, preview_path(job, "after"))

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress and done < len(jobs):
            progress(done / len(jobs), f"{jobs[done].name} ({done + 1}/{len(jobs)})")

    if progress and jobs:
        progress(0.0, f"{jobs[0].name} (1/{len(jobs)})")
    report = translate_jobs(gen, jobs, size, tile, batch_size=1, read=read, write=write, progress=step,
                            oom_hint="choose a smaller output size or tiles of 512")
    batch = Batch()
    for job, o in zip(jobs, report.outcomes):
        png, after = o.output if o.written else (None, None)
        batch.results.append(Result(job.name, o.error, png, preview_path(job, "before") if png else None, after,
                                    o.size if png else None, o.seconds))
    if len(batch.done) > 1:
        batch.zip = zip_pngs([r.png for r in batch.done], out_dir / "translated.zip")
    batch.seconds = time.perf_counter() - start
    if progress:
        progress(1.0, "done")
    return batch


def zip_pngs(pngs: list[Path], dest: Path) -> Path:
    """A zip of ``pngs`` by their names (stored: PNGs are compressed already)."""

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            for png in pngs:
                z.write(png, arcname=png.name)

    return write_atomic(dest, write, binary=True)


def summary(batch: Batch, label: str, gen: Generator) -> str:
    """What the page says after a batch: counts, time, device, then one line per failure."""
    n, total = len(batch.done), len(batch.results)
    where = f"{gen.device.type} ({gen.precision})"
    lines = [f"Translated {n} of {total} image(s) in {batch.seconds:.1f} s on {where} with {label}."]
    lines += [f"- {r.name}: {r.size[0]}x{r.size[1]}, {r.seconds:.1f} s" for r in batch.done]
    lines += [f"- ⚠ {r.error}" for r in batch.failed]
    return "\n".join(lines)
