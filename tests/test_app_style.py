"""The web app's "From one painting" tab, without a browser: previews stream while the painting
emerges, the results are PNGs, a bad photo is named and the others done, sizes are capped with a note."""

import numpy as np
import pytest
import torch
from PIL import Image

import gan_style.app.stylize as app_stylize
from gan_style.app.stylize import capped_side, stylize_stream


def write(path, h: int, w: int, seed: int):
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    Image.fromarray(low).resize((w, h), Image.BICUBIC).save(path)
    return path


def test_previews_stream_and_results_are_written(tmp_path, monkeypatch):
    monkeypatch.setattr(app_stylize, "PREVIEW_EVERY_S", 0.0)  # a preview at every step
    photos = [(write(tmp_path / "a.png", 48, 64, 1), "holiday.png"), (tmp_path / "bad.png", "notes.png")]
    (tmp_path / "bad.png").write_bytes(b"no image")
    painting = (write(tmp_path / "p.png", 80, 80, 2), "monet.png")
    updates = list(stylize_stream(photos, painting, 0.6, False, tmp_path / "out", torch.device("cpu"), steps=4))
    steps = [u for u in updates if "step" in u.status]
    assert len(steps) == 4 and all(u.preview.is_file() and u.preview.suffix == ".jpg" for u in steps)
    last = updates[-1]
    assert last.status.startswith("Stylized 1 of 2 photo(s) at strength 0.6") and "notes.png" in last.status
    assert [p.name for p in last.results] == ["holiday_painted.png"]
    assert Image.open(last.results[0]).size == (64, 48)
    assert len(last.warnings) == 1 and "cannot read image" in last.warnings[0]


def test_a_bad_painting_is_one_error(tmp_path):
    (tmp_path / "p.png").write_bytes(b"no image")
    photo = write(tmp_path / "a.png", 48, 64, 1)
    with pytest.raises(OSError, match="monet.png: cannot read image"):
        list(stylize_stream([(photo, "a.png")], (tmp_path / "p.png", "monet.png"), 0.5, False, tmp_path,
                            torch.device("cpu")))


def test_cpu_sizes_are_capped_with_a_note(tmp_path):
    big = Image.new("RGB", (1200, 900))
    side, note = capped_side(big, torch.device("cpu"), None)
    assert side == app_stylize.CPU_MAX_SIDE and "1200 px is over this server's limit of 512 px" in note
    assert capped_side(Image.new("RGB", (300, 200)), torch.device("cpu"), None) == (None, "")
    photo = write(tmp_path / "a.png", 96, 128, 1)
    painting = (write(tmp_path / "p.png", 80, 80, 2), "p.png")
    last = list(stylize_stream([(photo, "a.png")], painting, 0.5, True, tmp_path / "out", torch.device("cpu"),
                               max_side=64, steps=2))[-1]
    assert Image.open(last.results[0]).size == (64, 48) and "limit of 64 px" in last.warnings[0]
