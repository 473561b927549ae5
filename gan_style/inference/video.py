"""Translate a video frame by frame, keeping its size, timing, sound and metadata.

    from gan_style import load_generator
    from gan_style.inference.video import VideoSettings, translate_video
    result = translate_video(load_generator("runs/monet/last.pt"), "clip.mp4", "out/clip.mp4")
    print(result.summary())          # frames, fps achieved, flicker, audio, output path

Three stages run at once, joined by short bounded queues, so decoding, the generator and
encoding overlap:

    decode     (thread)  demux + decode -> Frames: upright uint8 pixels (N, H, W, 3) + timestamps;
                         audio packets passed on untouched, in file order
    translate  (thread)  (N, 3, H, W) in [-1, 1] through the generator (tiled when large, as images)
                         -> uint8 again; optional temporal blend; flicker measured
    encode     (caller)  encode + mux into a temporary file next to the output, renamed onto it
                         only when complete (Ctrl-C or an error leaves no partial file)

The output has the input's frame size (or ``size``), the same timestamps (a variable frame rate
is kept), the display rotation applied to the pixels, and the input's pixel format where the
encoder has it; H.264 by default (VP9 in WebM); audio streams copied unchanged, or re-encoded
when the container cannot hold them; container metadata copied. Everything that touches PyAV
(reading, planning and writing files) is ``gan_style/io/video.py``; PyAV is imported only when a
video is processed. This module holds the pipeline: batching, the generator, deflicker, the
threads, progress and results. Imports nothing from the training code.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..io.tensors import float_to_uint8_hwc, uint8_to_float
from ..io.video import (
    OUTPUT_FORMATS,
    VIDEO_EXTENSIONS,
    DecodedFrame,
    Frames,
    VideoError,
    VideoInput,
    VideoLog,
    decoded,
    import_av,
    is_video_file,
    open_input,
    output_extension,
    plan_output,
    reason,
    stream_seconds,
    write_video,
)
from .flicker import FlickerMeter
from .memory import MemoryBudgetError
from .translate import Generator, images_per_pass, resize_short_side, translate_tensor

# What callers import from here (the CLI, batch translation, the bench, the app, tests).
__all__ = [
    "OUTPUT_FORMATS", "VIDEO_EXTENSIONS", "TemporalBlend", "VideoError", "VideoResult", "VideoSettings", "import_av",
    "is_video_file", "output_extension", "stream_seconds", "translate_video", "translate_videos",
]  # fmt: skip

DEFLICKER_TOLERANCE = 16 / 127.5  # input change (16 levels, in [-1, 1] units) above which nothing is blended


@dataclass
class VideoSettings:
    size: int | None = None  # shorter side in pixels; None = the input's size
    tile: int | str | None = "auto"  # as for images: "auto" tiles frames over 4 megapixels
    batch_size: int = 4  # frames per generator pass (fewer for large frames)
    codec: str = "auto"  # FFmpeg encoder; auto = H.264 (VP9 for WebM)
    crf: int | None = None  # quality for x264/x265/VP9/SVT-AV1 (lower = better); None = QUALITY's default
    deflicker: float = 0.0  # strength of the temporal blend in [0, 1); 0 = off
    progress: bool = True  # show a progress bar


@dataclass
class VideoResult(VideoLog):
    """What translating one video did: the log of reading and writing it (frames, corrupt, audio,
    warnings, truncated), its wall time and its flicker."""

    seconds: float = 0.0  # wall time of the whole translation
    flicker: float | None = None  # see gan_style.inference.flicker

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        flicker = "n/a" if self.flicker is None else f"{self.flicker:.3f}"
        audio = ", ".join(self.audio) or "none"
        corrupt = f", {self.corrupt} corrupt frame(s) skipped" if self.corrupt else ""
        return (
            f"{self.src}: {self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps), flicker {flicker}, "
            f"audio: {audio}{corrupt} -> {self.dest}"
        )


# ---------------------------------------------------------------- stage 1: decode


def _resized(arr: np.ndarray, size: int | None) -> np.ndarray:
    """(H, W, 3) uint8 pixels with the shorter side ``size``, resized as images are (None: as they are)."""
    return np.asarray(resize_short_side(Image.fromarray(arr), size)) if size else arr


def _fit(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop (odd sizes for 4:2:0) or, for a frame whose size changed mid-stream, resize to ``shape``."""
    h, w = shape
    if arr.shape[0] - h in (0, 1) and arr.shape[1] - w in (0, 1):
        return arr[:h, :w]
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BICUBIC))


