"""Videos: `gan-style translate` on clips generated here with PyAV (moving shapes + a sine-wave sound).

Each clip is 64 x 48, 1-2 s at 12 fps; the generator is a tiny random one (ngf 8, 2 blocks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from gan_style import translate_image
from gan_style.bench.clips import write_clip, write_sound
from gan_style.cli import main as cli_main
from gan_style.inference import translate as translate_module
from gan_style.inference import video as video_module
from gan_style.inference.translate import Generator
from gan_style.inference.video import TemporalBlend, VideoError, VideoSettings, stream_seconds, translate_video
from gan_style.inference.weights import GeneratorInfo
from gan_style.inference.flicker import FlickerMeter, flicker
from gan_style.nets import ResnetGenerator, init_weights

ARCH = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2}
FPS = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net() -> ResnetGenerator:
    torch.manual_seed(0)
    return init_weights(ResnetGenerator(**ARCH), gain=0.2).eval()


@pytest.fixture(scope="module")
def gen(net) -> Generator:
    return Generator(net, GeneratorInfo(arch=ARCH, origin="tiny"), torch.device("cpu"), "fp32")


@pytest.fixture(scope="module")
def weights(net, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "G.pth"
    torch.save(net.state_dict(), path)
    return str(path)


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """All frames of a video as (H, W, 3) uint8 as stored, and their times in seconds."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = [(a.codec_context.name, stream_seconds(a)) for a in c.streams.audio]
        return {
            "size": (v.width, v.height),
            "frames": sum(1 for _ in c.decode(video=0)),
            "rate": v.average_rate,
            "seconds": stream_seconds(v),
            "codec": v.codec_context.name,
            "audio": audio,
            "metadata": dict(c.metadata),
        }


def translate(weights: str, *args: str) -> list[str]:
    return ["translate", "-w", weights, "--workers", "0", *args]


# ---------------------------------------------------------------- timing, size, sound, metadata


