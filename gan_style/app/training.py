"""The training tab's data: runs under runs/, their loss curves and their latest sample panels.

Read as files, the way training writes them (``metrics.jsonl``: one JSON object per logged step
with ``step`` and namespaced scalars such as ``loss/G_A``; ``samples/<tag>_<A|B>.png``), so this
works while a run is writing them: a half-written last line is skipped. Imports no training code.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from ..io.images import ImageReadError, read_rgb

STEP_KEY = "step"
LOSS_PREFIX = "loss/"


def list_runs(runs: Path) -> list[str]:
    """Names of the folders under ``runs`` that hold metrics.jsonl or sample panels, newest first."""
    if not runs.is_dir():
        return []
    found = [d for d in runs.iterdir() if d.is_dir() and ((d / "metrics.jsonl").is_file() or (d / "samples").is_dir())]
    return [d.name for d in sorted(found, key=lambda d: d.stat().st_mtime, reverse=True)]


def run_dir(runs: Path, name: str) -> Path:
    """The folder of run ``name``, which must be one that ``list_runs`` offers."""
    if name not in list_runs(runs):
        raise ValueError(f"{name!r} is not a run under {runs}")
    return runs / name


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl; lines that are not complete JSON objects are skipped."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get(STEP_KEY), (int, float)):
            rows.append(row)
    return rows


def loss_curves(rows: list[dict], prefix: str = LOSS_PREFIX) -> list[dict]:
    """Long form for a line plot: one {step, loss, value} per logged loss value."""
    return [
        {"step": row[STEP_KEY], "loss": key.removeprefix(prefix), "value": float(value)}
        for row in rows
        for key, value in row.items()
        if key.startswith(prefix) and isinstance(value, (int, float))
    ]


def latest_panels(run: Path) -> tuple[str | None, list[tuple[Image.Image, str]]]:
    """The tag (e.g. ``step_000200``) of the newest sample panels and the panels with captions."""
    files = sorted((run / "samples").glob("*.png"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None, []
    tag = files[-1].stem.rsplit("_", 1)[0]
    panels = []
    for f in sorted(p for p in files if p.stem.rsplit("_", 1)[0] == tag):
        try:
            panels.append((read_rgb(f), f"{tag}: {f.stem.rsplit('_', 1)[-1]}"))
        except ImageReadError:
            continue  # being written right now: the next refresh shows it
    return tag, panels


def run_status(rows: list[dict], tag: str | None) -> str:
    if not rows:
        return "No metrics logged yet."
    last = rows[-1]
    epoch = f", epoch {last['epoch']:.2f}" if isinstance(last.get("epoch"), (int, float)) else ""
    return f"Last logged step {last[STEP_KEY]}{epoch}; latest samples: {tag or 'none yet'}."
