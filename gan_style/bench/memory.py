"""The memory section: translate --max-memory's estimate (inference/memory.py) against the peak
measured when one image is translated, in a fresh process per row (what tests/test_memory.py
also runs on two rows), and stylize's (inference/style_memory.py) likewise when one photo is
stylised at one scale for 8 steps (tests/test_style_tiles.py runs one row).

The peak is the process's peak resident memory (VmHWM, reset through /proc/self/clear_refs) over
its resident memory just before the translation, after a 64 px warm-up translation (so the
allocator and the kernels are set up): Linux only.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from ..inference import style_memory
from ..inference.memory import peak_bytes

# ngf, height, width, tile (0: whole): ResNet generators of 9 blocks, fp32, random 8-bit RGB pixels.
ROWS = ((8, 1024, 768, 0), (32, 1024, 768, 0), (16, 2048, 1536, 512), (32, 2048, 1536, 1024), (8, 3000, 4000, 512),
        (8, 3000, 4000, 1024), (64, 1500, 2000, 1024))

MEASURE = textwrap.dedent("""
    import sys, numpy as np, torch
    from PIL import Image
    from gan_style.nets import ResnetGenerator, init_weights
    from gan_style.inference.translate import Generator, translate_image
    from gan_style.inference.weights import GeneratorInfo
    ngf, h, w, tile = (int(a) for a in sys.argv[1:5])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    arch = {"in_channels": 3, "out_channels": 3, "ngf": ngf, "n_blocks": 9, "antialias": False, "antialias_up": False}
    net = init_weights(ResnetGenerator(3, 3, ngf, 9)).eval().requires_grad_(False)
    gen = Generator(net, GeneratorInfo(arch=arch, origin="m"), torch.device("cpu"), "fp32")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    translate_image(gen, image.resize((64, 64)), tile=0)
    status = lambda key: int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) * 1024
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current size
    translate_image(gen, image, tile=tile)
    print(status("VmHWM") - before)
""")


# height, width, budget (None: the plan's choice without one, i.e. whole) for stylize's rows
STYLE_ROWS = ((768, 1024, None), (1536, 2048, 1400 * 2**20), (768, 1024, 600 * 2**20))

STYLE_MEASURE = textwrap.dedent("""
    import sys, torch
    from gan_style.inference.stylize import StylizeSettings, stylize
    from gan_style.nets.perceptual import inception_features
    h, w, budget = (int(a) for a in sys.argv[1:4])
    net = inception_features()
    image = lambda h, w, seed: (torch.rand(1, 3, h // 16, w // 16, generator=torch.Generator().manual_seed(seed))
                                * 2 - 1).repeat_interleave(16, 2).repeat_interleave(16, 3)
    painting = image(256, 256, 2)
    stylize(net, image(64, 96, 1), [painting], StylizeSettings(steps=1), torch.device("cpu"))  # warm-up
    status = lambda key: int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) * 1024
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current size
    settings = StylizeSettings(steps=8, start_side=10000, max_memory=budget or None)
    stylize(net, image(h, w, 1), [painting], settings, torch.device("cpu"))
    print(status("VmHWM") - before)
""")


def can_measure() -> bool:
    return Path("/proc/self/clear_refs").exists()


def measured_peak(ngf: int, h: int, w: int, tile: int) -> int:
    """Bytes: the peak of translating one random h x w photo with a 9-block generator of ``ngf`` (see the module doc)."""
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(ngf), str(h), str(w), str(tile)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return int(proc.stdout.split()[-1])


def measured_stylize_peak(h: int, w: int, budget: int | None) -> int:
    """Bytes: the peak of stylising one h x w photo (blocks of random colour) at one scale for 8
    steps (a full L-BFGS history of 3 pairs and more), within ``budget`` (see STYLE_MEASURE)."""
    proc = subprocess.run([sys.executable, "-c", STYLE_MEASURE, str(h), str(w), str(budget or 0)],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return int(proc.stdout.split()[-1])


def stylize_estimate(h: int, w: int, budget: int | None) -> tuple[style_memory.StylePlan, int]:
    """The plan for one h x w scale within ``budget``, and its estimate (with its full history)."""
    from ..inference.style_tiles import geometry
    from ..nets.perceptual import DEFAULT_LAYERS, inception_features

    content, style = DEFAULT_LAYERS["inception"]
    geo = geometry(inception_features(), [*content, *style])
    plan = style_memory.plan_scale((h, w), geo, content, 10, "fp32", "lbfgs", budget)
    return plan, plan.peak


def bench_memory() -> list[dict]:
    if not can_measure():
        return []
    rows = []
    for ngf, h, w, tile in ROWS:
        peak, estimate = measured_peak(ngf, h, w, tile), peak_bytes(ngf, h, w, 3, 3, tile)
        rows.append({"ngf": ngf, "size": f"{w}x{h}", "tile": tile or "whole", "measured_mib": round(peak / 2**20),
                     "estimate_mib": round(estimate / 2**20), "ratio": round(estimate / peak, 2)})
    for h, w, budget in STYLE_ROWS:
        plan, estimate = stylize_estimate(h, w, budget)
        peak = measured_stylize_peak(h, w, budget)
        rows.append({"stylize": f"{w}x{h}", "tile": plan.tile or "whole", "measured_mib": round(peak / 2**20),
                     "estimate_mib": round(estimate / 2**20), "ratio": round(estimate / peak, 2)})
    return rows
