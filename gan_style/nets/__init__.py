"""Networks: pure ``nn.Module``s with explicit arguments, no config objects, no training code.

Names map to the papers: G_A = G (A -> B), G_B = F (B -> A), D_A = D_Y, D_B = D_X (CycleGAN);
CUT's G, D and F (the patch sampler netF).
"""

from .discriminator import PatchDiscriminator
from .generator import ResnetBlock, ResnetGenerator, WithFeatures, generator_arch
from .init import INIT_TYPES, init_weights
from .layers import BlurDownsample, BlurUpsample
from .patch_sampler import PatchSampler, nce_channels

__all__ = [
    "INIT_TYPES", "BlurDownsample", "BlurUpsample", "PatchDiscriminator", "PatchSampler", "ResnetBlock",
    "ResnetGenerator", "WithFeatures", "generator_arch", "init_weights", "nce_channels",
]
