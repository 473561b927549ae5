"""A small trained stain-translation generator for the slide-normalisation benchmark (docs/science.md).

    python scripts/slide_stain_model.py /tmp/stain --steps 6000
    python -m gan_style.bench.slides /tmp/s27/b20000 --size 20000 --weights /tmp/stain/he2ihc.safetensors

A random generator amplifies any change of its normalisation statistics far more than a trained one
(docs/science.md measures both), so kernel and thumbnail modes are judged against exact with a
network that has learned something: an H&E -> IHC CycleGAN (ngf 8, 2 blocks, 128 px crops) trained
on unpaired 256 px tiles of two synthetic slides (``gan_style.bench.slides.synthetic_tiles``, H&E
with seed 1 as A, IHC with seed 2 as B). Writes OUT/data/{trainA,trainB}, the run in OUT/runs and
the A -> B generator as OUT/he2ihc.safetensors.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from PIL import Image

from gan_style.bench.slides import synthetic_tiles

TILE = 256
SLIDE = 4096  # px: each domain's slide, cut into (SLIDE / TILE)^2 = 256 tiles


def write_tiles(folder: Path, stain: str, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, tile in enumerate(synthetic_tiles(SLIDE, seed=seed, tile=TILE, stain=stain)):
        Image.fromarray(tile).save(folder / f"{stain}{seed}_{i:04d}.png")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=6000)
    args = p.parse_args()
    data = args.out / "data"
    if not (data / "trainB").exists():
        write_tiles(data / "trainA", "he", 1)
        write_tiles(data / "trainB", "ihc", 2)
    gan_style = [sys.executable, "-m", "gan_style"]
    subprocess.run([*gan_style, "train", "-c", "tiny", "name=he2ihc", f"out_dir={args.out / 'runs'}",
                    f"data.root={data}", "data.load_size=256", "data.crop_size=128", "data.preprocess=crop",
                    f"train.max_steps={args.steps}", "train.n_epochs=100", "train.n_epochs_decay=100",
                    "logging.log_every=500", "resume=auto"], check=True)
    subprocess.run([*gan_style, "export", "-w", str(args.out / "runs" / "he2ihc" / "last.pt"), "-d", "AtoB",
                    "-o", str(args.out / "he2ihc.safetensors")], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
