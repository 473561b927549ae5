"""Outputs in the target domain's representation (dtype, sign, window) as the checkpoint records it:
a uint16 MR translated to CT keeps its negative HU in DICOM, NIfTI and TIFF; uint16 becomes
float32; ``--keep-input-dtype`` keeps the input's dtype (and clips, saying so)."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
import torch
from PIL import Image

from gan_style.cli import main as cli_main
from gan_style.inference.scans import translate_planes
from gan_style.inference.translate import load_generator
from gan_style.inference.weights import GeneratorInfo
from gan_style.io.dicom import Stored, choose_stored
from gan_style.io.intensity import Intensity, cast_to
from gan_style.io.scans import read_scan
from gan_style.nets import ResnetGenerator, init_weights
from test_scan_formats import _dicom

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MR = Intensity("window", 0.0, 4000.0, dtype="uint16")
CT = Intensity("window", -1000.0, 2000.0, dtype="int16")
RNG = np.random.default_rng(7)


def write_generator(path: Path, source: Intensity, target: Intensity) -> Path:
    """A 1 -> 1 export whose outputs lie low in the target window (the last bias pulls them down):
    with CT, most of them are negative HU."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(1, 1, ngf=8, n_blocks=2), gain=0.2).eval()
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.fill_(-0.8)
    info = GeneratorInfo(arch={"in_channels": 1, "out_channels": 1, "ngf": 8, "n_blocks": 2}, origin="t",
                         source_intensity=source.to_dict(), target_intensity=target.to_dict())
    save_file(net.state_dict(), str(path), metadata=info.to_metadata())
    return path


def expected(weights: Path, planes: np.ndarray, dtype) -> np.ndarray:
    """The translation by hand: translate_planes in target units, cast to ``dtype``."""
    gen = load_generator(weights, device="cpu")
    return cast_to(translate_planes(gen, planes), dtype)[0]


def translate(weights: Path, src: Path, out: Path, *extra: str) -> int:
    return cli_main(["translate", "-w", str(weights), "-i", str(src), "-o", str(out), *extra])


@pytest.fixture
def mr2ct(tmp_path) -> Path:
    return write_generator(tmp_path / "mr2ct.safetensors", MR, CT)


def mr_image() -> np.ndarray:
    return RNG.integers(0, 4000, (20, 24)).astype(np.uint16)


def test_uint16_mr_dicom_becomes_signed_int16_hu_with_negative_values(tmp_path, mr2ct):
    mr = mr_image()
    _dicom(tmp_path / "mr.dcm", mr, rescale=None)  # MR: unsigned, no rescale
    assert translate(mr2ct, tmp_path / "mr.dcm", tmp_path / "out") == 0
    ds = pydicom.dcmread(tmp_path / "out" / "mr.dcm")  # read back by pydicom alone
    assert (ds.PixelRepresentation, ds.BitsAllocated, ds.BitsStored) == (1, 16, 16)
    assert "RescaleSlope" not in ds and ds.pixel_array.dtype == np.int16
    want = expected(mr2ct, mr[None, ..., None].astype(np.float32), np.int16)[0, ..., 0]
    assert np.array_equal(ds.pixel_array, want) and want.min() < -100  # negative HU kept, not clipped to 0
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (500.0, 3000.0)


def test_uint16_mr_nifti_and_tiff_become_int16_with_negative_values(tmp_path, mr2ct):
    vol = RNG.integers(0, 4000, (16, 20, 3)).astype(np.uint16)
    nib.save(nib.Nifti1Image(vol, np.diag([0.9, 0.9, 3.0, 1.0])), str(tmp_path / "mr.nii.gz"))
    tifffile.imwrite(tmp_path / "mr.tif", vol.transpose(2, 0, 1), photometric="minisblack")
    for name in ("mr.nii.gz", "mr.tif"):
        assert translate(mr2ct, tmp_path / name, tmp_path / "out") == 0
    nii = nib.load(str(tmp_path / "out" / "mr.nii.gz"))
    assert nii.get_data_dtype() == np.int16 and np.allclose(nii.affine, np.diag([0.9, 0.9, 3.0, 1.0]))
    want = expected(mr2ct, read_scan(tmp_path / "mr.nii.gz").planes, np.int16)
    assert np.array_equal(np.asarray(nii.dataobj), np.moveaxis(want[..., 0], 0, 2)) and want.min() < -100
    tif = tifffile.imread(tmp_path / "out" / "mr.tif")
    assert tif.dtype == np.int16
    assert np.array_equal(tif, expected(mr2ct, read_scan(tmp_path / "mr.tif").planes, np.int16)[..., 0])


