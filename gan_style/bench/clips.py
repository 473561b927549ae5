"""Write video clips with PyAV: synthetic moving shapes (or any frames), with a sine-wave sound.

Used by the video tests, the video benchmark and scripts/ken_burns_clip.py, which need clips of
a known size, length, frame rate and motion without shipping any video file:

    write_clip("clip.mp4", 64, 48, seconds=2, fps=12)                   # H.264 + AAC
    write_clip("still.mkv", 64, 48, motion="static", lossless=True)     # every frame identical
    write_clip("blink.mp4", 64, 48, motion="flicker")                   # brightness alternates
    write_sound("sound.mkv")                                            # audio only

Needs PyAV (the ``video`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

MOTIONS = ("moving", "static", "flicker")
SAMPLE_RATE = 16000
AUDIO_CHUNK = 1024  # samples per audio frame handed to the encoder


def clip_frame(width: int, height: int, i: int, motion: str = "moving") -> np.ndarray:
    """Frame ``i`` of a synthetic clip: (height, width, 3) uint8.

    A diagonal colour gradient with a bright square crossing it ("moving"), standing still
    ("static"), or standing still while the whole frame alternates dark and bright ("flicker").
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion {motion!r}: use one of {', '.join(MOTIONS)}")
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / width, y / height, 1 - (x + y) / (width + height)], axis=-1) * 200 + 20
    step = i if motion == "moving" else 0
    side = max(2, min(width, height) // 4)
    left = (2 * step) % max(1, width - side)
    top = (height - side) // 2
    img[top : top + side, left : left + side] = (250, 240, 60)
    if motion == "flicker" and i % 2:
        img = img * 0.6
    return img.round().astype(np.uint8)


def write_clip(
    path: str | Path,
    width: int = 64,
    height: int = 48,
    seconds: float = 2.0,
    fps: int = 12,
    motion: str = "moving",
    pts: list[int] | None = None,
    **options,
) -> Path:
    """Write a synthetic clip of ``seconds`` at a constant ``fps``, or of frames at ``pts`` (in 1/1000 s).

    ``options``: those of ``write_video`` (audio, codec, lossless, rotation, metadata).
    """
    count = len(pts) if pts is not None else round(seconds * fps)
    frames = (clip_frame(width, height, i, motion) for i in range(count))
    return write_video(path, frames, fps, pts, **options)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = 25,
    pts: list[int] | None = None,
    audio: str | None = "aac",
    codec: str = "h264",
    lossless: bool = False,
    rotation: int = 0,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``frames`` ((H, W, 3) uint8, all one size) at a constant ``fps``, or at ``pts`` (in 1/1000 s).

    ``audio``: the audio codec of a mono 440 Hz sine track of the same length (None: no sound).
    ``lossless``: H.264 at qp 0 in 4:4:4, so identical frames decode identically (no coding noise).
    ``rotation``: display rotation stored in the container (degrees counter-clockwise).
    ``metadata``: container tags (title, comment, ...).
    """
    import av

    path = Path(path)
    # Constant rate: time base 1/fps, frame i at i. Explicit pts: time base 1/1000.
    time_base = Fraction(1, 1000) if pts is not None else Fraction(1, fps)
    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        video = sound = None
        t = -1
        for i, pixels in enumerate(frames):
            if video is None:  # the first frame gives the size
                video = _add_video_stream(out, codec, fps, pixels.shape, time_base, lossless, rotation)
                sound = _add_sine_stream(out, audio) if audio else None
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            t = pts[i] if pts is not None else i
            frame.pts, frame.time_base = t, time_base
            out.mux(video.encode(frame))
        if video is not None:
            out.mux(video.encode(None))
        if sound is not None:
            _write_sine(out, sound, float(t * time_base + Fraction(1, fps)))
    return path


def _add_video_stream(out, codec: str, fps: int, shape: tuple, time_base: Fraction, lossless: bool, rotation: int):
    video = out.add_stream(codec, rate=fps)
    video.height, video.width = shape[:2]
    video.pix_fmt = "yuv444p" if lossless else "yuv420p"
    video.time_base = video.codec_context.time_base = time_base
    video.options = {"qp": "0"} if lossless else {}
    if rotation:
        video.set_display_rotation(rotation)
    return video


def write_sound(path: str | Path, seconds: float = 1.0, codec: str = "aac") -> Path:
    """Write a file holding only a sine-wave sound (no video stream)."""
    import av

    with av.open(str(path), "w") as out:
        _write_sine(out, _add_sine_stream(out, codec), seconds)
    return Path(path)


def _add_sine_stream(out, codec: str):
    stream = out.add_stream(codec, rate=SAMPLE_RATE)
    stream.layout = "mono"
    return stream


def _write_sine(out, stream, seconds: float) -> None:
    import av

    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    for start in range(0, len(samples), AUDIO_CHUNK):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + AUDIO_CHUNK], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
