"""Make a short real-looking video from one photo: a slow pan and zoom ("Ken Burns"), with a sine sound.

    python scripts/ken_burns_clip.py /work/shared/data/monet2photo-mini/testB/0001.jpg clip.mp4
    python scripts/ken_burns_clip.py photo.jpg clip.mp4 --seconds 4 --fps 25 --size 256x192

The crop window shrinks from the whole photo to 80% of it while drifting from the top-left to
the bottom-right corner, then is resized (bicubic) to --size: every frame moves by a fraction of
a pixel, like a slow camera move, the case where frame-by-frame translation flickers most.
Used for the flicker figures in docs/translate.md. Needs PyAV (the ``video`` extra).
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from gan_style.bench.clips import write_video
from gan_style.io.images import read_rgb


def ken_burns(photo: Image.Image, width: int, height: int, count: int, zoom: float = 0.8):
    """``count`` frames (height, width, 3) uint8 panning and zooming over ``photo``."""
    pw, ph = photo.size
    aspect = width / height
    full_w, full_h = (pw, pw / aspect) if pw / ph < aspect else (ph * aspect, ph)  # largest crop of that aspect
    for i in range(count):
        t = i / max(1, count - 1)
        scale = 1 - (1 - zoom) * t
        w, h = full_w * scale, full_h * scale
        left, top = (pw - w) * t, (ph - h) * t
        box = (left, top, left + w, top + h)
        yield np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC, box=box))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photo")
    parser.add_argument("output", help="video file to write (.mp4, .mkv, .mov)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", default="256x192", help="WxH (default 256x192)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = ken_burns(read_rgb(args.photo), width, height, round(args.seconds * args.fps))
    write_video(args.output, frames, args.fps, metadata={"title": f"Ken Burns over {args.photo}"})
    print(f"wrote {args.output}: {args.seconds} s at {args.fps} fps, {width}x{height}, with a 440 Hz sound")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
