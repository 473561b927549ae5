"""``gan-style translate``: translate image and video files and folders with a generator.

    gan-style translate --weights runs/monet/last.pt                 # its test photos -> results/monet_BtoA/
    gan-style translate --weights official:style_monet --input photos/ --output paintings/
    gan-style translate --weights official:style_vangogh --input holiday/ --output painted/   # photos and videos

Images are decoded in DataLoader workers, same-size images are batched, large ones tiled. Videos
(by extension, see ``inference/video.py``) go through the video pipeline, one after the other. A
file that cannot be read or written is reported by name and skipped; the exit status is 1 if any
failed, 2 if nothing could start (bad weights, no input), 130 on Ctrl-C. Existing outputs are
kept unless ``--overwrite``. Imports nothing from the training code.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..devices import INFERENCE_PRECISIONS
from ..inference.translate import (
    Generator,
    images_per_pass,
    load_generator,
    resize_short_side,
    translate_tensor,
)
from ..inference.video import (
    OUTPUT_FORMATS,
    VIDEO_EXTENSIONS,
    VideoError,
    VideoSettings,
    import_av,
    is_video_file,
    output_extension,
    translate_videos,
)
from ..inference.weights import DIRECTIONS, OFFICIAL_MODELS
from ..io.checkpoint import CheckpointError
from ..io.download import DownloadError
from ..io.images import IMAGE_EXTENSIONS, ImageReadError, is_image_file, list_images, read_rgb, write_image
from ..io.tensors import float_to_image, image_to_float

KEEP_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}  # others are written as PNG


class InputError(ValueError):
    """Bad --input / --output; the message says what to pass instead."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  gan-style translate --weights runs/monet/last.pt            # its testB photos -> results/monet_BtoA/\n"
        "  gan-style translate --weights official:style_monet --input photos/ --output paintings/ --recursive\n"
        "  gan-style translate --weights exports/monet_BtoA.safetensors --input 'trip/*.jpg' --size 512\n"
        "  gan-style translate --weights official:style_vangogh --input holiday/ --output painted/  # photos + videos\n"
        "  gan-style translate --weights runs/monet/last.pt --input clip.mp4 --output out/ --deflicker 0.5\n"
        f"\nofficial models: {', '.join(OFFICIAL_MODELS)}\n"
        "(downloaded once into $GAN_STYLE_CACHE or ~/.cache/gan_style; see docs/translate.md)"
    )
    a = parser.add_argument
    a(
        "--weights",
        "-w",
        required=True,
        metavar="WEIGHTS",
        help="training checkpoint (runs/NAME/last.pt or the run folder runs/NAME), exported .safetensors, "
        "reference generator .pth (e.g. latest_net_G_A.pth), or official:NAME (e.g. official:style_monet)",
    )
    a(
        "--input",
        "-i",
        nargs="+",
        metavar="PATH",
        help="image or video files, folders (they may mix both) or quoted globs ('photos/*.jpg'); videos are "
        f"recognised by extension ({' '.join(sorted(VIDEO_EXTENSIONS))}); default for a training checkpoint: "
        "the test folder of the source domain (<data.root>/testB for BtoA)",
    )
    a(
        "--output",
        "-o",
        metavar="PATH",
        help="output folder (mirrors the input folders), or a file name for a single input file "
        "(default: results/<run>_<direction>/ or results/<weights name>/)",
    )
    a(
        "--direction",
        "-d",
        choices=DIRECTIONS,
        help="which generator of a training checkpoint: AtoB (G_A) or BtoA (G_B); default BtoA for *2photo "
        "datasets (photo -> painting), else AtoB. Files holding one generator need no direction",
    )
    a("--raw-weights", action="store_true",
      help="a training checkpoint's raw generator weights instead of their EMA (used by default when train.ema was on)")
    a("--recursive", "-r", action="store_true", help="also translate images and videos in subfolders of input folders")
    a(
        "--size",
        type=int,
        metavar="N",
        help="resize images and video frames so the shorter side is N pixels before translating (the output "
        "has that size); default: keep the input size",
    )
    a(
        "--tile",
        default="auto",
        type=_tile_arg,
        metavar="N|auto|0",
        help="translate images and video frames in tiles of N pixels (bounded memory, same result as "
        "untiled); auto (default): only those over 4 megapixels (4K video), in 1024 px tiles; 0: never",
    )
    a(
        "--batch-size",
        "-b",
        type=int,
        default=4,
        metavar="N",
        help="images (or video frames) per forward pass when they share a size (default 4)",
    )
    a(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="auto (default): bf16 on CUDA GPUs that support it; on CPUs with native bf16 (AMX, AVX512-BF16) "
        "bf16-blocks (the residual blocks in bf16, the rest fp32: within 1/255 of fp32, 1.6x faster); "
        "else fp32",
    )
    a("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    a(
        "--compile",
        action="store_true",
        help="torch.compile the generator: on a CPU about 2x faster again than bf16-blocks, after a first "
        "compilation of 20-50 s (worth it from about 4 photos; needs a C++ compiler)",
    )
    a(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        metavar="N",
        help="image decoding processes (default: up to 4)",
    )
    a(
        "--ext",
        choices=sorted(e.lstrip(".") for e in KEEP_EXTENSIONS),
        help="output format of images (default: the input's, PNG for GIF/PPM/...)",
    )
    a("--overwrite", action="store_true", help="replace existing output files (default: skip them)")
    v = parser.add_argument_group("videos (need PyAV: pip install 'gan_style[video]', included by make setup)")
    v.add_argument(
        "--video-ext",
        choices=sorted(e.lstrip(".") for e in OUTPUT_FORMATS),
        help="container of translated videos (default: the input's; MP4 for AVI, MPEG-TS, ...)",
    )
    v.add_argument(
        "--codec",
        default="auto",
        metavar="NAME",
        help="video encoder: auto (default) = H.264 (libx264), VP9 for WebM; or an FFmpeg encoder name "
        "(hevc, libvpx-vp9, libsvtav1, mpeg4, ...). Audio is copied unchanged where the container allows",
    )
    v.add_argument(
        "--crf",
        type=int,
        metavar="N",
        help="video quality, lower = better and larger (default 18 for H.264, 20 HEVC, 31 VP9, 30 AV1)",
    )
    v.add_argument(
        "--deflicker",
        type=_strength_arg,
        default=0.0,
        metavar="S",
        help="reduce flicker: blend each output frame with the previous one where the input did not change, "
        "with strength S in [0, 1) (0 = off, default; 0.5 is a good start); see docs/translate.md",
    )


