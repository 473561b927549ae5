"""Style from one painting: the perceptual losses against hand computations, a gradient check, the
optimisation lowering the style distance, the feature networks (offline Inception, VGG weights
from a local server) and `gan-style stylize` with bad inputs."""

import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gan_style.cli import main as cli_main
from gan_style.inference.stylize import StylizeSettings, preserve_colour, scales, steps_at, stylize
from gan_style.nets import perceptual
from gan_style.nets.perceptual import (FeatureError, FeatureNet, StyleObjective, content_loss, gram, load_features,
                                       style_distance, style_grams, total_variation)


def tiny_net() -> FeatureNet:
    """A small random conv net standing in for a feature network (double precision, for gradcheck)."""
    torch.manual_seed(0)
    stages = [("c1", nn.Conv2d(3, 4, 3, padding=1)), ("r1", nn.Tanh()), ("c2", nn.Conv2d(4, 5, 3, stride=2)),
              ("r2", nn.Tanh())]
    net = FeatureNet(stages, lambda x: x, "tiny").double()
    return net


def smooth(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth random image (1, 3, H, W) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


def test_gram_content_style_and_tv_match_hand_computations():
    f = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) / 10  # (N=2, C=3, 2x2)
    flat = f.reshape(2, 3, 4)
    expected = torch.stack([flat[n] @ flat[n].T for n in range(2)]) / (3 * 2 * 2)
    torch.testing.assert_close(gram(f), expected)
    assert gram(f)[0, 1, 2] == pytest.approx(float((flat[0, 1] * flat[0, 2]).sum()) / 12)
    g = f + 0.5
    content = content_loss({"a": g}, {"a": f})
    torch.testing.assert_close(content, ((g - f) ** 2).sum((1, 2, 3)) / (f**2).sum((1, 2, 3)))
    dist = style_distance({"a": g, "b": f}, {"a": gram(f), "b": gram(f)})
    assert dist.shape == (2, 2) and (dist[:, 1] == 0).all()
    torch.testing.assert_close(dist[:, 0], ((gram(g) - gram(f)) ** 2).sum((1, 2)))
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])  # (1, 1, 2, 2)
    # vertical differences |3-0|, |5-1| (mean 3.5); horizontal |1-0|, |5-3| (mean 1.5)
    assert total_variation(x).item() == pytest.approx(5.0)


def test_the_objective_has_the_right_gradient():
    net = tiny_net()
    photo, painting = smooth(12, 12, 1).double(), smooth(12, 12, 2).double()
    grams = style_grams(net, [painting], [1.0], ["r1", "r2"])
    objective = StyleObjective(net, photo, grams, ["r2"], strength=0.6, tv=0.01)
    x = (photo + 0.1 * smooth(12, 12, 3).double()).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: objective(y)[0], (x,), eps=1e-6, atol=1e-5)


def test_strength_normalisation_starts_at_one_and_zero():
    net = tiny_net()
    photo, painting = smooth(16, 16, 1).double(), smooth(16, 16, 2).double()
    objective = StyleObjective(net, photo, style_grams(net, [painting], [1.0], ["r1", "r2"]), ["r2"], strength=0.3)
    _, parts = objective(photo)
    assert parts["style"].item() == pytest.approx(1.0) and parts["content"].item() == pytest.approx(0.0)
    with pytest.raises(FeatureError, match=r"strength 1.5: must be in \[0, 1\]"):
        StyleObjective(net, photo, {}, ["r2"], strength=1.5)
    with pytest.raises(FeatureError, match="tiny has no layer nope"):
        StyleObjective(net, photo, {}, ["nope"], strength=0.5)


@pytest.fixture(scope="module")
def inception():
    return load_features("inception")


