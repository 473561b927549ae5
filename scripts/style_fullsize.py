"""Evidence for docs/style.md, "At full size": stylize runs compared at the output's full resolution.

    python scripts/style_fullsize.py --photo PHOTO --painting PAINTING --size 683 --out DIR \
        [--run NAME:KEY=VALUE,KEY=VALUE ...] [--single]

Each ``--run`` is a name and StylizeSettings fields (e.g. ``today:steps=60`` or
``final40:steps=20,final_steps=40``); ``--single`` adds a single-scale run with as many steps as
fit in the first run's time. For each: the seconds, the style distance on the optimised layers and
on held-out ones (1 = the photo's), the content distance, the edges kept and the grid scores at
2/4/8 px (gan_style/metrics/style.py), as a Markdown table; DIR/crops.png holds a 256 px crop at
100 % of the photo, the painting (at the output's scale) and each result; DIR/<name>.png each result.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_style.inference.stylize import StylizeSettings, resize, stylize  # noqa: E402
from gan_style.io.images import read_rgb  # noqa: E402
from gan_style.io.tensors import float_to_image, image_to_float  # noqa: E402
from gan_style.metrics.style import style_scores  # noqa: E402
from gan_style.nets.perceptual import fit_painting, load_features  # noqa: E402

CROP = 256


def settings_of(spec: str) -> tuple[str, dict]:
    name, _, fields = spec.partition(":")
    values = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition("=")
        default = getattr(StylizeSettings, key)
        if isinstance(default, bool):
            values[key] = value.lower() in ("1", "true", "yes")
        else:
            values[key] = type(default)(value) if default is not None else int(value)
    return name, values


def crop(t: torch.Tensor) -> Image.Image:
    h, w = t.shape[-2:]
    top, left = max(0, h // 2 - CROP // 2), max(0, w // 2 - CROP // 2)
    return float_to_image(t[0, :, top:top + CROP, left:left + CROP])


def timed(net, photo, painting, settings: StylizeSettings) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out, _ = stylize(net, photo, [painting], settings, torch.device("cpu"))
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", required=True)
    ap.add_argument("--painting", required=True)
    ap.add_argument("--size", type=int, default=683)
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--run", action="append", default=[], help="NAME:KEY=VALUE,... (StylizeSettings fields)")
    ap.add_argument("--single", action="store_true", help="add a single-scale run at the first run's time")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = load_features("inception")
    photo = image_to_float(read_rgb(args.photo))[None]
    painting = image_to_float(read_rgb(args.painting))[None]
    runs = [settings_of(spec) for spec in args.run or ["today:steps=60"]]
    results = []
    for name, fields in runs:
        out, seconds = timed(net, photo, painting, StylizeSettings(strength=args.strength, size=args.size, **fields))
        results.append((name, out, seconds))
    if args.single:
        probe = StylizeSettings(strength=args.strength, size=args.size, steps=3, start_side=10**6)
        per_step = timed(net, photo, painting, probe)[1] / 3
        steps = max(1, round(results[0][2] / per_step))
        out, seconds = timed(net, photo, painting, StylizeSettings(strength=args.strength, size=args.size, steps=steps,
                                                                   start_side=10**6))
        results.append((f"single scale x {steps}", out, seconds))
    reference = resize(photo, results[0][1].shape[-2:])
    print("| run | s | style (optimised layers) | style (held-out layers) | content | edges kept | grid 2/4/8 px |")
    print("|---|---|---|---|---|---|---|")
    for name, out, seconds in results:
        m = style_scores(net, out, reference, painting)
        grid = "/".join(f"{m[f'grid_{p}']:.1f}" for p in (2, 4, 8))
        print(f"| {name} | {seconds:.1f} | {m['style']:.4f} | {m['style_held_out']:.4f} | {m['content']:.4f} | "
              f"{m['edges']:.3f} | {grid} |")
        float_to_image(out[0]).save(args.out / f"{name.replace(' ', '_')}.png")
    grid = "/".join(f"{m[f'grid_{p}_photo']:.1f}" for p in (2, 4, 8))
    paint = "/".join(f"{m[f'grid_{p}_painting']:.1f}" for p in (2, 4, 8))
    print(f"photo grid 2/4/8 px: {grid}; painting (at the output's scale): {paint}")
    cells = [crop(reference), crop(fit_painting(painting, max(reference.shape[-2:])))] + [crop(o) for _, o, _ in results]
    sheet = Image.new("RGB", (len(cells) * (CROP + 4) - 4, CROP), "white")
    for i, c in enumerate(cells):
        sheet.paste(c, (i * (CROP + 4), 0))
    sheet.save(args.out / "crops.png")


if __name__ == "__main__":
    main()
