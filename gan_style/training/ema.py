"""An exponential moving average of the generators' weights (``train.ema``).

GAN generators oscillate from step to step; the average of recent weights usually gives smoother,
better images (Karras et al. 2018, Yazici et al. 2019). The average is kept beside the training
weights, never trained: after each step, shadow <- shadow + (1 - d) (weights - shadow), with
d = min(decay, (1 + t) / (10 + t)) so that the first steps are not dominated by the random init.
It is saved in every checkpoint as full generator state_dicts (``ckpt["ema"]["models"]``), which
translate and export use by default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class GeneratorEMA:
    def __init__(self, nets: dict[str, nn.Module], decay: float) -> None:
        self.nets, self.decay, self.updates = nets, decay, 0
        self.shadow = {name: [p.detach().clone() for p in net.parameters()] for name, net in nets.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average, on the device (no host sync)."""
        self.updates += 1
        weight = 1.0 - self.current_decay()
        for name, net in self.nets.items():
            torch._foreach_lerp_(self.shadow[name], [p.detach() for p in net.parameters()], weight)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the generators hold the averaged weights (for samples and evaluation)."""
        saved = {name: [p.detach().clone() for p in net.parameters()] for name, net in self.nets.items()}
        self._copy_into(self.shadow)
        try:
            yield
        finally:
            self._copy_into(saved)

    @torch.no_grad()
    def _copy_into(self, values: dict[str, list[torch.Tensor]]) -> None:
        for name, net in self.nets.items():
            torch._foreach_copy_(list(net.parameters()), values[name])

    def state_dict(self) -> dict:
        models = {}
        for name, net in self.nets.items():
            params = dict(zip((n for n, _ in net.named_parameters()), self.shadow[name]))
            models[name] = {k: params.get(k, v) for k, v in net.state_dict().items()}  # + buffers (blur filters)
        return {"updates": self.updates, "decay": self.decay, "models": models}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for name, net in self.nets.items():
            saved = state["models"][name]
            self.shadow[name] = [saved[k].to(p.device, p.dtype).clone() for k, p in net.named_parameters()]
