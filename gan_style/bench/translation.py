"""The translation section: ``gan_style.inference`` images/s per size and precision, and a large
image translated in tiles and whole."""

from __future__ import annotations

import time

import torch

from ..config import Config
from .common import one_line, peak_memory_gb, reset_peak_memory, time_it
from .training import generator_flops

def bench_translate(base: Config, device: torch.device, args) -> dict:
    """Translation as ``gan-style translate`` runs it (``gan_style.inference``: CPU image tensor in,
    CPU tensor out): images/s at each size and precision (batch 1, untiled), then a large image
    translated in tiles and whole, with the peak memory of each."""
    from ..inference.translate import Generator, translate_tensor
    from ..nets import KINDS, init_weights
    from ..inference.weights import GeneratorInfo

    m = base.model
    arch = dict(in_channels=3, out_channels=3, ngf=m.ngf, n_blocks=m.n_blocks)
    net = init_weights(KINDS["resnet"].build(arch)).eval().requires_grad_(False).to(device)
    if device.type == "cuda":  # as inference.load_generator does
        net.to(memory_format=torch.channels_last)
    gens = {
        p: Generator(net, GeneratorInfo(arch=arch, origin="random weights (bench)"), device, p) for p in args.precisions
    }
    rows = []
    for size in args.translate_sizes:
        x = torch.rand(1, 3, size, size) * 2 - 1
        for precision, gen in gens.items():
            reset_peak_memory(device)
            try:
                timing = time_it(
                    lambda: translate_tensor(gen, x, tile=0), device, 1, args.translate_iters, args.translate_repeats
                )
            except (RuntimeError, MemoryError) as e:  # e.g. out of memory at 1024 px on a small GPU
                rows.append({"size": size, "precision": precision, "error": one_line(e)})
                continue
            rows.append(
                {
                    "size": size,
                    "precision": precision,
                    "img_per_s": 1 / timing["s_per_call"],
                    "s_per_img": timing["s_per_call"],
                    "peak_mem_gb": peak_memory_gb(device),
                    "gflop_per_img": generator_flops(base, size) / 1e9,
                }
            )
    out = {"ngf": m.ngf, "n_blocks": m.n_blocks, "channels_last": device.type == "cuda", "rows": rows, "large": []}
    if args.tiled:
        largest = [r for r in rows if "img_per_s" in r and r["size"] == max(args.translate_sizes)]
        precision = max(largest, key=lambda r: r["img_per_s"])["precision"] if largest else "fp32"
        width, height = args.tiled
        image = torch.rand(1, 3, height, width) * 2 - 1
        for tile in (args.tile, 0):  # tiled, then whole (may not fit: that is the point of tiling)
            reset_peak_memory(device)
            row = {"width": width, "height": height, "precision": precision, "tile": tile}
            start = time.perf_counter()
            try:
                translate_tensor(gens[precision], image, tile=tile)
                row |= {"seconds": time.perf_counter() - start, "peak_mem_gb": peak_memory_gb(device)}
            except (RuntimeError, MemoryError) as e:
                row["error"] = one_line(e)
            out["large"].append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out

