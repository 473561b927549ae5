"""Evidence for docs/translate.md ("Any other photo ... streams from its decoded pixels"): one photo
translated in memory (no budget) or streamed (--max-memory set to the streamed estimate), in a
fresh process each; prints the time and the peak resident memory over the process's own, and
saves every 7th pixel's output to compare the two.

    python scripts/photo_stream_memory.py --mode memory --out /tmp/photo
    python scripts/photo_stream_memory.py --mode stream --out /tmp/photo   # then: the same pixels?
    python scripts/photo_stream_memory.py --mode memory --ngf 64 --out /tmp/photo64   # the issue's 12 MP time

A random 9-block generator (ngf 8 unless --ngf), bf16-blocks, --tile auto unless --tile N, a smooth
random 4000 x 3000 photo. Linux only
(the peak is reset through /proc/self/clear_refs after a 64 px warm-up).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_style.inference import memory  # noqa: E402
from gan_style.inference.plane import translate_photo  # noqa: E402
from gan_style.inference.translate import Generator, auto_tile  # noqa: E402
from gan_style.inference.weights import GeneratorInfo  # noqa: E402
from gan_style.nets import ResnetGenerator, init_weights  # noqa: E402


def status(key: str) -> int:
    return int(Path("/proc/self/status").read_text().split(key + ":")[1].split()[0]) * 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("memory", "stream"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--width", type=int, default=4000)
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--ngf", type=int, default=8)
    p.add_argument("--tile", default="auto", help="auto, or N px")
    args = p.parse_args()
    w, h, ngf, tile = args.width, args.height, args.ngf, args.tile if args.tile == "auto" else int(args.tile)
    torch.manual_seed(0)
    arch = {"in_channels": 3, "out_channels": 3, "ngf": ngf, "n_blocks": 9, "antialias": False, "antialias_up": False}
    net = init_weights(ResnetGenerator(3, 3, ngf, 9)).eval().requires_grad_(False)
    gen = Generator(net, GeneratorInfo(arch=arch, origin="m"), torch.device("cpu"), "bf16-blocks")
    step = auto_tile(gen) if tile == "auto" else tile  # both modes in the same tiles: the same pixels
    budget = memory.peak_bytes(ngf, h, w, 3, 3, step, True, 2, streamed=True) if args.mode == "stream" else None
    gen = gen.within(budget)
    rng = np.random.default_rng(0)
    pixels = np.kron(rng.integers(0, 256, (h // 16, w // 16, 3)), np.ones((16, 16, 1))).astype(np.uint8)
    translate_photo(gen, pixels[:64, :64].copy(), "auto")  # warm-up
    before = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current size
    start = time.perf_counter()
    out = translate_photo(gen, pixels, tile)
    print(f"{w} x {h} {args.mode}: {time.perf_counter() - start:.1f} s, peak {(status('VmHWM') - before) / 1e6:.0f} MB "
          f"over the process's {before / 1e9:.2f} GB" + (f" (budget {budget / 1e6:.0f} MB)" if budget else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / f"{args.mode}.npy", out[::7, ::7])


if __name__ == "__main__":
    main()
