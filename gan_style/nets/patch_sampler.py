"""CUT's patch sampler F (the official ``PatchSampleF`` with ``mlp_sample``).

For each NCE layer, F picks ``num_patches`` spatial locations of the feature map (the same
locations for every image in the batch, and the same for the queries as for the keys), projects
each location's feature vector with a small MLP and L2-normalises it.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchSampler(nn.Module):
    """One MLP per NCE layer: Linear(C_l, nc), ReLU, Linear(nc, nc); keys ``mlp_0.0.weight`` ...

    The official code builds the MLPs lazily from the first batch's feature shapes; here they are
    built at once from ``in_channels`` (the generator's channel counts at the NCE layers), with the
    same keys and shapes. For a 9-block generator with ngf 64 (channels 3, 128, 256, 256, 256)
    and nc 256 this is 560,384 parameters.
    """

    def __init__(self, in_channels: list[int] | tuple[int, ...], nc: int = 256) -> None:
        super().__init__()
        self.n_layers = len(in_channels)
        for i, c in enumerate(in_channels):
            self.add_module(f"mlp_{i}", nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def sample_ids(self, feats: list[torch.Tensor], num_patches: int, generator: torch.Generator) -> list[torch.Tensor]:
        """Random locations per layer: (min(num_patches, H_l * W_l),) indices into H_l * W_l."""
        ids = []
        for f in feats:
            hw = f.shape[2] * f.shape[3]
            ids.append(torch.randperm(hw, generator=generator, device=generator.device)[:num_patches].to(f.device))
        return ids

    def forward(self, feats: list[torch.Tensor], ids: list[torch.Tensor]) -> list[torch.Tensor]:
        """feats[l] (N, C_l, H_l, W_l), ids[l] (P,) -> (N * P, nc) unit vectors per layer, image-major."""
        out = []
        for i, (f, idx) in enumerate(zip(feats, ids)):
            x = f.flatten(2).transpose(1, 2)[:, idx, :].flatten(0, 1)  # (N, HW, C) -> (N*P, C)
            x = getattr(self, f"mlp_{i}")(x)
            # As the official Normalize: x / (||x|| + 1e-7), not F.normalize's max(||x||, eps).
            out.append(x / (x.norm(p=2, dim=1, keepdim=True) + 1e-7))
        return out


def nce_channels(ngf: int, n_blocks: int, nce_layers: tuple[int, ...], antialias: bool, antialias_up: bool = False,
                 in_channels: int = 3) -> list[int]:
    """Channel counts of the generator's outputs at ``nce_layers``, without running it (with few
    blocks, late NCE layers fall in the upsampling part, whose layout ``antialias_up`` sets)."""
    from .generator import ResnetGenerator

    net = ResnetGenerator(in_channels, 3, ngf, n_blocks, antialias=antialias, antialias_up=antialias_up)
    channels, c = [], in_channels
    for i, layer in enumerate(net.model):
        c = getattr(layer, "out_channels", c)  # convs change the count; pads, norms, blocks keep it
        if i in nce_layers:
            channels.append(c)
    if len(channels) != len(nce_layers):
        raise ValueError(f"nce_layers {list(nce_layers)}: the generator has layers 0..{len(net.model) - 1}")
    return channels
