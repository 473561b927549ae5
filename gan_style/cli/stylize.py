"""``gan-style stylize`` (also ``make stylize CONTENT=... STYLE=...``): a painting of each photo from
one painting (or a blend of a few), by optimising the pixels (Gatys et al.; see
gan_style/inference/stylize.py). No training, no download with the default features.

    gan-style stylize --content photo.jpg --style monet.jpg                       # results/stylized/photo.png
    gan-style stylize --content photos/ --style a.jpg b.jpg --style-weights 2,1 --strength 0.7 --preserve-colour

A photo that cannot be read or stylised is reported in one line and the others are done; outputs
are written atomically (Ctrl-C leaves no partial file). Imports nothing from the training code.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..devices import resolve_device
from ..inference.memory import MemoryBudgetError, default_budget
from ..inference.batch import InputError, check_output_name, find_inputs, plan, read_job, select_jobs, write_job
from ..inference.stylize import StylizeSettings, stylize
from ..io.images import ImageReadError, is_image_file, read_rgb
from ..io.inception import InceptionError
from ..io.tensors import float_to_image, image_to_float
from ..logs import show_details
from ..nets.perceptual import DEFAULT_LAYERS, FEATURES, MIN_STYLE_SIDE, FeatureError, load_features
from .translate import bytes_arg

logger = logging.getLogger(__name__)
DEFAULT_OUTPUT = Path("results") / "stylized"


def strength(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1]") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1] (0 = the photo unchanged, 1 = style only)")
    return value


def weights(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 2,1") from None
    if not values or any(v < 0 for v in values) or sum(values) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give non-negative numbers, not all 0")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  gan-style stylize --content photo.jpg --style monet.jpg\n"
        "  gan-style stylize --content photos/ --style a.jpg b.jpg --style-weights 2,1 --strength 0.7\n"
        "  gan-style stylize --content photo.jpg --style monet.jpg --preserve-colour --size 1024 -o out.png\n"
        "\nstrength: the share of the (normalised) objective given to the painting's style; the same value\n"
        "stylises about as much at any size, with any painting and feature network (docs/style.md)"
    )
    a = parser.add_argument
    a("--content", "-i", nargs="+", required=True, help="photos: files, folders or globs")
    a("--style", "-s", nargs="+", required=True, help="one or more paintings")
    a("--style-weights", type=weights, help="blend weights of the paintings, e.g. 2,1 (default: equal)")
    a("--strength", type=strength, default=0.5, help="0 = the photo, 1 = style only (default 0.5)")
    a("--preserve-colour", action="store_true", help="keep the photo's colours: transfer luminance only")
    a("--size", type=int, help="long side of the output in px (default: the photo's size)")
    a("--steps", type=int, default=60, help="optimiser steps at the coarsest scale, halved at each finer one (default 60)")
    a("--optimizer", choices=["lbfgs", "adam"], default="lbfgs", help="L-BFGS (Gatys; default) or Adam")
    a("--features", choices=sorted(FEATURES), default="inception",
      help="feature network: inception (default, offline), vgg19 or vgg16 (downloads torchvision's weights once)")
    a("--content-layers", help=f"comma-separated layers (inception default: {','.join(DEFAULT_LAYERS['inception'][0])})")
    a("--style-layers", help=f"comma-separated layers (inception default: {','.join(DEFAULT_LAYERS['inception'][1])})")
    a("--tv", type=float, default=1e-3, help="total-variation weight (default 1e-3)")
    a("--seed", type=int, default=0, help="random seed (default 0)")
    a("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="auto: bf16 on CUDA, fp32 on the CPU")
    a("--output", "-o", help=f"output folder, or a file name for one photo (default {DEFAULT_OUTPUT}/)")
    a("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    a("--max-memory", type=bytes_arg, default=default_budget(), metavar="BYTES",
      help="memory one photo may take, e.g. 2G (default: 4 GiB or half the RAM, if less): a scale whose estimated "
      "peak is over it runs the feature network in tiles (the same result), then with a shorter L-BFGS history; "
      "a photo that cannot fit is one error line")
    a("--verbose", action="store_true", help="also print each scale's size, tiles, L-BFGS history and estimated memory")
    a("--metrics", action="store_true", help="print style and content distances and colour W1 to the painting, before "
      "and after, and the grid scores (docs/style.md)")


def read_paintings(paths: list[str]) -> list[torch.Tensor]:
    """Each painting as (1, 3, H, W) in [-1, 1]; grayscale, RGBA and 16-bit files are converted."""
    paintings = []
    for path in paths:
        try:
            image = read_rgb(path)
        except ImageReadError as e:
            raise InputError(f"painting {e}: give a readable image file") from None
        if min(image.size) < MIN_STYLE_SIDE:
            logger.warning("painting %s is %dx%d: upscaled to %d px on its short side, so its finest brush "
                           "strokes are approximate", path, *image.size, MIN_STYLE_SIDE)
        paintings.append(image_to_float(image)[None])
    return paintings


def settings_from(args: argparse.Namespace, device: torch.device) -> StylizeSettings:
    layers = lambda text: tuple(x.strip() for x in text.split(",") if x.strip()) if text else None  # noqa: E731
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    if args.style_weights and len(args.style_weights) != len(args.style):
        raise InputError(f"--style-weights gives {len(args.style_weights)} weights for {len(args.style)} paintings")
    if args.size is not None and args.size < MIN_STYLE_SIDE:
        raise InputError(f"--size {args.size}: give at least {MIN_STYLE_SIDE} px")
    if args.steps < 1:
        raise InputError(f"--steps {args.steps}: give at least 1")
    return StylizeSettings(strength=args.strength, steps=args.steps, optimizer=args.optimizer, size=args.size,
                           preserve_colour=args.preserve_colour, tv=args.tv, precision=precision,
                           content_layers=layers(args.content_layers), style_layers=layers(args.style_layers),
                           painting_weights=args.style_weights or [], max_memory=args.max_memory)


def jobs_for(args: argparse.Namespace) -> tuple[list, int, list[str]]:
    output = Path(args.output) if args.output else DEFAULT_OUTPUT
    found = [(p, rel) for p, rel in find_inputs(args.content, False, output.resolve()) if is_image_file(p)]
    if not found:
        raise InputError(f"no images in {' '.join(args.content)}")
    single = args.output is not None and check_output_name(output, found, args.content)
    return select_jobs(plan(found, output, single, None), args.overwrite)


def run(args: argparse.Namespace) -> int:
    if args.verbose:
        show_details()
    try:
        torch.manual_seed(args.seed)
        device = resolve_device(args.device)
        settings = settings_from(args, device)
        paintings = read_paintings(args.style)
        jobs, skipped, failures = jobs_for(args)
        net = load_features(args.features)
        net.check([*(settings.content_layers or ()), *(settings.style_layers or ())])
    except (InputError, FeatureError, InceptionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    start, written = time.perf_counter(), 0
    try:
        for job in jobs:
            written += stylize_job(job, net, paintings, settings, device, args.metrics, failures)
    except KeyboardInterrupt:
        print(f"interrupted: {written} written; the photo in progress was not saved", file=sys.stderr)
        return 130
    print(f"stylized {written} of {len(jobs) + skipped} photo(s) in {time.perf_counter() - start:.0f} s"
          f"{f'; {skipped} skipped (outputs exist: --overwrite)' if skipped else ''}"
          f"{f'; {len(failures)} failed' if failures else ''}")
    return 1 if failures else 0


def stylize_job(job, net, paintings: list[torch.Tensor], settings: StylizeSettings, device: torch.device,
                metrics: bool, failures: list[str]) -> int:
    """One photo: read, stylise with a progress bar, write atomically. 1 if written, else 0 (and a message)."""
    try:
        photo = image_to_float(read_job(job))[None]
        with tqdm(total=1, desc=job.src.name, unit="step", leave=False, dynamic_ncols=True) as bar:
            def progress(done: int, total: int, _image) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result, _ = stylize(net, photo, paintings, settings, device, progress)
        write_job(job, float_to_image(result[0]))
    except (ImageReadError, FeatureError, MemoryBudgetError, OSError, ValueError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        message = first if first.startswith(str(job.src)) else f"{job.label}: {first}"
        failures.append(message)
        print(f"error: {message}", file=sys.stderr)
        return 0
    print(f"{job.src} -> {job.dest} ({result.shape[-1]}x{result.shape[-2]})")
    if metrics:  # against the first painting (gan_style/metrics/style.py)
        from ..metrics.style import grid_text, style_scores

        m = style_scores(net, result, photo, paintings[0])
        print(f"  style distance 1.000 -> {m['style']:.3f} (1 = the photo's; held-out layers {m['style_held_out']:.3f}), "
              f"content distance 0 -> {m['content']:.3f}, edges kept {m['edges']:.3f}, "
              f"colour W1 to the painting {m['colour_w1_before']:.4f} -> {m['colour_w1_after']:.4f}")
        print(f"  {grid_text(m)}")
    return 1
