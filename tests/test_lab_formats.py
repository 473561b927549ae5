"""The formats labs use, each through the scan registry and read back by an independent reader:
OME-TIFF (tifffile's OME-XML), OME-Zarr (ome-zarr's reader and zarr), an SVS-like slide through
OpenSlide translated into an OME-TIFF or OME-Zarr pyramid with its microns per pixel; a missing
reader package or plug-in is one line naming it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from gan_style.cli import main as cli_main
from gan_style.inference.route import SLIDE, pipeline, translate_exact
from gan_style.inference.scans import translate_planes
from gan_style.inference.translate import Generator, load_generator
from gan_style.inference.weights import GeneratorInfo
from gan_style.io.intensity import cast_to
from gan_style.io.scans import ScanError, output_name, read_scan, write_scan
from gan_style.nets import ResnetGenerator, init_weights
from test_target_representation import MR, write_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RNG = np.random.default_rng(11)
APERIO = "Aperio Image Library v12.0.15 \r\n{w}x{h} [0,0 {w}x{h}] (128x128) RAW/RGB|AppMag = 20|MPP = 0.4990"


def pixels(path: Path) -> dict:
    """The OME-XML Pixels element of an OME-TIFF, as tifffile parses it (not our reader)."""
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
    return (image[0] if isinstance(image, list) else image)["Pixels"]


def write_ome_tiff(path: Path, data: np.ndarray) -> None:
    """A TCZYX OME-TIFF with physical sizes and channel names, as a microscope's software writes it."""
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 2.0,
        "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm", "Channel": {"Name": ["DAPI", "GFP"]}})


def test_ome_tiff_planes_are_t_c_z_and_written_back_with_the_physical_sizes(tmp_path):
    data = RNG.integers(0, 60000, (2, 2, 3, 20, 24)).astype(np.uint16)  # T, C, Z, Y, X
    write_ome_tiff(tmp_path / "a.ome.tif", data)
    scan = read_scan(tmp_path / "a.ome.tif")
    assert scan.format == "ome_tiff" and scan.planes.shape == (12, 20, 24, 1) and scan.planes.dtype == np.uint16
    assert np.array_equal(scan.planes[..., 0], data.reshape(12, 20, 24))  # T, then C, then Z
    assert scan.meta["physical"] == (2.0, 0.3, 0.25) and scan.meta["channel_names"] == ["DAPI", "GFP"]
    write_scan(tmp_path / "b.ome.tif", scan, scan.planes)
    p = pixels(tmp_path / "b.ome.tif")
    assert (p["SizeT"], p["SizeC"], p["SizeZ"]) == (2, 2, 3)
    assert (p["PhysicalSizeX"], p["PhysicalSizeY"], p["PhysicalSizeZ"]) == (0.25, 0.3, 2.0)
    assert [c["Name"] for c in p["Channel"]] == ["DAPI", "GFP"]
    assert np.array_equal(tifffile.imread(tmp_path / "b.ome.tif").reshape(data.shape), data)


def test_ome_zarr_round_trip_read_back_by_ome_zarr(tmp_path):
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr.writer import write_image

    data = RNG.random((1, 2, 3, 16, 20)).astype(np.float32)
    write_image(data, zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="w", zarr_format=2), fmt=FormatV04(),
                scale_factors=(), axes="tczyx", scale={"t": 1.0, "c": 1.0, "z": 1.5, "y": 0.5, "x": 0.4})
    scan = read_scan(tmp_path / "a.ome.zarr")
    assert scan.planes.shape == (6, 16, 20, 1) and scan.meta["physical"] == (1.5, 0.5, 0.4)
    write_scan(tmp_path / "out" / "b.ome.zarr", scan, scan.planes * 2)
    (node,) = list(Reader(parse_url(str(tmp_path / "out" / "b.ome.zarr")))())[:1]
    assert [a["name"] for a in node.metadata["axes"]] == list("tczyx")
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 1.0, 1.5, 0.5, 0.4]
    assert np.array_equal(np.asarray(node.data[0]), data * 2)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "b.ome.zarr"]  # written atomically


