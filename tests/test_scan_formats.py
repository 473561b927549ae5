"""TIFF, DICOM and NIfTI scans: exact values and dtypes in, the same file kind (and header) out.

Every file is generated here, small, in tmp_path.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import CTImageStorage, ExplicitVRBigEndian, ExplicitVRLittleEndian, JPEGLSLossless, RLELossless

from gan_style.io import tiff
from gan_style.io.scans import ScanError, plane_count, read_plane, read_scan, write_scan

RNG = np.random.default_rng(7)


def _one_line(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


# ---------------------------------------------------------------- TIFF

def _pixels(dtype, shape) -> np.ndarray:
    """Values that an 8-bit or rounding step would change: > 255, negative, fractional."""
    if dtype == np.float32:
        return (RNG.normal(size=shape) * 1000).astype(np.float32)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _roundtrip(src, out):
    scan = read_scan(src)
    write_scan(out, scan, scan.planes)
    return scan, read_scan(out)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_tiff_dtypes_and_channels_round_trip_exactly(tmp_path, dtype, channels):
    arr = _pixels(dtype, (9, 11, channels))
    rgb = channels == 3 and dtype in (np.uint8, np.uint16)
    photometric = "rgb" if rgb else "minisblack"
    tifffile.imwrite(tmp_path / "in.tif", arr[..., 0] if channels == 1 else arr, photometric=photometric,
                     planarconfig=None if channels == 1 else "contig")
    scan, back = _roundtrip(tmp_path / "in.tif", tmp_path / "out.tif")
    assert scan.format == "tiff" and scan.planes.shape == (1, 9, 11, channels) and scan.planes.dtype == dtype
    np.testing.assert_array_equal(scan.planes[0], arr)
    assert back.planes.dtype == dtype
    np.testing.assert_array_equal(back.planes, scan.planes)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.pages[0].photometric == (tifffile.PHOTOMETRIC.RGB if rgb else tifffile.PHOTOMETRIC.MINISBLACK)


def test_tiff_stack_pages_are_planes(tmp_path):
    stack = _pixels(np.uint16, (3, 8, 10))
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack", metadata=None)  # 3 plain pages
    assert plane_count(tmp_path / "stack.tif") == 3
    scan, back = _roundtrip(tmp_path / "stack.tif", tmp_path / "out.tif")
    np.testing.assert_array_equal(scan.planes[..., 0], stack)
    for i in range(3):
        np.testing.assert_array_equal(read_plane(tmp_path / "stack.tif", i), stack[i, ..., None])
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert len(tif.pages) == 3
    np.testing.assert_array_equal(back.planes, scan.planes)
    with pytest.raises(ScanError) as e:
        read_plane(tmp_path / "stack.tif", 3)
    _one_line(e, tmp_path / "stack.tif")


def test_tiff_bigtiff_tiled_compressed_resolution_and_description_kept(tmp_path):
    stack = _pixels(np.int16, (2, 40, 50))
    tifffile.imwrite(tmp_path / "in.tif", stack, photometric="minisblack", bigtiff=True, tile=(16, 32),
                     compression="zlib", predictor=True, resolution=((7, 2), (9, 4)), resolutionunit="CENTIMETER",
                     description="sample 12, 5 µm".encode(), metadata=None)
    scan, back = _roundtrip(tmp_path / "in.tif", tmp_path / "out.tif")
    assert scan.meta["tile"] == (16, 32) and scan.meta["bigtiff"] and scan.meta["compression"] == "zlib"
    np.testing.assert_array_equal(back.planes[..., 0], stack)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        assert tif.is_bigtiff and page.is_tiled and (page.tilelength, page.tilewidth) == (16, 32)
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE and page.predictor == tifffile.PREDICTOR.HORIZONTAL
        assert page.tags["XResolution"].value == (7, 2) and page.tags["YResolution"].value == (9, 4)
        assert page.resolutionunit == tifffile.RESUNIT.CENTIMETER
        assert page.description == "sample 12, 5 µm" and len(tif.pages) == 2


def test_tiff_planar_channels_move_last_and_stay_planar(tmp_path):
    planar = _pixels(np.float32, (5, 8, 9))  # CYX: 5 separate sample planes
    tifffile.imwrite(tmp_path / "in.tif", planar, photometric="minisblack", planarconfig="separate", metadata=None)
    scan, back = _roundtrip(tmp_path / "in.tif", tmp_path / "out.tif")
    assert scan.planes.shape == (1, 8, 9, 5)
    np.testing.assert_array_equal(scan.planes[0], np.moveaxis(planar, 0, -1))
    np.testing.assert_array_equal(back.planes, scan.planes)
    assert back.meta["planar"]


def test_tiff_imagej_hyperstack_planes_and_channels(tmp_path):
    data = _pixels(np.uint16, (2, 3, 2, 6, 7))  # TZCYX
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True)
    scan = read_scan(tmp_path / "ij.tif")
    assert scan.planes.shape == (6, 6, 7, 2) and scan.meta["description"] is None  # ImageJ's own text dropped
    np.testing.assert_array_equal(scan.planes[4], np.moveaxis(data[1, 1], 0, -1))
    assert plane_count(tmp_path / "ij.tif") == 6
    for i in (0, 5):  # channels spread over pages: read through zarr
        np.testing.assert_array_equal(read_plane(tmp_path / "ij.tif", i), scan.planes[i])
    assert tiff.page_shape(tmp_path / "ij.tif") == (6, 7, 2, np.dtype(np.uint16), False)


def test_tiff_too_large_page_is_refused_before_decoding(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "slide.tif", np.zeros((64, 48, 3), np.uint8), photometric="rgb", tile=(16, 16))
    monkeypatch.setattr(tiff, "MAX_WHOLE_BYTES", 1000)

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded a page that is too large")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", no_decode)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decode)
    for call in (lambda: read_scan(tmp_path / "slide.tif"), lambda: read_plane(tmp_path / "slide.tif", 0)):
        with pytest.raises(ScanError) as e:
            call()
        assert "48 x 64 px" in _one_line(e, tmp_path / "slide.tif") and "as a slide" in str(e.value)
    assert tiff.page_shape(tmp_path / "slide.tif") == (64, 48, 3, np.dtype(np.uint8), True)
    assert plane_count(tmp_path / "slide.tif") == 1


def test_not_a_tiff_is_one_line(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"this is not a tiff at all")
    with pytest.raises(ScanError) as e:
        read_scan(tmp_path / "bad.tif")
    _one_line(e, tmp_path / "bad.tif")


# ---------------------------------------------------------------- DICOM

def _dicom(path, stored, *, series="1.2.826.0.1.3680043.8.498.1", sop="1.2.826.0.1.3680043.8.498.1.1",
           photometric="MONOCHROME2", bits_stored=None, rescale=(1, -1024), pixels=True):
    """A CT-like DICOM file holding ``stored`` ((H, W) or (frames, H, W)) as its stored values."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.SeriesInstanceUID, ds.StudyInstanceUID = series, "1.2.826.0.1.3680043.8.498.9"
    ds.PatientName, ds.PatientID, ds.Modality = "Doe^Jane", "P-17", "CT"
    ds.ImageType, ds.SeriesDescription = ["ORIGINAL", "PRIMARY", "AXIAL"], "Chest"
    ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.5
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = rescale[0], rescale[1], "HU"
    ds.set_pixel_data(stored, photometric, bits_stored or stored.dtype.itemsize * 8, generate_instance_uid=False)
    if not pixels:  # a report: no Image Pixel module at all
        for keyword in ("PixelData", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
                        "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
            delattr(ds, keyword)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_dicom_ct_reads_hounsfield_units_exactly(tmp_path, dtype):
    stored = RNG.integers(0 if dtype == np.uint16 else -2000, 4000, size=(6, 7)).astype(dtype)
    scan = read_scan(_dicom(tmp_path / "ct.dcm", stored))
    assert scan.format == "dicom" and scan.planes.shape == (1, 6, 7, 1) and scan.planes.dtype == np.float32
    assert scan.meta["rescale"] == (1.0, -1024.0) and scan.meta["modality"] == "CT"
    np.testing.assert_array_equal(scan.planes[0, ..., 0], stored.astype(np.float64) - 1024)
    assert plane_count(tmp_path / "ct.dcm") == 1
    np.testing.assert_array_equal(read_plane(tmp_path / "ct.dcm", 0), scan.planes[0])


def test_dicom_derived_files_form_one_new_series(tmp_path):
    stored = RNG.integers(-1000, 3000, size=(2, 6, 7)).astype(np.int16)
    inputs = [_dicom(tmp_path / f"in{i}.dcm", stored[i], sop=f"1.2.826.0.1.3680043.8.498.1.{i + 1}") for i in range(2)]
    written = []
    for i, src in enumerate(inputs):
        scan = read_scan(src)
        hu = scan.planes + np.float32(7 - 3 * i)  # a translation, in HU
        write_scan(tmp_path / f"out{i}.dcm", scan, hu)
        written.append((pydicom.dcmread(tmp_path / f"out{i}.dcm"), hu, pydicom.dcmread(src)))
    for out, hu, original in written:
        assert out.SOPInstanceUID != original.SOPInstanceUID
        assert out.SeriesInstanceUID != original.SeriesInstanceUID
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert out.StudyInstanceUID == original.StudyInstanceUID and out.PatientName == "Doe^Jane"
        assert out.PatientID == "P-17" and list(out.PixelSpacing) == [0.7, 0.7]
        assert list(out.ImageType)[:3] == ["DERIVED", "SECONDARY", "AXIAL"]
        assert "gan_style" in out.DerivationDescription and out.SeriesDescription.startswith("Chest")
        assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
        assert out.pixel_array.dtype == np.int16
        np.testing.assert_array_equal(out.pixel_array * float(out.RescaleSlope) + float(out.RescaleIntercept), hu[0, ..., 0])
    assert written[0][0].SeriesInstanceUID == written[1][0].SeriesInstanceUID
    assert written[0][0].SOPInstanceUID != written[1][0].SOPInstanceUID
    scan = read_scan(inputs[0])  # deterministic: the same input and derivation give the same UIDs
    write_scan(tmp_path / "again.dcm", scan, scan.planes)
    assert pydicom.dcmread(tmp_path / "again.dcm").SOPInstanceUID == written[0][0].SOPInstanceUID


def test_dicom_monochrome1_is_inverted_on_read_and_back_on_write(tmp_path):
    stored = RNG.integers(0, 4096, size=(5, 6)).astype(np.uint16)
    src = _dicom(tmp_path / "cr.dcm", stored, photometric="MONOCHROME1", bits_stored=12, rescale=None)
    scan = read_scan(src)
    assert scan.planes.dtype == np.uint16  # no rescale: the stored dtype
    np.testing.assert_array_equal(scan.planes[0, ..., 0], 4095 - stored)
    write_scan(tmp_path / "out.dcm", scan, scan.planes)
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.PhotometricInterpretation == "MONOCHROME1" and out.BitsStored == 12
    np.testing.assert_array_equal(out.pixel_array, stored)


def test_dicom_frames_are_planes(tmp_path):
    stored = RNG.integers(-100, 100, size=(3, 4, 5)).astype(np.int16)
    src = _dicom(tmp_path / "multi.dcm", stored)
    scan = read_scan(src)
    assert scan.planes.shape == (3, 4, 5, 1) and plane_count(src) == 3
    for i in range(3):
        np.testing.assert_array_equal(read_plane(src, i), scan.planes[i])
    write_scan(tmp_path / "out.dcm", scan, scan.planes)
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert int(out.NumberOfFrames) == 3
    np.testing.assert_array_equal(out.pixel_array, stored)


def test_dicom_compressed_input_is_written_uncompressed(tmp_path):
    stored = RNG.integers(-500, 500, size=(6, 8)).astype(np.int16)
    src = _dicom(tmp_path / "rle.dcm", stored)
    ds = pydicom.dcmread(src)
    ds.compress(RLELossless, stored, generate_instance_uid=False)  # pydicom's own RLE encoder
    ds.save_as(src, enforce_file_format=True)
    scan = read_scan(src)
    assert scan.meta["transfer_syntax"] == RLELossless.name
    write_scan(tmp_path / "out.dcm", scan, scan.planes)
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(out.pixel_array, stored)


def test_dicom_big_endian_input_is_written_little_endian(tmp_path):
    stored = RNG.integers(-500, 500, size=(4, 5)).astype(np.int16)
    ds = pydicom.dcmread(_dicom(tmp_path / "be.dcm", stored))
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = stored.astype(">i2").tobytes()
    pydicom.dcmwrite(tmp_path / "be.dcm", ds, implicit_vr=False, little_endian=False, enforce_file_format=True)
    scan = read_scan(tmp_path / "be.dcm")
    np.testing.assert_array_equal(scan.planes[0, ..., 0], stored - 1024.0)
    write_scan(tmp_path / "out.dcm", scan, scan.planes)
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and out.PatientName == "Doe^Jane"
    np.testing.assert_array_equal(out.pixel_array, stored)


def test_dicom_rgb_output_of_a_gray_input(tmp_path):
    scan = read_scan(_dicom(tmp_path / "ct.dcm", np.zeros((4, 5), np.int16)))
    rgb = RNG.integers(0, 256, size=(1, 4, 5, 3)).astype(np.float32)
    write_scan(tmp_path / "rgb.dcm", scan, rgb)
    out = pydicom.dcmread(tmp_path / "rgb.dcm")
    assert (out.SamplesPerPixel, out.PhotometricInterpretation, out.PlanarConfiguration) == (3, "RGB", 0)
    assert "RescaleIntercept" not in out and out.PixelRepresentation == 0
    np.testing.assert_array_equal(out.pixel_array, rgb[0])


def test_dicom_without_pixel_data_is_one_line(tmp_path):
    src = _dicom(tmp_path / "report.dcm", np.zeros((2, 2), np.int16), pixels=False)
    for call in (read_scan, plane_count):
        with pytest.raises(ScanError) as e:
            call(src)
        assert "without pixel data" in _one_line(e, src)


def test_dicom_compressed_without_decoder_is_one_line(tmp_path):
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    from pydicom.encaps import encapsulate

    src = _dicom(tmp_path / "jls.dcm", np.zeros((4, 4), np.uint16), rescale=None)
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8 not really JPEG-LS"])
    ds["PixelData"].VR = "OB"
    ds.save_as(src, enforce_file_format=True)
    for call in (lambda: read_scan(src), lambda: read_plane(src, 0)):
        with pytest.raises(ScanError) as e:
            call()
        message = _one_line(e, src)
        assert "JPEG-LS" in message and "no installed decoder" in message and "pip install" in message


# ---------------------------------------------------------------- NIfTI

AFFINE = np.array([[0.9, 0.1, 0.0, -40.0], [0.0, 1.1, 0.2, 12.5], [0.05, 0.0, 2.5, 7.0], [0.0, 0.0, 0.0, 1.0]])


def _nifti(path, data, cls=nib.Nifti1Image, scaling=None):
    img = cls(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = b"test volume"
    if scaling:
        img.header.set_slope_inter(*scaling)
    nib.save(img, path)
    return path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_nifti_slices_along_axis_and_write_back(tmp_path, suffix, axis):
    vol = RNG.integers(-2000, 3000, size=(5, 6, 7)).astype(np.int16)
    src = _nifti(tmp_path / f"in{suffix}", vol)
    scan = read_scan(src, axis=axis)
    assert scan.planes.dtype == np.int16 and scan.planes.shape == (vol.shape[axis], *np.delete(vol.shape, axis), 1)
    np.testing.assert_array_equal(scan.planes[..., 0], np.moveaxis(vol, axis, 0))
    assert plane_count(src, axis=axis) == vol.shape[axis]
    for i in (0, vol.shape[axis] - 1):
        np.testing.assert_array_equal(read_plane(src, i, axis=axis), scan.planes[i])
    out = tmp_path / f"out{suffix}"
    write_scan(out, scan, scan.planes)
    assert (out.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".nii.gz")
    back, original = nib.load(out), nib.load(src)
    np.testing.assert_array_equal(back.affine, original.affine)
    for field in ("sform_code", "qform_code", "srow_x", "quatern_b", "pixdim"):
        np.testing.assert_array_equal(back.header[field], original.header[field])
    assert back.get_data_dtype() == np.int16 and back.shape == vol.shape
    assert back.header.get_zooms() == original.header.get_zooms()
    assert back.header["descrip"] == original.header["descrip"] and back.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), vol)


