"""Video files through PyAV: opening and decoding inputs, planning and writing outputs.

Everything here that touches ``av`` receives the module as its first argument (``av =
import_av()``): PyAV is imported only when a video is processed, and never by importing this
module. The translation pipeline that joins these pieces (threads, the generator, deflicker,
progress) is ``gan_style/inference/video.py``.

    inp = open_input(av, src)                       # its video stream, audio streams, duration
    plan = plan_output(av, dest, inp.video)         # muxer, encoder, options, pixel format
    for item in decoded(av, inp, log):              # DecodedFrame (upright pixels + timing) or an audio packet
        ...                                         # batch DecodedFrames into Frames, translate them
    write_video(av, items, dest, plan, inp, log)    # Frames and audio packets -> dest, atomically

Frames keep the input's timestamps (a variable frame rate too) in the input's time base; audio
streams are copied unchanged, or re-encoded when the output container cannot hold them;
container metadata and per-stream language / title tags are copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import temporary_path

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
class VideoLog:
    """What reading and writing one video did, counted as it happens (the pipeline's result extends it)."""

    src: Path
    dest: Path
    frames: int = 0  # frames written
    corrupt: int = 0  # frames that could not be decoded (skipped)
    audio: list[str] = field(default_factory=list)  # what happened to each audio stream
    warnings: list[str] = field(default_factory=list)
    truncated: str | None = None  # why the input ended early, if it did


@dataclass
class Frames:
    """Consecutive frames: pixels (N, H, W, 3) uint8 and timestamps in the video stream's time base."""

    pixels: np.ndarray
    pts: list[int]
    durations: list[int]


@dataclass
class DecodedFrame:
    """One decoded frame: pixels (H, W, 3) uint8, upright (the display rotation applied), and its
    timestamp and duration in the video stream's time base."""

    pixels: np.ndarray
    pts: int
    duration: int


# ---------------------------------------------------------------- the input


@dataclass
class VideoInput:
    container: Any  # av.container.InputContainer
    video: Any  # its first video stream
    audio: list  # its audio streams, all copied
    frames: int | None  # expected number of frames (for the progress bar), if known
    seconds: float | None  # duration of the video stream, if the file says


def reason(e: Exception) -> str:
    # FFmpeg errors carry the file name in str(e); keep only the cause.
    return getattr(e, "strerror", None) or str(e)


def open_input(av, src: Path) -> VideoInput:
    """Open ``src`` and check it has a decodable video stream; VideoError (one line) if not."""
    try:
        container = av.open(str(src), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"{src}: cannot read video ({reason(e)}): truncated, or not a video file?") from None
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


def plan_output(av, dest: Path, video, codec: str = "auto", crf: int | None = None) -> OutputPlan:
    """Muxer, encoder, its options and pixel format for ``dest``, from the input ``video`` stream.
    ``codec``: an FFmpeg encoder, auto = H.264 (VP9 for WebM); ``crf``: its quality, None = QUALITY's."""
    fmt = OUTPUT_FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise VideoError(f"{dest}: cannot write {dest.suffix or 'no'} videos: use {', '.join(OUTPUT_FORMATS)}")
    name = DEFAULT_VIDEO_CODEC.get(fmt, "h264") if codec == "auto" else codec
    try:
        encoder = av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):  # PyAV raises UnknownCodecError (a ValueError)
        raise VideoError(f"--codec {name}: no such encoder in this FFmpeg build (try h264, hevc, libvpx-vp9)") from None
    if encoder.type != "video":
        raise VideoError(f"--codec {name}: {encoder.name} is not a video encoder")
    options = dict(EXTRA_OPTIONS.get(encoder.name, {}))
    if encoder.name in QUALITY:
        option, default = QUALITY[encoder.name]
        options[option] = str(default if crf is None else crf)
    pix_fmt = _pixel_format(av, video.codec_context.pix_fmt, encoder)
    fmt_info = av.VideoFormat(pix_fmt)
    even = (fmt_info.chroma_width(2) == 1, fmt_info.chroma_height(2) == 1)
    return OutputPlan(fmt, encoder.name, options, pix_fmt, even)


def _pixel_format(av, source: str | None, codec) -> str:
    """The input's pixel format if the encoder takes it (JPEG-range names mapped), else 4:2:0."""
    supported = [f.name for f in codec.video_formats or []]
    name = (source or "").replace("yuvj", "yuv")  # yuvj* are deprecated aliases of full-range yuv*
    if name in supported:
        return name
    return "yuv420p" if "yuv420p" in supported or not supported else supported[0]


# ---------------------------------------------------------------- decoding


def upright(frame) -> np.ndarray:
    """A decoded frame -> (H, W, 3) uint8 pixels, turned upright by its display rotation."""
    arr = frame.to_ndarray(format="rgb24")  # (H, W, 3) as stored
    turns = round(frame.rotation / 90) % 4  # display matrix: counter-clockwise degrees
    if turns:
        arr = np.ascontiguousarray(np.rot90(arr, turns))
    return arr


def _demux(av, inp: VideoInput, log: VideoLog) -> Iterator:
    """The input's packets; a read error ends the stream, recorded as truncation."""
    packets = inp.container.demux(inp.video, *inp.audio)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as e:
            log.truncated = f"read error ({reason(e)})"
            return
        yield packet


