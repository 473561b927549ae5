"""Evidence for docs/style.md: the strength sweep panel and the same strength at 3 sizes x 3 paintings.

    python scripts/style_evidence.py --photo PHOTO --paintings A B C --out docs/ [--steps 60]

Writes OUT/style_sweep.jpg (photo | painting | strength 0.25, 0.5, 0.75, 1.0 at 384 px) and
OUT/style_grid.jpg (rows: paintings; columns: 256, 384, 512 px at strength 0.5), and prints a
Markdown table of the final style and content terms (style 1 = as far from the painting as the
photo was) and the colour W1 to the painting, with the seconds each took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_style.inference.stylize import StylizeSettings, stylize  # noqa: E402
from gan_style.io.images import read_rgb  # noqa: E402
from gan_style.io.tensors import float_to_image, float_to_uint8, image_to_float  # noqa: E402
from gan_style.metrics.colour import ColourHistogram, colour_w1  # noqa: E402
from gan_style.nets.perceptual import load_features  # noqa: E402

TILE = 256  # height of each panel cell


def cell(t: torch.Tensor) -> Image.Image:
    img = float_to_image(t[0])
    return img.resize((round(img.width * TILE / img.height), TILE), Image.LANCZOS)


def row(images: list[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (sum(i.width for i in images) + 4 * (len(images) - 1), TILE), "white")
    x = 0
    for img in images:
        out.paste(img, (x, 0))
        x += img.width + 4
    return out


def column(rows: list[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (max(r.width for r in rows), len(rows) * (TILE + 4) - 4), "white")
    for i, r in enumerate(rows):
        out.paste(r, (0, i * (TILE + 4)))
    return out


def w1(a: torch.Tensor, b: torch.Tensor) -> float:
    return colour_w1(ColourHistogram().add(float_to_uint8(a)), ColourHistogram().add(float_to_uint8(b)))


def run(net, photo, painting, strength, size, steps) -> tuple[torch.Tensor, dict, float]:
    start = time.perf_counter()
    out, terms = stylize(net, photo, [painting], StylizeSettings(strength=strength, steps=steps, size=size),
                         torch.device("cpu"))
    return out, terms, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", required=True)
    parser.add_argument("--paintings", nargs=3, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    net = load_features("inception")
    photo = image_to_float(read_rgb(args.photo))[None]
    paintings = [image_to_float(read_rgb(p))[None] for p in args.paintings]
    print("| painting | size | strength | style | content | colour W1 (photo -> result) | s |\n|---|---|---|---|---|---|---|")
    sweep = [cell(photo), cell(paintings[0])]
    for strength in (0.25, 0.5, 0.75, 1.0):
        out, terms, secs = run(net, photo, paintings[0], strength, 384, args.steps)
        sweep.append(cell(out))
        print(f"| {Path(args.paintings[0]).name} | 384 | {strength} | {terms['style']:.3f} | {terms['content']:.3f} | "
              f"{w1(photo, paintings[0]):.4f} -> {w1(out, paintings[0]):.4f} | {secs:.0f} |", flush=True)
    row(sweep).save(args.out / "style_sweep.jpg", quality=88)
    grid = []
    for path, painting in zip(args.paintings, paintings):
        cells = [cell(painting)]
        for size in (256, 384, 512):
            out, terms, secs = run(net, photo, painting, 0.5, size, args.steps)
            cells.append(cell(out))
            print(f"| {Path(path).name} | {size} | 0.5 | {terms['style']:.3f} | {terms['content']:.3f} | "
                  f"{w1(photo, painting):.4f} -> {w1(out, painting):.4f} | {secs:.0f} |", flush=True)
        grid.append(row(cells))
    column(grid).save(args.out / "style_grid.jpg", quality=88)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
