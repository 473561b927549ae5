"""End to end: ``gan-style serve`` on 127.0.0.1, driven by Playwright in a headless Chromium.

Uses Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it), not Playwright's
own download; skips only when it is not installed. With ``GAN_STYLE_SCREENSHOT=docs/app.png`` the
run also saves the screenshot the README shows.
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
from PIL import Image

from app_helpers import smooth_image, write_run
from conftest import REPO
from gan_style import load_generator, translate_image

CHROMIUM = Path(os.environ.get("GAN_STYLE_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`"
)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MODEL = "monet: photo → monet (BtoA)"  # the second of the two choices the run gives: the test must pick it


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
    write_run(root / "runs" / "monet" / "last.pt")
    (root / "tmp").mkdir()
    port, log = free_port(), root / "serve.log"
    env = {**os.environ, "TMPDIR": str(root / "tmp"), "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gan_style", "serve", "--weights", "runs/monet/last.pt", "--only-weights",
           "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/", proc, log)
        yield {"url": url, "root": root, "proc": proc, "log": log}
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
    photo, bad = tmp_path / "photo.png", tmp_path / "notes.jpg"
    smooth_image(123, 77).save(photo)  # not a multiple of 4: padded and cropped back
    bad.write_text("this is not an image")
    page.goto(server["url"] + "/")
    page.locator("#inputs input[type=file]").set_input_files([str(photo), str(bad)])
    page.locator("#inputs").get_by_text("notes", exact=False).wait_for()
    page.locator("#model input").click()
    page.get_by_role("option", name=MODEL).click()
    assert page.locator("#model input").input_value() == MODEL
    page.click("#translate")
    status = page.locator("#status")
    status.get_by_text("Translated 1 of 2 image(s)", exact=False).wait_for(timeout=60_000)
    text = status.inner_text()
    assert f"with {MODEL}" in text and "on cpu (" in text
    assert "notes.jpg: cannot read image" in text  # the bad file, by name; the good one was translated
    after = page.locator("#after img")
    after.wait_for()
    page.wait_for_function("document.querySelector('#after img').naturalWidth > 0")
    assert after.evaluate("e => [e.naturalWidth, e.naturalHeight]") == [123, 77]
    with page.expect_download() as download:
        page.locator("#downloads a[download]").first.click()
    assert download.value.suggested_filename == "photo_monet.png"
    got = np.asarray(Image.open(download.value.path()).convert("RGB"), dtype=np.int16)
    gen = load_generator(server["root"] / "runs" / "monet" / "last.pt", "BtoA", "cpu", "auto")
    want = np.asarray(translate_image(gen, photo), dtype=np.int16)
    assert got.shape == (77, 123, 3) and np.abs(got - want).max() <= 1  # G_B, not G_A (threads may round)
    shot = os.environ.get("GAN_STYLE_SCREENSHOT")
    if shot:
        page.screenshot(path=shot)


def _post(url: str, body: bytes, content_type: str) -> object:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def call_translate(base: str, files: list[str], model: str) -> tuple[str, str]:
    """The page's translate call made by hand: (SSE event name, its data)."""
    data = [[{"path": f, "meta": {"_type": "gradio.FileData"}} for f in files], model, 0, "auto", "auto", "auto"]
    event = _post(f"{base}/gradio_api/call/translate", json.dumps({"data": data}).encode(), "application/json")
    with urllib.request.urlopen(f"{base}/gradio_api/call/translate/{event['event_id']}", timeout=60) as r:
        lines = r.read().decode().splitlines()
    name = next(line.removeprefix("event: ") for line in lines if line.startswith("event: "))
    return name, next(line.removeprefix("data: ") for line in lines if line.startswith("data: "))


def test_server_opens_only_uploaded_files_and_offered_models(server, tmp_path):
    base = server["url"]
    photo = tmp_path / "photo.png"
    smooth_image(40, 32).save(photo)
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="photo.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    uploaded = _post(f"{base}/gradio_api/upload", body, f"multipart/form-data; boundary={boundary}")
    name, data = call_translate(base, uploaded, MODEL)
    assert name == "complete" and "Translated 1 of 1 image(s)" in data  # the call works as the page makes it
    secret = server["root"] / "secret.png"  # on the server, but never uploaded
    smooth_image(40, 32).save(secret)
    assert call_translate(base, [str(secret)], MODEL)[0] == "error"
    weights = str(server["root"] / "runs" / "monet" / "last.pt")  # a path typed in place of a model
    name, data = call_translate(base, uploaded, weights)
    assert name == "error" and "not in the list of choices" in data


def test_sigterm_stops_the_server_and_removes_its_temporary_files(server):
    proc = server["proc"]
    tmp = server["root"] / "tmp"
    assert [p.name[:16] for p in tmp.iterdir()] == ["gan_style_serve_"]  # uploads and results live there
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert list(tmp.iterdir()) == []