class Batches:
    """Collects decoded frames into Frames of one generator pass each, every frame at the first
    frame's size (made even where the output's chroma subsampling needs it)."""

    def __init__(self, settings: VideoSettings, even: tuple[bool, bool], result: VideoResult) -> None:
        self.size, self.batch_size, self.even, self.result = settings.size, settings.batch_size, even, result
        self.shape: tuple[int, int] | None = None  # (H, W) of every output frame, from the first
        self.per_pass = 0
        self.resized = False
        self.pixels: list[np.ndarray] = []
        self.pts: list[int] = []
        self.durations: list[int] = []

    def add(self, frame: DecodedFrame) -> Frames | None:
        """Add one frame, resized as images are; the batch once it fills a generator pass."""
        arr = _resized(frame.pixels, self.size)  # (H, W, 3) uint8
        if self.shape is None:  # the first frame fixes the output size (even where 4:2:0 needs it)
            self.shape = tuple(d - (d % 2 if even else 0) for d, even in zip(arr.shape[:2], self.even[::-1]))
            self.per_pass = images_per_pass(self.batch_size, *self.shape)
        elif abs(arr.shape[0] - self.shape[0]) > 1 or abs(arr.shape[1] - self.shape[1]) > 1:
            if not self.resized:
                self.result.warnings.append(f"{self.result.src}: the frame size changes mid-stream: resized to the first")
            self.resized = True
        self.pixels.append(_fit(arr, self.shape))
        self.pts.append(frame.pts)
        self.durations.append(frame.duration)
        return self.flush() if len(self.pixels) == self.per_pass else None

    def flush(self) -> Frames | None:
        """The frames collected so far (None if none), and start a new batch."""
        if not self.pixels:
            return None
        frames = Frames(np.stack(self.pixels), self.pts, self.durations)
        self.pixels, self.pts, self.durations = [], [], []
        return frames


def decode_stage(av, inp: VideoInput, even: tuple[bool, bool], settings: VideoSettings, result: VideoResult
                 ) -> Iterator:
    """Yield Frames batches (as many frames as a generator pass takes) and audio packets, in file order."""
    batches = Batches(settings, even, result)
    for item in decoded(av, inp, result):
        if isinstance(item, DecodedFrame):
            item = batches.add(item)
        if item is not None:
            yield item
    last = batches.flush()
    if last is not None:
        yield last


# ---------------------------------------------------------------- stage 2: translate


class TemporalBlend:
    """Reduce flicker: blend each output frame with the previous (blended) output where the input is still.

    Per pixel, the weight of the previous output is ``strength * max(0, 1 - d / DEFLICKER_TOLERANCE)``,
    d being the input's change at that pixel (grey level, 5 x 5 box-averaged, in [-1, 1] units):
    still areas are averaged over a few frames (an exponential moving average), moving areas and
    scene cuts (d >= 16 levels) keep the fresh translation, so motion does not smear.
    """

    def __init__(self, strength: float) -> None:
        if not 0 <= strength < 1:
            raise ValueError(f"deflicker {strength}: use a strength in [0, 1), e.g. 0.5")
        self.strength = strength
        self._prev: tuple[torch.Tensor, torch.Tensor] | None = None  # last input, last blended output (1, 3, H, W)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: inputs (N, 3, H, W) in [-1, 1]; y: their translations, same shape -> blended y."""
        out = []
        for i in range(x.shape[0]):
            xi, yi = x[i : i + 1], y[i : i + 1]
            if self._prev is not None:
                px, py = self._prev
                change = F.avg_pool2d((xi - px).abs().mean(1, keepdim=True), 5, stride=1, padding=2)  # (1, 1, H, W)
                weight = self.strength * (1 - change / DEFLICKER_TOLERANCE).clamp_(min=0)
                yi = torch.lerp(yi, py, weight)
            self._prev = (xi, yi)
            out.append(yi)
        return torch.cat(out)