def test_an_ome_tiff_stack_translates_plane_by_plane_into_an_ome_tiff(tmp_path):
    weights = write_generator(tmp_path / "g.safetensors", MR, MR)
    data = RNG.integers(0, 4000, (1, 2, 3, 16, 20)).astype(np.uint16)
    (tmp_path / "in").mkdir()
    write_ome_tiff(tmp_path / "in" / "a.ome.tif", data)
    assert cli_main(["translate", "-w", str(weights), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 0
    out = tifffile.imread(tmp_path / "out" / "a.ome.tif").reshape(6, 16, 20)
    gen = load_generator(weights, device="cpu")
    want = cast_to(translate_planes(gen, data.reshape(6, 16, 20, 1)), np.uint16)[0][..., 0]
    assert np.array_equal(out, want)  # each channel and slice its own plane
    assert pixels(tmp_path / "out" / "a.ome.tif")["PhysicalSizeZ"] == 2.0


def test_a_czi_written_by_zeiss_library_translates_into_an_ome_tiff(tmp_path):
    from pylibCZIrw import czi as pyczi

    data = RNG.integers(0, 4000, (2, 3, 16, 20)).astype(np.uint16)  # C, Z, Y, X
    with pyczi.create_czi(str(tmp_path / "a.czi")) as f:
        for c in range(2):
            for z in range(3):
                f.write(data=data[c, z][..., None], plane={"C": c, "Z": z, "T": 0})
        f.write_metadata(document_name="a", channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.25e-6, scale_y=0.3e-6,
                         scale_z=2e-6)
    scan = read_scan(tmp_path / "a.czi")
    assert scan.format == "czi" and np.array_equal(scan.planes[..., 0], data.reshape(6, 16, 20))
    weights = write_generator(tmp_path / "g.safetensors", MR, MR)
    assert cli_main(["translate", "-w", str(weights), "-i", str(tmp_path / "a.czi"), "-o", str(tmp_path / "out")]) == 0
    p = pixels(tmp_path / "out" / "a.ome.tif")  # CZI cannot be written: its output is an OME-TIFF
    assert (p["SizeC"], p["SizeZ"], p["PhysicalSizeX"], p["PhysicalSizeY"], p["PhysicalSizeZ"]) == (2, 3, 0.25, 0.3, 2.0)
    assert [c["Name"] for c in p["Channel"]] == ["DAPI", "GFP"]
    want = cast_to(translate_planes(load_generator(weights, device="cpu"), scan.planes), np.uint16)[0]
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "a.ome.tif").reshape(6, 16, 20), want[..., 0])


# ---------------------------------------------------------------- slides through OpenSlide


H, W = 200, 264  # not multiples of the tile


def write_svs(path: Path) -> np.ndarray:
    """An SVS-like slide: a tiled RGB TIFF whose ImageDescription is Aperio's (OpenSlide's aperio driver)."""
    coarse = RNG.integers(0, 256, (H // 8 + 1, W // 8 + 1, 3)).astype(np.float64)
    image = np.kron(coarse, np.ones((8, 8, 1)))[:H, :W].astype(np.uint8)
    tifffile.imwrite(path, image, tile=(128, 128), photometric="rgb", description=APERIO.format(w=W, h=H),
                     metadata=None)
    return image


def rgb_generator() -> Generator:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=2), gain=0.2).eval()
    arch = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2, "antialias": False, "antialias_up": False}
    return Generator(net, GeneratorInfo(arch=arch, origin="tiny"), torch.device("cpu"), "fp32")


@pytest.fixture(scope="module")
def svs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svs")
    image = write_svs(folder / "slide.svs")
    gen = rgb_generator()
    whole = cast_to(translate_planes(gen, image[None], tile=0)[0], np.uint8)[0]  # the slide translated whole
    return folder, image, gen, whole


