"""Paired metrics in the data's own units: MAE / PSNR / SSIM against hand computations, the
data range and the mask, matching files between folders, and ``gan-style eval --paired``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_style.io.scans import Scan
from gan_style.metrics import paired
from gan_style.metrics.paired import mae, match_folders, paired_report, psnr, ssim


def planes(a) -> np.ndarray:
    """A 2-D list / array as one plane of one channel: (1, H, W, 1) float64."""
    a = np.asarray(a, np.float64)
    return a.reshape(1, *a.shape, 1)


# Truth 0, 100, ..., 1500 (4x4); the prediction is off by +10 at index 0 and 10, -20 at index 15.
TRUTH = planes(np.arange(16).reshape(4, 4) * 100)
PRED = TRUTH.copy()
for index, delta in ((0, 10), (10, 10), (15, -20)):
    PRED.reshape(-1)[index] += delta


# ---------------------------------------------------------------- the metrics on arrays


def test_mae_and_psnr_by_hand():
    assert mae(PRED, TRUTH) == pytest.approx((10 + 10 + 20) / 16, abs=1e-12)
    mse = (100 + 100 + 400) / 16
    assert psnr(PRED, TRUTH, 1500) == pytest.approx(10 * math.log10(1500**2 / mse), abs=1e-12)
    assert psnr(PRED, TRUTH, 3000) == pytest.approx(10 * math.log10(3000**2 / mse), abs=1e-12)  # range matters
    assert psnr(TRUTH, TRUTH, 1500) == math.inf and mae(TRUTH, TRUTH) == 0


def test_mask_counts_only_values_above_the_threshold():
    mask = TRUTH > 700  # 800 ... 1500: 8 values, holding the errors +10 (1000) and -20 (1500)
    assert mae(PRED, TRUTH, mask) == pytest.approx(30 / 8, abs=1e-12)
    assert psnr(PRED, TRUTH, 1500, mask) == pytest.approx(10 * math.log10(1500**2 / (500 / 8)), abs=1e-12)


def ssim_by_hand(x: np.ndarray, y: np.ndarray, data_range: float, win: int = 7) -> np.ndarray:
    """The SSIM map of two 2-D planes at every position where a win x win uniform window fits:
    window means, sample (co)variances (ddof 1), K1 = 0.01, K2 = 0.03 (Wang et al. 2004)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, w = x.shape
    out = np.empty((h - win + 1, w - win + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            a, b = x[i : i + win, j : j + win].ravel(), y[i : i + win, j : j + win].ravel()
            cov = np.cov(a, b, ddof=1)
            out[i, j] = ((2 * a.mean() * b.mean() + c1) * (2 * cov[0, 1] + c2)
                         / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
    return out


def test_ssim_of_identical_images_is_one():
    x = np.random.default_rng(0).uniform(-1000, 2000, size=(2, 9, 11, 3))
    assert ssim(x, x, 3000) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_the_formula_one_and_three_channels_and_a_volume():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 4000, size=(2, 10, 12, 3))
    y = x + rng.normal(0, 300, size=x.shape)
    maps = [ssim_by_hand(x[s, ..., c], y[s, ..., c], 4000) for s in range(2) for c in range(3)]  # (4, 6) each
    assert ssim(y[:1, ..., :1], x[:1, ..., :1], 4000) == pytest.approx(maps[0].mean(), abs=1e-6)
    assert ssim(y, x, 4000) == pytest.approx(np.mean(maps), abs=1e-6)  # planes and channels averaged
    assert ssim(y[..., :1], x[..., :1], 400) != pytest.approx(maps[0].mean(), abs=1e-3)  # the range matters
    # Masked: the mean of the map over masked values where the window fits (the 3-px border is out).
    mask = x > 2000
    inner = mask[0, 3:-3, 3:-3, 0]
    expected = maps[0][inner].mean()
    assert ssim(y[:1, ..., :1], x[:1, ..., :1], 4000, mask[:1, ..., :1]) == pytest.approx(expected, abs=1e-6)


def test_small_planes_use_the_largest_odd_window_and_tiny_ones_are_refused():
    x = np.random.default_rng(2).uniform(0, 100, size=(1, 5, 6, 1))
    y = x[..., ::-1, :].copy()
    assert paired.ssim_window(5, 6) == 5 and paired.ssim_window(4, 40) == 3
    assert ssim(y, x, 100) == pytest.approx(ssim_by_hand(y[0, ..., 0], x[0, ..., 0], 100, win=5).mean(), abs=1e-6)
    with pytest.raises(ValueError, match="too small for SSIM"):
        ssim(x[:, :2], y[:, :2], 100)


# ---------------------------------------------------------------- reports, matching


@pytest.fixture
def fake_scans(monkeypatch):
    """Arrays stand in for files: read_scan(path) returns the Scan stored under path's name."""
    store: dict[str, np.ndarray] = {}

    def read(path, axis=2, volume=None):
        return Scan(Path(path), store[Path(path).name], "tiff")

    monkeypatch.setattr(paired, "read_scan", read)
    return store


def test_report_uses_one_data_range_from_all_ground_truths(fake_scans):
    fake_scans |= {"p1": PRED.astype(np.float32), "t1": TRUTH.astype(np.float32),
                   "p2": planes(np.full((4, 4), -90.0)), "t2": planes(np.full((4, 4), -100.0))}
    report = paired_report([("one", Path("p1"), Path("t1")), ("two", Path("p2"), Path("t2"))])
    assert report["data_range"] == 1600  # -100 (second truth) ... 1500 (first truth)
    one, two = report["images"]
    assert one["psnr"] == pytest.approx(10 * math.log10(1600**2 / (600 / 16)), abs=1e-9)
    assert two["mae"] == 10 and two["pixels"] == 16
    c1 = (0.01 * 1600) ** 2  # flat planes: no variance, SSIM is the luminance term alone
    assert two["ssim"] == pytest.approx((2 * 90 * 100 + c1) / (90**2 + 100**2 + c1), abs=1e-12)
    overall = report["overall"]
    assert overall["mae"] == pytest.approx((40 + 160) / 32) and overall["pixels"] == 32  # value-weighted
    assert overall["psnr"] == pytest.approx(10 * math.log10(1600**2 / ((600 + 1600) / 32)), abs=1e-9)
    assert overall["ssim"] == pytest.approx((one["ssim"] + two["ssim"]) / 2)
    given = paired_report([("one", Path("p1"), Path("t1"))], data_range=1500, mask_above=700)
    assert given["data_range"] == 1500 and given["data_range_from"] == "given"
    assert given["images"][0]["mae"] == pytest.approx(30 / 8) and given["images"][0]["pixels"] == 8


def test_nan_pair_is_skipped_with_one_line_and_identical_psnr_is_null(fake_scans, caplog):
    bad = TRUTH.copy()
    bad[0, 1, 2, 0] = np.nan
    fake_scans |= {"p1": bad, "t1": TRUTH, "p2": TRUTH, "t2": TRUTH}
    with caplog.at_level(logging.WARNING, logger="gan_style.metrics.paired"):
        report = paired_report([("nan", Path("p1"), Path("t1")), ("same", Path("p2"), Path("t2"))])
    assert [r["name"] for r in report["images"]] == ["same"] and report["images"][0]["psnr"] is None
    (error,) = report["errors"]
    assert error["name"] == "nan" and "1 NaN/Inf" in error["error"] and "\n" not in error["error"]
    assert any("nan: " in r.getMessage() and "NaN/Inf" in r.getMessage() for r in caplog.records)
    json.dumps(report, allow_nan=False)  # strictly valid JSON: no Infinity / NaN


def test_matching_by_relative_path_then_by_name_without_suffix(tmp_path, caplog):
    files = {"fake": ["a.png", "b.png", "sub/c.nii.gz", "d.png", "e.png", "e.tif", ".hidden.png", "notes.txt"],
             "real": ["a.png", "b.tif", "sub/c.nii.gz", "e.bmp", "f.png"]}
    for side, names in files.items():
        for name in names:
            (tmp_path / side / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / side / name).touch()
    with caplog.at_level(logging.WARNING, logger="gan_style.metrics.paired"):
        pairs = match_folders(tmp_path / "fake", tmp_path / "real")
    assert [(p.name, p.real.name) for p in pairs] == [("a.png", "a.png"), ("b.png", "b.tif"),
                                                      ("sub/c.nii.gz", "c.nii.gz")]
    warnings = "\n".join(r.getMessage() for r in caplog.records)
    assert "3 file(s)" in warnings and "d.png, e.png, e.tif" in warnings  # e.* is ambiguous: skipped
    assert "2 file(s)" in warnings and "e.bmp, f.png" in warnings and ".hidden" not in warnings


# ---------------------------------------------------------------- gan-style eval --paired


def save16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint16)).save(path)


