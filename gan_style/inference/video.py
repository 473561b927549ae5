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
when the container cannot hold them; container metadata copied. PyAV is imported only here,
only when a video is processed. Imports nothing from the training code.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..io.atomic import temporary_path
from ..io.tensors import float_to_uint8_hwc, uint8_to_float
from .flicker import FlickerMeter
from .translate import Generator, images_per_pass, resize_short_side, translate_tensor

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".3gp",
     ".ogv"}
)  # fmt: skip
# Containers we write (by output extension). Other inputs (AVI, MPEG-TS, ...) are written as MP4.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
DEFAULT_OUTPUT_EXTENSION = ".mp4"
DEFAULT_VIDEO_CODEC = {"webm": "libvpx-vp9"}  # else "h264" (libx264 in PyAV's wheels)
DEFAULT_AUDIO_CODEC = {"webm": "libopus"}  # else "aac": what audio that cannot be copied becomes
# Quality options per encoder: the option and its default (lower = better and larger).
QUALITY = {"libx264": ("crf", 18), "libx265": ("crf", 20), "libvpx-vp9": ("crf", 31), "libsvtav1": ("crf", 30)}
EXTRA_OPTIONS = {"libvpx-vp9": {"b": "0", "row-mt": "1"}}  # VP9: crf means constant quality only with b=0
# Container tags the muxer writes itself: copying them would be stale or refused.
MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}
STREAM_TAGS = ("language", "title")  # per-stream tags carried over
DEFLICKER_TOLERANCE = 16 / 127.5  # input change (16 levels, in [-1, 1] units) above which nothing is blended


class VideoError(OSError):
    """A video that cannot be read, translated or written; the message names the file."""


def import_av():
    """PyAV, or a one-line VideoError saying how to install it."""
    try:
        import av
    except ImportError:
        raise VideoError("videos need PyAV: pip install 'gan_style[video]' (or make setup)") from None
    return av


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def output_extension(src: Path) -> str:
    """The output's extension for a video: the input's where we can write it, else .mp4."""
    suffix = src.suffix.lower()
    return suffix if suffix in OUTPUT_FORMATS else DEFAULT_OUTPUT_EXTENSION


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
class VideoResult:
    src: Path
    dest: Path
    frames: int = 0  # frames written
    corrupt: int = 0  # frames that could not be decoded (skipped)
    seconds: float = 0.0  # wall time of the whole translation
    flicker: float | None = None  # see gan_style.inference.flicker
    audio: list[str] = field(default_factory=list)  # what happened to each audio stream
    warnings: list[str] = field(default_factory=list)
    truncated: str | None = None  # why the input ended early, if it did

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


@dataclass
class Frames:
    """Consecutive frames: pixels (N, H, W, 3) uint8 and timestamps in the video stream's time base."""

    pixels: np.ndarray
    pts: list[int]
    durations: list[int]


# ---------------------------------------------------------------- the input


@dataclass
class VideoInput:
    container: Any  # av.container.InputContainer
    video: Any  # its first video stream
    audio: list  # its audio streams, all copied
    frames: int | None  # expected number of frames (for the progress bar), if known
    seconds: float | None  # duration of the video stream, if the file says


def _reason(e: Exception) -> str:
    # FFmpeg errors carry the file name in str(e); keep only the cause.
    return getattr(e, "strerror", None) or str(e)


def open_input(av, src: Path) -> VideoInput:
    """Open ``src`` and check it has a decodable video stream; VideoError (one line) if not."""
    try:
        container = av.open(str(src), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"{src}: cannot read video ({_reason(e)}): truncated, or not a video file?") from None
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise VideoError(f"{src}: no video stream (holds {', '.join(kinds)})")
        video = container.streams.video[0]
        if video.codec_context is None or not video.codec_context.is_decoder:
            raise VideoError(f"{src}: unsupported video codec {video.codec_context and video.codec_context.name!r}")
        video.thread_type = "AUTO"  # frame and slice threads in the decoder
        seconds = stream_seconds(video)
        rate = video.average_rate or video.guessed_rate
        frames = video.frames or (round(seconds * rate) if seconds and rate else None)
        return VideoInput(container, video, list(container.streams.audio), frames, seconds)
    except BaseException:
        container.close()
        raise


