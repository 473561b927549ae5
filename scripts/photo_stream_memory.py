"""Evidence for docs/translate.md ("Any other photo ... streams from its decoded pixels"): one photo
translated in memory (no budget) or streamed (--max-memory set to the streamed estimate), in a
fresh process each; prints the time and the peak resident memory over the process's own, and
saves every 7th pixel's output to compare the two.

    python scripts/photo_stream_memory.py --mode memory --out /tmp/photo
    python scripts/photo_stream_memory.py --mode stream --out /tmp/photo   # then: the same pixels?

A random 9-block ngf-8 generator, bf16-blocks, a smooth random 4000 x 3000 photo. Linux only
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
from gan_style.inference.translate import Generator  # noqa: E402
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
    args = p.parse_args()
    w, h = args.width, args.height
    torch.manual_seed(0)
    arch = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 9, "antialias": False, "antialias_up": False}
    net = init_weights(ResnetGenerator(3, 3, 8, 9)).eval().requires_grad_(False)
    budget = memory.peak_bytes(8, h, w, 3, 3, 1024, True, 2, streamed=True) if args.mode == "stream" else None
    gen = Generator(net, GeneratorInfo(arch=arch, origin="m"), torch.device("cpu"), "bf16-blocks").within(budget)
    rng = np.random.default_rng(0)
    pixels = np.kron(rng.integers(0, 256, (h // 16, w // 16, 3)), np.ones((16, 16, 1))).astype(np.uint8)
    translate_photo(gen, pixels[:64, :64].copy(), "auto")  # warm-up
    before = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current size
    start = time.perf_counter()
    out = translate_photo(gen, pixels, "auto")
    print(f"{w} x {h} {args.mode}: {time.perf_counter() - start:.1f} s, peak {(status('VmHWM') - before) / 1e6:.0f} MB "
          f"over the process's {before / 1e9:.2f} GB" + (f" (budget {budget / 1e6:.0f} MB)" if budget else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / f"{args.mode}.npy", out[::7, ::7])


if __name__ == "__main__":
    main()
