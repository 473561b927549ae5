"""Translate many image files with a generator: the engine behind ``gan-style translate`` and the web app.

Plan (which inputs, which outputs: ``find_inputs``, ``plan``, ``select_jobs``), then
``translate_jobs``: images are decoded in DataLoader workers, same-size images go through the
generator together (large ones tiled), outputs are written atomically in background threads. A
file that cannot be read, translated or written gets a one-line message naming it and the others
go on; the ``BatchReport`` counts what was written and keeps those messages. Nothing is printed:
the callers (the CLI, the app) say what happened. Imports nothing from the training code.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..io.files import FindError, find_files
from ..io.images import IMAGE_EXTENSIONS, ImageReadError, is_image_file, read_rgb, write_image
from ..io.scans import scan_format
from ..io.tensors import float_to_uint8_hwc, uint8_to_float
from .memory import MemoryBudgetError
from .plane import translate_photo
from .translate import Generator, images_per_pass, resize_short_side, translate_tensor
from .video import OUTPUT_FORMATS, is_video_file, output_extension

KEEP_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}  # others are written as PNG
OOM_HINT = "use --tile 512, --batch-size 1 or --size"


class InputError(ValueError):
    """Bad inputs or outputs; the message says what to pass instead."""


class FileRefused(ValueError):
    """A file refused before translating (e.g. over a size limit); the message names it."""


# ---------------------------------------------------------------- planning: inputs -> outputs


@dataclass
class Job:
    src: Path
    dest: Path
    name: str = ""  # how messages name the file (default: its path); e.g. the name a user uploaded it under

    @property
    def label(self) -> str:
        return self.name or str(self.src)

    @property
    def is_video(self) -> bool:
        return is_video_file(self.src)


def is_input_file(path: Path) -> bool:
    return is_image_file(path) or is_video_file(path) or scan_format(path) is not None


def find_inputs(inputs: list[str], recursive: bool, exclude: Path | None = None,
                accept: Callable[[Path], bool] = is_input_file) -> list[tuple[Path, Path]]:
    """(path, output path relative to the output folder) for each input image, video or scan
    (``files.find_files``; ``accept``: which files found in folders and by globs count). Files
    found in folders or by globs under ``exclude`` (the output folder) are left out."""
    try:
        return find_files(inputs, recursive, accept, exclude)
    except FindError as e:
        raise InputError(str(e)) from None


def plan(
    found: list[tuple[Path, Path]], output: Path, single_file: bool, ext: str | None, video_ext: str | None = None,
    keep_names: bool = False,
) -> list[Job]:
    """A job per input. ``keep_names``: outputs keep the input's name and format (scientific files:
    ``case1.nii.gz`` stays ``.nii.gz``, a DICOM stays DICOM)."""
    jobs = []
    for src, rel in found:
        if single_file:
            dest = output
        elif keep_names and not is_video_file(src):
            dest = output / rel
        elif is_video_file(src):
            dest = output / rel.with_suffix(f".{video_ext}" if video_ext else output_extension(rel))
        else:
            suffix = f".{ext}" if ext else (rel.suffix.lower() if rel.suffix.lower() in KEEP_EXTENSIONS else ".png")
            dest = output / rel.with_suffix(suffix)
        jobs.append(Job(src, dest))
    return jobs


def default_input(gen: Generator) -> list[str]:
    info = gen.info
    if info.data_root is None or info.direction is None:
        raise InputError(f"{info.origin}: pass --input (files, folders or globs) to translate")
    folder = Path(info.data_root) / ("testA" if info.direction == "AtoB" else "testB")
    if not folder.is_dir():
        raise InputError(
            f"no --input given and {folder} (the test images of the run's {info.source} domain) does not exist: "
            "pass --input (INPUT=... with make)"
        )
    return [str(folder)]


def default_output(gen: Generator, weights: str) -> Path:
    info = gen.info
    if info.run_name:
        return Path("results") / f"{info.run_name}_{info.direction}"
    name = weights.removeprefix("official:") if weights.startswith("official:") else Path(weights).stem
    return Path("results") / name


def select_jobs(jobs: list[Job], overwrite: bool) -> tuple[list[Job], int, list[str]]:
    """The jobs to run, how many were skipped (existing outputs, unless ``overwrite``), and a
    message for each job that cannot run (its output would replace its input, or another's)."""
    selected, skipped, failures = [], 0, []
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.dest.resolve()
        if key == job.src.resolve():
            failures.append(f"{job.src}: the output would replace the input; choose another --output")
        elif key in seen:
            failures.append(f"{job.src}: same output {job.dest} as {seen[key]}; pass --ext, --video-ext or separate folders")
        elif job.dest.exists() and not overwrite:
            skipped += 1
        else:
            seen[key] = job.src
            selected.append(job)
    return selected, skipped, failures


def check_output_name(output: Path, found: list[tuple[Path, Path]], inputs: list[str]) -> bool:
    """Whether ``output`` names the one output file (else it is a folder); InputError if it cannot."""
    suffix = output.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS and suffix not in OUTPUT_FORMATS and scan_format(output) is None:
        return False
    if not (len(found) == 1 and Path(inputs[0]).is_file()):
        raise InputError(f"--output {output}: a file name needs exactly one input file; pass a folder")
    if is_video_file(found[0][0]) != (suffix in OUTPUT_FORMATS):
        wanted = f"a video name ({', '.join(OUTPUT_FORMATS)})" if is_video_file(found[0][0]) else "an image name"
        raise InputError(f"--output {output}: {found[0][0]} needs {wanted} or a folder")
    return True



# ---------------------------------------------------------------- the engine


def read_job(job: Job) -> Image.Image:
    """The default reader: the job's file as upright RGB (``ImageReadError`` naming it)."""
    return read_rgb(job.src)


def write_job(job: Job, image: Image.Image) -> Path:
    """The default writer: ``image`` to the job's output, in the format its extension names."""
    return write_image(job.dest, image)


class ImageFiles(Dataset):
    """Decodes one image per item (in a worker): (index, (H, W, 3) uint8 pixels or None, error or None).
    Pixels, not floats: a quarter of the bytes to pass between processes, and a photo over the
    memory budget streams from them (plane.py)."""

    def __init__(self, jobs: list[Job], size: int | None, read: Callable[[Job], Image.Image] = read_job) -> None:
        self.jobs, self.size, self.read = jobs, size, read

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        job = self.jobs[i]
        try:
            image = resize_short_side(self.read(job), self.size)
            return i, torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()), None
        except (ImageReadError, FileRefused) as e:
            return i, None, str(e)
        except (OSError, ValueError, MemoryError) as e:
            return i, None, f"{job.label}: cannot read image ({e.__class__.__name__}: {e})"


