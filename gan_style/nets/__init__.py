"""Networks: pure ``nn.Module``s with explicit arguments, no config objects, no training code.

Names map to the papers: G_A = G (A -> B), G_B = F (B -> A), D_A = D_Y, D_B = D_X (CycleGAN);
CUT's G, D and F (the patch sampler netF). Generator kinds (kind.py, the registry kinds.py) say
how each family of generators is built, recognised, run and tiled.
"""

from .anchored import AnchoredGenerator, AnchoredKind, HistogramMap, matched
from .discriminator import PatchDiscriminator
from .film import FiLMKind, FiLMResnetGenerator, resnet_generator
from .generator import ResnetBlock, ResnetGenerator, ResnetKind, WithFeatures, generator_arch
from .kind import GeneratorKind, one_pass_conditions
from .kinds import KINDS, describe, kind_named, kind_of, recognise, translate_with
from .init import INIT_TYPES, init_weights
from .layers import BlurDownsample, BlurUpsample, ChannelAffine, Residual, ResidualBlock, Skip
from .patch_sampler import PatchSampler, nce_channels
from .unsb import UNSBDiscriminator, UNSBGenerator, UNSBKind, timestep_embedding, unsb_arch, unsb_times

__all__ = [
    "AnchoredGenerator", "AnchoredKind", "HistogramMap", "Skip", "matched",
    "INIT_TYPES", "KINDS", "one_pass_conditions", "BlurDownsample", "BlurUpsample", "FiLMKind", "FiLMResnetGenerator", "ChannelAffine", "GeneratorKind", "PatchDiscriminator",
    "PatchSampler", "Residual", "ResidualBlock", "ResnetBlock", "ResnetGenerator", "ResnetKind", "WithFeatures",
    "UNSBDiscriminator", "UNSBGenerator", "UNSBKind", "describe", "generator_arch", "init_weights", "kind_named",
    "kind_of", "nce_channels", "recognise", "resnet_generator", "timestep_embedding", "translate_with", "unsb_arch", "unsb_times",
]