def test_nifti_scaled_values_round_trip(tmp_path):
    stored = RNG.integers(-300, 300, size=(4, 5, 6)).astype(np.int16)
    src = _nifti(tmp_path / "scaled.nii", stored, scaling=(2.0, 10.0))
    scan = read_scan(src)
    assert scan.planes.dtype == np.float32 and scan.meta["scaled"]
    np.testing.assert_array_equal(scan.planes[..., 0], np.moveaxis(stored * 2.0 + 10.0, 2, 0))
    write_scan(tmp_path / "same.nii", scan, scan.planes)
    back = nib.load(tmp_path / "same.nii")
    assert back.get_data_dtype() == np.int16
    np.testing.assert_array_equal(back.get_fdata(), stored * 2.0 + 10.0)  # unchanged values: exact
    changed = scan.planes + np.float32(0.6)
    write_scan(tmp_path / "changed.nii", scan, changed)
    values = nib.load(tmp_path / "changed.nii").get_fdata()
    assert np.abs(values - np.moveaxis(changed[..., 0], 0, 2)).max() <= 1.0  # within the quantisation step / 2


def test_nifti_4d_needs_a_volume(tmp_path):
    data = RNG.integers(0, 1000, size=(4, 5, 6, 3)).astype(np.uint16)
    src = _nifti(tmp_path / "fmri.nii.gz", data)
    for call in (lambda: read_scan(src), lambda: plane_count(src), lambda: read_plane(src, 0)):
        with pytest.raises(ScanError) as e:
            call()
        assert "--volume" in _one_line(e, src) and "3 volumes" in str(e.value)
    with pytest.raises(ScanError) as e:
        read_scan(src, volume=3)
    _one_line(e, src)
    scan = read_scan(src, axis=1, volume=1)
    np.testing.assert_array_equal(scan.planes[..., 0], np.moveaxis(data[..., 1], 1, 0))
    np.testing.assert_array_equal(read_plane(src, 2, axis=1, volume=1), scan.planes[2])
    write_scan(tmp_path / "vol1.nii.gz", scan, scan.planes)
    back = nib.load(tmp_path / "vol1.nii.gz")
    assert back.shape == (4, 5, 6) and back.get_data_dtype() == np.uint16  # the 3-D result
    np.testing.assert_array_equal(back.affine, nib.load(src).affine)  # float32 as stored, not AFFINE
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), data[..., 1])


