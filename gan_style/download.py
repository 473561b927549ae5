"""Fetch files (datasets, pretrained weights) once, with a progress bar, atomically.

Uses only the standard library's urllib, so ``http://``, ``https://`` and ``file://`` URLs all
work (tests use a local server and ``file://``). A download goes to ``<dest>.part`` and is
moved into place with ``os.replace`` only once complete and checked, so an interrupted
download never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

CYCLEGAN_DATASET_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
# The reference's published unpaired datasets (datasets/download_cyclegan_dataset.sh).
CYCLEGAN_DATASETS = (
    "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
    "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
    "mini", "mini_pix2pix", "mini_colorization",
)  # fmt: skip


LAYOUT_FIX = "put the images in <root>/trainA and <root>/trainB (see data/README.md), or point data.root elsewhere"


class DownloadError(RuntimeError):
    """A failed fetch; the message says what to download by hand and where to put it."""


def download(url: str, dest: Path, sha256: str | None = None, desc: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (atomically), verifying ``sha256`` when given."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or dest.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise DownloadError(f"{url}: got {out.tell()} of {total} bytes")
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not download {url} ({reason}): download it by hand and save it as {dest}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: checksum mismatch (got sha256 {digest.hexdigest()}, expected {sha256})")
    os.replace(part, dest)
    return dest


def _safe_members(archive: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    # Refuse entries that would land outside the target folder ("zip slip").
    root = target.resolve()
    for info in archive.infolist():
        if not (root / info.filename).resolve().is_relative_to(root):
            raise DownloadError(f"archive entry {info.filename!r} points outside {target}: refusing to unpack")
    return archive.infolist()


def fetch_cyclegan_dataset(name: str, root: Path, url: str | None = None) -> Path:
    """Make sure ``root`` holds the official dataset ``name`` (trainA/ trainB/ ...); fetch it if not.

    The official zips unpack to ``<name>/trainA`` ...; the contents of that folder end up in ``root``.
    """
    root = Path(root)
    if (root / "trainA").is_dir() and (root / "trainB").is_dir():
        return root
    if root.exists() and any(root.iterdir()):
        raise DownloadError(
            f"{root} exists but has no trainA/ and trainB/ folders: {LAYOUT_FIX}"
        )
    if url is None:
        if name not in CYCLEGAN_DATASETS:
            raise DownloadError(
                f"unknown dataset {name!r}: known are {', '.join(CYCLEGAN_DATASETS)}; "
                f"or put your own images in {root}/trainA and {root}/trainB (see data/README.md)"
            )
        url = CYCLEGAN_DATASET_URL.format(name=name)
    zip_path = root.parent / f"{name}.zip"
    manual = f"download {url} by hand and unzip it so that {root}/trainA and {root}/trainB exist"
    try:
        if not zip_path.is_file():
            download(url, zip_path, desc=f"{name}.zip")
        staging = root.parent / f".{root.name}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise DownloadError(f"{zip_path}: corrupt entry {bad}")
            archive.extractall(staging, members=_safe_members(archive, staging))
    except zipfile.BadZipFile:
        zip_path.unlink(missing_ok=True)
        raise DownloadError(f"{zip_path} is not a valid zip archive (removed): {manual}") from None
    except DownloadError as e:
        raise DownloadError(f"{e}; or {manual}") from None
    # The zip holds one top folder (<name>/) or the split folders directly.
    inner = staging / name if (staging / name).is_dir() else staging
    if not (inner / "trainA").is_dir() or not (inner / "trainB").is_dir():
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{zip_path} holds no trainA/ and trainB/ folders: {manual}")
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists():
        root.rmdir()  # an empty leftover folder (checked above)
    os.replace(inner, root)
    shutil.rmtree(staging, ignore_errors=True)
    zip_path.unlink(missing_ok=True)
    return root