def test_stylize_lowers_the_style_distance_on_generated_images(inception):
    photo = smooth(64, 80, 1)
    painting = (torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(5)) > 0.5).float() * 2 - 1  # stripes of noise
    result, terms = stylize(inception, photo, [painting], StylizeSettings(strength=0.8, steps=15), torch.device("cpu"))
    assert result.shape == photo.shape and result.abs().max() <= 1
    assert terms["style"] < 0.5  # from 1.0 at the photo: at least halved
    weak, weak_terms = stylize(inception, photo, [painting], StylizeSettings(strength=0.2, steps=15), torch.device("cpu"))
    assert weak_terms["style"] > terms["style"] and weak_terms["content"] < terms["content"]
    assert (weak - photo).abs().mean() < (result - photo).abs().mean()


def test_preserve_colour_keeps_the_photos_chroma():
    photo, result = smooth(20, 24, 1), smooth(20, 24, 2)
    mixed = preserve_colour(result, photo)
    to_ycc = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    ycc = lambda x: torch.einsum("ij,njhw->nihw", to_ycc, (x + 1) / 2)  # noqa: E731
    inside = (mixed.abs() < 0.999).all(1, keepdim=True).expand(-1, 3, -1, -1)  # where nothing was clipped
    torch.testing.assert_close(ycc(mixed)[:, 1:][inside[:, 1:]], ycc(photo)[:, 1:][inside[:, 1:]], atol=1e-4, rtol=0)
    torch.testing.assert_close(ycc(mixed)[:, :1][inside[:, :1]], ycc(result)[:, :1][inside[:, :1]], atol=1e-4, rtol=0)


def test_a_12_megapixel_photo_is_done_coarse_to_fine():
    plan = scales(3000, 4000, 256)
    assert plan[0] == (188, 250) and plan[-1] == (3000, 4000) and len(plan) == 5
    steps = [steps_at(i, len(plan), 60) for i in range(len(plan))]
    assert steps == [60, 30, 15, 10, 10]  # the full-size scale takes only a few steps


# ---------------------------------------------------------------- VGG weights from a local server


@pytest.fixture
def weights_server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()


def test_vgg_weights_are_downloaded_once_checked_and_refused_when_wrong(weights_server, tmp_path, monkeypatch):
    www, url, requests = weights_server
    stand_in = www / "vgg19-stand-in.pth"
    torch.save({"features.0.weight": torch.zeros(2, 3, 3, 3)}, stand_in)  # a small file that is no VGG
    digest = hashlib.sha256(stand_in.read_bytes()).hexdigest()
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_STYLE_VGG19_URL", f"{url}/vgg19-stand-in.pth")
    monkeypatch.setenv("GAN_STYLE_VGG19_SHA256", digest[:8])
    path = perceptual.vgg_weights_path("vgg19")
    assert path.read_bytes() == stand_in.read_bytes() and len(requests) == 1
    assert perceptual.vgg_weights_path("vgg19") == path and len(requests) == 1  # cached: not fetched again
    with pytest.raises(FeatureError, match="not torchvision's vgg19"):
        load_features("vgg19")
    path.unlink()
    monkeypatch.setenv("GAN_STYLE_VGG19_SHA256", "00000000")
    with pytest.raises(FeatureError, match="checksum mismatch") as err:
        load_features("vgg19")
    assert "\n" not in str(err.value) and not path.exists()


def test_vgg_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_STYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_STYLE_VGG16_URL", "http://127.0.0.1:9/vgg16-397923af.pth")  # nothing listens there
    with pytest.raises(FeatureError) as err:
        load_features("vgg16")
    message = str(err.value)
    assert "download it by hand and save it as" in message and "--features inception" in message
    assert "\n" not in message


# ---------------------------------------------------------------- the command


def write(path, array: np.ndarray, mode: str | None = None):
    Image.fromarray(array, mode).save(path)
    return path


def noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)


