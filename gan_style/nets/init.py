"""Weight initialisation, as the official codes do it: CycleGAN 'normal', CUT 'xavier' (both gain 0.02)."""

from __future__ import annotations

from torch import nn

INIT_TYPES = ("normal", "xavier")


def init_weights(net: nn.Module, gain: float = 0.02, init_type: str = "normal") -> nn.Module:
    """Conv and linear weights ~ N(0, gain) ('normal') or xavier-normal with ``gain``; biases 0.

    Blur filters are buffers, not weights: they keep their fixed values. A submodule with
    ``keeps_init = True`` keeps its own initialisation (FiLM's MLP: N(0, 0.02) would leave its
    hidden activations ~0.02 s, and its modulations could hardly learn). Returns ``net``.
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type {init_type!r}: use one of {', '.join(INIT_TYPES)}")
    kept = {id(sub) for m in net.modules() if getattr(m, "keeps_init", False) for sub in m.modules()}
    for m in net.modules():
        if id(m) not in kept and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            else:
                nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net
