"""Inference: every kind of weights file, official downloads, image handling, tiling, the CLI."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from gan_style import load_generator, translate_image
from gan_style.cli import main as cli_main
from gan_style.inference.translate import Generator, pad_to_multiple, translate_tensor
from gan_style.inference.weights import GeneratorInfo, WeightsError
from gan_style.io.checkpoint import CheckpointError, save_atomic
from gan_style.io.download import DownloadError
from gan_style.io.tensors import image_to_float
from gan_style.nets import PatchDiscriminator, ResnetGenerator, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ARCH = {"in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 3,  # not the default 9: must be read from the file
        "antialias": False, "antialias_up": False}


def tiny_generator(seed: int = 0, **arch) -> ResnetGenerator:
    torch.manual_seed(seed)
    # Larger than the reference's 0.02 init so the output is far from constant and differences show.
    return init_weights(ResnetGenerator(**(ARCH | arch)), gain=0.2).eval()


def reference_layout(net: ResnetGenerator) -> dict[str, torch.Tensor]:
    """A state_dict as old reference checkpoints store it: stale InstanceNorm running statistics."""
    state = dict(net.state_dict())
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            c = module.num_features
            state |= {
                f"{name}.running_mean": torch.zeros(c),
                f"{name}.running_var": torch.ones(c),
                f"{name}.num_batches_tracked": torch.tensor(0),
            }
    return state


def write_training_checkpoint(path: Path, data_root: Path, dataset: str | None = "monet2photo") -> dict:
    """The layout gan_style/train.py writes (format_version 1, models, config, ...)."""
    nets = {"G_A": tiny_generator(1), "G_B": tiny_generator(2)}
    nets |= {"D_A": PatchDiscriminator(3, 8), "D_B": PatchDiscriminator(3, 8)}
    ckpt = {
        "format_version": 1,
        "models": {k: v.state_dict() for k, v in nets.items()},
        "config": {"name": "monet", "data": {"root": str(data_root), "dataset": dataset}, "model": {"ngf": 8}},
        "epoch": 3,
        "step": 30,
    }
    save_atomic(ckpt, path)
    return nets


def smooth_image(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8))
    return small.resize((w, h), Image.Resampling.BICUBIC)


def load_generator_from(net: ResnetGenerator) -> Generator:
    """A ready generator without a file (the file routes are tested separately)."""
    return Generator(net, GeneratorInfo(arch=ARCH, origin="tiny"), torch.device("cpu"), "fp32")


def run_net(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x)


# ---------------------------------------------------------------- weights files


@pytest.mark.parametrize("variant", ["reference", "dataparallel", "legacy_pickle", "dropout", "safetensors_bare"])
def test_reference_generator_files_load_strictly(tmp_path, variant):
    net = tiny_generator()
    state = reference_layout(net)
    path = tmp_path / "latest_net_G_A.pth"
    if variant == "dataparallel":
        state = {f"module.{k}": v for k, v in state.items()}
    if variant == "dropout":  # reference blocks with dropout: [pad, conv, norm, relu, dropout, pad, conv, norm]
        state = {k.replace(".conv_block.5.", ".conv_block.6."): v for k, v in state.items()}
    if variant == "safetensors_bare":
        from safetensors.torch import save_file

        path = tmp_path / "someone_elses.safetensors"
        save_file(net.state_dict(), str(path))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=variant != "legacy_pickle")
    gen = load_generator(path, device="cpu", precision="fp32")  # exact: not the CPU's bf16-blocks default
    assert gen.info.arch == ARCH
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    assert torch.equal(gen(x), run_net(net, x))


def test_training_checkpoint_direction_picks_the_generator(tmp_path):
    nets = write_training_checkpoint(tmp_path / "runs" / "monet" / "last.pt", tmp_path / "data")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    default = load_generator(tmp_path / "runs" / "monet", device="cpu", precision="fp32")  # the run folder works too
    # monet2photo: A = Monet, B = photo; the default is photo -> Monet, i.e. BtoA = G_B.
    assert default.info.direction == "BtoA" and (default.info.source, default.info.target) == ("photo", "monet")
    assert torch.equal(default(x), run_net(nets["G_B"], x))
    a2b = load_generator(tmp_path / "runs" / "monet" / "last.pt", direction="AtoB", device="cpu", precision="fp32")
    assert torch.equal(a2b(x), run_net(nets["G_A"], x))
    assert (a2b.info.source, a2b.info.target, a2b.info.run_name) == ("monet", "photo", "monet")
    write_training_checkpoint(tmp_path / "h2z.pt", tmp_path / "data", dataset="horse2zebra")
    assert load_generator(tmp_path / "h2z.pt", device="cpu").info.direction == "AtoB"


def test_wrong_files_give_one_line_errors(tmp_path):
    torch.save(PatchDiscriminator(3, 8).state_dict(), tmp_path / "D.pth")
    with pytest.raises(WeightsError, match="not a generator .its keys match no generator kind"):
        load_generator(tmp_path / "D.pth", device="cpu")
    state = tiny_generator().state_dict()
    state["model.1.weight"] = state["model.1.weight"][:, :, :5, :5]  # a 5x5 stem: another architecture
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(
        WeightsError, match=r"size mismatch: model\.1\.weight is \(8, 3, 5, 5\), expected \(8, 3, 7, 7\)"
    ):
        load_generator(tmp_path / "other.pth", device="cpu")
    state = tiny_generator().state_dict()
    del state["model.10.conv_block.5.bias"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match=r"missing model\.10\.conv_block\.5\.bias"):
        load_generator(tmp_path / "missing.pth", device="cpu")
    torch.save(tiny_generator().state_dict(), tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_generator(tmp_path / "truncated.pth", device="cpu")
    assert "truncated.pth" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="not found"):
        load_generator(tmp_path / "nope.pth", device="cpu")
    with pytest.raises(WeightsError, match="direction 'up'"):
        load_generator(tmp_path / "good.pth", direction="up", device="cpu")


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # unpickling would call Path.touch(marker)
            return (Path.touch, (marker,))

    torch.save({"model.1.weight": torch.zeros(8, 3, 7, 7), "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_generator(tmp_path / "evil.pth", device="cpu")
    assert not marker.exists()
    assert cli_main(["translate", "-w", str(tmp_path / "evil.pth"), "-i", str(tmp_path)]) == 2
    assert not marker.exists()


# ---------------------------------------------------------------- official:NAME downloads


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Handler", (_CountingHandler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=str(served), **k))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GAN_STYLE_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}/pretrained/")
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path / "cache"))
    yield served, handler
    server.shutdown()
    server.server_close()


def test_official_weights_download_once_then_cached(weights_server, tmp_path):
    served, handler = weights_server
    (served / "pretrained").mkdir()
    net = tiny_generator()
    torch.save(reference_layout(net), served / "pretrained" / "style_monet.pth")
    gen = load_generator("official:style_monet", device="cpu", precision="fp32")
    assert handler.requests == ["/pretrained/style_monet.pth"]
    assert (tmp_path / "cache" / "pretrained" / "style_monet.pth").is_file()
    assert (gen.info.source, gen.info.target) == ("photo", "monet")
    x = torch.rand(1, 3, 24, 28) * 2 - 1
    assert torch.equal(gen(x), run_net(net, x))
    load_generator("official:style_monet", device="cpu")
    assert len(handler.requests) == 1  # reused from the cache
    with pytest.raises(WeightsError, match="unknown model.*style_vangogh"):
        load_generator("official:style_picasso", device="cpu")
    with pytest.raises(DownloadError, match="style_cezanne.pth"):  # published name, but missing on this server
        load_generator("official:style_cezanne", device="cpu")
    assert not (tmp_path / "cache" / "pretrained" / "style_cezanne.pth").exists()


# ---------------------------------------------------------------- images: size, orientation, modes


@pytest.fixture(scope="module")
def gen():
    return load_generator_from(tiny_generator())


def awkward_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Write odd-sized, grayscale, RGBA, 16-bit and EXIF-rotated files; return name -> upright (w, h)."""
    folder.mkdir(parents=True, exist_ok=True)
    smooth_image(23, 37).save(folder / "odd.png")
    smooth_image(30, 41).convert("L").save(folder / "gray.jpg")
    rgba = smooth_image(26, 19).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(19, dtype=np.uint8) * 13, (26, 1))))
    rgba.save(folder / "alpha.png")
    Image.fromarray(np.arange(33 * 21, dtype=np.uint16).reshape(21, 33) * 90).save(folder / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 44x28, shown rotated 90 degrees: 28x44
    smooth_image(28, 44).save(folder / "rotated.jpg", exif=exif)
    Image.new("RGB", (3, 2), (200, 30, 30)).save(folder / "tiny.png")
    return {
        "odd.png": (37, 23),
        "gray.jpg": (41, 30),
        "alpha.png": (19, 26),
        "deep16.png": (33, 21),
        "rotated.jpg": (28, 44),
        "tiny.png": (3, 2),
    }


def test_translate_image_keeps_size_and_orientation(gen, tmp_path):
    for name, size in awkward_images(tmp_path).items():
        out = translate_image(gen, tmp_path / name)
        assert (out.size, out.mode) == (size, "RGB"), name
        with Image.open(tmp_path / name) as opened:  # PIL in, PIL out: same result as from the path
            assert np.array_equal(np.asarray(translate_image(gen, opened)), np.asarray(out)), name
    assert translate_image(gen, tmp_path / "odd.png", size=16).size == (26, 16)  # shorter side 16


def test_padding_reflects_and_is_cropped_back(gen):
    img = smooth_image(32, 40)  # already a multiple of 4: no padding, exactly the network's output
    x = image_to_float(img)[None]
    assert torch.equal(translate_tensor(gen, x, tile=0), gen(x))
    odd = x[..., :30, :37]
    padded, (h, w) = pad_to_multiple(odd)
    assert padded.shape[-2:] == (32, 40) and (h, w) == (30, 37)
    assert torch.equal(padded[..., 30, :37], odd[..., 28, :])  # reflection: row 30 mirrors row 28
    assert translate_tensor(gen, odd, tile=0).shape == odd.shape


# ---------------------------------------------------------------- tiling


@pytest.mark.parametrize("tile", [32, 48, 64])
def test_tiled_translation_matches_untiled(tile):
    g = load_generator_from(tiny_generator(5, n_blocks=2))
    x = image_to_float(smooth_image(102, 150, seed=3))[None]
    whole = translate_tensor(g, x, tile=0)
    tiled = translate_tensor(g, x, tile=tile)
    assert whole.std() > 0.05  # a real picture, not a constant
    # Same everywhere, borders included: whole-image InstanceNorm statistics, exact halos.
    assert (tiled - whole).abs().max() < 1e-4


def test_naive_tiles_would_show_seams():
    # The property the tiler exists for: translating tiles independently differs visibly.
    g = load_generator_from(tiny_generator(5, n_blocks=2))
    x = image_to_float(smooth_image(96, 96, seed=3))[None]
    whole = translate_tensor(g, x, tile=0)
    naive = torch.cat([translate_tensor(g, x[..., :, :48], tile=0), translate_tensor(g, x[..., :, 48:], tile=0)], dim=3)
    assert (naive - whole)[..., 16:-16, 40:56].abs().max() > 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiled_matches_untiled_on_cuda_in_bf16():
    g = load_generator_from(tiny_generator(5, n_blocks=2).cuda())
    g.device, g.precision = torch.device("cuda"), "bf16"
    x = image_to_float(smooth_image(102, 150, seed=3))[None]
    assert (translate_tensor(g, x, tile=48) - translate_tensor(g, x, tile=0)).abs().mean() < 0.02


# ---------------------------------------------------------------- the CLI


def test_cli_translates_a_folder_and_reports_a_corrupt_file(tmp_path, capsys):
    torch.save(tiny_generator().state_dict(), tmp_path / "G.pth")
    sizes = awkward_images(tmp_path / "in" / "sub")
    smooth_image(40, 40).save(tmp_path / "in" / "top.webp")
    (tmp_path / "in" / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "in" / "notes.txt").write_text("not an image, ignored")
    args = ["translate", "-w", str(tmp_path / "G.pth"), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-r"]
    assert cli_main(args + ["--workers", "1", "-b", "2"]) == 1
    err = capsys.readouterr().err
    assert "translated 7 image(s)" in err and "failed 1:" in err and "broken.jpg" in err
    for name, size in sizes.items():  # the folder structure is mirrored; GIF/PPM-like would become PNG
        assert Image.open(tmp_path / "out" / "sub" / name).size == size
    assert (tmp_path / "out" / "top.webp").is_file()
    before = (tmp_path / "out" / "top.webp").stat().st_mtime_ns
    assert cli_main(args) == 1  # still failing on broken.jpg, nothing overwritten
    assert "skipped 7 existing output(s)" in capsys.readouterr().err
    assert (tmp_path / "out" / "top.webp").stat().st_mtime_ns == before
    (tmp_path / "in" / "sub" / "broken.jpg").unlink()
    assert cli_main(args + ["--overwrite", "--ext", "png"]) == 0
    assert Image.open(tmp_path / "out" / "top.png").size == (40, 40)


def test_cli_defaults_from_a_training_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_training_checkpoint(tmp_path / "runs" / "monet" / "last.pt", Path("data"))
    for i in range(3):
        (tmp_path / "data" / "testB").mkdir(parents=True, exist_ok=True)
        smooth_image(20 + i, 24).save(tmp_path / "data" / "testB" / f"{i}.jpg")
    assert cli_main(["translate", "-w", "runs/monet"]) == 0
    assert sorted(p.name for p in (tmp_path / "results" / "monet_BtoA").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert "BtoA: photo -> monet" in capsys.readouterr().err
    assert cli_main(["translate", "-w", "runs/monet", "-d", "AtoB"]) == 2  # data/testA does not exist
    assert "data/testA" in capsys.readouterr().err


def test_cli_single_file_glob_and_bad_input(tmp_path, capsys):
    torch.save(tiny_generator().state_dict(), tmp_path / "G.pth")
    for name in ("a.png", "b.png", "c.jpg"):
        smooth_image(16, 20).save(tmp_path / name)
    w = ["translate", "-w", str(tmp_path / "G.pth")]
    assert cli_main(w + ["-i", str(tmp_path / "a.png"), "-o", str(tmp_path / "one.jpg")]) == 0
    assert Image.open(tmp_path / "one.jpg").size == (20, 16)
    assert cli_main(w + ["-i", str(tmp_path / "*.png"), "-o", str(tmp_path / "globbed")]) == 0
    assert sorted(p.name for p in (tmp_path / "globbed").iterdir()) == ["a.png", "b.png"]
    assert cli_main(w + ["-i", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x")]) == 2
    assert "missing.png: no such file or folder" in capsys.readouterr().err
    assert cli_main(w + ["-i", str(tmp_path / "a.png"), "-o", str(tmp_path)]) == 1  # would replace its input
    assert "would replace the input" in capsys.readouterr().err


def test_inference_imports_no_training_code():
    code = (
        "import sys; from gan_style import load_generator, translate_image; "
        "import gan_style.cli.translate, gan_style.cli.export, gan_style.inference.export; "
        "bad = [m for m in sys.modules if m.split('.')[:2] in (['gan_style', p] for p in "
        "('training', 'methods', 'data', 'config'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_commands_show_library_warnings_as_one_line(capsys, caplog):
    import logging

    from gan_style.logs import show_warnings

    show_warnings()
    show_warnings()  # once, however often called
    logging.getLogger("gan_style.inference.translate").warning("torch.compile failed (%s); running uncompiled", "X")
    assert capsys.readouterr().err == "warning: torch.compile failed (X); running uncompiled\n"
    assert "running uncompiled" in caplog.text  # still propagates to the application's logging