def stream_seconds(stream) -> float | None:
    """The duration of a stream from the file: its own field (MP4) or its DURATION tag (Matroska)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")
    if tag:
        with contextlib.suppress(ValueError):
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
    return None


# ---------------------------------------------------------------- the output plan


@dataclass
class OutputPlan:
    format: str  # muxer name
    codec: str  # encoder name
    options: dict[str, str]
    pix_fmt: str
    even: tuple[bool, bool]  # (width, height) must be even: chroma subsampled


def plan_output(av, dest: Path, video, settings: VideoSettings) -> OutputPlan:
    """Muxer, encoder, its options and pixel format for ``dest``, from the input ``video`` stream."""
    fmt = OUTPUT_FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise VideoError(f"{dest}: cannot write {dest.suffix or 'no'} videos: use {', '.join(OUTPUT_FORMATS)}")
    name = DEFAULT_VIDEO_CODEC.get(fmt, "h264") if settings.codec == "auto" else settings.codec
    try:
        codec = av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):  # PyAV raises UnknownCodecError (a ValueError)
        raise VideoError(f"--codec {name}: no such encoder in this FFmpeg build (try h264, hevc, libvpx-vp9)") from None
    if codec.type != "video":
        raise VideoError(f"--codec {name}: {codec.name} is not a video encoder")
    options = dict(EXTRA_OPTIONS.get(codec.name, {}))
    if codec.name in QUALITY:
        option, default = QUALITY[codec.name]
        options[option] = str(default if settings.crf is None else settings.crf)
    pix_fmt = _pixel_format(av, video.codec_context.pix_fmt, codec)
    fmt_info = av.VideoFormat(pix_fmt)
    even = (fmt_info.chroma_width(2) == 1, fmt_info.chroma_height(2) == 1)
    return OutputPlan(fmt, codec.name, options, pix_fmt, even)


def _pixel_format(av, source: str | None, codec) -> str:
    """The input's pixel format if the encoder takes it (JPEG-range names mapped), else 4:2:0."""
    supported = [f.name for f in codec.video_formats or []]
    name = (source or "").replace("yuvj", "yuv")  # yuvj* are deprecated aliases of full-range yuv*
    if name in supported:
        return name
    return "yuv420p" if "yuv420p" in supported or not supported else supported[0]


# ---------------------------------------------------------------- stage 1: decode


def _to_pixels(frame, size: int | None) -> np.ndarray:
    """A decoded frame -> (H, W, 3) uint8 pixels, upright, resized as images are."""
    arr = frame.to_ndarray(format="rgb24")  # (H, W, 3) as stored
    turns = round(frame.rotation / 90) % 4  # display matrix: counter-clockwise degrees
    if turns:
        arr = np.ascontiguousarray(np.rot90(arr, turns))
    if size:
        arr = np.asarray(resize_short_side(Image.fromarray(arr), size))
    return arr


