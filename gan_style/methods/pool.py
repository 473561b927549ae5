"""The image history pool of Shrivastava et al. (2017), as used by CycleGAN.

The discriminators see a mix of the newest fakes and fakes from earlier steps, which damps
oscillation. Once the pool holds ``size`` images, each incoming image is, with probability
1/2, swapped with a random stored one (the stored one is returned and the new one kept);
otherwise it is returned as is. Its randomness comes from its own generator, and its state
(images and generator) goes into checkpoints, so a resumed run continues exactly.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []  # each (3, H, W), detached
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) fresh fakes -> (N, 3, H, W) fakes to show the discriminator."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            # Draws on the CPU generator: one tiny host op, no device sync.
            swap = torch.rand(1, generator=self.generator).item() > 0.5
            slot = int(torch.randint(self.size, (1,), generator=self.generator))
            if swap:
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.images = [image.to(device) for image in state["images"]]
        self.generator.set_state(state["generator"])
