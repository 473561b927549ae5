"""Summarise scripts/quality_cpu.sh: a markdown table (mean and spread over seeds) and the panel
docs/quality_cpu_panel.jpg (test photo | baseline | + EMA + DiffAugment | + blur upsampling; seed 0).

    python scripts/quality_report.py results/quality_cpu ../shared/data/monet2photo-mini
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from PIL import Image

from gan_style import load_generator, translate_image

VARIANTS = {"untrained": "untrained generator", "baseline": "baseline CycleGAN", "ema_diffaug": "+ EMA + DiffAugment",
            "ema": "+ EMA only", "diffaug": "+ DiffAugment only", "antialias_up": "+ blur upsampling (antialias_up)"}


def results(out: Path, variant: str) -> list[dict]:
    rows = []
    for path in sorted(out.glob(f"{variant}_s[0-9]*.json")):
        column = next(iter(json.loads(path.read_text())["results"].values()))
        rows.append(column)
    return rows


def cell(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    """Mean over seeds, with the range (min–max) when there are several."""
    v = [x * scale for x in values]
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{statistics.mean(v):.{digits}f} ({min(v):.{digits}f}–{max(v):.{digits}f})"


def table(out: Path) -> str:
    lines = ["| variant | seeds | KID × 10³ | colour W1 | colour TV |", "|---|---|---|---|---|"]
    for variant, label in VARIANTS.items():
        rows = results(out, variant)
        if rows:
            lines.append(f"| {label} | {len(rows)} | {cell([r['kid'] for r in rows], 1e3, 1)} | "
                         f"{cell([r['colour_w1'] for r in rows])} | {cell([r['colour_tv'] for r in rows])} |")
    return "\n".join(lines)


PANEL = ("baseline", "ema_diffaug", "antialias_up")  # columns after the photo, where the run exists


def panel(out: Path, data: Path, dest: Path, n: int = 4, size: int = 96) -> None:
    photos = sorted((data / "testB").iterdir())[:n]
    runs = [out / f"{v}_s0" / "last.pt" for v in PANEL if (out / f"{v}_s0" / "last.pt").is_file()]
    gens = [load_generator(run, "BtoA", "cpu", precision="fp32") for run in runs]
    grid = Image.new("RGB", ((1 + len(gens)) * size, n * size), "white")
    for row, photo in enumerate(photos):
        src = Image.open(photo).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        tiles = [src] + [translate_image(g, src) for g in gens]
        for col, tile in enumerate(tiles):
            grid.paste(tile, (col * size, row * size))
    grid.save(dest, quality=90, optimize=True)  # JPEG: small enough for the README


if __name__ == "__main__":
    out, data = Path(sys.argv[1]), Path(sys.argv[2])
    print(table(out))
    panel(out, data, Path(__file__).resolve().parents[1] / "docs" / "quality_cpu_panel.jpg")
    print("panel: docs/quality_cpu_panel.jpg (test photo | baseline | + EMA + DiffAugment | + blur upsampling)")