def test_nifti2_and_5d(tmp_path):
    vol = RNG.normal(size=(3, 4, 5)).astype(np.float32)
    scan = read_scan(_nifti(tmp_path / "v2.nii", vol, cls=nib.Nifti2Image), axis=0)
    write_scan(tmp_path / "out.nii", scan, scan.planes)
    back = nib.load(tmp_path / "out.nii")
    assert isinstance(back, nib.Nifti2Image) and back.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), vol)
    src = _nifti(tmp_path / "five.nii", np.zeros((2, 3, 4, 2, 2), np.uint8))
    with pytest.raises(ScanError) as e:
        read_scan(src)
    _one_line(e, src)


# ---------------------------------------------------------------- NumPy .npy

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize("shape, planes", [((9, 11), (1, 9, 11, 1)), ((3, 9, 11), (3, 9, 11, 1)),
                                           ((2, 9, 11, 4), (2, 9, 11, 4))])
def test_npy_arrays_round_trip_exactly_in_their_shape(tmp_path, dtype, shape, planes):
    arr = _pixels(dtype, shape)
    np.save(tmp_path / "in.npy", arr)
    scan, back = _roundtrip(tmp_path / "in.npy", tmp_path / "out.npy")
    assert scan.format == "npy" and scan.planes.shape == planes and scan.planes.dtype == dtype
    assert np.array_equal(scan.planes.reshape(shape), arr) and np.array_equal(back.planes, scan.planes)
    written = np.load(tmp_path / "out.npy")
    assert written.shape == shape and written.dtype == dtype and np.array_equal(written, arr)
    assert plane_count(tmp_path / "in.npy") == planes[0]
    for i in range(planes[0]):
        assert np.array_equal(read_plane(tmp_path / "in.npy", i), scan.planes[i])


