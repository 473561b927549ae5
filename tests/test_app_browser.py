"""End to end: ``gan-style serve`` on 127.0.0.1, driven by Playwright in a headless Chromium.

Uses Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it), not Playwright's
own download; skips only when it is not installed. The README's screenshot comes from this run:

    GAN_STYLE_SCREENSHOT=docs/app.png GAN_STYLE_SCREENSHOT_WEIGHTS=runs/monet/last.pt pytest tests/test_app_browser.py

(the weights: any training checkpoint, served instead of the tiny random one the test makes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_helpers import smooth_image, tiny_net, write_run
from conftest import REPO
from gan_style import load_generator, translate_image
from gan_style.app.examples import SCENES, landscape
from gan_style.app.models import file_choices

CHROMIUM = Path(os.environ.get("GAN_STYLE_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`"
)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gan-style serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"gan-style serve did not answer at {url} within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    run = root / "runs" / "monet" / "last.pt"
    if os.environ.get("GAN_STYLE_SCREENSHOT_WEIGHTS"):
        run.parent.mkdir(parents=True)
        run.symlink_to(Path(os.environ["GAN_STYLE_SCREENSHOT_WEIGHTS"]).resolve())
    else:
        write_run(run)
    # The page offers AtoB first; the tests choose BtoA (photo -> painting), so the choice matters.
    model = next(c.label for c in file_choices(run, "weights", "monet") if c.direction == "BtoA")
    (root / "tmp").mkdir()
    (root / "zoo").mkdir()  # the official server, for official:style_monet
    torch.save(tiny_net(5).state_dict(), root / "zoo" / "style_monet.pth")
    torch.save(film_net().state_dict(), root / "film.pth")  # a strength-conditioned generator
    port, log = free_port(), root / "serve.log"
    env = {**os.environ, "TMPDIR": str(root / "tmp"), "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "GAN_STYLE_WEIGHTS_URL": (root / "zoo").as_uri(), "GAN_STYLE_CACHE": str(root / "cache"),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gan_style", "serve", "--weights", "runs/monet/last.pt",
           "--weights", "official:style_monet", "--weights", "film.pth", "--only-weights", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/", proc, log)
        yield {"url": url, "root": root, "proc": proc, "log": log, "model": model}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 860}, accept_downloads=True)
        try:
            yield context.new_page()
        finally:
            context.close()


def test_browser_translates_downloads_and_names_a_bad_file(server, page, tmp_path):
    photo, bad, model = tmp_path / "photo.png", tmp_path / "notes.jpg", server["model"]
    landscape(*SCENES[1][1:], size=(255, 191)).save(photo)  # not a multiple of 4: padded and cropped back
    bad.write_text("this is not an image")
    page.goto(server["url"] + "/")
    page.locator("#inputs input[type=file]").set_input_files([str(photo), str(bad)])
    page.locator("#inputs").get_by_text("notes", exact=False).wait_for()
    page.locator("#model input").click()
    page.get_by_role("option", name=model).click()
    assert page.locator("#model input").input_value() == model
    page.click("#translate")
    status = page.locator("#status")
    status.get_by_text("Translated 1 of 2 image(s)", exact=False).wait_for(timeout=60_000)
    text = status.inner_text()
    assert f"with {model}" in text and "on cpu (" in text
    assert "notes.jpg: cannot read image" in text  # the bad file, by name; the good one was translated
    after = page.locator("#after img")
    after.wait_for()
    page.wait_for_function("document.querySelector('#after img').naturalWidth > 0")
    assert after.evaluate("e => [e.naturalWidth, e.naturalHeight]") == [255, 191]
    with page.expect_download() as download:
        page.locator("#downloads a[download]").first.click()
    assert download.value.suggested_filename == "photo_monet.png"
    got = np.asarray(Image.open(download.value.path()).convert("RGB"), dtype=np.int16)
    gen = load_generator(server["root"] / "runs" / "monet" / "last.pt", "BtoA", "cpu", "auto")
    want = np.asarray(translate_image(gen, photo), dtype=np.int16)
    assert got.shape == (191, 255, 3) and np.abs(got - want).max() <= 1  # G_B, not G_A (threads may round)
    if os.environ.get("GAN_STYLE_SCREENSHOT"):
        save_screenshot(page, Path(os.environ["GAN_STYLE_SCREENSHOT"]))


def film_net():
    """A strength-conditioned generator whose output depends on the strength (its FiLM layer is not zero)."""
    from gan_style.nets import FiLMResnetGenerator, init_weights

    torch.manual_seed(3)
    net = init_weights(FiLMResnetGenerator(3, 3, 8, 2), gain=0.2)
    torch.nn.init.normal_(net.film[-1].weight, 0, 0.3)
    return net.eval()


def test_browser_strength_slider_for_strength_conditioned_models_only(server, page, tmp_path):
    photo = tmp_path / "photo.png"
    landscape(*SCENES[0][1:], size=(96, 64)).save(photo)
    page.goto(server["url"] + "/")
    page.locator("#model input").click()
    page.get_by_role("option", name=server["model"]).click()
    assert not page.locator("#strength").is_visible()  # a model trained at a fixed weight: no slider
    page.locator("#model input").click()
    page.get_by_role("option", name="film: input → output").click()
    page.locator("#strength").wait_for(state="visible")
    assert float(page.locator("#strength input[type=number]").input_value()) == 0.5  # the middle of its range
    page.locator("#strength input[type=number]").fill("0.9")
    page.locator("#strength input[type=number]").press("Enter")
    page.locator("#inputs input[type=file]").set_input_files([str(photo)])
    page.click("#translate")
    page.locator("#status").get_by_text("Translated 1 of 1 image(s)", exact=False).wait_for(timeout=60_000)
    with page.expect_download() as download:
        page.locator("#downloads a[download]").first.click()
    got = np.asarray(Image.open(download.value.path()).convert("RGB"), dtype=np.int16)
    gen = load_generator(server["root"] / "film.pth", device="cpu", precision="auto")
    at = {s: np.asarray(translate_image(gen.with_strength(s), photo), dtype=np.int16) for s in (0.5, 0.9)}
    assert np.abs(at[0.9] - at[0.5]).mean() > 2  # the strength shows
    assert np.abs(got - at[0.9]).max() <= 1  # the page translated at the slider's 0.9
    # Moving the slider again previews the first photo at once, without pressing Translate.
    page.locator("#strength input[type=number]").fill("0.1")
    page.locator("#status").click()  # leaving the box releases the slider
    page.locator("#status").get_by_text("Preview at strength 0.1", exact=False).wait_for(timeout=60_000)


def test_browser_paints_a_photo_from_one_painting(server, page, tmp_path):
    """The "From one painting" tab: photo and painting uploaded, Stylize, the result at the photo's
    size (under the CPU cap), a PNG to download; a trained style model is just another model."""
    photo, painting = tmp_path / "harbour.png", tmp_path / "monet.png"
    landscape(*SCENES[1][1:], size=(64, 48)).save(photo)
    landscape(*SCENES[0][1:], size=(96, 96)).save(painting)
    page.goto(server["url"] + "/")
    page.get_by_role("tab", name="From one painting").click()
    page.locator("#style-photos input[type=file]").set_input_files([str(photo)])
    page.locator("#style-painting input[type=file]").set_input_files(str(painting))
    page.locator("#style-photos").get_by_text("harbour", exact=False).wait_for()
    page.locator("#style-painting").get_by_text("monet", exact=False).wait_for()
    page.click("#stylize")
    status = page.locator("#style-status")
    status.get_by_text("Stylized 1 of 1 photo(s) at strength 0.5", exact=False).wait_for(timeout=90_000)
    page.wait_for_function("document.querySelector('#style-result img') && "
                           "document.querySelector('#style-result img').naturalWidth > 0")
    assert page.locator("#style-result img").evaluate("e => [e.naturalWidth, e.naturalHeight]") == [64, 48]
    with page.expect_download() as download:
        page.locator("#style-downloads a[download]").first.click()
    assert download.value.suggested_filename == "harbour_painted.png"
    got = np.asarray(Image.open(download.value.path()).convert("RGB"), dtype=np.int16)
    original = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
    assert got.shape == original.shape and np.abs(got - original).mean() > 2  # painted, not a copy


def save_screenshot(page, dest: Path) -> None:
    """The page as a small PNG (256 colours)."""
    import io

    page.get_by_text("Warning", exact=True).first.wait_for(state="hidden", timeout=20_000)  # the toast, gone
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    shot.quantize(256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


def _post(url: str, body: bytes, content_type: str) -> object:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def call_translate(base: str, files: list[str], model: str) -> tuple[str, str]:
    """The page's translate call made by hand: (SSE event name, its data)."""
    # files, model, steps and strength (their sliders: hidden for this model), size, tile, device, precision
    data = [[{"path": f, "meta": {"_type": "gradio.FileData"}} for f in files], model, 1, 0.5, 0, "auto", "auto",
            "auto"]
    event = _post(f"{base}/gradio_api/call/translate", json.dumps({"data": data}).encode(), "application/json")
    with urllib.request.urlopen(f"{base}/gradio_api/call/translate/{event['event_id']}", timeout=60) as r:
        lines = r.read().decode().splitlines()
    name = next(line.removeprefix("event: ") for line in lines if line.startswith("event: "))
    return name, next(line.removeprefix("data: ") for line in lines if line.startswith("data: "))


