"""The options of ``gan-style bench`` and their presets: ``add_arguments`` declares them,
``resolve_args`` fills what is unset from the preset (and ``-c``), parses the lists and checks them.

Presets: ``cpu`` (a small model at 64 px: a few minutes on a laptop) and ``gpu`` (the paper's
256 px model); ``auto`` picks gpu when CUDA is available. Every preset value can be overridden by
an option.
"""

from __future__ import annotations

import argparse
import re

import torch

from ..config import Config
from ..devices import fp16_needs_cuda, resolve_device
from ..methods import METHODS, config_from_dict, load_config
from . import SECTIONS
from .common import DTYPES

# Option defaults per preset. "auto" picks gpu when CUDA is available.
PRESETS = {
    "cpu": {
        "size": 64,
        "ngf": 32,
        "ndf": 32,
        "n_blocks": 9,
        "precisions": "bf16",
        "channels_last": "on",
        "compile": "off",
        "batch_sizes": "4",
        "warmup": 2,
        "iters": 3,
        "repeats": 3,
        "translate_sizes": "256,1024",
        "tiled": "1000x750",
        "tile": 256,
        "workers": "0,1,2",
        "data_images": 48,
        "methods": ",".join(METHODS),
        "methods_precision": "fp32",  # what gan-style train uses on a CPU (precision auto)
        "methods_batch": 1,  # the papers' batch
    },
    "gpu": {
        "size": 256,
        "ngf": 64,
        "ndf": 64,
        "n_blocks": 9,
        "precisions": "bf16,fp16",
        "channels_last": "on",
        "compile": "on",
        "batch_sizes": "4,8,16",
        "warmup": 5,
        "iters": 20,
        "repeats": 3,
        "translate_sizes": "256,1024",
        "tiled": "4000x3000",
        "tile": 1024,
        "workers": "0,2,4,8",
        "data_images": 200,
        "methods": ",".join(METHODS),
        "methods_precision": "bf16",
        "methods_batch": 1,
    },
}


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected whole numbers separated by commas, e.g. 1,4,8") from None
    if any(v < 0 or (v == 0 and option != "--workers") for v in values):
        raise ValueError(f"{option} {text!r}: values must be positive")
    return values


def _onoff(text: str) -> list[bool]:
    values = {"off": False, "on": True}
    try:
        return [values[x.strip()] for x in text.split(",") if x.strip()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected on, off or on,off; got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  gan-style bench                          # preset for this machine: a few minutes on a CPU\n"
        "  gan-style bench --preset gpu --only train --batch-sizes 8,16\n"
        "  gan-style bench -c configs/monet.yaml --grid --precisions fp32,bf16 --compile off,on\n"
        "  gan-style bench --profile --only train   # where does the time go?\n"
        "Lists are comma-separated. Results: a table on stdout and a JSON file (see --out)."
    )
    add = parser.add_argument
    add(
        "--preset",
        choices=["auto", "cpu", "gpu"],
        default="auto",
        help="defaults for the options below (auto: gpu if CUDA is available)",
    )
    add(
        "-c",
        "--config",
        help="take the model (ngf, ndf, n_blocks, ...), losses and crop size from this training config",
    )
    add("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice, one per core)")
    add("--size", type=int, help="training crop size in px (cpu preset 64, gpu 256; with -c: data.crop_size)")
    add("--ngf", type=int, help="generator width (cpu preset 32, gpu 64)")
    add("--ndf", type=int, help="discriminator width (cpu preset 32, gpu 64)")
    add("--n-blocks", type=int, help="generator residual blocks (9 for the paper's 256 px model)")
    add("--precisions", help="low precisions to try besides fp32, e.g. bf16,fp16 (fp16 needs CUDA)")
    add(
        "--channels-last",
        type=_onoff,
        help="on, off or off,on (the ladder tries it if 'on' is listed, the grid measures each)",
    )
    add(
        "--compile",
        type=_onoff,
        help="torch.compile: on, off or off,on, as --channels-last (on the CPU: minutes of C++ compilation)",
    )
    add("--batch-sizes", help="ladder: larger batches tried with the fastest settings; grid: added to batch 1")
    add("--grid", action="store_true", help="every combination of precision x channels_last x compile x batch (slow)")
    add("--no-reference", action="store_true", help="skip the reference implementation's step (the baseline)")
    add("--warmup", type=int, help="untimed iterations after the first (compilation) step")
    add("--iters", type=int, help="iterations per timed chunk")
    add("--repeats", type=int, help="timed chunks; the median is reported")
    add("--only", default=",".join(section_names()), help=f"sections to run: {', '.join(section_names())} (comma-separated)")
    add("--profile", action="store_true", help="also profile one case with torch.profiler and print the top operators")
    add("--translate-sizes", help="square sizes for translation throughput, e.g. 256,1024")
    add("--translate-iters", type=int, default=1, help="images per timed chunk in translation")
    add("--translate-repeats", type=int, default=2, help="timed chunks in translation; the median is reported")
    add("--tiled", help="WIDTHxHEIGHT of the large image translated in tiles (peak memory), e.g. 4000x3000; 0 = skip")
    add("--tile", type=int, help="tile size for --tiled, px (multiple of 4)")
    add("--data-root", help="measure the data pipeline on this dataset (trainA/, trainB/) instead of generated JPEGs")
    add("--data-images", type=int, help="images per domain used for the data pipeline")
    add("--workers", help="DataLoader worker counts to measure, e.g. 0,2,4")
    add("--methods", help=f"methods side by side (default {','.join(METHODS)}); the first step of each is untimed")
    add("--methods-precision", help="their one precision: fp32, bf16 or fp16 (cpu preset fp32, gpu bf16)")
    add("--methods-batch", type=int, help="their one batch size (default 1, as in the papers)")
    add(
        "--peak-tflops",
        type=float,
        help="the device's peak TFLOP/s for the %%peak column (default: data sheet or a measured matmul)",
    )
    add(
        "--out",
        default="bench_results",
        help="folder for the JSON file, or a path ending in .json (default: bench_results/)",
    )


