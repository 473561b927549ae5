"""Dataset download: from a local HTTP server and file:// URLs, checked, unpacked, with clear failures."""

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from gan_style.data.fetch import fetch_cyclegan_dataset
from gan_style.io.download import DownloadError, download
from gan_style.data.toydata import make_toy_dataset


@pytest.fixture()
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 at a free port."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def official_zip(path: Path, name: str, tmp: Path) -> Path:
    """A zip laid out like the official ones: <name>/trainA/..., <name>/trainB/..."""
    src = make_toy_dataset(tmp / "src" / name, n_train=3, n_test=1, size=16)
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(src.rglob("*.png")):
            z.write(f, f"{name}/{f.relative_to(src)}")
    return path


def test_fetch_from_local_http_server(server, tmp_path):
    www, url = server
    official_zip(www / "monet2photo.zip", "monet2photo", tmp_path)
    root = tmp_path / "datasets" / "monet2photo"
    assert fetch_cyclegan_dataset("monet2photo", root, f"{url}/monet2photo.zip") == root
    assert len(list((root / "trainA").glob("*.png"))) == 3 and (root / "testB").is_dir()
    assert not (tmp_path / "datasets" / "monet2photo.zip").exists()  # archive removed after unpacking
    # Present now: a second call does not download again (the server is not even asked).
    assert fetch_cyclegan_dataset("monet2photo", root, f"{url}/gone.zip") == root


def test_fetch_from_file_url(tmp_path):
    z = official_zip(tmp_path / "h2z.zip", "horse2zebra", tmp_path)
    root = tmp_path / "d" / "horse2zebra"
    fetch_cyclegan_dataset("horse2zebra", root, z.as_uri())
    assert (root / "trainB" / "0000.png").is_file()


def test_missing_url_says_what_to_do(server, tmp_path):
    _, url = server
    root = tmp_path / "d" / "monet2photo"
    with pytest.raises(DownloadError) as e:
        fetch_cyclegan_dataset("monet2photo", root, f"{url}/nothing.zip")
    msg = str(e.value)
    assert "by hand" in msg and str(root) in msg and "\n" not in msg
    assert not any((tmp_path / "d").glob("*.part"))  # no half-written file left behind


def test_corrupt_archive_is_refused_and_removed(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    root = tmp_path / "d" / "monet2photo"
    with pytest.raises(DownloadError, match="not a valid zip"):
        fetch_cyclegan_dataset("monet2photo", root, bad.as_uri())
    assert not (tmp_path / "d" / "monet2photo.zip").exists()


def test_zip_slip_is_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../outside.txt", "x")
    with pytest.raises(DownloadError, match="outside"):
        fetch_cyclegan_dataset("monet2photo", tmp_path / "d" / "monet2photo", evil.as_uri())
    assert not (tmp_path / "outside.txt").exists()


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DownloadError, match="unknown dataset 'monet2pics'.*monet2photo"):
        fetch_cyclegan_dataset("monet2pics", tmp_path / "x")


def test_download_checks_sha256(server, tmp_path):
    www, url = server
    (www / "w.bin").write_bytes(b"weights" * 100)
    good = hashlib.sha256(b"weights" * 100).hexdigest()
    assert download(f"{url}/w.bin", tmp_path / "ok.bin", sha256=good).read_bytes() == b"weights" * 100
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{url}/w.bin", tmp_path / "bad.bin", sha256="0" * 64)
    assert not (tmp_path / "bad.bin").exists()


def test_existing_folder_without_layout_is_not_overwritten(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "photo.jpg").write_bytes(b"x")
    with pytest.raises(DownloadError, match="exists but has no trainA"):
        fetch_cyclegan_dataset("monet2photo", root, (tmp_path / "never.zip").as_uri())
    assert (root / "photo.jpg").read_bytes() == b"x"
