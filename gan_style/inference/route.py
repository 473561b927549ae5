"""Which pipeline translates a file: image, scan, slide or video.

- ``image``: 8-bit RGB, batched (batch.py): photo generators;
- ``scan``: exactly, in the data's units and the file's own format (scans.py): generators of
  scientific data (``GeneratorInfo.exact``) take every image file this way;
- ``slide``: a file of a slide format (SVS, NDPI, MRXS ...: OpenSlide) or a TIFF too large to read
  whole or to translate within the memory budget (memory.py), or every TIFF with ``force_slide``,
  streamed tile by tile (slide.py), whichever the generator; written as OME-TIFF (``.ome.tif``
  for the formats that cannot be written) or OME-Zarr;
- ``video``: by extension (video.py); generators of scientific data refuse videos.

The generator decides, not the file: the same 16-bit PNG is a photo for a photo generator and
data in its own units for a generator trained with ``data.intensity``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..io.images import is_image_file
from ..io.scan import ScanError
from ..io.scans import output_name
from ..io.slides import is_slide, slide_output_name
from ..io.tiff import page_shape
from .batch import Job, is_input_file
from .memory import MemoryBudgetError, size_text
from .memory import plan as memory_plan
from .scans import ScanOptions, translate_scan_file
from .slide import translate_slide
from .translate import AUTO_TILE, Generator
from .video import is_video_file
from .weights import GeneratorInfo

logger = logging.getLogger(__name__)

IMAGE, SCAN, SLIDE, VIDEO = "image", "scan", "slide", "video"
NO_VIDEOS = "a generator for scientific data does not translate videos"


def pipeline(path: Path, info: GeneratorInfo, force_slide: bool = False, max_memory: int | None = None) -> str:
    """IMAGE, SCAN, SLIDE or VIDEO: which pipeline translates ``path`` with the generator ``info`` describes
    (``max_memory``: a TIFF that cannot be translated whole within it is streamed as a slide)."""
    if is_video_file(path):
        return VIDEO
    if _slide(path, force_slide) or over_budget(path, info, max_memory):
        return SLIDE
    return SCAN if info.exact else IMAGE


def over_budget(path: Path, info: GeneratorInfo, max_memory: int | None) -> bool:
    """Whether ``path`` is a TIFF (a format slides are read from) whose in-memory translation would not
    fit ``max_memory`` bytes even with its caches on disk (memory.py)."""
    if max_memory is None or not _slide_format(path):
        return False
    try:
        h, w, c, dtype, _ = page_shape(path)
    except (ScanError, OSError, ValueError):
        return False  # the scan pipeline reports it in its own words
    c_out = info.generator_kind.channels(info.arch)[1]
    try:
        # Scans (exact generators) stream their tiles from and into the arrays (plane.py); photos hold float copies.
        memory_plan(int(info.arch.get("ngf", 64)), h, w, c, c_out, AUTO_TILE, max_memory, 2 * dtype.itemsize,
                    streamed=info.exact)
    except MemoryBudgetError:  # streamed, it holds only tiles (but takes several times as long: docs/translate.md)
        logger.info("%s (%d x %d px) does not fit --max-memory %s in memory: streamed as a slide", path, w, h,
                    size_text(max_memory))
        return True
    return False


def _slide_format(path: Path) -> bool:
    try:
        return is_slide(path, force=True)
    except (ScanError, OSError, ValueError):
        return False


def takes(info: GeneratorInfo, path: Path) -> bool:
    """Whether a file found in a folder or by a glob is an input of the generator ``info`` describes:
    images and videos for a photo generator (a DICOM, NIfTI or .npy file among photos is not one
    of them), every image, scan and video for a generator of scientific data."""
    return is_input_file(path) if info.exact else is_image_file(path) or is_video_file(path)


def _slide(path: Path, force: bool) -> bool:
    try:
        return is_slide(path, force)
    except (ScanError, OSError, ValueError):
        return False  # not a readable TIFF: the image or scan pipeline reports it in its own words


@dataclass
class Routes:
    """A run's jobs by pipeline, each in input order."""

    images: list[Job] = field(default_factory=list)
    exact: list[tuple[Job, str]] = field(default_factory=list)  # scans and slides (SCAN or SLIDE), one by one
    videos: list[Job] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # one line per job that no pipeline takes


def route_jobs(jobs: list[Job], info: GeneratorInfo, force_slide: bool = False, max_memory: int | None = None) -> Routes:
    """Sort ``jobs`` into their pipelines (``pipeline``); videos for a generator of scientific data are refused."""
    routes = Routes()
    for job in jobs:
        kind = pipeline(job.src, info, force_slide, max_memory)
        if kind == VIDEO and info.exact:
            routes.refused.append(f"{job.label}: {NO_VIDEOS}")
        elif kind == VIDEO:
            routes.videos.append(job)
        elif kind == IMAGE:
            routes.images.append(job)
        else:
            routes.exact.append((job, kind))
    return routes


def translate_exact(gen: Generator, src: Path, dest: Path, options: ScanOptions = ScanOptions(),
                    kind: str | None = None) -> Path:
    """Translate one scientific file (SCAN) or slide (SLIDE) exactly into ``dest``; ``kind`` None:
    a slide if ``src`` is one (``options.force_slide``: every TIFF), else a scan. ScanError on bad input."""
    if kind is None:
        kind = SLIDE if _slide(src, options.force_slide) else SCAN
    dest = output_name(dest)  # a format that cannot be written (CZI, SVS ...): its writer's suffix (.ome.tif)
    if kind == SLIDE:
        dest = slide_output_name(dest)
        if options.size:
            logger.warning("%s: --size does not apply to slides; translated at full resolution", src)
        return translate_slide(gen, src, dest, options.slide_tile, options.pyramid, options.keep_input_dtype,
                               options.slide_norm, options.max_disk, options.kernel_sigma)
    return translate_scan_file(gen, src, dest, options)