def resolve_args(args: argparse.Namespace) -> tuple[argparse.Namespace, Config, torch.device]:
    """Fill unset options from the preset (and -c), parse lists, validate. Raises ValueError (or
    ConfigError for a bad -c) with one line."""
    device = resolve_device(args.device)
    preset = PRESETS[args.preset if args.preset != "auto" else ("gpu" if device.type == "cuda" else "cpu")]
    base = load_config(args.config) if args.config else None
    if base is not None:  # options win over the config's model and size, which win over the preset
        for key, value in (
            ("size", base.data.crop_size),
            ("ngf", base.model.ngf),
            ("ndf", base.model.ndf),
            ("n_blocks", base.model.n_blocks),
        ):
            if getattr(args, key) is None:
                setattr(args, key, value)
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.precisions = ["fp32"] + [p.strip() for p in args.precisions.split(",") if p.strip() and p.strip() != "fp32"]
    for p in args.precisions:
        if p not in DTYPES:
            raise ValueError(f"--precisions: unknown precision {p!r}; use fp32, bf16 or fp16")
        if p == "fp16" and device.type != "cuda":
            raise fp16_needs_cuda("--precisions fp16", "bf16")
    for key in ("channels_last", "compile"):
        if isinstance(getattr(args, key), str):
            setattr(args, key, _onoff(getattr(args, key)))
    args.batch_sizes = _ints(args.batch_sizes, "--batch-sizes")
    args.translate_sizes = _ints(args.translate_sizes, "--translate-sizes")
    args.workers = _ints(args.workers, "--workers")
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sorted(args.only - set(section_names()))
    if unknown:
        raise ValueError(f"--only: unknown section(s) {unknown}; use {', '.join(section_names())}")
    resolve_methods(args, device)
    if isinstance(args.tiled, str):
        match = re.fullmatch(r"(\d+)x(\d+)", args.tiled.strip())
        if args.tiled.strip() != "0" and not match:
            raise ValueError(f"--tiled {args.tiled!r}: expected WIDTHxHEIGHT, e.g. 4000x3000, or 0 to skip")
        args.tiled = (int(match.group(1)), int(match.group(2))) if match else None
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    if args.size % 4 or args.size < 16:
        raise ValueError(f"--size {args.size}: must be a multiple of 4 and at least 16")
    if args.tile % 4 or args.tile < 32:
        raise ValueError(f"--tile {args.tile}: must be a multiple of 4 and at least 32")
    tree = base.to_dict() if base is not None else {}
    tree.setdefault("model", {}).update(ngf=args.ngf, ndf=args.ndf, n_blocks=args.n_blocks)
    tree.setdefault("data", {}).update(
        crop_size=args.size, load_size=max(args.size, round(args.size * 286 / 256 / 2) * 2), num_workers=0
    )
    tree.setdefault("train", {})["device"] = str(device)
    return args, config_from_dict(tree, "bench settings"), device


def section_names() -> list[str]:
    return ["train", *SECTIONS]


def resolve_methods(args: argparse.Namespace, device: torch.device) -> None:
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {unknown}; use {', '.join(METHODS)}")
    if args.methods_precision not in DTYPES:
        raise ValueError(f"--methods-precision {args.methods_precision!r}: use fp32, bf16 or fp16")
    if args.methods_precision == "fp16" and device.type != "cuda":
        raise fp16_needs_cuda("--methods-precision fp16")
    if args.methods_batch < 1:
        raise ValueError(f"--methods-batch {args.methods_batch}: must be at least 1")