def test_stylize_command_does_the_good_photos_and_names_the_bad(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    write(photos / "a.png", noise(48, 64, 1))
    write(photos / "b.jpg", noise(40, 40, 2))
    (photos / "broken.jpg").write_bytes(b"not an image")
    painting = write(tmp_path / "p.png", noise(30, 40, 3))  # 40x30: too small for the style layers
    out = tmp_path / "out"
    code = cli_main(["stylize", "--content", str(photos), "--style", str(painting), "--steps", "3", "-o", str(out),
                     "--metrics"])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert Image.open(out / "a.png").size == (64, 48)  # the photo's size
    errors = [line for line in captured.err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "Traceback" not in captured.err
    assert "upscaled to 64 px" in captured.err  # the tiny painting, with a note
    assert "style distance 1.000 ->" in captured.out and "colour W1 to the painting" in captured.out
    assert "stylized 2 of 3" in captured.out


@pytest.mark.parametrize("array,mode", [(noise(80, 80, 4, channels=1), None), (noise(80, 80, 5, channels=4), None),
                                        ((noise(80, 80, 6, channels=1).astype(np.uint16) * 257), None)])
def test_grayscale_rgba_and_16_bit_paintings_are_converted(tmp_path, capsys, array, mode):
    painting = write(tmp_path / "p.png", array, mode)
    photo = write(tmp_path / "photo.png", noise(40, 40, 7))
    code = cli_main(["stylize", "--content", str(photo), "--style", str(painting), "--steps", "2", "-o",
                     str(tmp_path / "o.png"), "--size", "64"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "o.png").size == (64, 64)


def test_bad_painting_and_bad_options_are_one_line(tmp_path, capsys):
    photo = write(tmp_path / "photo.png", noise(40, 40, 7))
    (tmp_path / "p.jpg").write_bytes(b"\x89PNG broken")
    assert cli_main(["stylize", "--content", str(photo), "--style", str(tmp_path / "p.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: painting") and "p.jpg" in err and len(err.strip().splitlines()) == 1
    good = write(tmp_path / "good.png", noise(80, 80, 8))
    assert cli_main(["stylize", "--content", str(photo), "--style", str(good), "--style-weights", "1,2"]) == 2
    assert "--style-weights gives 2 weights for 1 paintings" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli_main(["stylize", "--content", str(photo), "--style", str(good), "--strength", "1.5"])
    assert e.value.code == 2 and "outside [0, 1]" in capsys.readouterr().err


def test_ctrl_c_keeps_no_partial_output(tmp_path, capsys, monkeypatch):
    import gan_style.cli.stylize as command

    photo = write(tmp_path / "photo.png", noise(40, 40, 7))
    painting = write(tmp_path / "p.png", noise(80, 80, 8))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "stylize", interrupted)
    assert cli_main(["stylize", "--content", str(photo), "--style", str(painting), "-o", str(tmp_path / "out")]) == 130
    assert "interrupted" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_eval_measures_stylised_images_against_the_painting(tmp_path, capsys):
    import json

    photos = tmp_path / "photos"
    photos.mkdir()
    blue = (noise(48, 64, 1) * np.array([0.2, 0.4, 1.0])).astype(np.uint8)  # a bluish photo, an orange painting
    write(photos / "a.png", blue)
    painting = write(tmp_path / "p.png", (noise(80, 80, 8) * np.array([1.0, 0.6, 0.1])).astype(np.uint8))
    out = tmp_path / "out"
    assert cli_main(["stylize", "--content", str(photos), "--style", str(painting), "--steps", "8", "-o", str(out),
                     "--strength", "0.8"]) == 0
    report = tmp_path / "style.json"
    assert cli_main(["eval", "--painting", str(painting), "--fake", str(out), "--input", str(photos),
                     "--json", str(report)]) == 0
    scores = json.loads(report.read_text())["results"]
    assert scores["images"] == 1 and scores["style"] < 0.9 and scores["content"] > 0
    assert scores["colour_w1_after"] < scores["colour_w1_before"]
    # The photos themselves: style 1 and content 0 by definition.
    assert cli_main(["eval", "--painting", str(painting), "--fake", str(photos), "--input", str(photos),
                     "--json", str(report)]) == 0
    same = json.loads(report.read_text())["results"]
    assert same["style"] == pytest.approx(1.0, abs=1e-4) and same["content"] == pytest.approx(0.0, abs=1e-6)
    assert cli_main(["eval", "--painting", str(painting), "--fake", str(out)]) == 2
    assert "--painting needs --input DIR" in capsys.readouterr().err