def upload(base: str, photo: Path) -> list[str]:
    """Upload ``photo`` as the page does; returns its path on the server."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{photo.name}"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return _post(f"{base}/gradio_api/upload", body, f"multipart/form-data; boundary={boundary}")


def test_server_opens_only_uploaded_files_and_offered_models(server, tmp_path):
    base, photo = server["url"], tmp_path / "photo.png"
    smooth_image(40, 32).save(photo)
    uploaded = upload(base, photo)
    name, data = call_translate(base, uploaded, server["model"])
    assert name == "complete" and "Translated 1 of 1 image(s)" in data  # the call works as the page makes it
    secret = server["root"] / "secret.png"  # on the server, but never uploaded
    smooth_image(40, 32).save(secret)
    assert call_translate(base, [str(secret)], server["model"])[0] == "error"
    weights = str(server["root"] / "runs" / "monet" / "last.pt")  # a path typed in place of a model
    name, data = call_translate(base, uploaded, weights)
    assert name == "error" and "not in the list of choices" in data


def test_official_model_downloads_on_first_use(server, tmp_path):
    cached = server["root"] / "cache" / "pretrained" / "style_monet.pth"
    assert not cached.exists()
    photo = tmp_path / "photo.png"
    smooth_image(40, 32).save(photo)
    name, data = call_translate(server["url"], upload(server["url"], photo), "official style_monet: photo → monet")
    assert name == "complete" and "with official style_monet" in data, data
    assert cached.is_file()


def ours(tmp: Path) -> list[str]:
    """The server's own temporary files. PyTorch keeps its compile cache (torchinductor_<user>) in the
    temporary folder too, created when the first optimizer (stylize's L-BFGS) imports torch._dynamo;
    it is shared between processes and meant to outlive them, so it is not the server's to remove."""
    return sorted(p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_"))


def test_sigterm_stops_the_server_and_removes_its_temporary_files(server):
    proc = server["proc"]
    tmp = server["root"] / "tmp"
    assert [name[:16] for name in ours(tmp)] == ["gan_style_serve_"]  # uploads and results live there
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert ours(tmp) == []