def translate_pixels(gen: Generator, pixels: list[np.ndarray], tile: int | str | None) -> np.ndarray:
    """Same-size photos, (H, W, 3) uint8 each -> their translations (N, H, W, 3) uint8: together in
    one pass, or one alone through ``translate_photo`` (streamed if over the memory budget)."""
    if len(pixels) == 1:
        return translate_photo(gen, pixels[0], tile)[None]
    return float_to_uint8_hwc(translate_tensor(gen, uint8_to_float(np.stack(pixels)), tile=tile))


def _as_list(batch: list) -> list:
    return batch


def _chunks(items: list, n: int) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)]


@dataclass
class Outcome:
    """What became of one job."""

    error: str | None = None  # one line naming the file, when it failed
    output: object = None  # what the writer returned (default: the output path)
    size: tuple[int, int] | None = None  # output (width, height)
    seconds: float = 0.0  # its share of its batch's reading and translating, and its writing
    written: bool = False


@dataclass
class BatchReport:
    outcomes: list[Outcome]  # one per job, in the jobs' order
    failures: list[str] = field(default_factory=list)  # each message once, in the order they came
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return sum(o.written for o in self.outcomes)


def translate_jobs(
    gen: Generator,
    jobs: list[Job],
    size: int | None = None,
    tile: int | str | None = "auto",
    batch_size: int = 4,
    workers: int = 0,
    read: Callable[[Job], Image.Image] = read_job,
    write: Callable[[Job, Image.Image], object] = write_job,
    progress: Callable[[int], None] | None = None,
    oom_hint: str = OOM_HINT,
) -> BatchReport:
    """Translate the image ``jobs``: read, resize (short side ``size``), translate, write.

    ``read`` (picklable when ``workers`` > 0) and ``write`` may raise: ``ImageReadError`` and
    ``FileRefused`` messages are kept as they are, other errors become one line naming the file.
    ``progress(n)`` is called as each n more jobs are done (translated or failed).
    """
    gen.info.check_rgb()  # scientific generators: inference/scans.py
    start = time.perf_counter()
    report = BatchReport([Outcome() for _ in jobs])
    if not jobs:
        return report
    data = ImageFiles(jobs, size, read)
    # Worker processes pay off only when there is more than one batch to decode.
    workers = max(0, min(workers, (len(jobs) - 1) // max(1, batch_size)))
    loader = DataLoader(
        data,
        batch_size=max(1, batch_size),
        num_workers=workers,
        collate_fn=_as_list,
        pin_memory=gen.device.type == "cuda",
        persistent_workers=False,
    )
    pending: list[tuple[Future, int]] = []

    def fail(indices: list[int], message: str) -> None:
        report.failures.append(message)
        for i in indices:
            report.outcomes[i].error = message

    def timed_write(i: int, image: Image.Image) -> tuple[object, float]:
        t = time.perf_counter()
        out = write(jobs[i], image)
        return out, time.perf_counter() - t

    def finish(fut: Future, i: int) -> None:
        try:
            output, seconds = fut.result()
            report.outcomes[i].output, report.outcomes[i].written = output, True
            report.outcomes[i].seconds += seconds
        except (OSError, ValueError, KeyError) as e:
            fail([i], f"{jobs[i].name or jobs[i].dest}: cannot write ({e.__class__.__name__}: {e})")

    def done(n: int) -> None:
        if progress:
            progress(n)

    with ThreadPoolExecutor(max_workers=2) as pool:
        batch_start = time.perf_counter()
        for batch in loader:
            groups = defaultdict(list)  # same-size images go through the generator together
            for i, tensor, error in batch:
                if error is not None:
                    fail([i], error)
                    done(1)
                else:
                    groups[tuple(tensor.shape)].append((i, tensor))
            for shape, items in groups.items():
                per_pass = images_per_pass(batch_size, shape[0], shape[1])  # (H, W, 3)
                for chunk in _chunks(items, per_pass):
                    try:
                        out = translate_pixels(gen, [t.numpy() for _, t in chunk], tile)
                    except (torch.OutOfMemoryError, MemoryBudgetError) as e:
                        names = ", ".join(jobs[i].label for i, _ in chunk)
                        why = str(e) if isinstance(e, MemoryBudgetError) else f"out of memory: {oom_hint}"
                        fail([i for i, _ in chunk], f"{names}: {why}")
                        done(len(chunk))
                        continue
                    for (i, _), y in zip(chunk, out):
                        image = Image.fromarray(y, mode="RGB")
                        report.outcomes[i].size = image.size
                        pending.append((pool.submit(timed_write, i, image), i))
                    done(len(chunk))
            share = (time.perf_counter() - batch_start) / len(batch)
            for i, _, _ in batch:
                report.outcomes[i].seconds += share
            while len(pending) > 8:  # bound the images waiting to be written
                finish(*pending.pop(0))
            batch_start = time.perf_counter()
        for fut, i in pending:
            finish(fut, i)
    report.seconds = time.perf_counter() - start
    return report
