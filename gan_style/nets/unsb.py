"""The networks of UNSB (Kim, Kwon, Kim, Ye, "Unpaired Image-to-Image Translation via Neural
Schrödinger Bridge", ICLR 2024), weight-for-weight compatible with the official code
(cyclomon/UNSB: ``ResnetGenerator_ncsn``, ``NLayerDiscriminator_ncsn``).

UNSB splits the Schrödinger bridge from domain A (t = 0) to domain B (t = 1) into T steps
0 = t_0 < t_1 < ... < t_T = 1 (``unsb_times``). Names map to the paper as follows:

    UNSBGenerator    = q_phi(x_1 | x_{t_i}): from the image x_{t_i} on the bridge, the step index
                       i and a noise z, a guess of the end point x_1 (a B image).
    UNSBDiscriminator = D (adversarial loss on x_1 at step i) and, with 4x the image channels,
                       the energy network E that estimates the entropy term of the SB loss from
                       pairs (x_{t_i}, x_1).
    tau               = the entropy regularisation tau of the bridge (the official ``--tau``).

The sampler (``UNSBKind.translate``) goes from x_0 = the input to x_{t_{i+1}} by the bridge's
Gaussian posterior between x_{t_i} and the guess x_1, and returns the last guess.

Official quirk reproduced by default (UNSB issue #29): the residual blocks apply the layers of their
first half each to the block's input instead of chaining them, so that half reduces to an
InstanceNorm of the input: its convolution and the time projection never reach the output, and the
whole generator ignores the step index. ``fixed_blocks=True`` chains the layers as evidently
intended, with one change: the time bias is added just after the InstanceNorm rather than just
before it, where the norm (one channel per group, unlike the GroupNorm of the DDPM blocks this one
follows, e.g. NCSN++'s) would subtract it again, so time would still not matter. Official checkpoints load into
either mode (same keys), but only the default reproduces their outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .film import StrengthMLP
from .generator import decoder_layers, encoder_layers
from .kind import GeneratorKind, Run, draw, image_noise
from .layers import BlurDownsample, ChannelAffine, ResidualBlock, instance_norm


def timestep_embedding(t: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """The sinusoidal embedding of step indices t (N,) -> (N, dim), as in Transformers and DDPM:
    sin then cos of t at ``dim // 2`` frequencies from 1 down to 1/max_positions (zero-padded to
    an odd ``dim``). Needs dim >= 4."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(max_positions) / (half - 1)))
    angles = t.float()[:, None] * freqs[None, :]  # (N, half)
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def unsb_times(num_timesteps: int) -> torch.Tensor:
    """The bridge's times t_0..t_T (T + 1 values, fp32) of the official code: 0, then the cumulative
    sums of 0, 1, 1/2, ..., 1/(T-1) rescaled to [0.5, 1], so steps get shorter towards t = 1.
    T = 5: 0, 0.5, 0.74, 0.86, 0.94, 1. (T = 1: 0, 1; the official formula divides 0 by 0 there,
    and its sampler never reads the times for one step.)"""
    if num_timesteps == 1:
        return torch.tensor([0.0, 1.0])
    incs = torch.tensor([0.0] + [1.0 / (i + 1) for i in range(num_timesteps - 1)], dtype=torch.float64)
    cum = torch.cumsum(incs, 0)
    cum = cum / cum[-1]
    times = 0.5 * cum[-1] + 0.5 * cum  # in float64, then fp32, as the official numpy -> tensor
    return torch.cat([torch.zeros(1, dtype=torch.float64), times]).float()


