"""Scientific data end to end: intensity normalisation both ways (also through a checkpoint and an
export), 1-channel training on 16-bit and NIfTI data, the exact translate path, reference
weights with input_nc=1, and the config's one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_overrides
from gan_style.cli import main as cli_main
from gan_style.config import ConfigError
from gan_style.data.dataset import DataError
from gan_style.inference.scans import side_intensity, translate_planes
from gan_style.inference.translate import load_generator
from gan_style.inference.weights import GeneratorInfo, WeightsError
from gan_style.io.intensity import Intensity, IntensityError, cast_to, dtype_range
from gan_style.io.scans import read_scan
from gan_style.methods import load_config
from gan_style.nets import ResnetGenerator, init_weights
from gan_style.training.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- intensity, by hand


def test_window_maps_units_to_model_and_back():
    ct = Intensity("window", -1000.0, 2000.0)
    x = np.array([-1000, 500, 2000, -3000, 5000, np.nan, np.inf], dtype=np.float32)
    y = ct.to_model(x)
    # (x - low) * 2 / (high - low) - 1, clipped; NaN -> -1, +Inf -> +1
    assert np.allclose(y, [-1, 0, 1, -1, 1, -1, 1])
    assert y.dtype == np.float32
    assert np.allclose(ct.from_model(np.array([-1.0, 0.0, 1.0, 0.5])), [-1000, 500, 2000, 1250])


def test_percentile_per_image_uses_each_image_and_range_uses_the_dtype():
    x = np.arange(1001, dtype=np.float64)  # percentiles of 0..1000 are 10 * p
    per_image = Intensity("percentile", 0.0, 1.0, per_image=True, percentiles=(10.0, 90.0))
    assert per_image.window(x) == pytest.approx((100.0, 900.0))
    assert per_image.to_model(np.array([100.0, 500.0, 900.0]))[1] == pytest.approx(0.0)  # its own window
    assert dtype_range("uint16") == (0.0, 65535.0)
    assert dtype_range("int16") == (-32768.0, 32767.0)
    with pytest.raises(IntensityError, match="mode=range needs integer data"):
        dtype_range("float32")


def test_cast_rounds_clips_and_reports_the_clipped_fraction():
    out, clipped = cast_to(np.array([-5.0, 0.4, 0.5, 1.5, 70000.0]), "uint16")
    assert out.dtype == np.uint16 and out.tolist() == [0, 0, 0, 2, 65535]  # half to even
    assert clipped == pytest.approx(2 / 5)
    same, none = cast_to(np.array([-1.25, 3.5]), "float32")
    assert same.tolist() == [-1.25, 3.5] and none == 0.0


def test_intensity_survives_a_dict_round_trip():
    i = Intensity("percentile", 12.5, 3000.0, per_image=True, percentiles=(1.0, 99.0), dtype="int16", channels=1)
    assert Intensity.from_dict(json.loads(json.dumps(i.to_dict()))) == i


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("overrides, message", [
    (["model.input_nc=1"], "model.input_nc=1 needs data.intensity.A.mode"),
    (["model.output_nc=1", "data.intensity.B.mode=range", "data.intensity.A.mode=range"],
     "train.lambda_identity=0.5 needs model.input_nc == output_nc"),
    (["method=cut", "model.input_nc=1", "data.intensity.A.mode=range"], "method=cut needs model.input_nc == output_nc"),
    (["data.intensity.A.mode=window", "data.intensity.A.low=5", "data.intensity.A.high=1"], "needs low < high"),
    (["data.intensity.A.mode=range", "eval.every=1"], "set eval.every=0"),
])
def test_config_errors_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, tiny_overrides(tmp_path, tmp_path) + overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_percentile_defaults_are_written_into_the_config(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, tmp_path) + ["data.intensity.B.mode=percentile"])
    assert (cfg.data.intensity.B.low, cfg.data.intensity.B.high) == (0.5, 99.5)


# ---------------------------------------------------------------- a 1-channel 16-bit run, end to end


def write_16bit_domains(root: Path, n: int = 4) -> None:
    """A: uint16 in [1000, 5000]; B: uint16 in [0, 30000]; 40 x 40 grayscale PNGs."""
    rng = np.random.default_rng(0)
    for domain, (lo, hi) in (("A", (1000, 5000)), ("B", (0, 30000))):
        (root / f"train{domain}").mkdir(parents=True)
        for i in range(n):
            smooth = np.kron(rng.random((5, 5)), np.ones((8, 8)))  # blocks: a learnable structure
            Image.fromarray((lo + smooth * (hi - lo)).astype(np.uint16)).save(root / f"train{domain}" / f"{i}.png")


@pytest.fixture(scope="module")
def run_16bit(tmp_path_factory):
    root = tmp_path_factory.mktemp("sci16")
    write_16bit_domains(root / "data")
    overrides = tiny_overrides(root / "data", root / "runs", train__max_steps=4, train__lambda_identity=0) + [
        "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=window", "data.intensity.A.low=1000",
        "data.intensity.A.high=5000", "data.intensity.B.mode=percentile"]
    run_dir = train(load_config(None, overrides)).parent  # train returns last.pt
    return root, run_dir


def test_run_records_the_resolved_intensities(run_16bit):
    root, run_dir = run_16bit
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    a, b = (Intensity.from_dict(ckpt["intensity"][d]) for d in "AB")
    assert (a.mode, a.low, a.high, a.dtype, a.channels) == ("window", 1000.0, 5000.0, "uint16", 1)
    values = np.concatenate([np.asarray(Image.open(p), dtype=np.float64).ravel()
                             for p in sorted((root / "data" / "trainB").iterdir())])
    assert (b.low, b.high) == pytest.approx(tuple(np.percentile(values, (0.5, 99.5))))  # once, over the dataset
    assert ckpt["generators"]["AtoB"]["source_intensity"] == ckpt["intensity"]["A"]
    assert ckpt["generators"]["AtoB"]["target_intensity"] == ckpt["intensity"]["B"]
    assert json.loads((run_dir / "run_info.json").read_text())["intensity"] == ckpt["intensity"]
    assert ckpt["models"]["G_A"]["model.1.weight"].shape[1] == 1  # a 1-channel generator


def test_translate_maps_outputs_back_into_the_target_units(run_16bit, tmp_path):
    root, run_dir = run_16bit
    src = root / "data" / "trainA" / "0.png"
    assert cli_main(["translate", "-w", str(run_dir / "last.pt"), "-d", "AtoB", "-i", str(src),
                     "-o", str(tmp_path / "out")]) == 0
    out = np.asarray(Image.open(tmp_path / "out" / "0.png"))
    assert out.dtype == np.uint16  # the input's dtype, not 8 bits
    # By hand: A's window in, the generator, B's window out, rounded to uint16.
    gen = load_generator(run_dir / "last.pt", "AtoB", device="cpu", precision="fp32")
    x = np.asarray(Image.open(src), dtype=np.float64)
    y = gen(torch.from_numpy((x - 1000) / 2000 - 1).float()[None, None])[0, 0].numpy().astype(np.float64)
    b = side_intensity(gen.info, "target")
    expected = np.clip(np.rint((y + 1) * (b.high - b.low) / 2 + b.low), 0, 65535)
    assert np.array_equal(out, expected.astype(np.uint16))
    assert out.max() > 255


def test_paired_eval_with_weights_translates_then_compares(run_16bit, tmp_path):
    root, run_dir = run_16bit
    ckpt, inputs = str(run_dir / "last.pt"), str(root / "data" / "trainA")
    assert cli_main(["translate", "-w", ckpt, "-d", "AtoB", "-i", inputs, "-o", str(tmp_path / "truth")]) == 0
    report = tmp_path / "r.json"
    assert cli_main(["eval", "--paired", "--weights", ckpt, "--direction", "AtoB", "--input", inputs,
                     "--real", str(tmp_path / "truth"), "--json", str(report)]) == 0
    overall = json.loads(report.read_text())["results"]["overall"]
    assert overall["images"] == 4 and overall["mae"] == 0 and overall["ssim"] == pytest.approx(1.0)


def test_an_export_keeps_the_intensities(run_16bit, tmp_path):
    _, run_dir = run_16bit
    # ONNX too: the exporter traces and verifies it with a 1-channel input (model.input_nc).
    assert cli_main(["export", "-w", str(run_dir / "last.pt"), "-d", "AtoB", "--output", str(tmp_path),
                     "--format", "safetensors", "onnx"]) == 0
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    (exported,) = tmp_path.glob("*.safetensors")
    a, b = (load_generator(p, "AtoB", device="cpu") for p in (run_dir / "last.pt", exported))
    assert (a.info.source_intensity, a.info.target_intensity) == (b.info.source_intensity, b.info.target_intensity)
    assert b.precision == "fp32"  # auto is fp32 for data in its own units
    planes = np.random.default_rng(1).uniform(1000, 5000, (1, 16, 16, 1))
    assert np.array_equal(translate_planes(a, planes), translate_planes(b, planes))


def test_photo_tools_refuse_a_scientific_generator_in_one_line(run_16bit):
    _, run_dir = run_16bit
    gen = load_generator(run_dir / "last.pt", "AtoB", device="cpu")
    with pytest.raises(WeightsError, match="generator for scientific data") as e:
        gen.info.check_rgb()
    assert "\n" not in str(e.value)


def test_a_checkpoint_whose_channels_do_not_match_the_input_is_one_line(run_16bit, tmp_path):
    _, run_dir = run_16bit
    Image.new("RGB", (16, 16), (10, 200, 30)).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((16, 16), 2000, np.uint16)).save(tmp_path / "ok.png")
    code = cli_main(["translate", "-w", str(run_dir / "last.pt"), "-d", "AtoB", "-i", str(tmp_path / "rgb.png"),
                     str(tmp_path / "ok.png"), "-o", str(tmp_path / "out")])
    assert code == 1  # one failed, the other written
    assert (tmp_path / "out" / "ok.png").is_file() and not (tmp_path / "out" / "rgb.png").exists()


def test_nan_and_inf_in_float_data_are_reported_and_mapped_to_the_window(run_16bit, tmp_path, caplog):
    _, run_dir = run_16bit
    x = np.full((16, 16), 3000.0, np.float32)
    x[2, 3], x[5, 5], x[7, 1] = np.nan, np.inf, -np.inf
    Image.fromarray(x, mode="F").save(tmp_path / "f.tif")
    assert cli_main(["translate", "-w", str(run_dir / "last.pt"), "-d", "AtoB", "-i", str(tmp_path / "f.tif"),
                     "-o", str(tmp_path / "out"), "--keep-input-dtype"]) == 0  # float32 out: NaN would show
    out = read_scan(tmp_path / "out" / "f.tif").planes
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert "3 NaN/Inf value(s)" in caplog.text


def test_training_skips_a_file_with_another_channel_count_in_one_line(tmp_path):
    from gan_style.methods.base import scan_data

    write_16bit_domains(tmp_path)
    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "trainA" / "0_rgb.png")  # second in name order
    cfg = load_config(None, tiny_overrides(tmp_path, tmp_path / "runs", train__lambda_identity=0) + [
        "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=range", "data.intensity.B.mode=range"])
    item = scan_data(cfg, 0, 1).dataset[(1, 0, 1)]
    assert item["A"].shape[0] == 1 and item["A_path"].endswith("1.png")  # the next file was used instead
    assert "0_rgb.png: 3 channel(s), domain A takes 1 (model.input_nc): skipped" in item["skipped"]


def test_cut_trains_on_one_channel_data_and_records_its_direction(tmp_path):
    write_16bit_domains(tmp_path / "data")
    overrides = tiny_overrides(tmp_path / "data", tmp_path / "runs", train__max_steps=2) + [
        "method=cut", "data.direction=AtoB", "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=range",
        "data.intensity.B.mode=range"]
    ckpt = torch.load(train(load_config(None, overrides)), weights_only=True)
    (direction,) = ckpt["generators"]
    assert direction == "AtoB" and ckpt["models"]["G"]["model.1.weight"].shape[1] == 1
    assert ckpt["generators"]["AtoB"]["target_intensity"]["dtype"] == "uint16"


def test_n_channel_tiff_stacks_train_against_one_channel_data(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    for domain, shape in (("A", (3, 40, 40, 2)), ("B", (3, 40, 40))):  # A: 3-page stacks of 2 channels
        (tmp_path / "data" / f"train{domain}").mkdir(parents=True)
        for i in range(2):
            tifffile.imwrite(tmp_path / "data" / f"train{domain}" / f"{i}.tif", rng.random(shape, np.float32) * 100,
                             photometric="minisblack", planarconfig="contig" if domain == "A" else None)
    overrides = tiny_overrides(tmp_path / "data", tmp_path / "runs", train__max_steps=6, train__lambda_identity=0) + [
        "model.input_nc=2", "model.output_nc=1", "data.intensity.A.mode=window", "data.intensity.A.low=0",
        "data.intensity.A.high=100", "data.intensity.B.mode=percentile", "data.min_foreground=0"]
    last = train(load_config(None, overrides))
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["models"]["G_A"]["model.1.weight"].shape[1] == 2 and ckpt["models"]["G_B"]["model.1.weight"].shape[1] == 1
    assert json.loads((last.parent / "run_info.json").read_text())["dataset"]["A"] == 6  # 2 files x 3 pages
    panels = sorted((last.parent / "samples").glob("*_A.png"))  # the epoch end (6 planes) wrote panels
    assert panels and np.asarray(Image.open(panels[-1])).shape[-1] == 3  # 2 and 1 channels shown side by side


def test_a_resumed_run_keeps_its_recorded_dataset_percentiles(tmp_path, caplog):
    write_16bit_domains(tmp_path / "data")
    overrides = tiny_overrides(tmp_path / "data", tmp_path / "runs", train__lambda_identity=0) + [
        "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=range", "data.intensity.B.mode=percentile"]
    first = torch.load(train(load_config(None, overrides + ["train.max_steps=2"])), weights_only=True)["intensity"]
    for path in (tmp_path / "data" / "trainB").iterdir():  # the data changes between the runs
        Image.fromarray((np.asarray(Image.open(path)) // 2).astype(np.uint16)).save(path)
    last = train(load_config(None, overrides + ["train.max_steps=4", "resume=auto"]))
    assert torch.load(last, weights_only=True)["intensity"] == first
    assert "the run keeps its recorded" in caplog.text


# ---------------------------------------------------------------- reference weights with input_nc=1


def test_reference_weights_with_one_channel_load_strictly_and_read_8_bits(tmp_path):
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(1, 1, ngf=8, n_blocks=2), gain=0.2).eval()
    torch.save(net.state_dict(), tmp_path / "latest_net_G_A.pth")
    gen = load_generator(tmp_path / "latest_net_G_A.pth", device="cpu")
    assert (gen.info.arch["in_channels"], gen.info.arch["out_channels"]) == (1, 1) and gen.info.exact
    gray = np.random.default_rng(0).integers(0, 256, (1, 12, 20, 1)).astype(np.uint8)
    out = translate_planes(gen, gray)
    # The reference's rule for input_nc=1: 8-bit gray, x / 127.5 - 1 in, (y + 1) * 127.5 out.
    with torch.inference_mode():
        y = net(torch.from_numpy(gray[0, ..., 0] / 127.5 - 1).float()[None, None])[0, 0].numpy()
    assert np.allclose(out[0, ..., 0], (y + 1) * 127.5, atol=1e-3)


def test_generator_info_of_an_rgb_generator_is_not_exact():
    assert not GeneratorInfo(arch={"in_channels": 3, "out_channels": 3}, origin="x").exact


# ---------------------------------------------------------------- NIfTI volumes as training slices


def write_volume(path: Path, seed: int, empty_slices: int = 2) -> np.ndarray:
    """A (24, 24, 6) int16 'CT' volume: air (-1000) with a body; the last slices are all air."""
    rng = np.random.default_rng(seed)
    vol = np.full((24, 24, 6), -1000, np.int16)
    vol[4:20, 4:20, : 6 - empty_slices] = rng.integers(-100, 1500, (16, 16, 6 - empty_slices))
    nib.save(nib.Nifti1Image(vol, np.diag([0.8, 0.8, 2.5, 1.0])), str(path))
    return vol


def test_volumes_train_as_slices_and_empty_slices_are_skipped(tmp_path, caplog):
    from gan_style.methods.base import scan_data

    for domain in "AB":
        (tmp_path / f"train{domain}").mkdir()
        write_volume(tmp_path / f"train{domain}" / "case.nii.gz", seed=ord(domain))
    cfg = load_config(None, tiny_overrides(tmp_path, tmp_path / "runs", train__lambda_identity=0) + [
        "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=window", "data.intensity.A.low=-1000",
        "data.intensity.A.high=2000", "data.intensity.B.mode=range"])
    with caplog.at_level("INFO"):
        data = scan_data(cfg, 0, 1)
    assert len(data.dataset.paths["A"]) == 4  # 6 slices along axis 2, 2 of them empty
    assert "2 of 6 slices are empty" in caplog.text
    item = data.dataset[(1, 0, 7)]
    assert item["A"].shape == (1, 32, 32) and item["A"].dtype == torch.float32
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    assert data.intensity["B"].low == -32768.0  # int16's full range
    assert data.fixed["A"].shape[1] == 1


def test_range_on_float_data_names_the_key(tmp_path):
    from gan_style.methods.base import scan_data

    write_16bit_domains(tmp_path)
    for path in (tmp_path / "trainB").iterdir():
        Image.fromarray(np.asarray(Image.open(path), dtype=np.float32), mode="F").save(path.with_suffix(".tif"))
        path.unlink()
    cfg = load_config(None, tiny_overrides(tmp_path, tmp_path / "runs", train__lambda_identity=0) + [
        "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=range", "data.intensity.B.mode=range"])
    with pytest.raises(DataError, match=r"data.intensity.B.mode=range: domain B holds float32 data"):
        scan_data(cfg, 0, 1)


def test_a_4d_nifti_without_a_volume_is_skipped_with_one_line(tmp_path, caplog):
    from gan_style.data.scans import Reading, index_planes

    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3, 2), np.int16), np.eye(4)), str(tmp_path / "four.nii"))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.int16), np.eye(4)), str(tmp_path / "three.nii"))
    planes = index_planes(tmp_path, Reading(axis=2))
    assert {p.path.name for p in planes} == {"three.nii"} and len(planes) == 3
    assert "four.nii" in caplog.text and "--volume" in caplog.text
    assert len(index_planes(tmp_path, Reading(axis=2, volume=1))) == 6


def write_ct_generator(path: Path) -> None:
    """A 1 -> 1 channel export whose both sides are CT in HU, window [-1000, 2000], int16."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(1, 1, ngf=8, n_blocks=2), gain=0.2).eval()
    ct = Intensity("window", -1000.0, 2000.0, dtype="int16").to_dict()
    info = GeneratorInfo(arch={"in_channels": 1, "out_channels": 1, "ngf": 8, "n_blocks": 2}, origin="t",
                         source_intensity=ct, target_intensity=ct)
    save_file(net.state_dict(), str(path), metadata=info.to_metadata())