def test_cli_paired_16bit_png(tmp_path, run_cli):
    rng = np.random.default_rng(3)
    truth = rng.integers(1000, 5000, size=(2, 12, 10))  # > 255: 16-bit values must survive
    fake = truth + rng.integers(-50, 51, size=truth.shape)
    for i in range(2):
        save16(tmp_path / "real" / f"img{i}.png", truth[i])
        save16(tmp_path / "fake" / f"img{i}.png", fake[i])
    save16(tmp_path / "real" / "wrong.png", truth[0][:11])  # 11x10 against 12x10
    save16(tmp_path / "fake" / "wrong.png", fake[0])
    save16(tmp_path / "fake" / "lonely.png", fake[0])  # no ground truth
    code, stdout, stderr = run_cli("--paired", "--fake", "fake", "--real", "real", "--json", "p.json")
    assert code == 0, stderr
    report = json.loads((tmp_path / "p.json").read_text())["results"]
    span = float(max(truth.max(), truth[0][:11].max()) - min(truth.min(), truth[0][:11].min()))
    assert report["data_range"] == span  # over ALL ground-truth files, the bad pair's included
    assert [r["name"] for r in report["images"]] == ["img0.png", "img1.png"]
    for i, row in enumerate(report["images"]):
        d = (fake[i] - truth[i]).astype(np.float64)
        assert row["mae"] == pytest.approx(np.abs(d).mean(), rel=1e-12) and row["pixels"] == 120
        assert row["psnr"] == pytest.approx(10 * math.log10(span**2 / np.mean(d**2)), rel=1e-12)
        assert row["ssim"] == pytest.approx(ssim_by_hand(fake[i].astype(float), truth[i].astype(float), span).mean(),
                                            abs=1e-6)
    assert report["overall"]["mae"] == pytest.approx(np.abs(fake - truth).mean(), rel=1e-12)
    (error,) = report["errors"]
    assert error["name"] == "wrong.png" and "shapes differ" in error["error"]
    assert "uint16" in report["units"]
    assert "lonely.png" in stderr and "without a ground truth" in stderr and "shapes differ" in stderr
    assert "img1.png" in stdout and "overall (2 images)" in stdout and "skipped wrong.png" in stdout


