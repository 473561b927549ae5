"""Fetch an official CycleGAN dataset into ``data.root`` when it is missing (``make fetch``, ``make train``)."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from ..io.download import DownloadError, download, safe_members

CYCLEGAN_DATASET_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
# The reference's published unpaired datasets (datasets/download_cyclegan_dataset.sh).
CYCLEGAN_DATASETS = (
    "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
    "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
    "mini", "mini_pix2pix", "mini_colorization",
)  # fmt: skip


LAYOUT_FIX = "put the images in <root>/trainA and <root>/trainB (see data/README.md), or point data.root elsewhere"



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
            archive.extractall(staging, members=safe_members(archive, staging))
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
