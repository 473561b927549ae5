"""``gan-style bench`` (also ``make bench`` and ``python -m gan_style.bench``): how fast we train and translate.

The options, the presets and the order of a run; what is measured lives in gan_style/bench/, one
module per section. Each section is printed as a table and written to one JSON file with the
machine, the versions and the settings (default ``bench_results/bench_<device>_<time>.json``):

- train: seconds per iteration and images/s after warm-up, peak memory, FLOPs per iteration
  (``torch.utils.flop_counter``), achieved TFLOP/s and the fraction of the device's peak. By
  default a *ladder*: the reference implementation's step (fp32, NCHW, eager, batch 1), then our
  step, then one change at a time (channels_last, bf16/fp16, torch.compile), then larger batches
  with the fastest settings. ``--grid`` measures every combination instead.
- data: the input pipeline alone (decode + albumentations, as in training), images/s for each
  number of DataLoader workers, and the decoders compared. Only when albumentations is
  importable: the training and translation sections use synthetic tensors and never import it.
- translate: ``gan_style.inference`` images/s at given sizes and precisions, and the time and
  peak memory of a large image translated in tiles and whole.
- methods: one training step of CycleGAN, CUT and FastCUT side by side (same size, precision,
  batch) and each one's speed-up over CycleGAN.

Sections after train come from the registry ``gan_style.bench.SECTIONS``.
Presets: ``cpu`` (a small model at 64 px: a few minutes on a laptop) and ``gpu`` (the paper's
256 px model). Every preset value can be overridden by an option.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

import torch

from ..bench import SECTIONS
from ..bench.common import DTYPES, machine_info, output_path, write_json
from ..bench.report import format_results
from ..bench.training import TrainCase, bench_optimizer, bench_train, count_flops, generator_flops, profile_step
from ..config import Config, ConfigError, config_from_dict, load_config
from ..devices import fp16_needs_cuda, resolve_device
from ..methods import METHODS

# Option defaults per preset. "auto" picks gpu when CUDA is available.
PRESETS = {
    "cpu": dict(
        size=64,
        ngf=32,
        ndf=32,
        n_blocks=9,
        precisions="bf16",
        channels_last="on",
        compile="off",
        batch_sizes="4",
        warmup=2,
        iters=3,
        repeats=3,
        translate_sizes="256,1024",
        tiled="1000x750",
        tile=256,
        workers="0,1,2",
        data_images=48,
        methods="cyclegan,cut,fastcut",
        methods_precision="fp32",  # what gan-style train uses on a CPU (precision auto)
        methods_batch=1,  # the papers' batch
    ),
    "gpu": dict(
        size=256,
        ngf=64,
        ndf=64,
        n_blocks=9,
        precisions="bf16,fp16",
        channels_last="on",
        compile="on",
        batch_sizes="4,8,16",
        warmup=5,
        iters=20,
        repeats=3,
        translate_sizes="256,1024",
        tiled="4000x3000",
        tile=1024,
        workers="0,2,4,8",
        data_images=200,
        methods="cyclegan,cut,fastcut",
        methods_precision="bf16",
        methods_batch=1,
    ),
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
    add("--methods", help="methods side by side (default cyclegan,cut,fastcut); the first step of each is untimed")
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
    """Fill unset options from the preset (and -c), parse lists, validate. Raises ValueError with one line."""
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


def run(args: argparse.Namespace) -> int:
    try:
        args, base, device = resolve_args(args)
    except (ValueError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if device.type == "cuda":  # as the training loop does
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    path = output_path(args.out, device)
    results = {
        "command": "gan-style bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(device),
        "model": {"ngf": args.ngf, "ndf": args.ndf, "n_blocks": args.n_blocks},
        "size": args.size,
        "settings": dict(vars(args)),
        "config": base.to_dict(),
        "flops": {
            "tflop_per_iter_batch1": count_flops(base, 1, args.size) / 1e12,
            "generator_gflop_per_img": generator_flops(base, args.size) / 1e9,
        },
    }
    results["settings"]["only"] = sorted(args.only)
    load, cores = results["machine"]["load_average_1_5_15"], os.cpu_count() or 1
    if load and load[0] > 0.75 * cores:  # other work shares the cores: say so rather than print wrong figures silently
        print(
            f"warning: the machine is busy (load {load[0]:.1f} on {cores} cores): timings will be noisy; PyTorch's "
            "threads wait for each other when cores are shared, so --threads 1 may be faster",
            file=sys.stderr,
        )
    print(
        f"benchmarking on {device} ({results['machine'].get('gpu', {}).get('name') or results['machine']['cpu']}); "
        f"results go to {path}",
        flush=True,
    )

    def report(row: dict) -> None:
        status = row.get("error") or f"{row['s_per_iter']:.4f} s/iter, {row['img_per_s']:.2f} img/s"
        print(f"  train {row['name']:<16} {row['settings']}: {status}", flush=True)
        write_json(results, path)

    if "train" in args.only:
        results["optimizer"] = bench_optimizer(base, device, args)
        results["train"] = []
        bench_train(base, device, args, results["train"], report)
    if args.profile and "train" in args.only:
        best = max(
            (r for r in results["train"] if "img_per_s" in r and r["batch"] == 1 and not r["reference"]),
            key=lambda r: r["img_per_s"],
            default=None,
        )
        case = TrainCase("profile", best["precision"], best["channels_last"], False) if best else TrainCase("profile")
        results["profile"] = profile_step(base, case, device, steps=max(2, args.iters), top=15)
        write_json(results, path)
    for name, section in SECTIONS.items():
        if name in args.only:
            print(f"  {section.title} ...", flush=True)
            results[name] = section.run(base, device, args)
            write_json(results, path)
    print()
    print(format_results(results, {name: section.lines for name, section in SECTIONS.items()}))
    print(f"\nwritten: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan_style.bench", description="benchmark training and translation speed"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
