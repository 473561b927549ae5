"""Summarise scripts/quality_cpu.sh: a markdown table (mean and spread over seeds) and the panel
docs/quality_cpu_panel.png (test photo | baseline | + EMA + DiffAugment).

    python scripts/quality_report.py results/quality_cpu ../shared/data/monet2photo-mini
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from PIL import Image

from gan_style import load_generator, translate_image

VARIANTS = {"untrained": "untrained generator", "baseline": "baseline CycleGAN", "ema_diffaug": "+ EMA + DiffAugment"}


def results(out: Path, variant: str) -> list[dict]:
    rows = []
    for path in sorted(out.glob(f"{variant}_s*.json")):
        column = next(iter(json.loads(path.read_text())["results"].values()))
        rows.append(column)
    return rows


def cell(values: list[float], scale: float = 1.0) -> str:
    if len(values) == 1:
        return f"{values[0] * scale:.2f}"
    return f"{statistics.mean(values) * scale:.2f} ({min(values) * scale:.2f}–{max(values) * scale:.2f})"


def table(out: Path) -> str:
    lines = ["| variant | seeds | KID × 10³ | colour W1 | colour TV |", "|---|---|---|---|---|"]
    for variant, label in VARIANTS.items():
        rows = results(out, variant)
        if rows:
            lines.append(f"| {label} | {len(rows)} | {cell([r['kid'] for r in rows], 1e3)} | "
                         f"{cell([r['colour_w1'] for r in rows])} | {cell([r['colour_tv'] for r in rows])} |")
    return "\n".join(lines)


def panel(out: Path, data: Path, dest: Path, n: int = 4, size: int = 96) -> None:
    photos = sorted((data / "testB").iterdir())[:n]
    gens = [load_generator(out / f"{v}_s0" / "last.pt", "BtoA", "cpu") for v in ("baseline", "ema_diffaug")]
    grid = Image.new("RGB", (3 * size, n * size), "white")
    for row, photo in enumerate(photos):
        src = Image.open(photo).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        tiles = [src] + [translate_image(g, src) for g in gens]
        for col, tile in enumerate(tiles):
            grid.paste(tile, (col * size, row * size))
    grid.save(dest, optimize=True)


if __name__ == "__main__":
    out, data = Path(sys.argv[1]), Path(sys.argv[2])
    print(table(out))
    panel(out, data, Path(__file__).resolve().parents[1] / "docs" / "quality_cpu_panel.png")
    print("panel: docs/quality_cpu_panel.png (test photo | baseline | + EMA + DiffAugment)")