def test_npy_values_are_made_exact_and_bad_arrays_are_one_line(tmp_path):
    np.save(tmp_path / "f64.npy", np.array([[0.1, 2.5]], np.float64))
    np.save(tmp_path / "big.npy", np.arange(3 * 2 * 2 * 2 * 2, dtype=np.int16).reshape(3, 2, 2, 2, 2))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npy").write_text("not an array")
    scan = read_scan(tmp_path / "f64.npy")
    assert scan.planes.dtype == np.float32 and scan.planes.shape == (1, 1, 2, 1)
    for name, message in (("big.npy", "a 5-D array (3, 2, 2, 2, 2)"), ("objects.npy", "cannot read the .npy array"),
                          ("text.npy", "not a .npy file (no NumPy header)"), ("missing.npy", "file not found")):
        with pytest.raises(ScanError) as e:
            read_scan(tmp_path / name) if name != "missing.npy" else plane_count(tmp_path / name)
        assert message in _one_line(e, tmp_path / name)
    with pytest.raises(ScanError, match="plane 1 does not exist"):
        read_plane(tmp_path / "f64.npy", 1)


# ---------------------------------------------------------------- the dispatcher

def test_write_scan_is_atomic_when_the_writer_fails(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((4, 4), np.uint16))
    scan = read_scan(tmp_path / "in.tif")
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def failing(f, path, like, planes):
        f.write(b"II*\x00 half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiff, "write", failing)
    with pytest.raises(RuntimeError):
        write_scan(out_dir / "x.tif", scan, scan.planes)
    assert list(out_dir.iterdir()) == []
    with pytest.raises(ScanError):
        write_scan(tmp_path / "x.nii", scan, scan.planes)  # a TIFF scan is written as TIFF



def test_resized_planes_keep_the_field_of_view(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((8, 10), np.uint16), resolution=(4.0, 2.0), resolutionunit="CENTIMETER")
    scan = read_scan(tmp_path / "in.tif")
    write_scan(tmp_path / "out.tif", scan, np.zeros((1, 16, 20, 1), np.uint16))
    assert read_scan(tmp_path / "out.tif").meta["resolution"] == ((8, 1), (4, 1))  # pixels per cm doubled
    scan = read_scan(_dicom(tmp_path / "ct.dcm", np.zeros((4, 6), np.int16)))
    write_scan(tmp_path / "out.dcm", scan, np.zeros((1, 8, 12, 1), np.float32))
    assert [float(v) for v in pydicom.dcmread(tmp_path / "out.dcm").PixelSpacing] == [0.35, 0.35]
    scan = read_scan(_nifti(tmp_path / "v.nii", np.zeros((4, 6, 8), np.int16)), axis=2)
    write_scan(tmp_path / "out.nii", scan, np.zeros((8, 8, 12, 1), np.int16))
    back = nib.load(tmp_path / "out.nii")
    assert back.shape == (8, 12, 8)
    np.testing.assert_allclose(back.header.get_zooms(), np.array(nib.load(tmp_path / "v.nii").header.get_zooms()) / [2, 2, 1], rtol=1e-5)


def test_nifti_slices_come_from_the_current_file_after_it_changes(tmp_path):
    # read_plane keeps volumes open (indexed_gzip): a rewritten file must be opened again.
    from gan_style.io.scans import read_plane as read_one

    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), 7, np.int16), np.eye(4)), str(path))
    assert read_one(path, 2, axis=2).max() == 7
    nib.save(nib.Nifti1Image(np.arange(6 * 5 * 8, dtype=np.int16).reshape(6, 5, 8), np.eye(4)), str(path))
    assert np.array_equal(read_one(path, 2, axis=2)[..., 0], np.arange(6 * 5 * 8).reshape(6, 5, 8)[:, :, 2])
