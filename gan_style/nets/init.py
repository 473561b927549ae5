"""Weight initialisation, as the reference does it."""

from __future__ import annotations

from torch import nn


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The reference's 'normal' init: conv weights ~ N(0, gain), biases 0. Returns ``net``."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net