def _fit(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop (odd sizes for 4:2:0) or, for a frame whose size changed mid-stream, resize to ``shape``."""
    h, w = shape
    if arr.shape[0] - h in (0, 1) and arr.shape[1] - w in (0, 1):
        return arr[:h, :w]
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BICUBIC))


def _demux(av, inp: VideoInput, result: VideoResult) -> Iterator:
    """The input's packets; a read error ends the stream, recorded as truncation."""
    packets = inp.container.demux(inp.video, *inp.audio)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as e:
            result.truncated = f"read error ({_reason(e)})"
            return
        yield packet


def _decode_packet(av, packet, result: VideoResult) -> list:
    """The good frames of one video packet; frames that fail to decode or decode damaged are counted."""
    try:
        frames = packet.decode()
    except av.FFmpegError:
        result.corrupt += 1
        return []
    good = [f for f in frames if not f.is_corrupt]
    result.corrupt += len(frames) - len(good)
    return good


def decode_stage(av, inp: VideoInput, plan: OutputPlan, settings: VideoSettings, result: VideoResult) -> Iterator:
    """Yield Frames batches (as many frames as a generator pass takes) and audio packets, in file order."""
    batch: list[np.ndarray] = []
    pts: list[int] = []
    durations: list[int] = []
    shape = per_pass = None
    last = None  # pts of the last frame kept
    resized = False
    step = _frame_step(inp.video)
    for packet in _demux(av, inp, result):
        if packet.stream.type == "audio":
            if packet.dts is not None:  # skip the empty packets that flush the demuxer
                yield packet
            continue
        for frame in _decode_packet(av, packet, result):
            t = frame.pts if frame.pts is not None else (0 if last is None else last + step)
            if last is not None and t <= last:  # a repeated timestamp: encoders refuse it
                result.corrupt += 1
                continue
            arr = _to_pixels(frame, settings.size)
            if shape is None:  # the first frame fixes the output size (even where 4:2:0 needs it)
                shape = tuple(d - (d % 2 if even else 0) for d, even in zip(arr.shape[:2], plan.even[::-1]))
                per_pass = images_per_pass(settings.batch_size, *shape)
            elif abs(arr.shape[0] - shape[0]) > 1 or abs(arr.shape[1] - shape[1]) > 1:
                if not resized:
                    result.warnings.append(f"{result.src}: the frame size changes mid-stream: resized to the first")
                resized = True
            batch.append(_fit(arr, shape))
            pts.append(t)
            durations.append(frame.duration or step)
            last = t
            if len(batch) == per_pass:
                yield Frames(np.stack(batch), pts, durations)
                batch, pts, durations = [], [], []
    if batch:
        yield Frames(np.stack(batch), pts, durations)
    _check_complete(inp, result, last, step)


def _frame_step(video) -> int:
    """Ticks of the stream's time base per frame at its nominal rate (at least 1)."""
    rate = video.average_rate or video.guessed_rate or 25
    return max(1, round(1 / (rate * video.time_base))) if video.time_base else 1


def _check_complete(inp: VideoInput, result: VideoResult, last: int | None, step: int) -> None:
    # A truncated Matroska/WebM/AVI file just ends early: compare with the duration it declares.
    if result.truncated or last is None or not inp.seconds:
        return
    end = float((last + step) * inp.video.time_base)
    if end < inp.seconds * 0.95 - 2 * float(step * inp.video.time_base):
        result.truncated = f"the video stream ends at {end:.2f} s of the {inp.seconds:.2f} s it declares"


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


# ---------------------------------------------------------------- stage 3: encode


class AudioOut:
    """One audio stream of the output: packets copied as they are, or decoded and re-encoded."""

    def __init__(self, av, out, source, fmt: str, result: VideoResult) -> None:
        name = source.codec_context.codec.canonical_name if source.codec_context else "unknown"
        if name in out.supported_codecs:
            self.stream, self.decoder = out.add_stream_from_template(source), None
            result.audio.append(f"{name} copied")
        else:
            target = DEFAULT_AUDIO_CODEC.get(fmt, "aac")
            rates = av.codec.Codec(target, "w").audio_rates
            rate = source.codec_context.sample_rate
            self.stream = out.add_stream(target, rate=rate if not rates or rate in rates else max(rates))
            self.stream.layout = source.codec_context.layout
            self.decoder = source.codec_context
            result.audio.append(f"{name} re-encoded to {target}")
            result.warnings.append(f"{result.src}: {name} audio cannot go into {fmt}: re-encoded to {target}")
        self.stream.metadata.update({k: v for k, v in source.metadata.items() if k in STREAM_TAGS})

    def write(self, out, packet) -> None:
        if self.decoder is None:
            packet.stream = self.stream  # the muxer rescales its timestamps to the new stream
            out.mux(packet)
            return
        for frame in self.decoder.decode(packet):
            out.mux(self.stream.encode(frame))  # PyAV resamples to the encoder's format and frame size

    def flush(self, out) -> None:
        if self.decoder is not None:
            for frame in self.decoder.decode(None):
                out.mux(self.stream.encode(frame))
            out.mux(self.stream.encode(None))


class Writer:
    """Encodes translated Frames and muxes them with the audio into ``path`` (opened at the first frames)."""

    def __init__(self, av, path: Path, plan: OutputPlan, inp: VideoInput, result: VideoResult) -> None:
        self.av, self.path, self.plan, self.inp, self.result = av, path, plan, inp, result
        self.out = self.video = None
        self.audio: dict[int, AudioOut] = {}  # input stream index -> output
        self.waiting: list = []  # audio packets read before the first frames

    def write(self, item) -> None:
        if isinstance(item, Frames):
            self.write_frames(item)
        elif self.out is None:
            self.waiting.append(item)
        else:
            self.audio[item.stream.index].write(self.out, item)

    def _open(self, width: int, height: int) -> None:
        av, plan, inp = self.av, self.plan, self.inp
        self.out = out = av.open(str(self.path), "w", format=plan.format)
        out.metadata.update({k: v for k, v in inp.container.metadata.items() if k.lower() not in MUXER_TAGS})
        rate = inp.video.average_rate or inp.video.guessed_rate or Fraction(25)
        self.video = video = out.add_stream(plan.codec, rate=rate, options=plan.options)
        video.width, video.height, video.pix_fmt = width, height, plan.pix_fmt
        # The input's time base, so every timestamp (variable frame rate too) is kept exactly.
        video.time_base = video.codec_context.time_base = inp.video.time_base
        source = inp.video.codec_context
        for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                setattr(video.codec_context, tag, getattr(source, tag))
        video.metadata.update({k: v for k, v in inp.video.metadata.items() if k in STREAM_TAGS})
        self.audio = {s.index: AudioOut(av, out, s, plan.format, self.result) for s in inp.audio}
        for packet in self.waiting:
            self.audio[packet.stream.index].write(out, packet)
        self.waiting = []

    def write_frames(self, frames: Frames) -> None:
        if self.out is None:
            self._open(frames.pixels.shape[2], frames.pixels.shape[1])
        time_base = self.inp.video.time_base
        for pixels, pts, duration in zip(frames.pixels, frames.pts, frames.durations):
            frame = self.av.VideoFrame.from_ndarray(pixels, format="rgb24")  # converted to pix_fmt by encode
            frame.pts, frame.time_base, frame.duration = pts, time_base, duration
            self.out.mux(self.video.encode(frame))
        self.result.frames += len(frames.pts)

    def finish(self) -> None:
        if self.out is None:
            raise VideoError(f"{self.result.src}: no frame could be decoded ({self.result.corrupt} corrupt)")
        self.out.mux(self.video.encode(None))
        for audio in self.audio.values():
            audio.flush(self.out)
        self.out.close()

    def abort(self) -> None:
        if self.out is not None:
            with contextlib.suppress(Exception):
                self.out.close()


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
        plan = plan_output(av, dest, inp.video, settings)
        stages.append(Background(decode_stage(av, inp, plan, settings, result), 3, stop, "decode"))
        stages.append(Background(translate_stage(gen, stages[0], settings, meter, blend), 2, stop, "translate"))
        _encode(av, stages[1], dest, plan, inp, result, _progress(settings, inp, src))
    except torch.OutOfMemoryError:
        raise VideoError(f"{src}: out of memory: use --tile 512, --batch-size 1 or --size") from None
    except av.FFmpegError as e:
        raise VideoError(f"{src}: cannot translate video ({_reason(e)})") from None
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


def _encode(av, items: Iterator, dest: Path, plan: OutputPlan, inp: VideoInput, result: VideoResult, bar) -> None:
    """Stage 3, in the caller's thread: write everything into a temporary file, then rename it to ``dest``."""
    with bar, temporary_path(dest) as tmp:
        writer = Writer(av, tmp, plan, inp, result)
        try:
            for item in items:
                writer.write(item)
                if isinstance(item, Frames):
                    bar.update(len(item.pts))
            writer.finish()
        except BaseException:
            writer.abort()
            raise


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
