"""``gan-style translate``: translate image and video files and folders with a generator.

    gan-style translate --weights runs/monet/last.pt                 # its test photos -> results/monet_BtoA/
    gan-style translate --weights official:style_monet --input photos/ --output paintings/
    gan-style translate --weights official:style_vangogh --input holiday/ --output painted/   # photos and videos

The options and what is printed; the work is ``gan_style.inference.batch`` (images are decoded in
DataLoader workers, same-size images are batched, large ones tiled). Videos (by extension, see
``inference/video.py``) go through the video pipeline, one after the other. Scientific files
(a generator trained with data.intensity: TIFF, DICOM, NIfTI, 16-bit PNG) and slides (TIFFs too
large to read whole) go through ``inference/scans.py`` and ``inference/slide.py``, exactly; which
pipeline a file takes is ``inference/route.py``'s decision. A
file that cannot be read or written is reported by name and skipped; the exit status is 1 if any
failed, 2 if nothing could start (bad weights, no input), 130 on Ctrl-C. Existing outputs are
kept unless ``--overwrite``. Imports nothing from the training code.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from functools import partial
from pathlib import Path

from tqdm import tqdm

from ..devices import INFERENCE_PRECISIONS
from ..inference.batch import (
    KEEP_EXTENSIONS,
    InputError,
    Job,
    check_output_name,
    default_input,
    default_output,
    find_inputs,
    plan,
    translate_jobs,
)
from ..inference.backends import BACKENDS, with_backend
from ..inference.route import route_jobs, takes, translate_exact
from ..inference.scans import ScanOptions
from ..inference.shard import resolve_shard, shard_device, shard_jobs
from ..inference.slide import MODES
from ..inference.memory import default_budget
from ..logs import show_details
from ..inference.translate import Generator, load_generator
from ..io.scans import ScanError
from ..inference.video import OUTPUT_FORMATS, VIDEO_EXTENSIONS, VideoError, VideoSettings, import_av, translate_videos
from ..domains import DIRECTIONS
from ..inference.zoo import OFFICIAL_MODELS
from ..io.checkpoint import CheckpointError
from ..io.download import DownloadError
from ..io.images import IMAGE_EXTENSIONS


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
    a("--steps", type=int, metavar="N",
      help="multi-step generators (unsb): network evaluations per image, 1 to its num_timesteps (default: all); "
      "fewer is faster and translates less")
    a("--seed", type=int, default=0, metavar="S",
      help="multi-step generators: the seed of their noise; one input and one seed always give the same output "
      "(default 0)")
    a("--strength", type=float, metavar="S",
      help="strength-conditioned generators (trained with a strength range): how strongly to translate, in [0, 1] "
      "(0 keeps the input most, 1 translates most; default: the middle of the range it was trained on); "
      "see docs/strength.md")
    a("--raw-weights", action="store_true",
      help="a training checkpoint's raw generator weights instead of their EMA (used by default when train.ema was on)")
    a("--recursive", "-r", action="store_true", help="also translate images and videos in subfolders of input folders")
    a(
        "--size",
        type=int,
        metavar="N",
        help="resize images and video frames so the shorter side is N pixels before translating (the output "
        "has that size; scientific files keep their field of view: resolution, PixelSpacing, affine scaled; "
        "not slides); default: keep the input size",
    )
    a(
        "--tile",
        default="auto",
        type=_tile_arg,
        metavar="N|auto|0",
        help="translate images and video frames in tiles of N pixels (bounded memory, same result as "
        "untiled); auto (default): only those over 4 megapixels (4K video), in 1024 px tiles on a GPU and, on "
        "the CPU, 256 to 1024 px by the generator's width (faster there); 0: never",
    )
    a(
        "--max-memory",
        type=bytes_arg,
        default=default_budget(),
        metavar="BYTES",
        help="memory one image's translation may take, e.g. 2G (default: 4 GiB or half the RAM, if less): an "
        "image whose estimated peak is over it is tiled smaller, then its caches spill to disk; a TIFF that "
        "still does not fit streams as a slide; an image that cannot fit is one error line",
    )
    a("--verbose", action="store_true", help="also print each image's estimated memory and how it is translated")
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
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="what runs the network on the CPU: torch (default: PyTorch, --precision), onnxruntime, openvino "
        "(gan_style[cpu]), or auto: each is timed on one 256 px image at start-up (a few seconds) and the "
        "fastest within 2/255 of fp32 PyTorch (3/255 for bf16 paths) is used, and named. Tiled images (over "
        "4 megapixels, or --tile) are always translated by PyTorch's exact tiling",
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
    a("--shard", metavar="K/N",
      help="translate only this process's share of the inputs: every N-th file from the K-th (K from 0), e.g. "
      "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT in a job array. Under torchrun the ranks share the files "
      "the same way, one device each (cuda:LOCAL_RANK); existing outputs are skipped, so a killed job resumes")
    sci = parser.add_argument_group(
        "scientific and medical images (TIFF, DICOM, NIfTI, 16-bit/float PNG, .npy, OME-TIFF, OME-Zarr, CZI/ND2/LIF, "
        "SVS/NDPI/MRXS slides; docs/science.md). A generator trained with data.intensity reads and writes them "
        "exactly, in their own units; outputs keep the input's format and header, in the target domain's dtype")
    sci.add_argument("--axis", type=int, choices=(0, 1, 2), default=2,
                     help="NIfTI volumes: translate slice by slice along this axis (default 2)")
    sci.add_argument("--volume", type=int, metavar="K", help="4-D NIfTI: translate volume K (0-based)")
    sci.add_argument("--slide", action="store_true",
                     help="stream every TIFF tile by tile into a tiled OME BigTIFF (automatic for TIFFs too large to "
                     "read whole, e.g. 40,000 x 40,000 px slides, and for SVS/NDPI/MRXS slides, read through OpenSlide "
                     "and written as NAME.ome.tif); memory stays bounded. An output named *.ome.zarr is an OME-Zarr")
    sci.add_argument("--slide-tile", type=int, default=512, metavar="N",
                     help="slides: the output's TIFF tile in pixels, a multiple of 16 (default 512)")
    sci.add_argument("--pyramid", action="store_true",
                     help="slides: also write 2x, 4x ... reductions (OME-TIFF SubIFDs, or OME-Zarr levels)")
    sci.add_argument("--slide-norm", choices=MODES, default="auto",
                     help="slides: where InstanceNorm statistics come from. exact: the whole slide's (needs about "
                     "3 x ngf bytes of temporary disk per pixel); kernel: measured exactly on a sample of cells weighted "
                     "to the whole slide's proportions (constant memory and disk, not exact; with --kernel-sigma, "
                     "local statistics smoothed over neighbouring cells as URUST); thumbnail: a low-resolution pass of "
                     "the whole slide; auto (default): exact when its temporary disk fits --max-disk, else kernel. "
                     "docs/science.md")
    sci.add_argument("--kernel-sigma", type=sigma_arg, metavar="PX",
                     help="slides, kernel mode: statistics that vary over the slide, smoothed by a Gaussian of PX "
                     "input pixels over neighbouring cells (URUST; e.g. 2048), one more pass; default: one set for "
                     "the whole slide, which measured closer to exact")
    sci.add_argument("--max-disk", type=bytes_arg, metavar="BYTES",
                     help="slides: temporary disk to use at most, e.g. 5G or 500M (default: 20G, or half the free "
                     "space next to the output if less); a budget too small for the mode is refused")
    sci.add_argument("--keep-input-dtype", action="store_true",
                     help="write each output in its input's dtype (and DICOM bits, sign and rescale) instead of the "
                     "target domain's representation recorded in the checkpoint (default: e.g. a uint16 MR becomes "
                     "int16 HU, negative values kept)")
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


def bytes_arg(text: str) -> int:
    """A number of bytes, with an optional K, M, G or T (powers of 1000; KiB, MiB ...: of 1024) and B."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(i?)b?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of bytes, e.g. 5G, 500M or 20000000000")
    return int(float(match[1]) * (1024 if match[3] else 1000) ** " kmgt".index(match[2] or " "))


