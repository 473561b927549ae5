"""The CPU translation-path benchmark runs every path and measures each one's error honestly."""

from __future__ import annotations

import pytest
from app_helpers import smooth_image

from gan_style.bench.cpu_paths import bench_cpu_paths, format_table, photo_errors
from gan_style.devices import native_bf16_cpu

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paths_side_by_side_with_their_errors(tmp_path):
    paths = ("fp32", "fp32 channels_last", "bf16-blocks", "onnxruntime fp32", "gan_style default")
    rows = bench_cpu_paths(size=(40, 32), ngf=4, n_blocks=1, repeats=1, paths=paths)
    assert [r["path"] for r in rows] == list(paths)
    err = {r["path"]: r["max_err_255"] for r in rows}
    assert err["fp32"] == 0 and err["fp32 channels_last"] < 0.01 and err["onnxruntime fp32"] < 0.05
    assert err["bf16-blocks"] > 0  # really computed in bf16
    assert err["gan_style default"] == (err["bf16-blocks"] if native_bf16_cpu() else 0)
    assert all(r["img_per_s"] == pytest.approx(1 / r["s_per_image"]) and r["best_s"] <= r["s_per_image"] for r in rows)
    assert format_table(rows).splitlines()[0].split() == list(rows[0])
    smooth_image(36, 28).save(tmp_path / "photo.png")
    (row,) = photo_errors(None, [tmp_path / "photo.png"], ngf=4, n_blocks=1)
    assert row["size"] == "36x28" and row["bf16_err_255"] > 0 and row["bf16-blocks_err_255"] > 0
    with pytest.raises(ValueError, match="unknown paths"):
        bench_cpu_paths(paths=("fp64",))


def test_backend_rows_and_autos_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path))  # where auto would remember its choice
    paths = ("fp32", "onnxruntime fp32", "openvino f32", "openvino bf16", "backend auto")
    rows = {r["path"]: r for r in bench_cpu_paths(size=(40, 32), ngf=4, n_blocks=1, repeats=1, paths=paths)}
    assert list(rows) == list(paths) and rows["openvino f32"]["max_err_255"] < 0.05
    auto = rows["backend auto"]
    chosen = auto["auto_choice"].split(" (auto")[0]
    assert chosen in ("torch fp32", "torch bf16-blocks", "onnxruntime fp32", "openvino fp32", "openvino bf16")
    assert auto["max_err_255"] <= (3 if "bf16" in chosen else 2)
    assert list(tmp_path.iterdir()) == []  # the bench measures afresh each time: nothing remembered