def test_cli_paired_mask_and_json_on_stdout(tmp_path, run_cli):
    save16(tmp_path / "real" / "a.png", np.arange(16).reshape(4, 4) * 100)
    save16(tmp_path / "fake" / "a.png", (PRED[0, ..., 0]).astype(np.uint16))
    code, stdout, stderr = run_cli("--paired", "--fake", "fake", "--real", "real", "--mask-above", "700",
                                   "--data-range", "1500", "--json", "-")
    assert code == 0, stderr
    (row,) = json.loads(stdout)["results"]["images"]
    assert row["mae"] == pytest.approx(30 / 8) and row["pixels"] == 8
    assert row["psnr"] == pytest.approx(10 * math.log10(1500**2 / (500 / 8)))
    assert "only where truth > 700" in stderr  # the table went to stderr


@pytest.mark.parametrize("args, expected", [
    (["--paired", "--weights", "x.pt", "--real", "r"], "--paired --weights takes one generator and --input DIR"),
    (["--paired", "--fake", "f"], "--paired needs --real DIR"),
    (["--fake", "f", "--real", "r", "--data-range", "10"], "--data-range: only with --paired"),
    (["--paired", "--fake", "nowhere", "--real", "."], "nowhere does not exist"),
    (["--paired", "--fake", ".", "--real", ".", "--data-range", "0"], "must be positive"),
])  # fmt: skip
def test_cli_paired_errors_are_one_line(tmp_path, run_cli, args, expected):
    save16(tmp_path / "x.png", np.zeros((4, 4)))
    code, _, stderr = run_cli(*args)
    assert code == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1
    assert expected in stderr


def test_float32_tiff_pair(tmp_path, run_cli):
    """Float data through the TIFF reader (gan_style/io/tiff.py): values kept, negatives included."""
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(4)
    truth = rng.normal(0, 400, size=(3, 9, 8)).astype(np.float32)  # 3 pages = 3 planes
    fake = (truth + rng.normal(0, 20, size=truth.shape)).astype(np.float32)
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    tifffile.imwrite(tmp_path / "real" / "vol.tif", truth, photometric="minisblack")
    tifffile.imwrite(tmp_path / "fake" / "vol.tif", fake, photometric="minisblack")
    code, _, stderr = run_cli("--paired", "--fake", "fake", "--real", "real", "--json", "t.json")
    assert code == 0, stderr
    report = json.loads((tmp_path / "t.json").read_text())["results"]
    (row,) = report["images"]
    d = fake.astype(np.float64) - truth
    span = float(truth.max()) - float(truth.min())
    assert report["data_range"] == pytest.approx(span) and row["pixels"] == truth.size
    assert row["mae"] == pytest.approx(np.abs(d).mean(), rel=1e-9)
    assert row["psnr"] == pytest.approx(10 * math.log10(span**2 / np.mean(d**2)), rel=1e-9)
    by_hand = np.mean([ssim_by_hand(fake[s].astype(float), truth[s].astype(float), span).mean() for s in range(3)])
    assert row["ssim"] == pytest.approx(by_hand, abs=1e-6)
    assert "float32" in report["units"]
