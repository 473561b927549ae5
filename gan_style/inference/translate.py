"""Translate images with a generator: the Python API behind ``gan-style translate``.

    from gan_style import load_generator, translate_image
    G = load_generator("official:style_monet")          # or runs/monet/last.pt, an export...
    painting = translate_image(G, Image.open("photo.jpg"))

PIL in, PIL out, same size and orientation as the input (EXIF rotation applied). Inside, an
image becomes a (1, 3, H, W) tensor in [-1, 1], is padded by reflection to a multiple of 4 (the
generator downsamples twice), translated (in tiles when large, with the same result, see
``tiling.py``) and cropped back.
Imports nothing from the training code.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..devices import BLOCKS, resolve_device, resolve_inference_precision
from ..io.images import read_rgb, to_rgb
from ..io.tensors import float_to_image, image_to_float
from ..nets import GeneratorKind, Residual, one_pass_conditions
from . import memory
from .spill import Spill
from .tiling import translate_blended, translate_tiled
from .weights import GeneratorInfo, WeightsError, read_generator

logger = logging.getLogger(__name__)

# bf16-blocks (BLOCKS): the convolutions of the residual blocks (at 1/4 resolution, ~77% of the arithmetic)
# in bf16, every other layer, the norms and the residual sums in fp32. On a CPU with AMX: 1.6x
# fp32, within 1/255 of it on real photos, where whole-network bf16 is off by up to 7/255
# (docs/benchmarks.md, "CPU translation paths").
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, BLOCKS: torch.bfloat16, "fp16": torch.float16}
AUTO_TILE = 1024  # tile="auto" for an image larger than AUTO_TILE_AREA: on a GPU, and for blended tiles
HEAP_BLOCK = 32 * 2**20  # glibc's largest block kept in its heap (the mmap threshold's ceiling): auto_tile
AUTO_TILE_AREA = 2048 * 2048
MIN_SIZE = 8  # below this the residual blocks' reflection padding (at H/4) has nothing to reflect


@dataclass
class Generator:
    """A generator ready for inference: the network (eval mode, on ``device``), what it does, and
    how its kind translates (``steps`` network evaluations, noise from ``seed``: multi-step kinds)."""

    net: nn.Module
    info: GeneratorInfo
    device: torch.device
    precision: str  # fp32, bf16, bf16-blocks or fp16
    steps: int = 1  # network evaluations per image (the kind's default unless --steps)
    seed: int = 0  # the noise of multi-step kinds: one input and one seed give one output
    strength: float | None = None  # strength-conditioned kinds: the strength translated at (docs/strength.md)
    max_memory: int | None = None  # bytes one translation may take (memory.py); None: no budget
    compiled: Callable | None = field(default=None, repr=False)  # set by compile()

    @property
    def kind(self) -> GeneratorKind:
        return self.info.generator_kind

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1], H and W multiples of 4 -> (N, C_out, H, W) fp32 on the CPU."""
        x = x.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.kind.translate(self.run, x, self.info.arch, self.steps, self.seed).float().cpu()

    def conditions(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The conditioning the user chose (a strength), for a batch of n: merged into every evaluation."""
        return {} if self.strength is None else {"strength": torch.full((n,), float(self.strength), device=device)}

    def run(self, x: torch.Tensor, cond: dict) -> torch.Tensor:
        """One network evaluation on ``x`` (on the device) with the kind's conditioning ``cond`` and
        the user's (``conditions``)."""
        return self.evaluate(x, cond | self.conditions(x.shape[0], x.device))

    def evaluate(self, x: torch.Tensor, cond: dict) -> torch.Tensor:
        """One network evaluation with all its conditioning inputs: compiled when asked."""
        if self.compiled is not None:
            try:
                return self.compiled(x, cond)
            except Exception as e:  # noqa: BLE001 - a compiler missing or failing: say so once, then run eagerly
                self.compiled = None
                while (cause := getattr(e, "inner_exception", None) or e.__cause__) is not None:
                    e = cause
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                logger.warning("torch.compile failed (%s: %s); running uncompiled", e.__class__.__name__, first[:200])
        return self.forward(x, cond)

    def with_steps(self, steps: int | None) -> Generator:
        """The same network translating with ``steps`` evaluations per image (None: the kind's
        default); one line (WeightsError) when the generator cannot take them."""
        return replace(self, steps=check_steps(self.info, steps))

    def with_strength(self, strength: float | None) -> Generator:
        """The same network translating at ``strength`` (None: the middle of its training range); one
        line (WeightsError) when it is outside [0, 1] or the generator was trained at a fixed weight."""
        return replace(self, strength=check_strength(self.info, strength))

    def within(self, max_memory: int | None) -> Generator:
        """The same network translating each image within ``max_memory`` bytes (memory.py), or without
        a budget (None)."""
        if max_memory is not None and max_memory <= 0:
            raise ValueError(f"--max-memory {max_memory}: use a positive number of bytes, e.g. 4G")
        return replace(self, max_memory=max_memory)

    def compile(self, backend: str = "inductor") -> Generator:
        """Compile ``forward`` with torch.compile, with dynamic shapes: one compilation (20-50 s
        on a 2-core CPU, cached on disk by PyTorch) serves most image sizes. The tiled path
        (images over 4 megapixels) stays uncompiled. Falls back to eager if compiling fails."""
        self.compiled = torch.compile(self.forward, dynamic=True, backend=backend)
        return self

    def forward(self, x: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        """The network on ``x`` (already on the device) in this generator's precision."""
        cond = cond or {}
        with self.autocast():
            bound = self.precision == BLOCKS or self.kind.bound_forward
            layers = self.kind.layers(self.net, cond) if bound else None
            if layers is None:  # bf16-blocks needs the kind's plain layers; without them: the whole network
                return self.net(x, **cond)
            if self.precision != BLOCKS:
                for layer in layers:
                    x = layer(x)
                return x
            return self._blocks_in_bf16(layers, x)

    def _blocks_in_bf16(self, layers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
        # As the tiled path computes it: each block convolution under autocast, its output back to
        # fp32 for the InstanceNorm, the residual sum in fp32. The blocks run channels_last, where
        # oneDNN's bf16 convolutions are ~3x faster than in NCHW, with their own norm (PyTorch's
        # InstanceNorm is slow in that layout); the other layers NCHW.
        for layer in layers:
            if isinstance(layer, Residual):
                x = self._block_in_bf16(layer, x.contiguous(memory_format=torch.channels_last))
            else:
                x = layer(x.contiguous())
        return x

    def _block_in_bf16(self, block: Residual, x: torch.Tensor) -> torch.Tensor:
        h = x
        for sub in block.body:
            if isinstance(sub, nn.Conv2d):
                with self.block_autocast():
                    h = sub(h)
                h = h.float()
            elif isinstance(sub, nn.InstanceNorm2d) and not sub.track_running_stats:
                h = instance_norm(h, sub.eps, sub.weight if sub.affine else None, sub.bias if sub.affine else None)
            else:
                h = sub(h)
        return x + h

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context for the whole network (none for fp32 and bf16-blocks)."""
        if self.precision in ("fp32", BLOCKS):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

    def block_autocast(self) -> contextlib.AbstractContextManager:
        """The context of each convolution in the residual blocks under bf16-blocks."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def instance_norm(x: torch.Tensor, eps: float, weight: torch.Tensor | None = None,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """InstanceNorm2d without running statistics, in fp32, in x's layout; ``weight`` and ``bias``
    (C,): its affine (a folded FiLM modulation), applied in the same pass."""
    x = x.float()
    d = x - x.mean((2, 3), keepdim=True)
    scale = torch.rsqrt(d.square().mean((2, 3), keepdim=True) + eps)  # (N, C, 1, 1)
    if weight is None:
        return d * scale
    return torch.addcmul(bias.float()[None, :, None, None], d, scale * weight.float()[None, :, None, None])


def load_generator(
    weights: str | Path, direction: str | None = None, device: str | torch.device = "auto", precision: str = "auto",
    ema: bool = True, steps: int | None = None, seed: int = 0, strength: float | None = None,
) -> Generator:
    """Load a generator from a training checkpoint, an export, a reference .pth or ``official:NAME``.

    ``direction`` (AtoB / BtoA) picks the generator of a training checkpoint (default: BtoA for
    ``*2photo`` datasets, i.e. photo -> painting, else AtoB). Raises ``CheckpointError`` (or its
    subclass ``WeightsError``) with a one-line message when the weights cannot be used. ``ema``:
    a checkpoint's averaged generator weights when it has them (``train.ema``); False = the raw ones.
    ``precision`` auto is fp32 for generators of scientific data (``GeneratorInfo.exact``).
    ``steps``: network evaluations per image for multi-step kinds (None: the kind's default);
    ``seed``: their noise. ``strength``: for strength-conditioned generators, in [0, 1] (None: the
    middle of the range they were trained on).
    """
    dev = resolve_device(device)
    state, info = read_generator(weights, direction, ema)
    # Scientific data is compared in its own units (HU...): auto means fp32 for it, not bf16.
    prec = "fp32" if info.exact and precision == "auto" else resolve_inference_precision(precision, dev)
    kind = info.generator_kind
    net = kind.build(info.arch)
    net.load_state_dict(state, strict=True)
    net.eval().requires_grad_(False).to(dev)
    if dev.type == "cuda":
        net.to(memory_format=torch.channels_last)
    return Generator(net, info, dev, prec, check_steps(info, steps), seed, check_strength(info, strength))


def check_strength(info: GeneratorInfo, strength: float | None) -> float | None:
    """The strength to translate at (None for generators trained at a fixed weight); one line when
    it cannot be used. Outside the trained range it extrapolates: a warning, not an error."""
    trained = info.generator_kind.strength_range(info.arch)
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise WeightsError(f"--strength {strength}: use a value in [0, 1] (0 keeps the input most, 1 translates most)")
    if trained is None:
        if strength is not None:
            at = f" ({info.trained_at})" if info.trained_at else " (the file does not record which)"
            raise WeightsError(f"--strength {strength}: {info.origin} was trained at a fixed weight{at}; "
                               "train with a strength range to choose it at translate time (docs/strength.md)")
        return None
    lo, hi = trained
    if strength is None:
        return (lo + hi) / 2
    if not lo <= strength <= hi:
        logger.warning("--strength %s: %s was trained on strengths %s to %s; outside them it extrapolates",
                       strength, info.origin, lo, hi)
    return float(strength)


def check_steps(info: GeneratorInfo, steps: int | None) -> int:
    """``steps`` for this generator (None: its kind's default); one line when it cannot take them."""
    default, most = info.generator_kind.steps(info.arch)
    if steps is None:
        return default
    if most == 1 and steps != 1:
        raise WeightsError(f"--steps {steps}: {info.origin} is a one-pass {info.kind} generator; steps apply to "
                           "multi-step generators (unsb)")
    if not 1 <= steps <= most:
        raise WeightsError(f"--steps {steps}: use 1 to {most} for {info.origin} (a {info.kind} generator "
                           f"trained with {most} time steps)")
    return steps


# ---------------------------------------------------------------- images


def resize_short_side(img: Image.Image, size: int | None) -> Image.Image:
    """Resize so the shorter side is ``size`` pixels (aspect kept); None keeps the image."""
    if not size:
        return img
    w, h = img.size
    scale = size / min(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if new == (w, h) else img.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0)


def padded_size(h: int, w: int, multiple: int = 4) -> tuple[int, int]:
    """The (H, W) that ``pad_to_multiple`` pads an H x W image to."""
    return max(MIN_SIZE, -(-h // multiple) * multiple), max(MIN_SIZE, -(-w // multiple) * multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int = 4) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N, C, H, W) on the bottom and right to multiples of ``multiple`` (and at least 8).

    Reflection, like the generator's own padding; replication for sides too short to reflect.
    Returns the padded tensor and the original (H, W) to crop back to.
    """
    h, w = x.shape[-2:]
    th, tw = padded_size(h, w, multiple)
    if (th, tw) == (h, w):
        return x, (h, w)
    mode = "reflect" if th - h < h and tw - w < w else "replicate"
    return F.pad(x, (0, tw - w, 0, th - h), mode=mode), (h, w)


# ---------------------------------------------------------------- translation


def resolve_tile(tile: int | str | None, h: int, w: int, gen: Generator | None = None) -> int:
    """Tile size for an H x W image: 0 = untiled. ``auto`` tiles images over 4 megapixels, in
    ``auto_tile(gen)`` px tiles (``AUTO_TILE`` without a generator)."""
    if tile in (None, 0, "0"):
        return 0
    if tile == "auto":
        return (auto_tile(gen) if gen is not None else AUTO_TILE) if h * w > AUTO_TILE_AREA else 0
    tile = int(tile)
    if tile < 32:
        raise ValueError(f"tile {tile}: use at least 32 pixels (or 0 for no tiling)")
    tile = tile // 4 * 4
    return 0 if h <= tile and w <= tile else tile


def one_pass_layers(gen: Generator) -> list[nn.Module] | None:
    """The generator as plain layers at the conditioning of a one-evaluation translation (and the
    user's strength), for exact tiling; None for kinds that cannot be tiled exactly."""
    cond = {k: v.to(gen.device) for k, v in one_pass_conditions(gen.kind, gen.info.arch, gen.seed).items()}
    return gen.kind.layers(gen.net, cond | gen.conditions(1, gen.device))


def auto_tile(gen: Generator) -> int:
    """The tile of ``tile="auto"``: on the CPU, for a kind tiled exactly, the largest of
    ``memory.TILES`` whose widest activation (ngf channels in fp32 at full resolution, with a halo)
    stays under ``HEAP_BLOCK``, else the smallest; ``AUTO_TILE`` on a GPU and for blended tiles.

    glibc hands blocks over 32 MB straight from the kernel and gives them back when freed, so each
    of a larger tile's activations is faulted in afresh, page by page; a smaller tile's stay in its
    heap and are reused. Measured on an AMD EPYC (docs/translate.md, scripts/cpu_tiles.py): a
    2048 x 1536 photo with a 9-block ngf-64 generator took 47.4 s at a 1.86 GB peak in 1024 px
    tiles, 39.3 s in 512 and 27.9 s at 1.23 GB in 256; a 16,384 px scan with ngf 8 took 304 s in
    1024 px tiles, 206 s in 512 and 245 s in 256. A GPU runs large tiles best, and blended tiles
    (each normalised by its own statistics) keep their size: smaller ones would show more seams."""
    if gen.device.type != "cpu" or one_pass_layers(gen) is None:
        return AUTO_TILE
    widest = 4 * int(gen.info.arch.get("ngf", 64))  # bytes per pixel
    return next((t for t in memory.TILES if (t + 16) ** 2 * widest <= HEAP_BLOCK), memory.TILES[-1])


def images_per_pass(batch_size: int, h: int, w: int) -> int:
    """How many H x W images go through the generator together: ``batch_size``, fewer when large.

    A pass holds at most AUTO_TILE_AREA pixels, so activations stay bounded (big images are tiled
    one at a time anyway).
    """
    return max(1, min(batch_size, AUTO_TILE_AREA // (h * w)))


def translate_tensor(gen: Generator, x: torch.Tensor, tile: int | str | None = "auto") -> torch.Tensor:
    """Translate a batch (N, C_in, H, W) in [-1, 1] of any H, W; returns (N, C_out, H, W) fp32 on the CPU.

    ``tile``: tile size in pixels, 0/None = never, "auto" = only images over 4 megapixels. Tiled
    output equals untiled output up to float rounding for kinds that can be tiled exactly (see
    tiling.py); others are tiled with overlapping, blended tiles. Multi-step kinds tile each step.
    """
    padded, (h, w) = pad_to_multiple(x, gen.info.multiple)
    fit = fit_memory(gen, padded.shape, resolve_tile(tile, *padded.shape[-2:], gen))
    if not fit.tile:
        return gen(padded)[..., :h, :w]
    with torch.inference_mode(), gen.autocast(), spill_folder(fit.spill) as folder:
        run = TiledRun(gen, fit.tile, Spill(memory.SPILL_LIMIT, Path(folder)) if folder else None)
        outs = [gen.kind.translate(run, padded[i : i + 1], gen.info.arch, gen.steps, gen.seed) for i in range(len(padded))]
    return torch.cat(outs)[..., :h, :w]


def fit_memory(gen: Generator, shape: tuple[int, ...], tile: int, io_bytes: float = 2.0,
               streamed: bool = False) -> memory.Plan:
    """How to translate a batch of ``shape`` (N, C, H, W) within ``gen.max_memory`` (memory.py):
    ``tile`` when it fits (or there is no budget), else smaller tiles, then caches on disk. The
    estimate is logged at debug level (``translate --verbose``); ``io_bytes``, ``streamed``: as
    ``memory.plan``'s."""
    n, c_in, hh, ww = shape
    c_out = gen.kind.channels(gen.info.arch)[1]
    budget = None if gen.max_memory is None else gen.max_memory // n
    fit = memory.plan(int(gen.info.arch.get("ngf", 64)), hh, ww, c_in, c_out, tile, budget, io_bytes,
                      streamed=streamed)
    if (fit.tile, fit.spill) != (tile, False):
        note_once(("memory", ww, hh, gen.max_memory, fit), "%d x %d px: over --max-memory %s as asked, so translated %s",
                  ww, hh, memory.size_text(gen.max_memory), memory.describe(fit))
    logger.debug("%d x %d px: about %s of memory per image, translated %s", ww, hh, memory.size_text(fit.peak),
                 memory.describe(fit))
    return fit


@contextlib.contextmanager
def spill_folder(spill: bool):
    """A temporary folder for caches spilled to disk (removed after), or None."""
    if not spill:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="gan_style_cache_") as folder:
        yield folder


@dataclass
class TiledRun:
    """One network evaluation of ``gen`` on one image (1, C, H, W) on the CPU, tile by tile: exact
    when the kind gives its plain layers at this conditioning, else overlapping blended tiles."""

    gen: Generator
    tile: int
    spill: Spill | None = None  # whole-image caches over its limit on disk (memory.py)

    def __call__(self, x: torch.Tensor, cond: dict) -> torch.Tensor:
        gen = self.gen
        cond = {k: v.to(gen.device) for k, v in cond.items()} | gen.conditions(x.shape[0], gen.device)
        layers = gen.kind.layers(gen.net, cond)
        if layers is None:
            note_once(("blended", gen.info.origin), "%s: a %s generator cannot be tiled exactly; large images are "
                      "translated in overlapping, blended tiles (seams are possible; --tile 0 translates them whole)",
                      gen.info.origin, gen.info.kind)
            return translate_blended(lambda t: gen.forward(t, cond).float(), x, self.tile, gen.device)
        block_dtype = torch.bfloat16 if gen.precision == BLOCKS else None
        return translate_tiled(nn.Sequential(*layers), x, self.tile, gen.device, block_dtype, self.spill)


def note_once(key: tuple, message: str, *args) -> None:
    """Log ``message`` (information) the first time ``key`` is seen in this process: once per
    generator, or per image size, not once per image or video frame."""
    if key not in _NOTED:
        _NOTED.add(key)
        logger.info(message, *args)


_NOTED: set[tuple] = set()


def translate_image(
    gen: Generator,
    image: Image.Image | str | Path,
    size: int | None = None,
    tile: int | str | None = "auto",
) -> Image.Image:
    """Translate one image (a PIL image of any mode, or a path) and return an RGB PIL image.

    The output has the input's size and upright orientation, or with ``size`` the input resized
    so its shorter side is ``size`` pixels. Large images are tiled (see ``translate_tensor``).
    """
    gen.info.check_rgb()
    img = read_rgb(image) if isinstance(image, (str, Path)) else to_rgb(image)
    img = resize_short_side(img, size)
    out = translate_tensor(gen, image_to_float(img)[None], tile=tile)
    return float_to_image(out[0])
