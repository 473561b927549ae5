"""Networks: pure ``nn.Module``s with explicit arguments, no config objects, no training code.

Names map to the papers: G_A = G (A -> B), G_B = F (B -> A), D_A = D_Y, D_B = D_X (CycleGAN);
CUT's G, D and F (the patch sampler netF).
"""

from .discriminator import PatchDiscriminator
from .generator import ResnetBlock, ResnetGenerator, generator_arch
from .init import init_weights

__all__ = ["PatchDiscriminator", "ResnetBlock", "ResnetGenerator", "generator_arch", "init_weights"]