def test_nifti_translation_keeps_affine_header_and_dtype(tmp_path):
    write_ct_generator(tmp_path / "g.safetensors")
    vol = write_volume(tmp_path / "case.nii.gz", seed=3)
    assert cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "case.nii.gz"),
                     "-o", str(tmp_path / "out"), "--axis", "1"]) == 0
    src, out = nib.load(str(tmp_path / "case.nii.gz")), nib.load(str(tmp_path / "out" / "case.nii.gz"))
    assert np.array_equal(out.affine, src.affine) and out.get_data_dtype() == np.int16
    assert out.shape == vol.shape and out.header.get_zooms() == src.header.get_zooms()
    data = np.asarray(out.dataobj)
    assert data.min() >= -1000 and data.max() <= 2000 and not np.array_equal(data, vol)
    gen = load_generator(tmp_path / "g.safetensors", device="cpu")
    planes = read_scan(tmp_path / "case.nii.gz", axis=1).planes
    expected, _ = cast_to(translate_planes(gen, planes), np.int16)
    assert np.array_equal(read_scan(tmp_path / "out" / "case.nii.gz", axis=1).planes, expected)


def test_size_resizes_planes_and_the_writer_keeps_the_field_of_view(tmp_path):
    write_ct_generator(tmp_path / "g.safetensors")
    write_volume(tmp_path / "case.nii.gz", seed=4)  # (24, 24, 6), 0.8 mm in-plane
    assert cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "case.nii.gz"),
                     "-o", str(tmp_path / "out"), "--size", "12"]) == 0
    out = nib.load(str(tmp_path / "out" / "case.nii.gz"))
    assert out.shape == (12, 12, 6)  # slices along axis 2 halved in-plane, all slices kept
    assert out.header.get_zooms() == pytest.approx((1.6, 1.6, 2.5))  # the same field of view


