"""Baselines beside a paired evaluation, on a tiny task whose figures are computed by hand: the
input untranslated, histogram matching to the target domain, the oracle linear map, over all
values and within the mask."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gan_style.inference.weights import GeneratorInfo
from gan_style.metrics.paired import ssim
from gan_style.metrics.paired_run import default_reference

RNG = np.random.default_rng(3)


def curve(x: np.ndarray) -> np.ndarray:
    """The known answer: a monotone curve, so histogram matching recovers it from unpaired data."""
    return x.astype(np.float64) ** 2 / 10.0


def save(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(values, np.float32))


@pytest.fixture
def task(tmp_path):
    """Two 16 x 16 inputs, each a permutation of 0..255; truth = curve(x) +-1 in a checkerboard; the
    model's translation = truth + 3; the target domain's training data = curve(0..255)."""
    sign = np.where(np.indices((16, 16)).sum(0) % 2 == 0, 1.0, -1.0)
    xs = [RNG.permutation(256).reshape(16, 16).astype(np.float64) for _ in range(2)]
    truths = [curve(x) + sign for x in xs]
    for i, (x, t) in enumerate(zip(xs, truths)):
        save(tmp_path / "input" / f"{i}.tif", x)
        save(tmp_path / "truth" / f"{i}.tif", t)
        save(tmp_path / "fake" / f"{i}.tif", t + 3)
    save(tmp_path / "trainB" / "b.tif", curve(np.arange(256)).reshape(16, 16)[::-1])  # any order: only the histogram
    return tmp_path, np.stack(xs), np.stack(truths)


def by_hand(pred: np.ndarray, truth: np.ndarray, data_range: float, mask=None) -> dict:
    """MAE and PSNR pooled over the values (within ``mask``); SSIM the mean of the files'."""
    diff = (pred - truth)[mask] if mask is not None else (pred - truth).ravel()
    ssims = [ssim(p[None, ..., None], t[None, ..., None], data_range, None if mask is None else m[None, ..., None])
             for p, t, m in zip(pred, truth, mask if mask is not None else [None] * len(pred))]
    return {"mae": np.abs(diff).mean(), "psnr": 10 * math.log10(data_range**2 / np.square(diff).mean()),
            "ssim": np.mean(ssims)}


def check(got: dict, want: dict) -> None:
    assert got["mae"] == pytest.approx(want["mae"], rel=1e-6)
    assert got["psnr"] == pytest.approx(want["psnr"], rel=1e-6)
    assert got["ssim"] == pytest.approx(want["ssim"], rel=1e-6)


def test_baselines_by_hand(task, run_cli):
    root, x, truth = task
    code, out, err = run_cli("--paired", "--fake", str(root / "fake"), "--real", str(root / "truth"), "--input",
                             str(root / "input"), "--reference", str(root / "trainB"), "--oracle", "--mask-above",
                             "1000", "--json", "-")
    assert code == 0, err
    report = json.loads(out)["results"]
    methods = report["baselines"]["methods"]
    assert list(methods) == ["model", "input untranslated", "histogram matching", "best linear map (oracle)"]
    r = truth.max() - truth.min()  # one data range: the truths'
    assert report["data_range"] == pytest.approx(r)
    mask = truth > 1000
    # Histogram matching: each input's k-th smallest value -> curve(k), the truth but for the +-1.
    matched = curve(x)
    a, b = np.polyfit(x.ravel(), truth.ravel(), 1)  # the oracle, over all values ...
    am, bm = np.polyfit(x[mask], truth[mask], 1)  # ... and over the mask's
    for method, pred, pred_mask in (("model", truth + 3, truth + 3), ("input untranslated", x, x),
                                    ("histogram matching", matched, matched),
                                    ("best linear map (oracle)", a * x + b, am * x + bm)):
        check(methods[method]["all"], by_hand(pred, truth, r))
        check(methods[method]["mask"], by_hand(pred_mask, truth, r, mask))
    assert methods["histogram matching"]["all"]["mae"] == pytest.approx(1.0)  # exactly the +-1
    assert methods["model"]["all"]["mae"] == pytest.approx(3.0)
    assert report["baselines"]["oracle_fit"]["all"] == pytest.approx({"a": a, "b": b})
    table = err  # --json -: the table goes to stderr
    assert "the model loses on MAE (all values) to: histogram matching" in table
    assert "the model loses on MAE (within the mask) to: histogram matching" in table
    assert f"onto the values of {root / 'trainB'} (--reference)" in table


def test_without_inputs_no_baselines_and_without_reference_no_histogram_matching(task, run_cli):
    root, _, _ = task
    code, out, _ = run_cli("--paired", "--fake", str(root / "fake"), "--real", str(root / "truth"))
    assert code == 0 and "baselines: give --input DIR" in out
    code, out, _ = run_cli("--paired", "--fake", str(root / "fake"), "--real", str(root / "truth"), "--input",
                           str(root / "input"))
    assert code == 0 and "histogram matching: left out (it needs the target domain's training data" in out
    assert "input untranslated" in out and "oracle" not in out


def test_untranslated_is_left_out_where_the_units_differ(task, run_cli):
    root, x, _ = task
    for i in range(2):  # uint16 inputs against float32 truths: other stored values
        tifffile.imwrite(root / "input" / f"{i}.tif", x[i].astype(np.uint16))
    code, out, _ = run_cli("--paired", "--fake", str(root / "fake"), "--real", str(root / "truth"), "--input",
                           str(root / "input"), "--reference", str(root / "trainB"), "--json", str(root / "r.json"))
    assert code == 0
    methods = json.loads((root / "r.json").read_text())["results"]["baselines"]["methods"]
    assert list(methods) == ["model", "histogram matching"]
    assert "input untranslated: left out (the input's units are not the ground truth's)" in out


def test_the_reference_defaults_to_the_checkpoints_target_training_data(tmp_path):
    (tmp_path / "trainB").mkdir()
    info = GeneratorInfo(arch={}, origin="x", direction="AtoB", data_root=str(tmp_path))
    found = default_reference(info)
    assert found.reference == tmp_path / "trainB" and found.reference_from == "the checkpoint's data.root/trainB"
    assert default_reference(GeneratorInfo(arch={}, origin="x", direction="BtoA", data_root=str(tmp_path))).reference is None
    assert default_reference(info, tmp_path / "other").reference is None  # --data-root without trainB