class PixelNorm(nn.Module):
    """z / sqrt(mean(z^2) + 1e-8) over the channels: the noise's scale does not matter (StyleGAN)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.rsqrt(torch.mean(z**2, dim=1, keepdim=True) + 1e-8)


class AdaptiveLayer(nn.Module):
    """gamma(w) * h + beta(w) per channel, gamma and beta a linear function of the mapped noise w."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.style_net = nn.Linear(w_dim, 2 * channels)
        # Identity at w = 0 before ``init_weights``, which (as the official init does) zeroes this bias.
        with torch.no_grad():
            self.style_net.bias[:channels] = 1
            self.style_net.bias[channels:] = 0

    def factors(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.style_net(w).chunk(2, dim=1)  # gamma, beta: (N, C) each

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.factors(w)
        return gamma[:, :, None, None] * h + beta[:, :, None, None]


class UNSBBlock(nn.Module):
    """The official ``ResnetBlock_cond``: x + [first half, adaptive(w), ReLU, pad, conv3x3, IN](x).

    First half, ``fixed=False`` (official): IN(x). ``fixed=True``: IN(conv3x3(pad(x))) + Dense_time(e_t).
    Keys: conv_block.1 (the first conv), conv_fin.2 (the second), adaptive.style_net, Dense_time,
    and ``style``, a linear layer the official code creates but never uses.
    """

    def __init__(self, channels: int, t_dim: int, w_dim: int, fixed: bool) -> None:
        super().__init__()
        self.fixed = fixed
        # Registered in the official order (state_dict order, and the order init_weights draws in).
        self.conv_block = nn.ModuleList([nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), instance_norm(channels)])
        self.conv_fin = nn.ModuleList([nn.ReLU(inplace=True), nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                       instance_norm(channels)])
        self.adaptive = AdaptiveLayer(channels, w_dim)
        self.Dense_time = nn.Linear(t_dim, channels)
        nn.init.zeros_(self.Dense_time.bias)
        self.style = nn.Linear(w_dim, 2 * channels)
        if not fixed:  # they cannot change the output: no gradients (DDP, Adam) for them
            for unused in (self.conv_block[1], self.Dense_time):
                unused.requires_grad_(False)
        self.style.requires_grad_(False)

    def forward(self, x: torch.Tensor, e_t: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W); e_t (N or 1, t_dim) the time embedding (unused unless fixed); w (N, w_dim)."""
        pad, conv, norm = self.conv_block
        if self.fixed:
            h = norm(conv(pad(x))) + self.Dense_time(e_t)[:, :, None, None]  # after IN, which would cancel it
        else:
            h = norm(x)  # the official block's first conv and time bias are computed and dropped
        h = self.adaptive(h, w)
        for layer in self.conv_fin:
            h = layer(h)
        return x + h

    def bind(self, e_t: torch.Tensor | None, w: torch.Tensor) -> ResidualBlock:
        """This block at fixed conditioning, as a residual block of plain layers (exact tiling)."""
        adaptive = ChannelAffine(*self.adaptive.factors(w))
        if not self.fixed:
            return ResidualBlock([self.conv_block[2], adaptive, *self.conv_fin])
        pad, conv, norm = self.conv_block
        return ResidualBlock([pad, conv, norm, ChannelAffine(None, self.Dense_time(e_t)), adaptive, *self.conv_fin])


class UNSBGenerator(nn.Module):
    """UNSB's generator q_phi(x_1 | x_{t_i}, z): the official ``ResnetGenerator_ncsn`` (netG
    ``resnet_9blocks_cond``, instance norm, no dropout).

    Shapes for x (N, in_channels, H, W), H and W multiples of 4: ``model`` (the ResNet encoder,
    as CUT's) -> (N, 4ngf, H/4, W/4); ``model_res``: ``n_blocks`` conditioned residual blocks;
    ``model_upsample`` -> (N, out_channels, H, W) in [-1, 1]. Conditioning: the noise z (N, 4ngf)
    through ``z_transform`` (PixelNorm, then 1 + n_mlp linear layers with LeakyReLU) to w, which
    scales and shifts each block's features; the step index t (N,) or (1,) long, through a
    sinusoidal embedding of size ngf and ``time_embed`` (two linear layers) to e_t (4ngf), which
    only ``fixed_blocks=True`` uses (see the module docstring).

    ``num_timesteps`` (T) and ``tau`` are the sampling schedule (``UNSBKind.translate``), kept as
    attributes so that checkpoints record them with the architecture; they hold no tensors.

    ``strength_range`` (lo, hi), for loss-conditional training (docs/strength.md): the generator
    also takes a strength s (N,) in [0, 1], through ``film`` (nets/film.py's MLP, 1 -> 64 -> 64 ->
    4ngf) added to w, so it moves every block's scale and shift; its last layer starts at zero
    (the unconditioned generator). None (the official network): no strength input.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 antialias: bool = True, antialias_up: bool = True, n_mlp: int = 3, num_timesteps: int = 5,
                 tau: float = 0.01, fixed_blocks: bool = False,
                 strength_range: list[float] | tuple[float, float] | None = None) -> None:
        super().__init__()
        if n_blocks < 0 or n_mlp < 0 or ngf < 4 or num_timesteps < 1:
            raise ValueError(f"need n_blocks >= 0, n_mlp >= 0, ngf >= 4, num_timesteps >= 1; got "
                             f"{n_blocks}, {n_mlp}, {ngf}, {num_timesteps}")
        self.ngf, self.num_timesteps, self.tau, self.fixed_blocks = ngf, num_timesteps, tau, fixed_blocks
        dim = 4 * ngf  # channels of the blocks = size of w and of e_t
        # Registered in the official order: model_res first (state_dict order, init_weights draws).
        self.model_res = nn.ModuleList([UNSBBlock(dim, dim, dim, fixed_blocks) for _ in range(n_blocks)])
        self.model = nn.Sequential(*encoder_layers(in_channels, ngf, antialias))
        self.model_upsample = nn.Sequential(*decoder_layers(ngf, out_channels, antialias_up))
        mapping: list[nn.Module] = [PixelNorm()]
        for _ in range(1 + n_mlp):
            mapping += [nn.Linear(dim, dim), nn.LeakyReLU(0.2)]
        self.z_transform = nn.Sequential(*mapping)
        self.time_embed = nn.Sequential(nn.Linear(ngf, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim), nn.LeakyReLU(0.2))
        for layer in self.time_embed[::2]:
            nn.init.zeros_(layer.bias)
        if not fixed_blocks:
            self.time_embed.requires_grad_(False)  # it feeds only the blocks' dropped time bias
        # A list (as JSON keeps it), recorded with the architecture; the MLP registered last (official keys first).
        self.strength_range = None if strength_range is None else [float(v) for v in strength_range]
        self.film = None if strength_range is None else StrengthMLP(dim)

    def _conditions(self, time_cond: torch.Tensor, z: torch.Tensor,
                    strength: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(e_t (N or 1, 4ngf) or None where unused, w (N, 4ngf))."""
        w = self.z_transform(z)
        if self.film is not None:
            if strength is None:
                raise ValueError("this UNSB generator was trained on a strength range: give it a strength (N,) in [0, 1]")
            w = w + self.film(strength.reshape(-1, 1).to(w.dtype))
        if not self.fixed_blocks:
            return None, w
        emb = timestep_embedding(time_cond, self.ngf).to(self.time_embed[0].weight.dtype)  # (N or 1, ngf)
        return self.time_embed(emb), w

    def forward(self, x: torch.Tensor, time_cond: torch.Tensor, z: torch.Tensor, layers: tuple[int, ...] = (),
                encode_only: bool = False, strength: torch.Tensor | None = None):
        """x (N, C_in, H, W) = x_{t_i}, time_cond (N,) or (1,) long = i, z (N, 4ngf) -> x_1 guess;
        ``strength`` (N,), for a generator with a ``strength_range``.

        With ``layers`` (PatchNCE): the outputs of those layers, counting ``model``'s layers then
        the blocks (CUT's 0, 4, 8, 12, 16 for the antialiased net: the padded input, three encoder
        stages and the 5th block's output). ``encode_only``: just those features, stopping after
        the last one; else (translation, features). (The official code returns the last block's
        output instead of the translation there, and runs all blocks when the last wanted layer
        is in ``model``; neither is used by its training.)
        """
        e_t, w = self._conditions(time_cond, z, strength)
        if layers:
            return self._with_features(x, e_t, w, layers, encode_only)
        h = self.model(x)
        for block in self.model_res:
            h = block(h, e_t, w)
        return self.model_upsample(h)

    def _with_features(self, x, e_t, w, layers, encode_only):
        n_model, last = len(self.model), max(layers)
        if min(layers) < 0 or last >= n_model + len(self.model_res):
            raise ValueError(f"feature layers must be in 0..{n_model + len(self.model_res) - 1} "
                             f"({n_model} encoder layers, then the blocks), got {tuple(layers)}")
        h, feats = x, []
        for i in range(n_model + len(self.model_res)):
            h = self.model[i](h) if i < n_model else self.model_res[i - n_model](h, e_t, w)
            if i in layers:
                feats.append(h)
            if encode_only and i == last:
                return feats
        return self.model_upsample(h), feats

    @torch.no_grad()
    def bind(self, time_cond: torch.Tensor, z: torch.Tensor, strength: torch.Tensor | None = None) -> list[nn.Module]:
        """The network at fixed conditioning (one image: time_cond (1,), z (1, 4ngf), strength (1,)) as a
        chain of plain layers: ``nn.Sequential(*net.bind(t, z))(x) == net(x, t, z)``; exact tiling walks it."""
        e_t, w = self._conditions(time_cond, z, strength)
        return [*self.model, *(block.bind(e_t, w) for block in self.model_res), *self.model_upsample]


class TimeEmbedding(nn.Module):
    """Step index t (N,) -> (N, dim): its sinusoidal embedding through two linear layers with LeakyReLU."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.main = nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim), nn.LeakyReLU(0.2))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.main(timestep_embedding(t, self.dim).to(self.main[0].weight.dtype))


class TimeConvBlock(nn.Module):
    """The official ``ConvBlock_cond``: conv4x4 (stride 1), + dense(e_t) per channel, [IN],
    LeakyReLU(0.2), [blur-and-subsample]. The blur exists (key ``down.filt``) even where unused.
    Where there is an IN, it subtracts the per-channel time bias again: as in the official code,
    only the first block (no norm) makes D depend on the step index."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, norm: bool, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=4, stride=1, padding=1)
        self.norm = instance_norm(c_out) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.down = BlurDownsample(c_out)
        self.dense = nn.Linear(t_dim, c_out)

    def forward(self, x: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm(self.conv1(x) + self.dense(e_t)[:, :, None, None]))
        return self.down(h) if self.downsample else h


class UNSBDiscriminator(nn.Module):
    """UNSB's time-conditioned PatchGAN: the official ``NLayerDiscriminator_ncsn`` (netD
    ``basic_cond``, instance norm, antialiased). D judges x_1 guesses at step i; the energy
    network E of the SB loss is this class with ``in_channels`` = 4x the image channels, called as
    E(cat(x_{t_i}, x_1), i, cat(x'_{t_i}, x'_1)).

    x (N, in_channels, H, W) [with x2 (N, C2, H, W) concatenated on channels: in_channels counts
    both], time_cond (N,) or (1,) long -> raw scores (N, 1, H/8 - 2, W/8 - 2) for H, W multiples
    of 8 (256 -> 30x30, as the PatchGAN). The step index enters each block as a per-channel bias
    from a sinusoidal embedding of size 4ndf (``t_embed``), effectively only the first one.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        t_dim = 4 * ndf
        blocks = [TimeConvBlock(in_channels, ndf, t_dim, norm=False, downsample=True)]
        mult = 1
        for n in range(1, n_layers):  # downsampling blocks, doubling channels up to 8ndf
            prev, mult = mult, min(2**n, 8)
            blocks.append(TimeConvBlock(ndf * prev, ndf * mult, t_dim, norm=True, downsample=True))
        prev, mult = mult, min(2**n_layers, 8)
        blocks.append(TimeConvBlock(ndf * prev, ndf * mult, t_dim, norm=True, downsample=False))
        self.model_main = nn.ModuleList(blocks)
        self.final_conv = nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1)
        self.t_embed = TimeEmbedding(t_dim)

    def forward(self, x: torch.Tensor, time_cond: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        e_t = self.t_embed(time_cond)  # (N or 1, 4ndf)
        h = x if x2 is None else torch.cat([x, x2], dim=1)
        for block in self.model_main:
            h = block(h, e_t)
        return self.final_conv(h)


def unsb_arch(state: Mapping[str, torch.Tensor]) -> dict:
    """A UNSBGenerator's constructor arguments that its tensors tell (not the schedule, nor
    ``fixed_blocks``: the keys are the same either way); ValueError naming a missing key."""
    try:
        first = state["model.1.weight"]  # (ngf, in_channels, 7, 7)
        state["z_transform.1.weight"]  # (4ngf, 4ngf): the noise mapping, UNSB's alone
    except KeyError as e:
        raise ValueError(f"not a UNSB generator state_dict: key {e.args[0]!r} is missing") from None
    ups = [int(k.split(".")[1]) for k in state if k.startswith("model_upsample.") and k.endswith(".weight")]
    if not ups:
        raise ValueError("not a UNSB generator state_dict: no 'model_upsample.*.weight' key")
    return {
        "in_channels": int(first.shape[1]),
        "out_channels": int(state[f"model_upsample.{max(ups)}.weight"].shape[0]),
        "ngf": int(first.shape[0]),
        "n_blocks": len({k.split(".")[1] for k in state if k.startswith("model_res.")}),
        "antialias": "model.7.filt" in state,  # the first downsampling's blur
        "antialias_up": any(k.startswith("model_upsample.") and k.endswith(".filt") for k in state),
        "n_mlp": sum(1 for k in state if k.startswith("z_transform.") and k.endswith(".weight")) - 1,
    }


def sample(run: Run, x: torch.Tensor, ngf: int, num_timesteps: int, tau: float, steps: int, seed: int) -> torch.Tensor:
    """The official test-phase sampler, stopped after ``steps`` network evaluations (the official
    ``fake_<steps>``). x_0 = x; at step i > 0, x_{t_i} = (1 - s) x_{t_{i-1}} + s x_1 + sqrt(v tau) eps
    with s = (t_i - t_{i-1}) / (1 - t_{i-1}), v = (t_i - t_{i-1})(1 - s): the bridge's posterior
    between x_{t_{i-1}} and the last guess x_1 = G(x_{t_{i-1}}, i - 1, z). Returns the last guess.
    Noise per image from ``seed`` (eps then z at each step, as the official draws them)."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"UNSB takes 1 to {num_timesteps} steps (network evaluations), got {steps}")
    times = unsb_times(num_timesteps)  # (T + 1,) fp32
    streams, n = image_noise(seed, x.shape[0]), x.shape[0]
    x_t = guess = x  # guess: replaced by step 0 before its first use
    for i in range(steps):
        if i > 0:
            # fp32 scalars, as the official code computes them from its fp32 times tensor.
            delta, denom = times[i] - times[i - 1], times[-1] - times[i - 1]
            s, v = delta / denom, delta * (1 - delta / denom)
            eps = draw(streams, tuple(x.shape[1:]), x.device).to(x.dtype)
            x_t = (1 - s) * x_t + s * guess + (v * tau).sqrt() * eps
        z = draw(streams, (4 * ngf,), x.device).to(x.dtype)  # (N, 4ngf)
        guess = run(x_t, {"time_cond": torch.full((n,), i, dtype=torch.long, device=x.device), "z": z})
    return guess


class UNSBKind(GeneratorKind):
    """UNSB's generator: ``num_timesteps`` evaluations with noise, exactly tileable at each."""

    name = "unsb"
    module = UNSBGenerator

    def recognises(self, state) -> bool:
        return "z_transform.1.weight" in state or any(k.endswith(".adaptive.style_net.weight") for k in state)

    def arch(self, state) -> dict:
        return unsb_arch(state)

    def defaults(self) -> dict:
        # The official code's; a strength range is recorded with the architecture (a bare state_dict has none).
        return {"fixed_blocks": False, "num_timesteps": 5, "tau": 0.01, "strength_range": None}

    def strength_range(self, arch: Mapping) -> tuple[float, float] | None:
        span = arch.get("strength_range")
        return None if span is None else (float(span[0]), float(span[1]))

    def steps(self, arch: Mapping) -> tuple[int, int]:
        t = int(arch.get("num_timesteps", self.defaults()["num_timesteps"]))
        return t, t

    def translate(self, run: Run, x: torch.Tensor, arch: Mapping, steps: int, seed: int) -> torch.Tensor:
        arch = self.defaults() | dict(arch)
        return sample(run, x, int(arch["ngf"]), int(arch["num_timesteps"]), float(arch["tau"]), steps, seed)

    def layers(self, net: nn.Module, cond: Mapping[str, torch.Tensor]) -> list[nn.Module]:
        return net.bind(cond["time_cond"], cond["z"], cond.get("strength"))

    def example_conditions(self, arch: Mapping, n: int) -> dict[str, torch.Tensor]:
        z = torch.randn(n, 4 * int(arch.get("ngf", 64)), generator=torch.Generator().manual_seed(0))
        span = self.strength_range(arch)
        strength = {} if span is None else {"strength": torch.full((n,), sum(span) / 2)}
        return {"time_cond": torch.zeros(n, dtype=torch.long), "z": z} | strength
