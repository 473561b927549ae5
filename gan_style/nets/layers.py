"""Layers shared by the generators and discriminators."""

from __future__ import annotations

from torch import nn


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    # The reference uses InstanceNorm without affine parameters and without running stats,
    # so the norm layers contribute no state_dict entries.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
