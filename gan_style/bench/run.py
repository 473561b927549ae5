"""The order of a ``gan-style bench`` run: the training ladder (or grid), its profile, then the
sections of ``gan_style.bench.SECTIONS``; each printed as it comes and written to one JSON file."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch

from ..config import ConfigError
from ..logs import show_warnings
from . import SECTIONS
from .common import machine_info, output_path, write_json
from .presets import add_arguments, resolve_args
from .report import format_results
from .training import TrainCase, bench_optimizer, bench_train, count_flops, generator_flops, profile_step

logger = logging.getLogger(__name__)


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
        logger.warning(
            "the machine is busy (load %.1f on %d cores): timings will be noisy; PyTorch's threads wait for each "
            "other when cores are shared, so --threads 1 may be faster", load[0], cores,
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
    args = parser.parse_args(argv)
    show_warnings()
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