def translate_stage(
    gen: Generator, items: Iterator, settings: VideoSettings, meter: FlickerMeter, blend: TemporalBlend | None
) -> Iterator:
    """Translate each Frames batch (audio packets pass through); measure flicker on the results."""
    for item in items:
        if isinstance(item, Frames):
            x = uint8_to_float(item.pixels)  # (N, 3, H, W) in [-1, 1]
            y = translate_tensor(gen, x, tile=settings.tile)  # (N, 3, H, W) fp32 on the CPU
            if blend is not None:
                y = blend(x, y)
            pixels = float_to_uint8_hwc(y)  # (N, H, W, 3) uint8
            meter.update(item.pixels, pixels)
            item = Frames(pixels, item.pts, item.durations)
        yield item


# ---------------------------------------------------------------- running the stages together


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class Background:
    """Run an iterator in a daemon thread, up to ``depth`` items ahead; iterate to consume.

    An exception in the thread is re-raised in the consumer. When ``stop`` is set the thread
    stops at its next item instead of blocking on a full queue.
    """

    def __init__(self, items: Iterator, depth: int, stop: threading.Event, name: str) -> None:
        self.queue: queue.Queue = queue.Queue(depth)
        self.stop = stop
        self.thread = threading.Thread(target=self._run, args=(items,), name=name, daemon=True)
        self.thread.start()

    def _run(self, items: Iterator) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Failed(e))

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.queue.put(item, timeout=0.1)
                return True
        return False

    def __iter__(self) -> Iterator:
        while True:
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


def translate_video(
    gen: Generator, src: str | Path, dest: str | Path, settings: VideoSettings | None = None
) -> VideoResult:
    """Translate the video ``src`` into ``dest`` (its extension picks the container); see the module docstring.

    Raises VideoError (one line naming the file) when the video cannot be read, translated or
    written; ``dest`` is then untouched. A truncated input is translated as far as it goes and
    reported in ``result.truncated``.
    """
    av = import_av()
    settings = settings or VideoSettings()
    src, dest = Path(src), Path(dest)
    result = VideoResult(src, dest)
    blend = TemporalBlend(settings.deflicker) if settings.deflicker else None
    inp = open_input(av, src)
    stop, meter, stages = threading.Event(), FlickerMeter(), []
    start = time.perf_counter()
    try:
        plan = plan_output(av, dest, inp.video, settings.codec, settings.crf)
        stages.append(Background(decode_stage(av, inp, plan.even, settings, result), 3, stop, "decode"))
        stages.append(Background(translate_stage(gen, stages[0], settings, meter, blend), 2, stop, "translate"))
        with _progress(settings, inp, src) as bar:  # stage 3, in the caller's thread
            write_video(av, stages[1], dest, plan, inp, result, bar.update)
    except torch.OutOfMemoryError:
        raise VideoError(f"{src}: out of memory: use --tile 512, --batch-size 1 or --size") from None
    except MemoryBudgetError as e:
        raise VideoError(f"{src}: {e}") from None
    except av.FFmpegError as e:
        raise VideoError(f"{src}: cannot translate video ({reason(e)})") from None
    finally:
        stop.set()
        for stage, wait in zip(stages, (30.0, 1.0)):
            # The decode thread reads the file: it must stop before the file is closed (it checks
            # every 0.1 s). The translate thread may be in a long forward pass: not worth waiting for.
            stage.join(wait)
        inp.container.close()
    result.seconds = time.perf_counter() - start
    result.flicker = meter.ratio
    return result


def _progress(settings: VideoSettings, inp: VideoInput, src: Path) -> tqdm:
    return tqdm(total=inp.frames, unit="frame", desc=src.name, disable=not settings.progress, leave=False)


def translate_videos(
    gen: Generator, jobs: list[tuple[Path, Path]], settings: VideoSettings, report: Callable[[str], None] = print
) -> tuple[list[VideoResult], list[str]]:
    """Translate (src, dest) pairs one after the other; a failure is reported and the rest done.

    Returns the results written and the failure messages (one line each).
    """
    results, failures = [], []
    for src, dest in jobs:
        try:
            result = translate_video(gen, src, dest, settings)
        except VideoError as e:
            failures.append(str(e))
            continue
        except Exception as e:  # noqa: BLE001 - anything unforeseen in one file must not stop the others
            failures.append(f"{src}: cannot translate video ({e.__class__.__name__}: {e})")
            continue
        results.append(result)
        report(result.summary())
        for warning in result.warnings:
            report(f"warning: {warning}")
        if result.truncated:
            failures.append(f"{src}: truncated: {result.truncated}; {dest} holds the {result.frames} frames before")
    return results, failures