def test_uint16_becomes_float32(tmp_path):
    weights = write_generator(tmp_path / "g.safetensors", MR, Intensity("window", 0.0, 1.0, dtype="float32"))
    image = mr_image()
    tifffile.imwrite(tmp_path / "a.tif", image)
    np.save(tmp_path / "a.npy", image)
    for name in ("a.tif", "a.npy"):
        assert translate(weights, tmp_path / name, tmp_path / "out") == 0
    want = expected(weights, image[None, ..., None], np.float32)[0, ..., 0]
    for out in (tifffile.imread(tmp_path / "out" / "a.tif"), np.load(tmp_path / "out" / "a.npy")):
        assert out.dtype == np.float32 and np.array_equal(out, want)
    assert 0 <= want.min() and want.max() < 1 and len(np.unique(want)) > 100  # fractions, not 0 / 1


def test_keep_input_dtype_keeps_uint16_and_reports_the_clipped_fraction(tmp_path, mr2ct, caplog):
    image = mr_image()
    tifffile.imwrite(tmp_path / "a.tif", image)
    with caplog.at_level(logging.WARNING):
        assert translate(mr2ct, tmp_path / "a.tif", tmp_path / "out", "--keep-input-dtype") == 0
    out = tifffile.imread(tmp_path / "out" / "a.tif")
    want = expected(mr2ct, image[None, ..., None], np.uint16)[0, ..., 0]
    assert out.dtype == np.uint16 and np.array_equal(out, want) and out.min() == 0  # today's behaviour
    fraction = np.mean(expected(mr2ct, image[None, ..., None], np.float64) < 0)
    assert f"{100 * fraction:.1f}% of the translated values fall outside uint16" in caplog.text


def test_a_png_cannot_hold_int16_hu_in_one_line_and_keep_input_dtype_writes_it(tmp_path, mr2ct, capsys):
    Image.fromarray(mr_image()).save(tmp_path / "mr.png")
    assert translate(mr2ct, tmp_path / "mr.png", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "mr.png: a .png file cannot hold the target domain's 1-channel int16 values" in err
    assert "--keep-input-dtype" in err and not (tmp_path / "out" / "mr.png").exists()
    assert translate(mr2ct, tmp_path / "mr.png", tmp_path / "out", "--keep-input-dtype") == 0
    assert np.asarray(Image.open(tmp_path / "out" / "mr.png")).dtype == np.uint16


def test_a_ct_dicom_keeps_its_own_representation_when_it_holds_the_target(tmp_path):
    weights = write_generator(tmp_path / "ct.safetensors", CT, Intensity("window", -1000.0, 2000.0, dtype="float32"))
    stored = RNG.integers(0, 3000, (12, 12)).astype(np.uint16)
    _dicom(tmp_path / "ct.dcm", stored, rescale=(1, -1024))  # uint16 + intercept -1024: holds [-1000, 2000]
    assert translate(weights, tmp_path / "ct.dcm", tmp_path / "out") == 0
    ds = pydicom.dcmread(tmp_path / "out" / "ct.dcm")
    assert (ds.PixelRepresentation, float(ds.RescaleIntercept)) == (0, -1024.0)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(hu, np.rint(expected(weights, read_scan(tmp_path / "ct.dcm").planes, np.float64))[0, ..., 0])


def test_dicom_representations_hold_the_target_window(tmp_path, caplog):
    hu, note = choose_stored(np.dtype(np.float32), (-1000.0, 2000.0))  # CT read through its rescale
    assert hu == Stored(16, True) and note is None
    assert choose_stored(np.dtype(np.uint8), (0.0, 255.0)) == (Stored(8, False), None)
    wide, _ = choose_stored(np.dtype(np.int32), (-50000.0, 10000.0))  # integer steps, shifted into uint16
    assert wide == Stored(16, False, 1.0, -50000.0) and wide.limits == (-50000.0, 15535.0)
    fine, note = choose_stored(np.dtype(np.float32), (0.0, 1.0))
    assert fine == Stored(16, False, 1 / 65535, 0.0) and fine.limits == pytest.approx((0.0, 1.0))
    assert "16-bit steps of 1.5259e-05" in note and "\n" not in note
    # End to end: a float target in [0, 1] into an MR DICOM, with the note once.
    weights = write_generator(tmp_path / "g.safetensors", MR, Intensity("window", 0.0, 1.0, dtype="float32"))
    _dicom(tmp_path / "mr.dcm", mr_image(), rescale=None)
    with caplog.at_level(logging.WARNING):
        assert translate(weights, tmp_path / "mr.dcm", tmp_path / "out") == 0
    ds = pydicom.dcmread(tmp_path / "out" / "mr.dcm")
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    want = expected(weights, read_scan(tmp_path / "mr.dcm").planes, np.float64)[0, ..., 0]
    assert np.abs(values - want).max() <= 0.5 / 65535 + 1e-9  # within half a step
    assert caplog.text.count("hold no float pixels") == 1