def sigma_arg(text: str) -> float:
    """A kernel width in pixels: a positive number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give the kernel's width in pixels, a positive number (e.g. 2048)")
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


def run(args: argparse.Namespace) -> int:
    try:
        shard = resolve_shard(args.shard)
        gen = load_generator(args.weights, args.direction, shard_device(args.device, shard), args.precision,
                             ema=not args.raw_weights, steps=args.steps, seed=args.seed, strength=args.strength)
        gen = with_backend(gen, args.backend, args.compile).within(args.max_memory)
        if args.verbose:
            show_details()
        inputs = args.input or default_input(gen)
        output = Path(args.output) if args.output else default_output(gen, args.weights)
        found = find_inputs(inputs, args.recursive, exclude=output.resolve(), accept=partial(takes, gen.info))
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
    exact = gen.info.exact
    jobs, skipped, failures = shard_jobs(
        plan(found, output, single_file, args.ext, args.video_ext, keep_names=exact), shard, args.overwrite)
    if shard.count > 1:
        print(f"{shard.label}: {len(jobs) + skipped} of {len(found)} input(s)", file=sys.stderr)
    steps = f", {gen.steps} of {gen.kind.steps(gen.info.arch)[1]} steps (seed {gen.seed})" \
        if gen.kind.steps(gen.info.arch)[1] > 1 else ""
    steps += f", strength {gen.strength:g}" if gen.strength is not None else ""
    print(
        f"generator: {gen.info.label}, {gen.info.kind}, {gen.info.arch['n_blocks']} blocks, ngf {gen.info.arch['ngf']}"
        f"{steps}, {gen.device} {gen.precision}",
        file=sys.stderr,
    )
    print(f"backend: {gen.choice}", file=sys.stderr)
    routes = route_jobs(jobs, gen.info, args.slide, gen.max_memory)
    options = ScanOptions(axis=args.axis, volume=args.volume, tile=args.tile, size=args.size, slide_tile=args.slide_tile,
                          pyramid=args.pyramid, force_slide=args.slide, keep_input_dtype=args.keep_input_dtype,
                          slide_norm=args.slide_norm, max_disk=args.max_disk,
                          kernel_sigma=args.kernel_sigma)
    try:
        if routes.exact:
            failures += translate_scan_jobs(gen, routes.exact, output, options)
        if routes.images or not (routes.videos or routes.exact or routes.refused):
            failures += translate_images(gen, routes.images, output, args)
        failures += routes.refused
        if routes.videos:
            failures += translate_video_jobs(gen, routes.videos, output, args)
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


def translate_images(gen: Generator, jobs: list[Job], output: Path, args: argparse.Namespace) -> list[str]:
    """Translate the image jobs and print their summary line; returns the failure messages."""
    with tqdm(total=len(jobs), unit="img", desc="translate") as bar:
        report = translate_jobs(gen, jobs, args.size, args.tile, args.batch_size, args.workers, progress=bar.update)
    written, elapsed = report.written, report.seconds
    rate = f" in {elapsed:.1f} s ({written / elapsed:.2f} img/s)" if written else ""
    print(f"translated {written} image(s) to {output}{rate}", file=sys.stderr)
    return report.failures


def translate_scan_jobs(gen: Generator, jobs: list[tuple[Job, str]], output: Path, options: ScanOptions) -> list[str]:
    """Translate scientific files and slides one by one, exactly (a bad file is reported, the others go on)."""
    failures, written = [], 0
    with tqdm(total=len(jobs), unit="file", desc="translate") as bar:
        for job, kind in jobs:
            try:
                translate_exact(gen, job.src, job.dest, options, kind)
                written += 1
            except (ScanError, CheckpointError, ValueError, OSError) as e:
                failures.append(str(e) if str(job.src) in str(e) else f"{job.label}: {e}")
            bar.update(1)
    print(f"translated {written} file(s) to {output} in their own units and formats", file=sys.stderr)
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
