"""The boundaries a file format crosses: the ScanFormat registry, the one function that finds
inputs, and the routing of files to pipelines.

A toy format defined here and registered with monkeypatch (no other change) is read, counted,
written, found and translated end to end; a folder-shaped toy store (``.zarr``) is one input.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
import pytest
import tifffile
from PIL import Image

from gan_style.cli import main as cli_main
from gan_style.data.scans import Reading, index_planes
from gan_style.inference import route
from gan_style.inference.batch import Job, find_inputs
from gan_style.inference.weights import GeneratorInfo
from gan_style.io import scans
from gan_style.io.files import FindError, find_files, list_files
from gan_style.io.scan import Scan, ScanError, ScanFormat
from gan_style.io.scans import (SCAN_FORMATS, is_scan_file, plane_count, read_plane, read_scan, scan_format,
                                write_scan)
from gan_style.metrics.paired import scan_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ToyFormat(ScanFormat):
    """A text file: 'S H W' on the first line, then S * H * W integers, one per line (int16, 1 channel)."""

    name, label, suffixes = "toy", "toy", (".toy",)

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        s, h, w, *values = (int(v) for v in path.read_text().split())
        return Scan(path, np.array(values, np.int16).reshape(s, h, w, 1), self.name, {"note": "toy"})

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        assert like.meta["note"] == "toy"  # the writer gets the scan it writes like
        s, h, w, _ = planes.shape
        f.write(" ".join(str(v) for v in [s, h, w, *planes.ravel().tolist()]).encode())


class ToyStore(ScanFormat):
    """A folder-shaped format: a folder holding planes.npy (and, like a zarr store, other files)."""

    name, label, suffixes, folder = "toystore", "toy store", (".zarr",), True

    def read(self, path: Path, axis: int = 2, volume: int | None = None) -> Scan:
        return Scan(path, np.load(path / "planes.npy"), self.name)

    def write(self, f: IO[bytes] | None, path: Path, like: Scan, planes: np.ndarray) -> None:
        assert f is None and path.is_dir() and not any(path.iterdir())  # a new, empty folder
        np.save(path / "planes.npy", planes)
        (path / "0.0").write_bytes(b"chunk")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(SCAN_FORMATS, "toy", ToyFormat())
    monkeypatch.setitem(SCAN_FORMATS, "toystore", ToyStore())


def write_toy(path: Path, planes: np.ndarray) -> Path:
    s, h, w = planes.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(str(v) for v in [s, h, w, *planes.ravel().tolist()]))
    return path


def write_store(path: Path, planes: np.ndarray) -> Path:
    path.mkdir(parents=True)
    np.save(path / "planes.npy", planes)
    (path / "0.0").write_bytes(b"chunk")  # a chunk file: never an input of its own
    return path


# ---------------------------------------------------------------- the registry


def test_every_registered_suffix_maps_to_its_format():
    assert set(SCAN_FORMATS) == {"image", "tiff", "dicom", "nifti", "npy", "ome_tiff", "ome_zarr", "czi", "nd2", "lif",
                                 "openslide"}
    for name, fmt in SCAN_FORMATS.items():
        assert fmt.name == name and fmt.suffixes
        for suffix in fmt.suffixes:
            assert scan_format(f"dir/case{suffix}") is fmt and scan_format(f"CASE{suffix.upper()}") is fmt
    assert scan_format("a.nii.gz") is SCAN_FORMATS["nifti"]  # the longest suffix wins
    assert scan_format("a.ome.tif") is SCAN_FORMATS["ome_tiff"] and scan_format("a.tif") is SCAN_FORMATS["tiff"]
    assert scan_format(".hidden.png") is None and scan_format("notes.txt") is None and scan_format("a.gz") is None
    assert [f.name for f in SCAN_FORMATS.values() if f.planes_are_slices] == ["nifti"]


def test_the_longest_suffix_wins_whatever_the_order(monkeypatch):
    class Gzip(ToyFormat):
        name, suffixes = "gz", (".gz",)

    for registry in ({"gz": Gzip(), **SCAN_FORMATS}, {**SCAN_FORMATS, "gz": Gzip()}):
        monkeypatch.setattr(scans, "SCAN_FORMATS", registry)
        assert scan_format("a.nii.gz").name == "nifti" and scan_format("a.tar.gz").name == "gz"


def test_units_come_from_the_format():
    planes = np.zeros((1, 2, 2, 1), np.int16)
    units = {name: fmt.units(Scan(Path("x"), planes, name, {"modality": "MR"} if name == "dicom" else {}))
             for name, fmt in SCAN_FORMATS.items()}
    assert units == {"image": "stored image values (int16)", "tiff": "stored tiff values (int16)",
                     "dicom": "MR values (DICOM rescale applied)", "nifti": "NIfTI values (int16, scaling applied)",
                     "npy": "stored npy values (int16)", "ome_tiff": "stored ome_tiff values (int16)",
                     "ome_zarr": "stored ome_zarr values (int16)", "czi": "stored CZI values (int16)",
                     "nd2": "stored ND2 values (int16)", "lif": "stored LIF values (int16)",
                     "openslide": "8-bit RGB slide values (uint8)"}
    assert SCAN_FORMATS["dicom"].units(Scan(Path("x"), planes, "dicom", {"modality": None})) == "HU"


def test_a_registered_format_is_read_counted_and_written_with_no_other_change(tmp_path, toy):
    values = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) - 7
    src = write_toy(tmp_path / "in" / "a.toy", values)
    scan = read_scan(src)
    assert scan.format == "toy" and np.array_equal(scan.planes[..., 0], values)
    assert plane_count(src) == 2 and np.array_equal(read_plane(src, 1), scan.planes[1])
    with pytest.raises(ScanError, match="plane 2 does not exist"):
        read_plane(src, 2)
    write_scan(tmp_path / "out" / "b.toy", scan, scan.planes * 2)
    assert np.array_equal(read_scan(tmp_path / "out" / "b.toy").planes, scan.planes * 2)
    with pytest.raises(ScanError, match="a toy scan must be written as toy"):
        write_scan(tmp_path / "out" / "b.tif", scan, scan.planes)
    planes = index_planes(tmp_path / "in", Reading())  # training indexes its planes
    assert [str(p) for p in planes] == [str(src), f"{src}[1]"]


def test_a_registered_format_is_found_by_every_caller(tmp_path, toy):
    src = write_toy(tmp_path / "in" / "sub" / "a.toy", np.zeros((1, 2, 2), np.int16))
    assert find_inputs([str(tmp_path / "in")], recursive=True) == [(src, Path("sub/a.toy"))]
    assert scan_files(tmp_path / "in") == {"sub/a.toy": src}
    assert list_files(tmp_path / "in" / "sub", accept=is_scan_file) == [src]


def test_a_missing_library_is_one_line_naming_the_file_and_the_fix(tmp_path, monkeypatch):
    class NeedsMissing(ToyFormat):
        libraries = ("gan_style_test_no_such_module",)

    monkeypatch.setitem(SCAN_FORMATS, "toy", NeedsMissing())
    src = write_toy(tmp_path / "a.toy", np.zeros((1, 2, 2), np.int16))
    with pytest.raises(ScanError) as e:
        read_scan(src)
    assert str(e.value) == (f"{src}: toy files need gan-style-test-no-such-module: "  # the package's name
                            "pip install 'gan_style[science]' (make setup installs it)")
    assert not SCAN_FORMATS["toy"].available() and all(f.available() for n, f in SCAN_FORMATS.items() if n != "toy")


def test_a_registered_format_translates_end_to_end(tmp_path, toy):
    from test_science import write_ct_generator

    write_ct_generator(tmp_path / "g.safetensors")  # 1 channel, int16 HU in and out
    values = np.random.default_rng(0).integers(-1000, 2000, (3, 16, 12)).astype(np.int16)
    write_toy(tmp_path / "in" / "a.toy", values)
    (tmp_path / "in" / "notes.txt").write_text("not an input")
    assert cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "in"),
                     "-o", str(tmp_path / "out")]) == 0
    out = read_scan(tmp_path / "out" / "a.toy")
    assert out.planes.shape == (3, 16, 12, 1) and out.planes.dtype == np.int16
    assert out.planes.min() >= -1000 and out.planes.max() <= 2000 and not np.array_equal(out.planes[..., 0], values)


# ---------------------------------------------------------------- folder-shaped stores


def test_a_zarr_folder_is_one_input_never_entered(tmp_path, toy):
    data = tmp_path / "data"
    store = write_store(data / "a.zarr", np.ones((2, 4, 4, 1), np.float32))
    (data / "sub").mkdir()
    Image.new("L", (4, 4)).save(data / "sub" / "b.png")
    expected = [(store, Path("a.zarr")), (data / "sub" / "b.png", Path("sub/b.png"))]
    assert find_files([data], recursive=True, accept=is_scan_file) == expected
    assert find_files([str(data / "**" / "*")], accept=is_scan_file) == expected  # a glob: the store, not its files
    assert find_files([store]) == [(store, Path("a.zarr"))]  # named: one input
    assert find_inputs([str(data)], recursive=True) == expected
    assert scan_files(data) == {"a.zarr": store, "sub/b.png": data / "sub" / "b.png"}
    assert [(p.path, p.index) for p in index_planes(data, Reading())] == [(store, 0), (store, 1)]  # not recursive
    assert plane_count(store) == 2 and read_plane(store, 1).shape == (4, 4, 1)


def test_a_zarr_folder_is_a_folder_until_a_folder_format_claims_it(tmp_path):
    store = write_store(tmp_path / "a.zarr", np.ones((1, 2, 2, 1), np.float32))
    assert find_files([tmp_path], recursive=True) == [(store / "0.0", Path("a.zarr/0.0")),
                                                      (store / "planes.npy", Path("a.zarr/planes.npy"))]


def test_a_folder_format_is_written_atomically_and_replaces_an_older_store(tmp_path, toy, monkeypatch):
    store = write_store(tmp_path / "a.zarr", np.ones((1, 2, 2, 1), np.float32))
    scan = read_scan(store)
    out = tmp_path / "out"
    write_scan(out / "b.zarr", scan, scan.planes * 3)
    write_scan(out / "b.zarr", scan, scan.planes * 5)  # over an existing store
    assert np.array_equal(read_scan(out / "b.zarr").planes, scan.planes * 5)
    assert sorted(p.name for p in out.iterdir()) == ["b.zarr"]  # no temporary folders left

    def failing(f, path, like, planes):
        (path / "half").write_bytes(b"x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(SCAN_FORMATS["toystore"], "write", failing)
    with pytest.raises(RuntimeError):
        write_scan(out / "c.zarr", scan, scan.planes)
    assert sorted(p.name for p in out.iterdir()) == ["b.zarr"]


# ---------------------------------------------------------------- finding files


def test_find_files_sorts_skips_hidden_and_excludes_the_output(tmp_path):
    for name in ("b.png", "a.png", ".hidden.png", ".git/c.png", "sub/d.png", "out/e.png", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_files([tmp_path], recursive=True, accept=lambda p: p.suffix == ".png", exclude=tmp_path / "out")
    assert [rel.as_posix() for _, rel in found] == ["a.png", "b.png", "sub/d.png"]
    assert [rel.as_posix() for _, rel in find_files([tmp_path], accept=lambda p: p.suffix == ".png")] == [
        "a.png", "b.png"]  # not recursive
    several = find_files([tmp_path / "sub", tmp_path / "a.png"])
    assert several == [(tmp_path / "sub" / "d.png", Path("sub/d.png")), (tmp_path / "a.png", Path("a.png"))]
    assert [rel.as_posix() for _, rel in find_files([str(tmp_path / "*" / "*.png")])] == ["out/e.png", "sub/d.png"]
    with pytest.raises(FindError, match="missing: no such file or folder"):
        find_files([str(tmp_path / "missing")])


# ---------------------------------------------------------------- which pipeline


PHOTO = GeneratorInfo(arch={"in_channels": 3, "out_channels": 3}, origin="photo")
SCIENCE = GeneratorInfo(arch={"in_channels": 1, "out_channels": 1}, origin="science")


def test_the_generator_decides_the_pipeline(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint16))
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    png, tif, bad, video = tmp_path / "a.png", tmp_path / "a.tif", tmp_path / "bad.tif", tmp_path / "a.mp4"
    assert [route.pipeline(p, PHOTO) for p in (png, tif, bad, video)] == ["image", "image", "image", "video"]
    assert [route.pipeline(p, SCIENCE) for p in (png, tif, bad, video)] == ["scan", "scan", "scan", "video"]
    assert route.pipeline(tif, PHOTO, force_slide=True) == route.pipeline(tif, SCIENCE, force_slide=True) == "slide"
    assert route.pipeline(png, PHOTO, force_slide=True) == "image"  # only TIFFs stream
    jobs = [Job(p, tmp_path / "out" / p.name) for p in (png, tif, video)]
    photo, science = route.route_jobs(jobs, PHOTO, force_slide=True), route.route_jobs(jobs, SCIENCE)
    assert (photo.images, photo.exact, photo.videos, photo.refused) == ([jobs[0]], [(jobs[1], "slide")], [jobs[2]], [])
    assert (science.images, science.exact, science.videos) == ([], [(jobs[0], "scan"), (jobs[1], "scan")], [])
    assert science.refused == [f"{video}: a generator for scientific data does not translate videos"]


def test_a_photo_generator_takes_images_and_videos_not_other_scans(tmp_path, capsys):
    from safetensors.torch import save_file
    from test_slide import rgb_generator

    names = ("a.png", "b.tif", "c.mp4", "d.npy", "e.dcm", "f.nii.gz", "notes.txt")
    assert [route.takes(PHOTO, Path(n)) for n in names] == [True, True, True, False, False, False, False]
    assert [route.takes(SCIENCE, Path(n)) for n in names] == [True, True, True, True, True, True, False]
    save_file(rgb_generator().net.state_dict(), str(tmp_path / "g.safetensors"))
    (tmp_path / "in").mkdir()
    Image.new("RGB", (16, 16), (200, 40, 10)).save(tmp_path / "in" / "a.png")
    np.save(tmp_path / "in" / "features.npy", np.zeros((4, 8), np.float32))  # e.g. a cache beside the photos
    assert cli_main(["translate", "-w", str(tmp_path / "g.safetensors"), "-i", str(tmp_path / "in"),
                     "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
