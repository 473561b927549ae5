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
    """Download ``url`` to ``dest`` (atomically), verifying ``sha256`` when given: the full digest,
    or a prefix of it (torchvision publishes the first 8 hex digits in its file names).

    An interrupted transfer leaves ``<dest>.part``; the next call resumes it with an HTTP Range
    request when the server supports ranges (else it starts again). ``dest`` only ever appears
    complete and checked."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        _fetch(url, part, digest, desc or dest.name)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
        reason = getattr(e, "reason", e)
        kept = f" (the {part.stat().st_size:,} bytes received are kept: run again to resume)" if part.is_file() else ""
        raise DownloadError(f"could not download {url} ({reason}): download it by hand and save it as {dest}{kept}") from None
    if sha256 is not None and not digest.hexdigest().startswith(sha256.lower()):
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: checksum mismatch (got sha256 {digest.hexdigest()}, expected {sha256})")
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, digest, desc: str) -> None:
    """Write ``url`` into ``part``, resuming what it holds when the server answers a Range request
    with 206; ``digest`` sees every byte of the final file."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        resumed = have > 0 and response.status == 206
        if resumed:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
        else:
            have = 0
        length = int(response.headers.get("Content-Length") or 0) or None
        total = have + length if length is not None else None
        with open(part, "ab" if resumed else "wb") as out, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                                 unit_divisor=1024, desc=desc) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise OSError(f"got {out.tell()} of {total} bytes")


def safe_members(archive: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    # Refuse entries that would land outside the target folder ("zip slip").
    root = target.resolve()
    for info in archive.infolist():
        if not (root / info.filename).resolve().is_relative_to(root):
            raise DownloadError(f"archive entry {info.filename!r} points outside {target}: refusing to unpack")
    return archive.infolist()
