"""Present evaluation results: a console table (one column per comparison) and a JSON file."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ..io.atomic import write_atomic

REPORT_FOLDER = Path("results/eval")  # where reports go unless a path is given

# (key, row label, format); rows appear in this order when present.
ROWS = (
    ("fid", "FID", "{:.2f}"),
    ("kid", "KID x 1e3 (mean +- std)", None),
    ("mifid", "MiFID", "{:.2f}"),
    ("memorisation", "memorisation distance", "{:.4f}"),
    ("colour_w1", "colour W1 (0-1)", "{:.4f}"),
    ("colour_tv", "colour TV (0-1)", "{:.4f}"),
    ("cycle_l1", "cycle L1 (0-1)", "{:.4f}"),
    ("cycle_psnr", "cycle PSNR (dB)", "{:.2f}"),
    ("cycle_ssim", "cycle SSIM", "{:.4f}"),
    ("n_generated", "images (generated)", "{:d}"),
    ("n_real", "images (real)", "{:d}"),
)


def _cell(key: str, fmt: str | None, values: dict) -> str:
    if key not in values:
        return "-"
    if key == "kid":
        return f"{values['kid'] * 1e3:.2f} +- {values.get('kid_std', math.nan) * 1e3:.2f}"
    return fmt.format(values[key])


def format_table(columns: dict[str, dict]) -> str:
    """``columns``: label -> {metric key: value}. Returns an aligned plain-text table."""
    header = ["metric", *columns]
    rows = [[label, *(_cell(key, fmt, v) for v in columns.values())]
            for key, label, fmt in ROWS if any(key in v for v in columns.values())]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:  # first column left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` as indented JSON, atomically."""

    def write(f) -> None:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")

    return write_atomic(path, write)


def eval_report(arguments: dict, results: dict, wall_s: float, settings: dict | None = None) -> dict:
    """The JSON report of one evaluation: version, the arguments it ran with, its settings (when
    it has any), the results and the wall time in seconds."""
    from .. import __version__

    report = {"gan_style_version": __version__, "arguments": arguments}
    if settings is not None:
        report["settings"] = settings
    return report | {"results": results, "wall_s": round(wall_s, 1)}


def report_path(names: list[str]) -> Path:
    """The default report file: results/eval/<names, made file-safe, joined by __>.json."""
    label = "__".join(re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") for name in names)
    return REPORT_FOLDER / f"{label}.json"