def _strength_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number in [0, 1)") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value}: use a strength in [0, 1), e.g. 0.5 (0 = off)")
    return value


def _tile_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of pixels, auto or 0") from None
    if value != 0 and value < 32:
        raise argparse.ArgumentTypeError(f"{value}: tiles must be at least 32 pixels (or 0 for no tiling)")
    return value


# ---------------------------------------------------------------- planning: inputs -> outputs


@dataclass
class Job:
    src: Path
    dest: Path

    @property
    def is_video(self) -> bool:
        return is_video_file(self.src)


def is_input_file(path: Path) -> bool:
    return is_image_file(path) or is_video_file(path)


def _glob_base(pattern: str) -> Path:
    # The folder part before the first wildcard: outputs mirror the structure below it.
    parts = Path(pattern).parts
    base = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def find_inputs(inputs: list[str], recursive: bool, exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(path, output path relative to the output folder) for each input image or video.

    Files found in folders or by globs under ``exclude`` (the output folder) are left out.
    """
    several = len(inputs) > 1
    found: list[tuple[Path, Path]] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_file():
            found.append((path, Path(path.name)))
            continue
        if path.is_dir():
            prefix = Path(path.resolve().name) if several else Path()
            listed = [(p, prefix / p.relative_to(path)) for p in list_images(path, recursive, is_input_file)]
        elif glob.has_magic(text):
            pattern = os.path.expanduser(text)
            base = _glob_base(pattern)
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            listed = [(p, p.relative_to(base)) for p in matches if p.is_file() and is_input_file(p)]
        else:
            raise InputError(f"{text}: no such file or folder")
        found += [(p, rel) for p, rel in listed if exclude is None or not p.resolve().is_relative_to(exclude)]
    return found


def plan(
    found: list[tuple[Path, Path]], output: Path, single_file: bool, ext: str | None, video_ext: str | None = None
) -> list[Job]:
    jobs = []
    for src, rel in found:
        if single_file:
            dest = output
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


# ---------------------------------------------------------------- reading and writing


class ImageFiles(Dataset):
    """Decodes one image per item in a worker: (index, (3, H, W) tensor in [-1, 1] or None, error or None)."""

    def __init__(self, paths: list[Path], size: int | None) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return i, image_to_float(resize_short_side(read_rgb(self.paths[i]), self.size)), None
        except ImageReadError as e:
            return i, None, str(e)
        except (OSError, ValueError, MemoryError) as e:
            return i, None, f"{self.paths[i]}: cannot read image ({e.__class__.__name__}: {e})"


def _as_list(batch: list) -> list:
    return batch


# ---------------------------------------------------------------- the loop


def _chunks(items: list, n: int) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def translate_jobs(gen: Generator, jobs: list[Job], args: argparse.Namespace) -> tuple[int, list[str]]:
    """Translate ``jobs``; returns (number written, failure messages)."""
    data = ImageFiles([j.src for j in jobs], args.size)
    # Worker processes pay off only when there is more than one batch to decode.
    workers = max(0, min(args.workers, (len(jobs) - 1) // max(1, args.batch_size)))
    loader = DataLoader(
        data,
        batch_size=max(1, args.batch_size),
        num_workers=workers,
        collate_fn=_as_list,
        pin_memory=gen.device.type == "cuda",
        persistent_workers=False,
    )
    failures: list[str] = []
    pending: list[tuple[Future, Job]] = []
    written = 0

    def finish(fut: Future, job: Job) -> None:
        nonlocal written
        try:
            fut.result()
            written += 1
        except (OSError, ValueError, KeyError) as e:
            failures.append(f"{job.dest}: cannot write ({e.__class__.__name__}: {e})")

    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(total=len(jobs), unit="img", desc="translate") as bar:
        for batch in loader:
            groups = defaultdict(list)  # same-size images go through the generator together
            for i, tensor, error in batch:
                if error is not None:
                    failures.append(error)
                    bar.update(1)
                else:
                    groups[tuple(tensor.shape)].append((i, tensor))
            for shape, items in groups.items():
                per_pass = images_per_pass(args.batch_size, shape[1], shape[2])
                for chunk in _chunks(items, per_pass):
                    try:
                        out = translate_tensor(gen, torch.stack([t for _, t in chunk]), tile=args.tile)
                    except torch.OutOfMemoryError:
                        names = ", ".join(str(jobs[i].src) for i, _ in chunk)
                        failures.append(f"{names}: out of memory: use --tile 512, --batch-size 1 or --size")
                        bar.update(len(chunk))
                        continue
                    for (i, _), y in zip(chunk, out):
                        pending.append((pool.submit(write_image, jobs[i].dest, float_to_image(y)), jobs[i]))
                    bar.update(len(chunk))
                while len(pending) > 8:  # bound the images waiting to be written
                    finish(*pending.pop(0))
        for fut, job in pending:
            finish(fut, job)
    return written, failures


def run(args: argparse.Namespace) -> int:
    try:
        gen = load_generator(args.weights, args.direction, args.device, args.precision, ema=not args.raw_weights)
        if args.compile:
            gen.compile()
        inputs = args.input or default_input(gen)
        output = Path(args.output) if args.output else default_output(gen, args.weights)
        found = find_inputs(inputs, args.recursive, exclude=output.resolve())
        single_file = check_output_name(output, found, inputs)
        if args.size is not None and args.size < 1:
            raise InputError(f"--size {args.size}: use a positive number of pixels")
    except (CheckpointError, DownloadError, InputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not found:
        extensions = " ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
        print(f"error: no images or videos found in {' '.join(inputs)} (extensions: {extensions})", file=sys.stderr)
        return 2
    jobs, skipped, failures = [], 0, []
    seen: dict[Path, Path] = {}
    for job in plan(found, output, single_file, args.ext, args.video_ext):
        key = job.dest.resolve()
        if key == job.src.resolve():
            failures.append(f"{job.src}: the output would replace the input; choose another --output")
        elif key in seen:
            failures.append(f"{job.src}: same output {job.dest} as {seen[key]}; pass --ext, --video-ext or separate folders")
        elif job.dest.exists() and not args.overwrite:
            skipped += 1
        else:
            seen[key] = job.src
            jobs.append(job)
    print(
        f"generator: {gen.info.label}, {gen.info.arch['n_blocks']} blocks, ngf {gen.info.arch['ngf']}, "
        f"{gen.device} {gen.precision}",
        file=sys.stderr,
    )
    images, videos = [j for j in jobs if not j.is_video], [j for j in jobs if j.is_video]
    try:
        if images or not videos:
            failures += translate_images(gen, images, output, args)
        if videos:
            failures += translate_video_jobs(gen, videos, output, args)
    except KeyboardInterrupt:
        print(
            "interrupted: the files finished so far are kept and no partial file is left; "
            "run the same command again to do the rest (finished outputs are skipped)",
            file=sys.stderr,
        )
        return 130
    if skipped:
        print(f"skipped {skipped} existing output(s): pass --overwrite to replace them", file=sys.stderr)
    if failures:
        print(f"failed {len(failures)}:", file=sys.stderr)
        for message in failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


def check_output_name(output: Path, found: list[tuple[Path, Path]], inputs: list[str]) -> bool:
    """Whether ``output`` names the one output file (else it is a folder); InputError if it cannot."""
    suffix = output.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS and suffix not in OUTPUT_FORMATS:
        return False
    if not (len(found) == 1 and Path(inputs[0]).is_file()):
        raise InputError(f"--output {output}: a file name needs exactly one input file; pass a folder")
    if is_video_file(found[0][0]) != (suffix in OUTPUT_FORMATS):
        wanted = f"a video name ({', '.join(OUTPUT_FORMATS)})" if is_video_file(found[0][0]) else "an image name"
        raise InputError(f"--output {output}: {found[0][0]} needs {wanted} or a folder")
    return True


def translate_images(gen: Generator, jobs: list[Job], output: Path, args: argparse.Namespace) -> list[str]:
    """Translate the image jobs and print their summary line; returns the failure messages."""
    start = time.perf_counter()
    written, failures = translate_jobs(gen, jobs, args) if jobs else (0, [])
    elapsed = time.perf_counter() - start
    rate = f" in {elapsed:.1f} s ({written / elapsed:.2f} img/s)" if written else ""
    print(f"translated {written} image(s) to {output}{rate}", file=sys.stderr)
    return failures


def translate_video_jobs(gen: Generator, jobs: list[Job], output: Path, args: argparse.Namespace) -> list[str]:
    """Translate the video jobs one after the other (a summary line each); returns the failure messages."""
    try:
        import_av()
    except VideoError as e:
        return [f"{len(jobs)} video(s) not translated: {e}"]
    settings = VideoSettings(
        size=args.size,
        tile=args.tile,
        batch_size=max(1, args.batch_size),
        codec=args.codec,
        crf=args.crf,
        deflicker=args.deflicker,
    )
    results, failures = translate_videos(gen, [(j.src, j.dest) for j in jobs], settings, _report)
    frames, seconds = sum(r.frames for r in results), sum(r.seconds for r in results)
    rate = f" ({frames} frames in {seconds:.1f} s, {frames / seconds:.1f} fps)" if frames and seconds else ""
    print(f"translated {len(results)} video(s) to {output}{rate}", file=sys.stderr)
    return failures


def _report(message: str) -> None:
    print(message, file=sys.stderr)
