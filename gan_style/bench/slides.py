"""Slide normalisation modes against exact (docs/science.md, "Slides within a disk budget").

    python -m gan_style.bench.slides OUT --size 20000                        # exact, kernel, thumbnail
    python -m gan_style.bench.slides OUT --size 20000 --weights he2ihc.safetensors  # a trained generator
    python -m gan_style.bench.slides OUT --size 60000 --height 2048 --ngf 64 --n-blocks 9 --modes kernel --max-tiles 236

A synthetic slide (``synthetic_slide``: smooth tissue-like regions on a white background, textured
at several scales, no structure aligned with any tile grid) and a random generator (``generator``; or a
trained one, ``--weights``)
are written to OUT; each mode translates the slide with ``gan-style translate`` in a subprocess,
measured for wall time, peak resident memory and peak temporary disk (the run's temporary folder,
polled, without the output file being written in it). Each output is compared with the exact one
(``difference``: mean and 99th-percentile absolute difference in % of the output window) and
scored for seams (``seam_score``). ``--max-tiles`` stops a run after that many output tiles: the
seconds to the first tile and the later tiles' rate, for slides that do not fit the time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TILE = 512
BACKGROUND = np.array([242.0, 240.0, 246.0])  # RGB: glass
HEMATOXYLIN = np.array([70.0, 50.0, 150.0])  # nuclei: blue-purple
EOSIN = np.array([235.0, 120.0, 170.0])  # cytoplasm, stroma: pink
DAB = np.array([150.0, 95.0, 45.0])  # immunohistochemistry's brown
STAINS = {"he": (HEMATOXYLIN, EOSIN), "ihc": (np.array([60.0, 80.0, 160.0]), DAB)}  # (nuclei, the rest)


def _waves(rng: np.random.Generator, n: int, periods: tuple[float, float]) -> list[tuple[float, float, float, float]]:
    """n plane waves (amplitude, ky, kx, phase) with periods log-uniform in ``periods`` (px), random directions."""
    waves = []
    for _ in range(n):
        period, angle = math.exp(rng.uniform(*np.log(periods))), rng.uniform(0, math.pi)
        k = 2 * math.pi / period
        waves.append((rng.uniform(0.5, 1.0), k * math.sin(angle), k * math.cos(angle), rng.uniform(0, 2 * math.pi)))
    return waves


def _field(waves, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sum of the waves at rows ``ys`` x columns ``xs``, normalised to about unit amplitude: (h, w)."""
    out = np.zeros((len(ys), len(xs)))
    for a, ky, kx, phase in waves:  # sin(ky y + kx x + p) = sin(ky y + p) cos(kx x) + cos(ky y + p) sin(kx x)
        out += a * (np.outer(np.sin(ky * ys + phase), np.cos(kx * xs)) + np.outer(np.cos(ky * ys + phase), np.sin(kx * xs)))
    return out / math.sqrt(sum(w[0] ** 2 for w in waves) / 2)


def synthetic_tiles(size: int, seed: int = 0, tile: int = TILE, stain: str = "he") -> Iterator[np.ndarray]:
    """(tile, tile, 3) uint8 tiles, row by row, of a size x size stain-like image: tissue regions
    (a soft mask of waves of size/6..size/2 px) textured by waves of 6..400 px mixing the nuclear
    stain and the other (``STAINS``: H&E's pink eosin, or IHC's brown DAB), on glass. A function of
    the global pixel position: tiles join without seams."""
    nuclear, other = STAINS[stain]
    rng = np.random.default_rng(seed)
    tissue = _waves(rng, 6, (size / 6, size / 2))
    nuclei, stroma = _waves(rng, 10, (6.0, 60.0)), _waves(rng, 10, (40.0, 400.0))
    for y in range(0, size, tile):
        ys = np.arange(y, y + tile, dtype=np.float64)
        for x in range(0, size, tile):
            xs = np.arange(x, x + tile, dtype=np.float64)
            mask = 1 / (1 + np.exp(-_field(tissue, ys, xs) / 0.15))  # 1 in tissue, 0 on glass
            h = 1 / (1 + np.exp(-(_field(nuclei, ys, xs) - 0.8) / 0.3))  # hematoxylin share
            shade = 1 + 0.25 * np.tanh(_field(stroma, ys, xs))  # eosin density
            colour = h[..., None] * nuclear + (1 - h[..., None]) * (255 - (255 - other) * shade[..., None])
            rgb = (1 - mask[..., None]) * BACKGROUND + mask[..., None] * colour
            yield np.clip(rgb, 0, 255).astype(np.uint8)


