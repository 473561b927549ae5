"""Download files (datasets, pretrained weights) once, with a progress bar, atomically.

Uses only the standard library's urllib, so ``http://``, ``https://`` and ``file://`` URLs all
work (tests use a local server and ``file://``). A download goes to ``<dest>.part`` and is
moved into place with ``os.replace`` only once complete and checked, so an interrupted
download never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

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


def safe_members(archive: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    # Refuse entries that would land outside the target folder ("zip slip").
    root = target.resolve()
    for info in archive.infolist():
        if not (root / info.filename).resolve().is_relative_to(root):
            raise DownloadError(f"archive entry {info.filename!r} points outside {target}: refusing to unpack")
    return archive.infolist()