def test_a_dicom_series_folder_gives_one_derived_series_and_a_report_is_one_line(tmp_path, capsys):
    import pydicom
    from test_scan_formats import _dicom

    write_ct_generator(tmp_path / "g.safetensors")
    rng = np.random.default_rng(0)
    series = tmp_path / "series"
    series.mkdir()
    for i in range(3):  # one series of three CT slices, stored as HU + 1024
        _dicom(series / f"{i}.dcm", rng.integers(0, 3000, (16, 16)).astype(np.int16), sop=f"1.2.826.0.1.3680043.8.498.1.{i}")
    _dicom(series / "report.dcm", np.zeros((2, 2), np.int16), pixels=False)
    code = cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(series), "-o", str(tmp_path / "out")])
    assert code == 1  # the report failed, the slices were written
    assert "report.dcm: DICOM without pixel data" in capsys.readouterr().err
    written = [pydicom.dcmread(tmp_path / "out" / f"{i}.dcm") for i in range(3)]
    source = pydicom.dcmread(series / "0.dcm")
    assert len({d.SeriesInstanceUID for d in written}) == 1 and written[0].SeriesInstanceUID != source.SeriesInstanceUID
    assert len({d.SOPInstanceUID for d in written}) == 3 and "DERIVED" in written[0].ImageType
    hu = written[0].pixel_array * float(written[0].RescaleSlope) + float(written[0].RescaleIntercept)
    assert hu.min() >= -1000 and hu.max() <= 2000  # the target window, in HU
    assert not (tmp_path / "out" / "report.dcm").exists()


def test_npy_stack_translation_keeps_shape_and_dtype(tmp_path):
    write_ct_generator(tmp_path / "g.safetensors")
    stack = np.random.default_rng(5).integers(-1000, 2000, (3, 16, 12)).astype(np.int16)  # (S, H, W)
    np.save(tmp_path / "stack.npy", stack)
    assert cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "stack.npy"),
                     "-o", str(tmp_path / "out")]) == 0
    out = np.load(tmp_path / "out" / "stack.npy")
    gen = load_generator(tmp_path / "g.safetensors", device="cpu")
    expected, _ = cast_to(translate_planes(gen, stack[..., None]), np.int16)
    assert out.shape == stack.shape and out.dtype == np.int16 and np.array_equal(out, expected[..., 0])