def _decode_packet(av, packet, log: VideoLog) -> list:
    """The good frames of one video packet; frames that fail to decode or decode damaged are counted."""
    try:
        frames = packet.decode()
    except av.FFmpegError:
        log.corrupt += 1
        return []
    good = [f for f in frames if not f.is_corrupt]
    log.corrupt += len(frames) - len(good)
    return good


def decoded(av, inp: VideoInput, log: VideoLog) -> Iterator:
    """The input's video frames (DecodedFrame, timestamps strictly increasing) and audio packets, in
    file order. Frames that fail to decode, decode damaged or repeat a timestamp are counted in
    ``log.corrupt``; a read error or an early end (see _check_complete) is noted in ``log.truncated``."""
    step = frame_step(inp.video)
    last = None  # pts of the last frame kept
    for packet in _demux(av, inp, log):
        if packet.stream.type == "audio":
            if packet.dts is not None:  # skip the empty packets that flush the demuxer
                yield packet
            continue
        for frame in _decode_packet(av, packet, log):
            t = frame.pts if frame.pts is not None else (0 if last is None else last + step)
            if last is not None and t <= last:  # a repeated timestamp: encoders refuse it
                log.corrupt += 1
                continue
            last = t
            yield DecodedFrame(upright(frame), t, frame.duration or step)
    _check_complete(inp, log, last, step)


def frame_step(video) -> int:
    """Ticks of the stream's time base per frame at its nominal rate (at least 1)."""
    rate = video.average_rate or video.guessed_rate or 25
    return max(1, round(1 / (rate * video.time_base))) if video.time_base else 1


def _check_complete(inp: VideoInput, log: VideoLog, last: int | None, step: int) -> None:
    # A truncated Matroska/WebM/AVI file just ends early: compare with the duration it declares.
    if log.truncated or last is None or not inp.seconds:
        return
    end = float((last + step) * inp.video.time_base)
    if end < inp.seconds * 0.95 - 2 * float(step * inp.video.time_base):
        log.truncated = f"the video stream ends at {end:.2f} s of the {inp.seconds:.2f} s it declares"


# ---------------------------------------------------------------- encoding


class AudioOut:
    """One audio stream of the output: packets copied as they are, or decoded and re-encoded."""

    def __init__(self, av, out, source, fmt: str, log: VideoLog) -> None:
        name = source.codec_context.codec.canonical_name if source.codec_context else "unknown"
        if name in out.supported_codecs:
            self.stream, self.decoder = out.add_stream_from_template(source), None
            log.audio.append(f"{name} copied")
        else:
            target = DEFAULT_AUDIO_CODEC.get(fmt, "aac")
            rates = av.codec.Codec(target, "w").audio_rates
            rate = source.codec_context.sample_rate
            self.stream = out.add_stream(target, rate=rate if not rates or rate in rates else max(rates))
            self.stream.layout = source.codec_context.layout
            self.decoder = source.codec_context
            log.audio.append(f"{name} re-encoded to {target}")
            log.warnings.append(f"{log.src}: {name} audio cannot go into {fmt}: re-encoded to {target}")
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

    def __init__(self, av, path: Path, plan: OutputPlan, inp: VideoInput, log: VideoLog) -> None:
        self.av, self.path, self.plan, self.inp, self.log = av, path, plan, inp, log
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
        # One encoder thread: x264's frame threads made the same frames encode differently from run
        # to run (2 variants in 8 runs of a test clip, up to 29 levels apart once decoded; 20 of 20
        # alike with one thread). Outputs must repeat byte for byte (--shard, resumed jobs, seeds).
        # Its cost where the generator is fast (large frames on a GPU) is not measured yet.
        video.codec_context.thread_count = 1
        # The input's time base, so every timestamp (variable frame rate too) is kept exactly.
        video.time_base = video.codec_context.time_base = inp.video.time_base
        source = inp.video.codec_context
        for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                setattr(video.codec_context, tag, getattr(source, tag))
        video.metadata.update({k: v for k, v in inp.video.metadata.items() if k in STREAM_TAGS})
        self.audio = {s.index: AudioOut(av, out, s, plan.format, self.log) for s in inp.audio}
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
        self.log.frames += len(frames.pts)

    def finish(self) -> None:
        if self.out is None:
            raise VideoError(f"{self.log.src}: no frame could be decoded ({self.log.corrupt} corrupt)")
        self.out.mux(self.video.encode(None))
        for audio in self.audio.values():
            audio.flush(self.out)
        self.out.close()

    def abort(self) -> None:
        if self.out is not None:
            with contextlib.suppress(Exception):
                self.out.close()


def write_video(av, items: Iterable, dest: Path, plan: OutputPlan, inp: VideoInput, log: VideoLog,
                on_frames: Callable[[int], object] = lambda n: None) -> None:
    """Encode the Frames and mux the audio packets of ``items`` into a temporary file next to ``dest``,
    renamed onto it only when complete (Ctrl-C or an error leaves no partial file). ``on_frames(n)``
    is told each time n frames are written (a progress bar)."""
    with temporary_path(dest) as tmp:
        writer = Writer(av, tmp, plan, inp, log)
        try:
            for item in items:
                writer.write(item)
                if isinstance(item, Frames):
                    on_frames(len(item.pts))
            writer.finish()
        except BaseException:
            writer.abort()
            raise
