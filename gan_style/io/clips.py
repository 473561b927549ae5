"""Write synthetic video clips with PyAV: moving shapes over a gradient, with a sine-wave sound.

Used by the video tests and the video benchmark, which need clips of a known size, length,
frame rate and motion without shipping any video file:

    write_clip("clip.mp4", 64, 48, seconds=2, fps=12)                   # H.264 + AAC
    write_clip("still.mkv", 64, 48, motion="static", lossless=True)     # every frame identical
    write_clip("blink.mp4", 64, 48, motion="flicker")                   # brightness alternates
    write_sound("sound.mkv")                                            # audio only

Needs PyAV (the ``video`` extra).
"""

from __future__ import annotations

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
    audio: str | None = "aac",
    codec: str = "h264",
    lossless: bool = False,
    rotation: int = 0,
    pts: list[int] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a clip of ``seconds`` at a constant ``fps``, or frames at the given ``pts`` (in 1/1000 s).

    ``audio``: the audio codec of a mono 440 Hz sine track of the same length (None: no sound).
    ``lossless``: H.264 at qp 0 in 4:4:4, so identical frames decode identically (no coding noise).
    ``rotation``: display rotation stored in the container (degrees counter-clockwise).
    ``metadata``: container tags (title, comment, ...).
    """
    import av

    path = Path(path)
    # Constant rate: time base 1/fps, frame i at i. Explicit pts: time base 1/1000.
    time_base = Fraction(1, 1000) if pts is not None else Fraction(1, fps)
    times = pts if pts is not None else list(range(round(seconds * fps)))
    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv444p" if lossless else "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        video.options = {"qp": "0"} if lossless else {}
        if rotation:
            video.set_display_rotation(rotation)
        sound = _add_sine_stream(out, audio) if audio else None
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(clip_frame(width, height, i, motion), format="rgb24")
            frame.pts, frame.time_base = t, time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            end = float((times[-1] * time_base if times else 0) + Fraction(1, fps))
            _write_sine(out, sound, end)
    return path


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
