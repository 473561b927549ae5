"""The web app's functions: model discovery and labels, the cache, batches with bad files, the zip,
the path restriction, the size limits, the training tab's data and the serve command's safety."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_helpers import smooth_image, tiny_net, truncated_jpeg, write_run
from conftest import REPO
from gan_style import load_generator, translate_image
from gan_style.app.batch import InputRefused, Limits, summary, translate_files
from gan_style.app.models import Catalog, ModelChoice, UnknownModel, discover, given_choices
from gan_style.app.training import latest_panels, list_runs, loss_curves, read_metrics, run_dir, run_status
from gan_style.inference.export import export_generator
from gan_style.inference.weights import WeightsError
from gan_style.io.images import read_rgb


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """runs/monet (both generators), runs/half (G_B only), exports/ (an export, a reference file, junk)."""
    root = tmp_path_factory.mktemp("models")
    write_run(root / "runs" / "monet" / "last.pt")
    write_run(root / "runs" / "half" / "last.pt", generators=("G_B",))
    (root / "runs" / "empty").mkdir()
    export_generator(root / "runs" / "monet" / "last.pt", "safetensors", root / "exports", direction="BtoA")
    torch.save(tiny_net(7).state_dict(), root / "exports" / "latest_net_G_A.pth")
    (root / "exports" / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (root / "exports" / "notes.txt").write_text("not weights")
    return root


def test_discovery_offers_each_readable_file_and_direction(models):
    choices = discover(models / "runs", models / "exports", official=True)
    got = {c.label: (Path(c.weights).relative_to(models).as_posix(), c.direction, c.kind)
           for c in choices if c.kind != "official"}
    assert got == {
        "half: photo → monet (BtoA)": ("runs/half/last.pt", "BtoA", "run"),  # G_A missing: AtoB dropped
        "monet: monet → photo (AtoB)": ("runs/monet/last.pt", "AtoB", "run"),
        "monet: photo → monet (BtoA)": ("runs/monet/last.pt", "BtoA", "run"),
        "latest_net_G_A: input → output": ("exports/latest_net_G_A.pth", "AtoB", "export"),  # offered once
        "monet_BtoA: photo → monet (BtoA)": ("exports/monet_BtoA.safetensors", "BtoA", "export"),
    }
    official = {c.label: c.weights for c in choices if c.kind == "official"}
    assert official["official style_monet: photo → monet"] == "official:style_monet"
    assert official["official horse2zebra: horse → zebra"] == "official:horse2zebra"
    assert discover(models / "runs", None, official=False) == [c for c in choices if c.kind == "run"]


def test_each_choice_loads_its_own_generator(models):
    catalog = Catalog(discover(models / "runs", models / "exports", official=False))
    nets = write_run(models / "check" / "last.pt")  # same seeds as runs/monet: the same weights
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        want = {"AtoB": nets["G_A"](x), "BtoA": nets["G_B"](x)}
    for label, way in (("monet: monet → photo (AtoB)", "AtoB"), ("monet: photo → monet (BtoA)", "BtoA"),
                       ("monet_BtoA: photo → monet (BtoA)", "BtoA")):
        gen = catalog.get(label, "cpu", "fp32")
        assert torch.allclose(gen(x), want[way], atol=1e-6), label
        assert gen.info.direction == way


def test_given_weights_are_offered_and_deduplicated(models):
    given = given_choices([str(models / "runs" / "monet"), "official:style_vangogh"])
    assert [c.label for c in given] == [
        "monet: monet → photo (AtoB)", "monet: photo → monet (BtoA)", "official style_vangogh: photo → vangogh"]
    catalog = Catalog(given + discover(models / "runs", None, official=False))
    assert catalog.labels == [c.label for c in given] + ["half: photo → monet (BtoA)"]
    with pytest.raises(WeightsError, match="not found"):
        given_choices([str(models / "nope.pt")])
    with pytest.raises(WeightsError, match="broken.safetensors"):
        given_choices([str(models / "exports" / "broken.safetensors")])


def test_cache_is_bounded_and_refuses_labels_it_did_not_offer(models, tmp_path):
    calls = []

    def loader(weights, direction, device, precision):
        calls.append((weights, direction))
        return object()

    a = ModelChoice("a", "a.pt", "AtoB", "run")
    b = ModelChoice("b", "b.pt", None, "export")
    catalog = Catalog([a, b], max_loaded=1, loader=loader)
    first = catalog.get("a", "cpu", "fp32")
    assert catalog.get("a", "cpu", "fp32") is first and len(calls) == 1  # cached
    catalog.get("b", "cpu", "fp32")
    catalog.get("a", "cpu", "fp32")  # evicted by b: loaded again
    assert calls == [("a.pt", "AtoB"), ("b.pt", None), ("a.pt", "AtoB")]
    assert catalog.loaded() == [("a", "cpu", "fp32")]
    # A path typed in the page is not a model the server offers: it is never opened.
    secret = tmp_path / "secret.pt"
    write_run(secret)
    for label in (str(secret), "official:style_monet", None, ["a"]):
        with pytest.raises(UnknownModel, match="not one of the models"):
            catalog.get(label, "cpu", "fp32")
    assert len(calls) == 3


@pytest.fixture(scope="module")
def gen(models):
    return load_generator(models / "exports" / "monet_BtoA.safetensors", device="cpu", precision="fp32")


def uploads(folder: Path) -> list[tuple[Path, str]]:
    """A batch as the page sends it: (server path, the user's name), bad files in the middle."""
    folder.mkdir(parents=True, exist_ok=True)
    smooth_image(37, 23).save(folder / "odd.png")
    rgba = smooth_image(30, 20).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    (folder / "notes.jpg").write_text("this is not an image")
    truncated_jpeg(folder / "cut.jpg")
    Image.fromarray((np.arange(21 * 33, dtype=np.uint16).reshape(21, 33) * 90)).save(folder / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 44x28, shown rotated: 28x44
    smooth_image(44, 28).save(folder / "rotated.jpg", exif=exif)
    smooth_image(37, 23, seed=1).save(folder / "sub_odd.png")
    names = ["odd.png", "alpha.png", "notes.jpg", "cut.jpg", "deep16.png", "rotated.jpg", "odd.png"]
    files = ["odd.png", "alpha.png", "notes.jpg", "cut.jpg", "deep16.png", "rotated.jpg", "sub_odd.png"]
    return [(folder / f, n) for f, n in zip(files, names)]


def test_batch_with_bad_files_translates_the_others(gen, tmp_path):
    files = uploads(tmp_path / "in")
    seen = []
    batch = translate_files(gen, files, tmp_path / "out", progress=lambda f, what: seen.append((f, what)))
    assert [r.name for r in batch.done] == ["odd.png", "alpha.png", "deep16.png", "rotated.jpg", "odd.png"]
    assert [r.size for r in batch.done] == [(37, 23), (30, 20), (33, 21), (28, 44), (37, 23)]
    errors = [r.error for r in batch.failed]
    assert len(errors) == 2
    assert errors[0].startswith("notes.jpg: cannot read image") and errors[1].startswith("cut.jpg: cannot read image")
    assert all(str(tmp_path) not in e for e in errors)  # the user's name, not the server's path
    for result, (path, _) in zip(batch.done, [files[i] for i in (0, 1, 4, 5, 6)]):
        with Image.open(result.png) as png:
            assert png.format == "PNG"
            assert np.array_equal(np.asarray(png), np.asarray(translate_image(gen, read_rgb(path))))
    assert [r.png.name for r in batch.done] == [
        "odd_monet.png", "alpha_monet.png", "deep16_monet.png", "rotated_monet.png", "odd_monet_2.png"]
    assert [f for f, _ in seen] == [i / 7 for i in range(7)] + [1.0] and "cut.jpg (4/7)" in seen[3][1]
    text = summary(batch, "monet_BtoA: photo → monet (BtoA)", gen)
    assert text.startswith("Translated 5 of 7 image(s) in ") and "on cpu (fp32) with monet_BtoA" in text
    assert "⚠ notes.jpg: cannot read image" in text and "⚠ cut.jpg: cannot read image" in text


def test_batch_zip_holds_every_png(gen, tmp_path):
    batch = translate_files(gen, uploads(tmp_path / "in"), tmp_path / "out")
    with zipfile.ZipFile(batch.zip) as z:
        assert sorted(z.namelist()) == sorted(r.png.name for r in batch.done)
        for r in batch.done:
            assert z.read(r.png.name) == r.png.read_bytes()
    one = translate_files(gen, uploads(tmp_path / "in")[:1], tmp_path / "one")
    assert one.zip is None and len(one.done) == 1  # one image: its PNG is the download


def test_size_limits_refuse_by_name_and_go_on(gen, tmp_path):
    smooth_image(200, 100).save(tmp_path / "big.png")  # 0.02 megapixels
    smooth_image(40, 30).save(tmp_path / "small.png")
    files = [(tmp_path / "big.png", "big.png"), (tmp_path / "small.png", "small.png")]
    batch = translate_files(gen, files, tmp_path / "a", limits=Limits(max_megapixels=0.01))
    assert [r.name for r in batch.done] == ["small.png"]
    assert batch.failed[0].error.startswith("big.png: image of 200x100 is 0.0 megapixels, over this server's limit")
    # The output size counts too: short side 100 makes small.png 133x100.
    upscaled = translate_files(gen, files[1:], tmp_path / "b", size=100, limits=Limits(max_megapixels=0.01))
    assert "small.png: output of 133x100" in upscaled.failed[0].error
    assert translate_files(gen, files[1:], tmp_path / "c", size=16).done[0].size == (21, 16)
    heavy = translate_files(gen, files[1:], tmp_path / "d", limits=Limits(max_upload_mb=1e-4))
    assert "small.png: 0.0 MB, over this server's limit of 0.0001 MB" in heavy.failed[0].error
    with pytest.raises(InputRefused, match="at most 1 per request"):
        translate_files(gen, files, tmp_path / "e", limits=Limits(max_files=1))


def test_uploaded_files_must_come_from_the_upload_folder(tmp_path):
    import gradio as gr

    from gan_style.app.ui import uploaded

    upload_dir = tmp_path / "gradio"
    (upload_dir / "abc").mkdir(parents=True)
    smooth_image(8, 8).save(upload_dir / "abc" / "photo.png")
    assert uploaded([str(upload_dir / "abc" / "photo.png")], upload_dir) == [
        ((upload_dir / "abc" / "photo.png").resolve(), "photo.png")]
    smooth_image(8, 8).save(tmp_path / "elsewhere.png")
    for path in (tmp_path / "elsewhere.png", upload_dir / "abc" / ".." / ".." / "elsewhere.png", upload_dir / "abc"):
        with pytest.raises(gr.Error, match="not a file uploaded to this page"):
            uploaded([str(path)], upload_dir)


# ---------------------------------------------------------------- the training tab


def test_training_tab_reads_runs_while_they_are_written(tmp_path):
    runs = tmp_path / "runs"
    (runs / "monet" / "samples").mkdir(parents=True)
    (runs / "notarun").mkdir()
    rows = [{"step": 50, "loss/G_A": 1.5, "loss/D_A": 0.5, "lr/G": 2e-4, "epoch": 0.5},
            {"step": 100, "loss/G_A": 1.0, "loss/D_A": 0.25, "epoch": 1.0}]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 150, "loss/G_A"'  # being written
    (runs / "monet" / "metrics.jsonl").write_text(text)
    assert list_runs(runs) == ["monet"] and list_runs(tmp_path / "none") == []
    got = read_metrics(runs / "monet" / "metrics.jsonl")
    assert got == rows
    assert loss_curves(got) == [
        {"step": 50, "loss": "G_A", "value": 1.5}, {"step": 50, "loss": "D_A", "value": 0.5},
        {"step": 100, "loss": "G_A", "value": 1.0}, {"step": 100, "loss": "D_A", "value": 0.25}]
    assert run_status(got, None) == "Last logged step 100, epoch 1.00; latest samples: none yet."
    import os
    for i, tag in enumerate(("step_0000100", "step_0000200")):
        for side in "AB":
            f = runs / "monet" / "samples" / f"{tag}_{side}.png"
            smooth_image(24, 8, seed=i).save(f)
            os.utime(f, (1000 + i, 1000 + i))
    tag, panels = latest_panels(runs / "monet")
    assert tag == "step_0000200" and [c for _, c in panels] == ["step_0000200: A", "step_0000200: B"]
    assert panels[0][0].size == (24, 8)
    for name in ("notarun", "../monet", str(runs / "monet")):
        with pytest.raises(ValueError, match="is not a run"):
            run_dir(runs, name)


# ---------------------------------------------------------------- the serve command


def test_serve_listens_on_loopback_unless_asked_and_warns():
    from gan_style.cli import serve

    parser = __import__("argparse").ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.share, args.max_megapixels) == ("127.0.0.1", 7860, False, 50.0)
    assert serve.exposure_warnings("127.0.0.1", False) == []
    assert "anyone who can reach this machine" in serve.exposure_warnings("0.0.0.0", False)[0]
    assert "public gradio.live link" in serve.exposure_warnings("127.0.0.1", True)[0]


def test_serve_refuses_bad_weights_in_one_line(tmp_path):
    (tmp_path / "bad.pt").write_text("junk")
    proc = subprocess.run([sys.executable, "-m", "gan_style", "serve", "--weights", str(tmp_path / "bad.pt"),
                           "--only-weights"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"serve: {tmp_path / 'bad.pt'}") and proc.stderr.count("\n") == 1


def test_app_imports_no_training_code():
    code = ("import sys, gan_style.app.ui, gan_style.cli.serve; "
            "print([m for m in sys.modules if m.split('.')[:2] in (['gan_style', 'training'], "
            "['gan_style', 'methods'], ['gan_style', 'data'], ['gan_style', 'config'])])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**__import__("os").environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
