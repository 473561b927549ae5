"""DiffAugment (Zhao, Liu, Lin, Zhu, Han, "Differentiable Augmentation for Data-Efficient GAN
Training", NeurIPS 2020): the same random, differentiable augmentations are applied to every image
the discriminator sees, real and fake, in the generator's pass as in the discriminator's, so D
cannot memorise a small training set and G still gets gradients through the augmentation.

Policies (comma-separated, applied in this order; images (N, 3, H, W) in [-1, 1]):

    color        brightness + U(-0.5, 0.5); saturation x U(0, 2); contrast x U(0.5, 1.5) (per image)
    translation  an integer shift of up to 1/8 of the size in each axis, zero fill (per image)
    cutout       one zeroed square of half the size at a random place (per image)

The draws come from the augmenter's own generator, saved in checkpoints, so resume stays exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import DIFFAUGMENT_POLICIES

POLICIES = DIFFAUGMENT_POLICIES  # the one list, the config's Literal (config.py)


def parse_policy(text: str) -> tuple[str, ...]:
    """'color, cutout' -> ('color', 'cutout'); the config has already refused unknown names."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if not set(names) <= set(POLICIES):
        raise ValueError(f"DiffAugment policy {text!r}: use a subset of {','.join(POLICIES)}")
    return names


def _uniform(n: int, g: torch.Generator, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g, device=g.device).to(device) * (high - low) + low  # (N, 1, 1, 1)


def color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + _uniform(n, g, -0.5, 0.5, x.device)  # brightness
    mean = x.mean(dim=1, keepdim=True)  # per-pixel grey level: saturation scales the colour around it
    x = (x - mean) * _uniform(n, g, 0.0, 2.0, x.device) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # per-image mean: contrast scales around it
    return (x - mean) * _uniform(n, g, 0.5, 1.5, x.device) + mean


def _shifts(n: int, size: int, ratio: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    limit = int(size * ratio + 0.5)
    return torch.randint(-limit, limit + 1, (n, 1, 1), generator=g, device=g.device).to(device)  # (N, 1, 1)


def translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    dy, dx = _shifts(n, h, ratio, g, x.device), _shifts(n, w, ratio, g, x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # (N, H, 1): the source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx  # (N, 1, W)
    # Out-of-image sources read the zero border of a 1-pixel padding (index 0 or H+1 / W+1).
    rows, cols = (rows + 1).clamp(0, h + 1), (cols + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))  # (N, C, H+2, W+2)
    flat = padded.flatten(2)  # (N, C, (H+2)(W+2))
    index = (rows * (w + 2) + cols).flatten(1)  # (N, H*W)
    return flat.gather(2, index[:, None, :].expand(-1, x.shape[1], -1)).view_as(x)


def cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g, device=g.device).to(x.device)  # centres
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g, device=g.device).to(x.device)
    ys, xs = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2  # the square may be cut by the image border
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # (N, H, W)
    return x * (~inside)[:, None].to(x.dtype)


OPS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment:
    """Callable on a batch of images; the identity when the policy is empty."""

    def __init__(self, policy: str, seed: int, device: torch.device) -> None:
        self.policy = parse_policy(policy)
        # A meta device (FLOP counting) has no random generator: draw on the CPU there.
        self.generator = torch.Generator(device=device if device.type != "meta" else "cpu").manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            x = OPS[name](x, self.generator)
        return x

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