def test_video_keeps_frames_rate_size_duration_sound_and_tags(weights, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", 64, 48, seconds=2, fps=FPS, metadata={"title": "holiday"})
    args = translate(weights, "-i", str(clip), "-o", str(tmp_path / "out"))
    assert cli_main(args) == 0
    err = capsys.readouterr().err
    out = tmp_path / "out" / "clip.mp4"
    assert f"{clip}: 24 frames in" in err and "flicker" in err and f"audio: aac copied -> {out}" in err
    src, dst = probe(clip), probe(out)
    assert dst["size"] == (64, 48) and dst["frames"] == 24 and dst["rate"] == FPS and dst["codec"] == "h264"
    assert dst["seconds"] == pytest.approx(src["seconds"], abs=1 / FPS / 2)
    assert dst["audio"] == src["audio"] and src["audio"][0][1] == pytest.approx(2.0, abs=0.07)
    assert dst["metadata"]["title"] == "holiday"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clip.mp4"]  # no temporary file left

    before = out.stat().st_mtime_ns  # an existing output is kept unless --overwrite
    assert cli_main(args) == 0
    assert "skipped 1 existing output(s)" in capsys.readouterr().err and out.stat().st_mtime_ns == before
    assert cli_main(args + ["--overwrite", "--size", "24", "--video-ext", "mkv"]) == 0
    assert probe(tmp_path / "out" / "clip.mkv")["size"] == (32, 24)  # shorter side 24, aspect kept


def test_frames_equal_what_the_image_path_gives(gen, tmp_path, monkeypatch):
    # Lossless in and out (H.264 qp 0 in 4:4:4), so "codec tolerance" is only RGB <-> YUV rounding.
    clip = write_clip(tmp_path / "clip.mkv", 64, 48, seconds=1, fps=FPS, lossless=True, audio=None)
    tiled = []
    real_tiled = translate_module.translate_tiled
    monkeypatch.setattr(translate_module, "translate_tiled", lambda *a: tiled.append(1) or real_tiled(*a))
    translate_video(gen, clip, tmp_path / "out.mkv", VideoSettings(crf=0, tile=32, batch_size=3, progress=False))
    assert tiled  # --tile reaches the frames: the exact tiling, as for images
    inputs, _ = decode(clip)
    outputs, _ = decode(tmp_path / "out.mkv")
    assert len(outputs) == len(inputs) == FPS
    for i, (x, y) in enumerate(zip(inputs, outputs)):
        expected = np.asarray(translate_image(gen, Image.fromarray(x), tile=0), dtype=np.int16)
        assert np.abs(y - expected).mean() < 1.0 and np.abs(y - expected).max() <= 6
        other = np.asarray(translate_image(gen, Image.fromarray(inputs[(i + 3) % len(inputs)])), dtype=np.int16)
        assert np.abs(y - other).mean() > 5  # the comparison can tell frames apart


def test_variable_frame_rate_and_rotation_are_kept(gen, tmp_path):
    pts = [0, 100, 200, 450, 500, 900, 1000, 1300]  # ms: a variable frame rate
    clip = write_clip(tmp_path / "vfr.mp4", 64, 48, fps=10, pts=pts, rotation=90, lossless=True, audio=None)
    result = translate_video(gen, clip, tmp_path / "out.mp4", VideoSettings(crf=0, progress=False))
    assert result.frames == len(pts)
    raw, _ = decode(clip)
    outputs, times = decode(tmp_path / "out.mp4")
    assert times == pytest.approx([t / 1000 for t in pts], abs=1e-3)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (48, 64)  # upright: portrait
        assert next(c.decode(video=0)).rotation == 0  # applied to the pixels, not stored again
    upright = np.asarray(translate_image(gen, Image.fromarray(np.rot90(raw[3]).copy())), dtype=np.int16)
    flipped = np.asarray(translate_image(gen, Image.fromarray(np.rot90(raw[3], -1).copy())), dtype=np.int16)
    assert np.abs(outputs[3] - upright).mean() < 1.0 < np.abs(outputs[3] - flipped).mean()


def test_audio_the_container_cannot_hold_is_reencoded_with_a_warning(weights, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", 64, 48, seconds=1, fps=FPS)  # AAC: WebM takes only Opus/Vorbis
    assert cli_main(translate(weights, "-i", str(clip), "-o", str(tmp_path / "out"), "--video-ext", "webm")) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "aac audio cannot go into webm: re-encoded to libopus" in err
    dst = probe(tmp_path / "out" / "clip.webm")
    assert dst["codec"] == "vp9" and dst["frames"] == FPS
    (codec, seconds), = dst["audio"]
    assert codec == "opus" and seconds == pytest.approx(probe(clip)["audio"][0][1], abs=0.05)


# ---------------------------------------------------------------- bad input


def test_bad_videos_are_reported_and_the_rest_of_the_folder_done(weights, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = write_clip(folder / "good.mp4", 64, 48, seconds=1, fps=FPS)
    data = good.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])  # MP4 index at the end: unreadable
    mkv = write_clip(tmp_path / "long.mkv", 64, 48, seconds=2, fps=FPS).read_bytes()
    (folder / "cut.mkv").write_bytes(mkv[: len(mkv) // 2])  # Matroska: readable up to the cut
    write_sound(folder / "sound.mkv")  # audio only
    (folder / "fake.mov").write_text("not a video")
    Image.new("RGB", (20, 16), "teal").save(folder / "photo.png")
    assert cli_main(translate(weights, "-i", str(folder), "-o", str(tmp_path / "out"))) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "translated 1 image(s)" in err and "translated 2 video(s)" in err
    failed = err.split("failed 4:")[1].strip().splitlines()
    assert len(failed) == 4
    assert any(f"{folder / 'cut.mp4'}: cannot read video" in line for line in failed)
    assert any(f"{folder / 'fake.mov'}: cannot read video" in line for line in failed)
    assert any(f"{folder / 'sound.mkv'}: no video stream" in line for line in failed)
    assert any(f"{folder / 'cut.mkv'}: truncated" in line for line in failed)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["cut.mkv", "good.mp4", "photo.png"]  # a truncated video keeps what it had
    assert 6 <= probe(tmp_path / "out" / "cut.mkv")["frames"] < 24


def test_a_corrupt_frame_is_skipped_and_counted(gen, tmp_path):
    clip = write_clip(tmp_path / "clip.mkv", 64, 48, seconds=2, fps=FPS, audio=None)
    with av.open(str(clip)) as c:
        pos, size = [(p.pos, p.size) for p in c.demux(video=0) if p.size][12]
    data = bytearray(clip.read_bytes())
    data[pos + size // 4 : pos + size] = b"\x55" * (size - size // 4)  # garble frame 12's data
    (tmp_path / "bad.mkv").write_bytes(data)
    result = translate_video(gen, tmp_path / "bad.mkv", tmp_path / "out.mkv", VideoSettings(progress=False))
    assert result.corrupt == 1 and result.frames == 23 and result.truncated is None
    assert "1 corrupt frame(s) skipped" in result.summary()
    assert probe(tmp_path / "out.mkv")["frames"] == 23


def test_without_pyav_videos_fail_with_the_fix_and_images_are_done(weights, tmp_path, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    write_clip(tmp_path / "in" / "clip.mp4", 64, 48, seconds=0.5, fps=FPS)
    Image.new("RGB", (20, 16), "teal").save(tmp_path / "in" / "photo.png")
    monkeypatch.setitem(sys.modules, "av", None)  # "import av" now raises ImportError
    assert cli_main(translate(weights, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"))) == 1
    err = capsys.readouterr().err
    assert "1 video(s) not translated: videos need PyAV: pip install 'gan_style[video]' (or make setup)" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png"]


def test_importing_the_cli_does_not_import_pyav():
    code = "import sys, gan_style.cli.translate, gan_style.inference.video; sys.exit('av' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------- interruption


def test_an_interrupt_in_the_pipeline_leaves_the_old_output_and_no_temporary_file(gen, tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "clip.mp4", 64, 48, seconds=2, fps=FPS)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "clip.mp4").write_bytes(b"previous result")
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # in the translate thread, after two batches were encoded
            raise KeyboardInterrupt
        return translate_module.translate_tensor(*args, **kwargs)

    monkeypatch.setattr(video_module, "translate_tensor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        translate_video(gen, clip, tmp_path / "out" / "clip.mp4", VideoSettings(batch_size=2, progress=False))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clip.mp4"]
    assert (tmp_path / "out" / "clip.mp4").read_bytes() == b"previous result"


SLOW_CLI = """
import signal, sys, time
# Ctrl-C as at a terminal: a command started in the background by a non-interactive shell
# (e.g. 'nohup ... &') inherits SIGINT ignored, and Python then keeps it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
import gan_style.inference.video as video
real = video.translate_tensor
def slow(*args, **kwargs):  # so the test can interrupt it mid-video
    time.sleep(0.25)
    return real(*args, **kwargs)
video.translate_tensor = slow
from gan_style.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_keeps_finished_videos_and_leaves_no_partial_one(weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "a.mp4", 64, 48, seconds=0.5, fps=FPS)  # done before the interrupt
    write_clip(folder / "b.mp4", 64, 48, seconds=2, fps=FPS)  # interrupted
    out = tmp_path / "out"
    env = os.environ | {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = translate(weights, "-i", str(folder), "-o", str(out), "-b", "2")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".b.mp4.") for p in out.glob(".*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4"]
    assert probe(out / "a.mp4")["frames"] == 6


# ---------------------------------------------------------------- flicker


def test_flicker_metric_is_zero_when_still_and_grows_with_flicker():
    rng = np.random.default_rng(0)
    inputs = np.repeat(rng.integers(0, 256, (1, 12, 16, 3), dtype=np.uint8), 8, axis=0)
    inputs[:, 4:8, :] = np.arange(8, dtype=np.uint8)[:, None, None, None] * 5  # a band that changes
    assert flicker(inputs, inputs) == 1.0  # output changes exactly as the input
    assert flicker(inputs, np.repeat(inputs[:1], 8, axis=0)) == 0.0  # output stands still
    figures = []
    for amplitude in (0, 10, 40):
        noise = (np.arange(8) % 2 * amplitude)[:, None, None, None]
        figures.append(flicker(inputs, np.clip(inputs.astype(int) + noise, 0, 255).astype(np.uint8)))
    assert figures[0] == 1.0 and figures[0] < figures[1] < figures[2]
    chunked = FlickerMeter()
    for start in range(0, 8, 3):  # fed in chunks: the same figure
        chunked.update(inputs[start : start + 3], inputs[::-1][start : start + 3])
    assert chunked.ratio == pytest.approx(flicker(inputs, inputs[::-1]))
    assert flicker(np.zeros((3, 2, 2, 3), np.uint8), np.zeros((3, 2, 2, 3), np.uint8)) == 0.0


def test_flicker_in_the_summary_is_zero_for_a_still_clip_and_grows_for_a_flickering_one(gen, tmp_path):
    settings = VideoSettings(progress=False)
    still = write_clip(tmp_path / "still.mkv", 64, 48, seconds=1, fps=FPS, motion="static", lossless=True)
    assert translate_video(gen, still, tmp_path / "a.mkv", settings).flicker == 0.0
    blink = write_clip(tmp_path / "blink.mkv", 64, 48, seconds=1, fps=FPS, motion="flicker", lossless=True)
    result = translate_video(gen, blink, tmp_path / "b.mkv", settings)
    assert result.flicker > 0.05 and "flicker 0.000" not in result.summary()


def test_deflicker_blends_still_areas_and_keeps_changes():
    blend = TemporalBlend(0.8)
    x = torch.zeros(6, 3, 8, 8)
    x[3:] = 1.0  # a cut at frame 3: the whole input changes
    y = torch.randn(6, 3, 8, 8)  # translations that flicker although the input is still
    out = blend(x[:3], y[:3])
    out = torch.cat([out, blend(x[3:], y[3:])])  # state carries over between batches
    assert torch.equal(out[0], y[0]) and torch.equal(out[3], y[3])  # first frame and the cut: fresh output
    assert torch.allclose(out[1], 0.2 * y[1] + 0.8 * out[0])  # still input: mostly the previous output
    def changes(t):
        return (t[1:3] - t[0:2]).abs().mean()
    assert changes(out) < 0.5 * changes(y)
    with pytest.raises(ValueError, match="deflicker"):
        TemporalBlend(1.0)


def test_deflicker_option_reduces_the_measured_flicker(weights, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", 64, 48, seconds=1, fps=FPS)
    figures = []
    for strength in ("0", "0.8"):
        args = translate(weights, "-i", str(clip), "-o", str(tmp_path / strength), "--deflicker", strength)
        assert cli_main(args) == 0
        line = next(line for line in capsys.readouterr().err.splitlines() if "flicker" in line)
        figures.append(float(line.split("flicker ")[1].split(",")[0]))
    assert figures[1] < 0.8 * figures[0]
    with pytest.raises(SystemExit):  # argparse: "--deflicker 1.5: use a strength in [0, 1)"
        cli_main(translate(weights, "-i", str(clip), "--deflicker", "1.5"))


def test_single_video_output_names(weights, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", 64, 48, seconds=0.5, fps=FPS)
    Image.new("RGB", (20, 16), "teal").save(tmp_path / "photo.png")
    assert cli_main(translate(weights, "-i", str(clip), "-o", str(tmp_path / "painted.mkv"))) == 0
    assert probe(tmp_path / "painted.mkv")["frames"] == 6
    assert cli_main(translate(weights, "-i", str(clip), "-o", str(tmp_path / "painted.png"))) == 2
    assert "needs a video name" in capsys.readouterr().err
    assert cli_main(translate(weights, "-i", str(tmp_path / "photo.png"), "-o", str(tmp_path / "p.mp4"))) == 2
    assert "needs an image name" in capsys.readouterr().err


def test_video_errors_are_one_line(gen, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", 64, 48, seconds=0.5, fps=FPS)
    with pytest.raises(VideoError, match="--codec nope: no such encoder"):
        translate_video(gen, clip, tmp_path / "o.mp4", VideoSettings(codec="nope", progress=False))
    with pytest.raises(VideoError, match="cannot write .avi videos"):
        translate_video(gen, clip, tmp_path / "o.avi", VideoSettings(progress=False))
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))
