"""Video translation throughput: frames/s of ``gan-style translate`` on a video, end to end.

    python -m gan_style.bench.video                          # 256 px and 720p, on the GPU if there is one
    python -m gan_style.bench.video --frames 8 --sizes 256x256,1280x720 --device cpu

For each frame size a synthetic clip (moving shapes + AAC sound, ``gan_style.bench.clips``) is
written to a temporary folder and translated by ``translate_video`` with a randomly initialised
generator of the given architecture (speed does not depend on the weights). Three figures:

- ``frames_per_s``: the whole pipeline (decode + generator + encode H.264 + mux), what a user gets;
- ``model_frames_per_s``: the generator alone on the same batches, already decoded;
- ``codec_frames_per_s``: the pipeline with an identity "generator": decoding and encoding alone.

The pipeline overlaps its stages, so ``frames_per_s`` should approach the smaller of the other
two. Needs PyAV (the ``video`` extra). ``bench_video()`` returns the rows for ``make bench``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ..devices import resolve_device, resolve_inference_precision
from ..inference.translate import Generator, translate_tensor
from ..inference.video import VideoSettings, translate_video
from ..inference.weights import GeneratorInfo
from ..nets import KINDS, init_weights
from .clips import write_clip

FPS = 25


def _generator(device: torch.device, ngf: int, n_blocks: int) -> Generator:
    arch = {"in_channels": 3, "out_channels": 3, "ngf": ngf, "n_blocks": n_blocks}
    net = init_weights(KINDS["resnet"].build(arch)).eval().requires_grad_(False).to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    return Generator(net, GeneratorInfo(arch=arch, origin="random"), device, resolve_inference_precision("auto", device))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model_fps(gen: Generator, width: int, height: int, frames: int, batch: int) -> float:
    """The generator alone: CPU batches in, CPU batches out, as the pipeline calls it."""
    x = torch.rand(batch, 3, height, width) * 2 - 1
    translate_tensor(gen, x)  # warm-up: allocations, oneDNN primitives, cuDNN autotuning
    _sync(gen.device)
    passes = max(1, frames // batch)
    start = time.perf_counter()
    for _ in range(passes):
        translate_tensor(gen, x)
    _sync(gen.device)
    return passes * batch / (time.perf_counter() - start)


def bench_video(
    device: torch.device,
    sizes: tuple[tuple[int, int], ...] = ((256, 256), (1280, 720)),
    frames: int = 32,
    ngf: int = 64,
    n_blocks: int = 9,
    batch_size: int = 4,
) -> list[dict]:
    """One row per (width, height): the three throughputs above, in frames per second."""
    gen = _generator(device, ngf, n_blocks)
    # The codec-only pass: no network, so nothing to compute in low precision (bf16-blocks needs a ResNet).
    identity = Generator(torch.nn.Identity(), gen.info, device, "fp32")
    settings = VideoSettings(batch_size=batch_size, progress=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gan_style_bench_video_") as tmp:
        for width, height in sizes:
            clip = write_clip(Path(tmp) / f"{width}x{height}.mp4", width, height, seconds=frames / FPS, fps=FPS)
            model_fps = _model_fps(gen, width, height, frames, batch_size)  # also warms the generator up
            codec = translate_video(identity, clip, Path(tmp) / "codec.mp4", settings)
            result = translate_video(gen, clip, Path(tmp) / "out.mp4", settings)
            rows.append(
                {
                    "what": f"video {height}p" if height in (720, 1080, 2160) else f"video {min(width, height)}px",
                    "size": f"{width}x{height}",
                    "frames": result.frames,
                    "frames_per_s": round(result.fps, 2),
                    "model_frames_per_s": round(model_fps, 2),
                    "codec_frames_per_s": round(codec.fps, 2),
                    "device": str(device),
                    "precision": gen.precision,
                    "ngf": ngf,
                    "n_blocks": n_blocks,
                    "batch_size": batch_size,
                    "threads": torch.get_num_threads(),
                }
            )
    return rows


def format_rows(rows: list[dict]) -> str:
    head = f"{'what':<12} {'size':>10} {'frames':>6} {'pipeline fps':>13} {'model fps':>10} {'codec fps':>10}  device"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['what']:<12} {r['size']:>10} {r['frames']:>6} {r['frames_per_s']:>13.2f} "
            f"{r['model_frames_per_s']:>10.2f} {r['codec_frames_per_s']:>10.2f}  {r['device']} {r['precision']}"
        )
    return "\n".join(lines)


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple(tuple(int(v) for v in part.lower().split("x")) for part in text.split(","))  # type: ignore[misc]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use WxH[,WxH...], e.g. 256x256,1280x720") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan_style.bench.video", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda:N")
    parser.add_argument("--sizes", type=_sizes, default=((256, 256), (1280, 720)), help="WxH,... (256x256,1280x720)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    parser.add_argument("--ngf", type=int, default=64, help="generator width (default 64, the paper's)")
    parser.add_argument("--n-blocks", type=int, default=9, help="residual blocks (default 9)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per generator pass (default 4)")
    args = parser.parse_args(argv)
    rows = bench_video(resolve_device(args.device), args.sizes, args.frames, args.ngf, args.n_blocks, args.batch_size)
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
