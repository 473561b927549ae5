"""Evidence for docs/translate.md ("A 16384 x 16384 uint16 TIFF"): one large scan translated as
`gan-style translate` would with the default --max-memory; prints the pipeline, time and peak RSS.

    python scripts/big_tiff_memory.py --dir /tmp/mem [--side 16384] [--precision bf16-blocks] [--tile N]

Writes DIR/big.tif (a smooth random uint16 image, 1 channel, 512 px TIFF tiles) and translates it
with a random 9-block ngf-8 generator whose source and target are uint16 windows [0, 65535].
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_style.inference.memory import default_budget  # noqa: E402
from gan_style.inference.route import pipeline, translate_exact  # noqa: E402
from gan_style.inference.scans import ScanOptions  # noqa: E402
from gan_style.inference.translate import Generator  # noqa: E402
from gan_style.inference.weights import GeneratorInfo  # noqa: E402
from gan_style.io.intensity import Intensity  # noqa: E402
from gan_style.logs import show_warnings  # noqa: E402
from gan_style.nets import ResnetGenerator, init_weights  # noqa: E402


def write_tiff(path: Path, side: int) -> None:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 65535, (side // 64, side // 64)).astype(np.uint16)
    image = np.kron(coarse, np.ones((64, 64), dtype=np.uint16))
    image += rng.integers(0, 512, image.shape, dtype=np.uint16)
    tifffile.imwrite(path, image, tile=(512, 512))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--side", type=int, default=16384)
    parser.add_argument("--precision", default="bf16-blocks")
    parser.add_argument("--tile", default="auto", help="auto (translate's default), or N px")
    args = parser.parse_args()
    show_warnings()
    args.dir.mkdir(parents=True, exist_ok=True)
    src = args.dir / "big.tif"
    if not src.is_file():
        write_tiff(src, args.side)
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(1, 1, 8, 9)).eval().requires_grad_(False)
    units = Intensity("window", 0.0, 65535.0, dtype="uint16").to_dict()
    arch = {"in_channels": 1, "out_channels": 1, "ngf": 8, "n_blocks": 9, "antialias": False, "antialias_up": False}
    info = GeneratorInfo(arch=arch, origin="ngf8", source_intensity=units, target_intensity=units)
    gen = Generator(net, info, torch.device("cpu"), args.precision).within(default_budget())
    kind = pipeline(src, info, max_memory=gen.max_memory)
    print(f"pipeline: {kind}, --max-memory {gen.max_memory}", flush=True)
    start = time.perf_counter()
    tile = args.tile if args.tile == "auto" else int(args.tile)
    translate_exact(gen, src, args.dir / "out" / "big.tif", ScanOptions(tile=tile), kind)
    peak = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) * 1024
    print(f"time {time.perf_counter() - start:.0f} s, peak RSS {peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