def test_an_svs_slide_streams_through_openslide_into_an_ome_tiff_pyramid_with_its_mpp(svs, tmp_path):
    import openslide

    folder, image, gen, whole = svs
    assert openslide.OpenSlide(str(folder / "slide.svs")).properties["openslide.vendor"] == "aperio"
    assert pipeline(folder / "slide.svs", gen.info) == SLIDE and output_name(Path("x/slide.svs")) == Path("x/slide.ome.tif")
    from gan_style.inference.scans import ScanOptions

    written = translate_exact(gen, folder / "slide.svs", tmp_path / "slide.svs", ScanOptions(slide_tile=64, pyramid=True))
    assert written == tmp_path / "slide.ome.tif" and not (tmp_path / "slide.svs").exists()
    p = pixels(written)
    assert (p["SizeX"], p["SizeY"], p["PhysicalSizeX"], p["PhysicalSizeY"]) == (W, H, 0.499, 0.499)
    with tifffile.TiffFile(written) as tif:
        levels = tif.series[0].levels
        out = levels[0].asarray()
        assert [lv.shape[:2] for lv in levels[:2]] == [(H, W), (H // 2, W // 2)]
    assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1  # exact but for rounding


def test_an_svs_slide_into_ome_zarr_read_back_by_ome_zarr(svs, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    folder, _, gen, whole = svs
    assert cli_main(["translate", "-i", str(folder / "slide.svs"), "-o", str(tmp_path / "s.ome.zarr"), "--pyramid",
                     "--slide-tile", "64", "--precision", "fp32", "-w", str(save_rgb(gen, tmp_path))]) == 0
    # Into a folder, with a photo generator (whose outputs are otherwise .png): an OME-TIFF slide.
    assert cli_main(["translate", "-i", str(folder / "slide.svs"), "-o", str(tmp_path / "out"), "--slide-tile", "64",
                     "-w", str(tmp_path / "rgb.safetensors")]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["slide.ome.tif"]
    assert pixels(tmp_path / "out" / "slide.ome.tif")["PhysicalSizeX"] == 0.499
    node = list(Reader(parse_url(str(tmp_path / "s.ome.zarr")))())[0]
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "y", "x"]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales[:2] == [[1.0, 0.499, 0.499], [1.0, 0.998, 0.998]] and len(node.data) >= 3
    out = np.asarray(node.data[0]).transpose(1, 2, 0)
    assert out.shape == (H, W, 3) and np.abs(out.astype(int) - whole.astype(int)).max() <= 1


def save_rgb(gen: Generator, folder: Path) -> Path:
    from safetensors.torch import save_file

    save_file(gen.net.state_dict(), str(folder / "rgb.safetensors"))
    return folder / "rgb.safetensors"


# ---------------------------------------------------------------- a missing reader: one line


def test_a_slide_without_openslide_is_one_line_naming_the_package(svs, tmp_path, monkeypatch, capsys):
    folder, image, gen, _ = svs
    tifffile.imwrite(tmp_path / "ok.tif", image)
    monkeypatch.setitem(sys.modules, "openslide", None)  # as if openslide-python were not installed
    code = cli_main(["translate", "-w", str(save_rgb(gen, tmp_path)), "-i", str(folder / "slide.svs"),
                     str(tmp_path / "ok.tif"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and (tmp_path / "out" / "ok.tif").is_file()  # the rest is done
    assert (f"{folder / 'slide.svs'}: OpenSlide slide files need openslide-python: "
            "pip install 'gan_style[slides]' (make setup installs it)") in err


@pytest.mark.parametrize("suffix, package", [(".czi", "bioio-czi"), (".nd2", "bioio-nd2"), (".lif", "bioio-lif")])
def test_a_czi_nd2_or_lif_without_its_plugin_is_one_line(tmp_path, monkeypatch, suffix, package):
    (tmp_path / f"a{suffix}").write_bytes(b"\0" * 64)
    monkeypatch.setitem(sys.modules, package.replace("-", "_"), None)
    with pytest.raises(ScanError) as e:
        read_scan(tmp_path / f"a{suffix}")
    label = suffix[1:].upper()
    assert str(e.value) == f"{tmp_path / f'a{suffix}'}: {label} files need {package}: pip install 'gan_style[bio]' " \
                           "(make setup installs it)"


def test_a_damaged_czi_is_one_line(tmp_path):
    (tmp_path / "a.czi").write_bytes(b"not a CZI file at all")
    with pytest.raises(ScanError, match=r"a\.czi: cannot read it with bioio_czi") as e:
        read_scan(tmp_path / "a.czi")
    assert "\n" not in str(e.value)