def synthetic_slide(path: Path, size: int, seed: int = 0, tile: int = TILE, height: int | None = None) -> Path:
    """``synthetic_tiles`` as a zlib-compressed, tiled RGB BigTIFF at 0.25 um/px (size a multiple of
    ``tile``); ``height``: only its first rows (a strip of the slide, a multiple of ``tile``)."""
    import itertools

    import tifffile

    rows = size if height is None else height
    tiles = itertools.islice(synthetic_tiles(size, seed, tile), (rows // tile) * -(-size // tile))
    tifffile.imwrite(path, tiles, shape=(rows, size, 3), dtype="uint8", tile=(tile, tile),
                     photometric="rgb", bigtiff=True, compression="zlib", resolution=(40000.0, 40000.0),
                     resolutionunit="CENTIMETER")
    return path


def generator(path: Path, ngf: int = 8, n_blocks: int = 2, seed: int = 0) -> Path:
    """A random RGB ResNet generator (xavier-normal weights, gain 1: outputs spread over the window,
    not flat) as safetensors. Speed, memory and disk do not depend on the weights."""
    import torch
    from safetensors.torch import save_file

    from ..nets import ResnetGenerator, init_weights

    torch.manual_seed(seed)
    net = init_weights(ResnetGenerator(3, 3, ngf=ngf, n_blocks=n_blocks), gain=1.0, init_type="xavier")
    save_file(net.state_dict(), str(path))
    return path


def _bands(path: Path, rows: int = TILE) -> Iterator[np.ndarray]:
    """Level 0 of a TIFF as float64 bands of ``rows`` rows plus the next one (for vertical gradients): (h, w, C)."""
    import tifffile
    import zarr

    array = zarr.open_array(tifffile.imread(path, aszarr=True, level=0), mode="r")
    for y in range(0, array.shape[0], rows):
        block = np.asarray(array[y : y + rows + 1], dtype=np.float64)
        yield block.reshape(block.shape[0], block.shape[1], -1)


def difference(path: Path, reference: Path, window: float = 255.0) -> dict:
    """Mean and 99th-percentile absolute difference of two same-shaped integer TIFFs, in % of ``window``."""
    hist, total = np.zeros(int(window) + 1), 0.0
    for a, b in zip(_bands(path), _bands(reference)):
        d = np.abs(a[:TILE] - b[:TILE]).round().astype(np.int64).ravel()
        hist += np.bincount(d, minlength=len(hist))[: len(hist)]
        total += d.sum()
    n = hist.sum()
    p99 = int(np.searchsorted(np.cumsum(hist), 0.99 * n))
    return {"mean_pct": 100 * total / n / window, "p99_pct": 100 * p99 / window}


def seam_score(path: Path, period: int = TILE) -> float:
    """Mean squared gradient across tile borders (every ``period`` px, both directions) divided by
    that inside tiles: 1.0 when tile borders look like any other place, above when seams show."""
    sums = np.zeros((2, 2))  # [border, inside] x [sum of squares, count]
    y = 0
    for band in _bands(path, period):
        rows = band.shape[0] - 1 if band.shape[0] > period else band.shape[0]
        dx = np.diff(band[:rows], axis=1) ** 2  # between columns x-1 and x, for x = 1..w-1
        at = (np.arange(1, band.shape[1]) % period) == 0
        sums[0] += dx[:, at].sum(), dx[:, at].size
        sums[1] += dx[:, ~at].sum(), dx[:, ~at].size
        dy = np.diff(band, axis=0) ** 2  # rows y+i and y+i+1; a border when y+i+1 is a multiple of period
        at = ((y + np.arange(1, band.shape[0])) % period) == 0
        sums[0] += dy[at].sum(), dy[at].size
        sums[1] += dy[~at].sum(), dy[~at].size
        y += period
    return float((sums[0, 0] / sums[0, 1]) / (sums[1, 0] / sums[1, 1]))


def _tree_bytes(folder: Path, skip: str) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if name != skip:
                try:
                    total += os.stat(os.path.join(root, name)).st_blocks * 512
                except FileNotFoundError:
                    pass  # deleted while walking (a released cache)
    return total


def _poll_disk(folder: Path, stop: threading.Event, peak: list[int]) -> None:
    """Peak bytes under ``folder``'s gan_style-slide-* temporary folders, without level0.tif (the output)."""
    while not stop.wait(0.5):
        peak[0] = max(peak[0], sum(_tree_bytes(p, "level0.tif") for p in folder.glob("gan_style-slide-*")))


def run_mode(weights: Path, slide: Path, out: Path, mode: str, extra: list[str], max_tiles: int = 0) -> dict:
    """``gan-style translate`` of ``slide`` in ``mode`` into the folder ``out``: seconds, peak RSS (of
    this run's process alone: ``os.wait4``), peak temporary disk. ``max_tiles``: stop after that many
    output tiles (``_limited``), and report the seconds to the first tile and the later tiles' rate."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["translate", "-w", str(weights), "-i", str(slide), "-o", str(out), "--slide", "--slide-norm", mode,
            "--overwrite", *extra]
    precision = extra[extra.index("--precision") + 1] if "--precision" in extra else "auto"
    sigma = extra[extra.index("--kernel-sigma") + 1] if "--kernel-sigma" in extra else ""
    cmd = [sys.executable, "-m", __spec__.name, "--limited", str(max_tiles), str(weights), str(slide),
           str(out / slide.name), mode, precision, sigma] if max_tiles else [sys.executable, "-m", "gan_style", *args]
    stop, peak = threading.Event(), [0]
    poller = threading.Thread(target=_poll_disk, args=(out, stop, peak), daemon=True)
    poller.start()
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        stop.set()
        poller.join()
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed: {err.read().strip()[-2000:]}")
        log.seek(0)
        limited = json.loads(log.read().splitlines()[-1]) if max_tiles else {}
    return {"mode": mode, "seconds": seconds, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,
            "peak_temp_disk_gb": peak[0] / 1e9, "command": " ".join(["gan-style", *args])} | limited


def _limited(max_tiles: int, weights: str, src: str, dest: str, mode: str, precision: str, sigma: str = "") -> int:
    """``translate --slide`` of ``src`` (as ``run_mode``'s command does, through inference/slide.py:
    bench sits below the CLI; of its options, ``--precision`` and ``--kernel-sigma``, ``sigma``:
    empty for none) stopped after ``max_tiles`` output tiles: prints as JSON the seconds to the
    first output tile (the whole-slide passes and the first band of tiles) and the later tiles' rate."""
    from ..inference import slide
    from ..inference.translate import load_generator

    marks, tiles = [time.perf_counter()], slide.output_tiles

    def counted(*args, **kwargs):
        for i, t in enumerate(tiles(*args, **kwargs)):
            marks.append(time.perf_counter())
            if i + 1 >= max_tiles:
                raise KeyboardInterrupt  # translate_slide removes its partial output and temporary files
            yield t

    slide.output_tiles = counted
    gen = load_generator(weights, precision=precision)
    try:
        slide.translate_slide(gen, Path(src), Path(dest), norm=mode, kernel_sigma=float(sigma) if sigma else None)
    except KeyboardInterrupt:
        pass
    if len(marks) < 3:
        return 1
    # Tiles come out a band at a time (a burst when its last rectangle is done): the rate is that of the
    # bands after the first, from the end of the first burst.
    burst = sum(1 for m in marks[1:] if m - marks[1] < 1.0)
    if len(marks) - 1 <= burst:
        return 1
    first, rate = marks[1] - marks[0], (len(marks) - 1 - burst) / (marks[-1] - marks[burst])
    print(json.dumps({"tiles_done": len(marks) - 1, "first_tile_seconds": first, "tiles_per_second": rate}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--size", type=int, default=20000, help="the slide's side in pixels (a multiple of 512)")
    p.add_argument("--height", type=int, help="only the slide's first rows (a multiple of 512): a strip as wide as the slide")
    p.add_argument("--ngf", type=int, default=8)
    p.add_argument("--n-blocks", type=int, default=2)
    p.add_argument("--modes", default="exact,kernel,thumbnail", help="the first is the reference")
    p.add_argument("--precision", default="auto")
    p.add_argument("--max-tiles", type=int, default=0, help="stop each run after this many output tiles (a rate)")
    p.add_argument("--weights", type=Path, help="a trained generator instead of a random one (scripts/slide_stain_model.py)")
    p.add_argument("--extra", default="", help="more translate options for every mode, e.g. '--kernel-sigma 2048'")
    p.add_argument("--reference", type=Path, help="an earlier run's exact output to compare with (default: the first mode's)")
    p.add_argument("--tag", default="", help="a suffix for each mode's output folder (runs with other --extra)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    slide = args.out / (f"slide{args.size}.tif" if args.height is None else f"strip{args.size}x{args.height}.tif")
    if not slide.exists():
        synthetic_slide(slide, args.size, height=args.height)
    weights = args.weights or generator(args.out / f"g{args.ngf}_{args.n_blocks}.safetensors", args.ngf, args.n_blocks)
    rows, reference = [], args.reference
    for mode in args.modes.split(","):
        row = run_mode(weights, slide, args.out / (mode + args.tag), mode,
                       ["--precision", args.precision, *args.extra.split()], args.max_tiles)
        if not args.max_tiles:  # a stopped run leaves no output to compare
            output = args.out / (mode + args.tag) / slide.name
            reference = reference or output
            row |= difference(output, reference) | {"seam_score": seam_score(output)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / f"results{args.tag}.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--limited"]:  # run_mode's child for --max-tiles
        raise SystemExit(_limited(int(sys.argv[2]), *sys.argv[3:]))
    raise SystemExit(main())
