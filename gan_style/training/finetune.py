"""Fine-tuning: start a method's generators from published or earlier weights (``finetune.*``).

Only the generators are loaded (the reference and CUT zoos publish nothing else); discriminators
and CUT's patch sampler start fresh. The weights are read as data through the inference layer's
reader, so anything ``translate`` accepts works: a training checkpoint, an export, a reference
``.pth`` or ``official:NAME``.
"""

from __future__ import annotations

from torch import nn

from ..config import Config
from ..inference.weights import read_generator
from ..io.checkpoint import CheckpointError
from ..nets import describe

def _describe(arch: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in arch.items() if k not in ("in_channels", "out_channels"))


def load_finetune_weights(cfg: Config, nets: dict[str, nn.Module], generator_map: dict[str, str]) -> dict[str, str]:
    """Load each ``finetune.<name>`` spec into ``nets[name]``; return name -> where it came from.
    ``generator_map`` (direction -> network name, the method's) says which generator of a
    two-generator file to take: the one of the same direction."""
    direction_of = {net: direction for direction, net in generator_map.items()}
    sources = {}
    for name, spec in cfg.finetune.model_dump().items():
        if spec is None:
            continue
        state, info = read_generator(spec, direction_of[name])
        kind, wanted = describe(nets[name])
        if info.kind != kind:
            raise CheckpointError(f"finetune.{name}={spec}: {info.origin} is a {info.kind} generator but "
                                  f"method={cfg.method} trains a {kind} generator: fine-tune it with a method of that kind")
        if info.arch != wanted:
            raise CheckpointError(f"finetune.{name}={spec}: {info.origin} is a generator with {_describe(info.arch)} "
                                  f"but the config builds {_describe(wanted)}: set the model.* keys to match")
        nets[name].load_state_dict(state, strict=True)
        sources[name] = info.label
    return sources
