"""Evidence for docs/translate.md ("Tiles on the CPU"): one translation per tile size, each in a fresh
process; prints its time, its peak resident memory (the whole process) and its minor page faults.

    python scripts/cpu_tiles.py photo    # 2048 x 1536 random photo, 9-block ngf-64 generator: whole, 1024, 512, 256
    python scripts/cpu_tiles.py plane    # 4096 x 4096 RGB plane streamed, caches on disk, ngf 8: 1024, 512, 256

Random weights, bf16-blocks, seeded inputs. ``photo`` runs translate_tensor (the in-memory exact
tiling); ``plane`` runs plane.translate_streamed with every cache on disk, as a scan over the
budget is. The 16384 x 16384 scan's rows come from ``scripts/big_tiff_memory.py --tile N``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"photo": (0, 1024, 512, 256), "plane": (1024, 512, 256)}


def measure(case: str, tile: int) -> dict:
    """One translation in this process (the child's job)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from gan_style.inference import memory
    from gan_style.inference.plane import PHOTO, photo_pixels, translate_streamed
    from gan_style.inference.translate import Generator, translate_tensor
    from gan_style.inference.weights import GeneratorInfo
    from gan_style.nets import ResnetGenerator, init_weights

    ngf = 64 if case == "photo" else 8
    torch.manual_seed(0)
    arch = {"in_channels": 3, "out_channels": 3, "ngf": ngf, "n_blocks": 9, "antialias": False, "antialias_up": False}
    net = init_weights(ResnetGenerator(3, 3, ngf, 9)).eval().requires_grad_(False)
    gen = Generator(net, GeneratorInfo(arch=arch, origin="tiles"), torch.device("cpu"), "bf16-blocks")
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    if case == "photo":
        translate_tensor(gen, torch.rand(1, 3, 1536, 2048) * 2 - 1, tile=tile)
    else:
        rng = np.random.default_rng(0)
        pixels = np.kron(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), np.ones((64, 64, 1), np.uint8))
        translate_streamed(gen, pixels, memory.Plan(tile, True, 0), np.empty_like(pixels), PHOTO, None, photo_pixels)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"s": time.perf_counter() - start, "peak_gb": usage.ru_maxrss * 1024 / 1e9,
            "faults_m": (usage.ru_minflt - before) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--tile", type=int, help="(internal) measure this tile in this process")
    args = parser.parse_args()
    if args.tile is not None:
        print(json.dumps(measure(args.case, args.tile)))
        return
    print("| tile | time | peak RSS | minor page faults |\n|---|---|---|---|")
    for tile in CASES[args.case]:
        out = subprocess.run([sys.executable, __file__, args.case, "--tile", str(tile)], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"| {tile or 'whole'} | {r['s']:.1f} s | {r['peak_gb']:.2f} GB | {r['faults_m']:.2f} M |", flush=True)


if __name__ == "__main__":
    main()
