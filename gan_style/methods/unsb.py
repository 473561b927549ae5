"""UNSB (Kim, Kwon, Kim, Ye, "Unpaired Image-to-Image Translation via Neural Schrödinger Bridge",
ICLR 2024): CUT's contrastive translation made a Schrödinger bridge of ``num_timesteps`` steps.

At each iteration a step index i is drawn; the source image x_0 is carried along the bridge to
x_{t_i} with the current generator (no gradients, fresh noise at each step); then
G(x_{t_i}, i, z) guesses the end point x_1 and learns from three terms: the GAN loss of D(x_1, i),
PatchNCE between x_0 and x_1 (CUT's, with the identity term on Y), and the Schrödinger-bridge loss
lambda_SB * [tau * ||x_{t_i} - x_1||^2 - (T - i) / T * tau * (entropy estimate)], whose entropy
term comes from the energy network E, trained to tell pairs (x_{t_i}, x_1) of one image from pairs
mixed with a second image x'_0 carried along the same bridge (the official code's second batch).

X and Y are the dataset's A and B for ``data.direction: AtoB``, B and A for BtoA. The networks, the
defaults and the order of the updates (D, then E, then G with F) follow the official code
(cyclomon/UNSB, ``models/sb_model.py``); its checkpoints (``latest_net_G.pth``) load into
``gan_style.nets.UNSBGenerator``. Differences, each so that DDP over k processes equals one batch
of k and runs resume exactly:

- the noise of each sample (the bridge's, z) comes from a stream seeded by that sample, not from
  the process's global RNG; the step index, like CUT's patch locations, from a stream identical
  on every rank;
- the energy's log-sum-exp runs over each image's outputs and is averaged over the batch (the
  official code pools the batch into one log-sum-exp): identical at batch size 1, the official
  setting ("we recommend batch size 1"), and a sum of per-image terms otherwise.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping, Optional

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.utils.data import Dataset

from ..config import Config, FinetuneConfig, Section
from ..domains import dataset_name, default_direction
from ..nets import PatchSampler, UNSBDiscriminator, UNSBGenerator, init_weights, kind_of, unsb_times
from .base import MethodState, Precision, TrainingData, adam, grad_norm, sampled_strengths, scaled_lr
from .base import set_requires_grad, unpaired_data, weight_at, wrap
from .losses import gan_loss, layered_patch_nce


class UNSBOptions(Section):
    """UNSB (Kim et al., ICLR 2024): the official options and defaults (``--mode sb``)."""

    lambda_GAN: float = Field(1.0, ge=0)
    """Weight of the GAN loss of G(x_t)."""
    lambda_NCE: float = Field(1.0, ge=0)
    """Weight of the PatchNCE loss between x_0 and G(x_t)."""
    lambda_SB: float = Field(0.1, ge=0)
    """Weight of the Schrödinger-bridge loss (the official default; the paper's runs use 1.0)."""
    nce_idt: bool = True
    """Also the identity PatchNCE on G(y_t) vs y (total NCE = mean of both)."""
    nce_layers: Optional[list[int]] = None
    """Indices of the generator's layers whose features enter PatchNCE (encoder layers, then the blocks); null = the official [0, 4, 8, 12, 16], capped at G's last block when it has fewer than 5."""
    num_patches: int = Field(256, gt=0)
    """Patch locations sampled per NCE layer and image."""
    nce_T: float = Field(0.07, gt=0)
    """Temperature of the PatchNCE softmax."""
    netF_nc: int = Field(256, gt=0)
    """Output width of the patch sampler's MLPs (netF)."""
    num_timesteps: int = Field(5, ge=1, le=100)
    """T: steps of the bridge; translation takes up to T network evaluations (translate --steps)."""
    tau: float = Field(0.01, gt=0)
    """The bridge's entropy regularisation (noise variance scale)."""
    std: float = Field(0.25, ge=0)
    """The official --std; its training draws a noise scale from it but never applies it, so it changes nothing (kept so official command lines carry over)."""
    n_mlp: int = Field(3, ge=0)
    """Linear layers after the first in the generator's noise mapping (official --n_mlp)."""
    fixed_blocks: bool = False
    """false: the official residual blocks (UNSB issue #29: their first conv and the step index do not reach the output; needed to load official weights); true: the blocks as intended."""

    @field_validator("nce_layers")
    @classmethod
    def _ascending(cls, layers: list[int] | None) -> list[int] | None:
        if layers is not None and (not layers or layers != sorted(set(layers)) or layers[0] < 0):
            raise ValueError(f"give distinct layer indices in ascending order, e.g. [0, 4, 8, 12, 16], not {layers}")
        return layers


class UNSBFinetune(FinetuneConfig):
    G: Optional[str] = None
    """Weights for G (the data.direction generator): a UNSB checkpoint, export or official latest_net_G.pth."""


class UNSBConfig(Config):
    """UNSB: the shared keys, the ``unsb:`` section and its one generator in ``finetune``."""

    method_defaults: ClassVar[dict[str, Any]] = {"model.init_type": "xavier", "model.antialias": True,
                                                 "model.antialias_up": True}
    method: Literal["unsb"] = "unsb"
    """unsb: a Schrödinger bridge of num_timesteps steps (CUT's losses + the SB loss); see docs/methods.md."""
    unsb: UNSBOptions = UNSBOptions()
    finetune: UNSBFinetune = UNSBFinetune()

    @model_validator(mode="after")
    def _check(self) -> "UNSBConfig":
        m = self.model
        if m.input_nc != m.output_nc:  # PatchNCE and the bridge mix source and target images
            raise ValueError(f"method=unsb needs model.input_nc == output_nc (the bridge mixes source and target "
                             f"images); got {m.input_nc} and {m.output_nc}: use method=cyclegan")
        last = last_feature_layer(self)
        if self.unsb.nce_layers is not None and self.unsb.nce_layers[-1] > last:
            raise ValueError(f"unsb.nce_layers={self.unsb.nce_layers}: G has feature layers 0..{last} with "
                             f"model.n_blocks={m.n_blocks}; e.g. [0, 4, 8, 12, {min(16, last)}]")
        if self.train.auto_weights:
            raise ValueError("train.auto_weights: method=unsb does not take it (cyclegan, cut and fastcut do); set "
                             "unsb.lambda_GAN, unsb.lambda_NCE, or train.strength_range")
        if m.ngf < 4 or m.n_layers_D != 3:
            raise ValueError(f"method=unsb needs model.ngf >= 4 and model.n_layers_D=3 (the official time-conditioned "
                             f"PatchGAN has 3 layers); got ngf={m.ngf}, n_layers_D={m.n_layers_D}")
        return self


def last_feature_layer(cfg: Config) -> int:
    """The index of G's last feature layer: its encoder's layers (12 antialiased, else 10), then the blocks."""
    return (12 if cfg.model.antialias is not False else 10) + cfg.model.n_blocks - 1


def nce_layers(cfg: Config) -> tuple[int, ...]:
    """``unsb.nce_layers``, or the official layers capped at G's last feature layer."""
    if cfg.unsb.nce_layers is not None:
        return tuple(cfg.unsb.nce_layers)
    return tuple(sorted({min(i, last_feature_layer(cfg)) for i in (0, 4, 8, 12, 16)}))


def source_domain(cfg: Config) -> str:
    """"A" or "B": the domain UNSB translates from (``data.direction``, else the dataset's default)."""
    direction = cfg.data.direction or default_direction(dataset_name(cfg.data.dataset, cfg.data.root))
    return direction[0]


class WithSecondSource(Dataset):
    """The unpaired dataset, each sample with a second, independent source image ``X2`` (UNSB's
    second batch) and the sample's ``seed`` (its noise): both fixed by the sample's key, so the
    same on any number of ranks and workers, and after a resume."""

    def __init__(self, base: Dataset, source: str, n_source: int) -> None:
        self.base, self.source, self.n_source = base, source, n_source

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        index_a, index_b, seed = key
        item = self.base[key]
        other = int(torch.randint(self.n_source, (), generator=torch.Generator().manual_seed(seed + 1)))
        second = self.base[(other, index_b, seed + 7)] if self.source == "A" else self.base[(index_a, other, seed + 7)]
        skipped = "\n".join(filter(None, (item["skipped"], second["skipped"])))
        return item | {"X2": second[self.source], "seed": seed, "skipped": skipped}


def unsb_data(cfg: Config, rank: int, world_size: int) -> TrainingData:
    """``unpaired_data`` (images or scientific planes), each sample with a second source image."""
    data = unpaired_data(cfg, rank, world_size)
    source = source_domain(cfg)
    n_source = data.sampler.n_a if source == "A" else data.sampler.n_b
    return TrainingData(WithSecondSource(data.dataset, source, n_source), data.sampler, data.fixed, data.intensity)


def sample_noise(seeds: torch.Tensor, device: torch.device) -> list[torch.Generator]:
    """One CPU random stream per sample of the batch, from its seed (the dataset's)."""
    return [torch.Generator().manual_seed(int(s) * 2 + 1) for s in seeds.tolist()]


def normal(streams: list[torch.Generator], shape: tuple[int, ...], device: torch.device,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(len(streams), *shape) standard normal, sample i from stream i, on ``device``."""
    return torch.stack([torch.randn(shape, generator=g) for g in streams]).to(device, dtype)


class UNSB(MethodState):
    config_type: ClassVar[type[Config]] = UNSBConfig
    make_data = staticmethod(unsb_data)
    batch_keys = ("A", "B", "X2")
    progress_keys = ("loss/G_GAN", "loss/NCE", "loss/SB", "loss/E")

    def __init__(self, cfg: UNSBConfig, device: torch.device, precision: str, world_size: int = 1, rank: int = 0):
        m, t, u = cfg.model, cfg.train, cfg.unsb
        self.cfg, self.device, self.precision, self.rank = cfg, device, precision, rank
        self.source = source_domain(cfg)
        self.direction = "AtoB" if self.source == "A" else "BtoA"
        self.nce_layers = nce_layers(cfg)
        self.times = unsb_times(u.num_timesteps).to(device)  # (T + 1,)
        losses = ("G_GAN", "NCE") + (("NCE_Y",) if u.nce_idt else ()) + ("SB", "D_real", "D_fake", "E")
        self.stat_names = tuple(f"loss/{n}" for n in losses) + ("D/real", "D/fake")
        self.panel_columns = {"X": "real X | x_1 after 1, 2 ... T steps",
                              "Y": "real Y | G(Y) after T steps: identity (should stay Y)"}
        # ---- networks (plain modules; these are what checkpoints store) ----
        torch.manual_seed(t.seed)  # same initial weights on every rank
        init = dict(gain=m.init_gain, init_type=m.init_type)
        nc = m.input_nc  # == output_nc (UNSBConfig checks)
        self.span = t.strength_range  # loss-conditional training: G takes each sample's strength
        self.G = init_weights(UNSBGenerator(nc, nc, m.ngf, m.n_blocks, m.antialias, m.antialias_up, u.n_mlp,
                                            u.num_timesteps, u.tau, u.fixed_blocks, self.span), **init)
        self.D = init_weights(UNSBDiscriminator(nc, m.ndf), **init)
        self.E = init_weights(UNSBDiscriminator(4 * nc, m.ndf), **init)  # pairs (x_t, x_1) of two images
        self.F = init_weights(PatchSampler(self._feature_channels(), u.netF_nc), **init)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        for net in self.nets.values():
            net.to(device=device, memory_format=self.memory_format)
        self.run = {name: wrap(net, world_size, device, t.compile and name != "F") for name, net in self.nets.items()}
        # ---- optimisation: F learns with G (one Adam; Adam is per-parameter, so this equals two) ----
        lr = scaled_lr(cfg, world_size)
        self.opt_G = adam([*trainable(self.G), *self.F.parameters()], cfg, lr, device)
        self.opt_D = adam(self.D.parameters(), cfg, lr, device)
        self.opt_E = adam(self.E.parameters(), cfg, lr, device)
        self.set_optimizers(G=self.opt_G, D=self.opt_D, E=self.opt_E)
        amp = Precision(device, precision)
        self.autocast, self.scaler = amp.autocast, amp.scaler
        # ---- random streams of the method, the same on every rank ----
        self.patch_rng = torch.Generator(device=device).manual_seed(t.seed + 1)  # patch locations
        self.time_rng = torch.Generator().manual_seed(t.seed + 2)  # the step index of each iteration

    def _feature_channels(self) -> list[int]:
        """Channel counts of G's PatchNCE layers, from a pass on a tiny input."""
        nc, dim = self.cfg.model.input_nc, 4 * self.cfg.model.ngf
        with torch.no_grad():
            feats = self.G(torch.zeros(1, nc, 16, 16), torch.zeros(1, dtype=torch.long), torch.zeros(1, dim),
                           self.nce_layers, encode_only=True, **self._middle(torch.zeros(1)))
        return [f.shape[1] for f in feats]

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "E": self.E, "F": self.F}

    @property
    def generator_map(self) -> dict[str, str]:
        return {self.direction: "G"}

    # ---- one iteration

    def step(self, batch: Mapping[str, torch.Tensor], measure_grads: bool = False) -> dict[str, torch.Tensor]:
        """One iteration on {"A", "B": (N, C, H, W), "X2": a second source batch, "seed": (N,)}: the
        bridge to a random step i, then D, E, and G with F, as the official code orders them.
        Returns detached statistics (stat_names order) without any host sync."""
        u, stats = self.cfg.unsb, {}
        x, y = (batch["A"], batch["B"]) if self.source == "A" else (batch["B"], batch["A"])  # source X, target Y
        to = dict(device=self.device, non_blocking=True, memory_format=self.memory_format)
        x, y, x2 = x.to(**to), y.to(**to), batch["X2"].to(**to)
        n = x.shape[0]
        # The dataset gives each sample's seed; direct callers (the bench) may not: positions then.
        seeds = batch["seed"] if "seed" in batch else torch.arange(n)
        noise = sample_noise(seeds, self.device)
        # Loss-conditional training: sample k's strength picks its NCE weight; G is told it.
        lambda_NCE, s = self._weights(seeds)
        i = int(torch.randint(u.num_timesteps, (), generator=self.time_rng))  # the step trained on
        step = torch.full((1,), i, dtype=torch.long, device=self.device)  # one index for the batch, as the official

        # ---- carry x (and x', and y for the identity term) along the bridge to step i, no gradients ----
        starts = torch.cat([x, x2, y] if u.nce_idt else [x, x2])  # (2N or 3N, C, H, W)
        groups = len(starts) // n
        with self.autocast():
            x_t = self.bridge(starts, i, noise, s)
        x_t, x2_t, y_t = x_t[:n], x_t[n : 2 * n], x_t[2 * n :]
        # ---- G's guesses of the end point from step i (x_t, then x'_t and y_t batched in) ----
        z = normal(noise * groups, (4 * self.cfg.model.ngf,), self.device)  # (2N or 3N, 4ngf)
        with self.autocast():
            fake = self.run["G"](torch.cat([x_t, x2_t, y_t]), step, z, **self._strengths(s, groups))
        fake_x1, fake2_x1, idt_y = fake[:n], fake[n : 2 * n], fake[2 * n :]

        # ---- D: real y vs G(x_t), at step i ----
        set_requires_grad([self.D], True)
        with self.autocast():
            pred_real, pred_fake = self.run["D"](torch.cat([y, fake_x1.detach()]), step).split(n)
            loss_D_real = gan_loss(pred_real, True, self.cfg.train.gan_mode)
            loss_D_fake = gan_loss(pred_fake, False, self.cfg.train.gan_mode)
        self._update(self.opt_D, 0.5 * (loss_D_real + loss_D_fake), "D", measure_grads, stats)

        # ---- E: the energy of matched pairs (x_t, x_1) against pairs mixed with the second image ----
        set_requires_grad([self.E], True)
        pair, other = torch.cat([x_t, fake_x1.detach()], 1), torch.cat([x2_t, fake2_x1.detach()], 1)
        with self.autocast():
            loss_E = energy_loss(*self._energies(pair, other, step, self.run["E"]))
        self._update(self.opt_E, loss_E, "E", measure_grads, stats)

        # ---- G and F: fool the (updated, frozen) D; SB and PatchNCE ----
        set_requires_grad([self.D, self.E], False)
        with self.autocast():
            loss_G_GAN = gan_loss(self.D(fake_x1, step), True, self.cfg.train.gan_mode) * u.lambda_GAN
            pair, other = torch.cat([x_t, fake_x1], 1), torch.cat([x2_t, fake2_x1], 1)
            loss_SB = self._sb_loss(*self._energies(pair, other, step, self.E), x_t, fake_x1, i)
            loss_NCE = self._nce(x, fake_x1, noise, s, lambda_NCE)
            losses = [loss_G_GAN, loss_NCE]
            if u.nce_idt:
                loss_NCE_Y = self._nce(y, idt_y, noise, s, lambda_NCE)
                loss_G = loss_G_GAN + u.lambda_SB * loss_SB + 0.5 * (loss_NCE + loss_NCE_Y)
                losses.append(loss_NCE_Y)
            else:
                loss_G = loss_G_GAN + u.lambda_SB * loss_SB + loss_NCE
        self._update(self.opt_G, loss_G, "G", measure_grads, stats)
        self.scaler.update()

        losses += [loss_SB, loss_D_real, loss_D_fake, loss_E]
        outputs = [pred_real.detach().float().mean(), pred_fake.detach().float().mean()]
        stats["vector"] = torch.stack([v.detach().float() for v in losses] + outputs)
        return stats

    @torch.no_grad()
    def bridge(self, x0: torch.Tensor, i: int, noise: list[torch.Generator], s: torch.Tensor | None) -> torch.Tensor:
        """x_{t_i} from x_0 (K*N images, K groups of the batch's N samples) with the current G:
        steps 0..i-1 of the official sampler, each group's noise (and strength ``s`` (N,)) its sample's."""
        u, n = self.cfg.unsb, len(noise)
        streams, strengths = noise * (x0.shape[0] // n), self._strengths(s, x0.shape[0] // n)
        x_t, times, guess = x0, self.times, x0
        for k in range(i + 1):
            if k > 0:
                delta, denom = times[k] - times[k - 1], times[-1] - times[k - 1]
                s, v = delta / denom, delta * (1 - delta / denom)
                eps = normal(streams, tuple(x0.shape[1:]), self.device, x_t.dtype)
                x_t = (1 - s) * x_t + s * guess + (v * u.tau).sqrt() * eps
            if k == i:
                return x_t
            z = normal(streams, (4 * self.cfg.model.ngf,), self.device, x_t.dtype)
            guess = self.G(x_t, torch.full((x_t.shape[0],), k, dtype=torch.long, device=self.device), z, **strengths)
        return x_t

    def _energies(self, pair: torch.Tensor, other: torch.Tensor, step: torch.Tensor, E) -> tuple[torch.Tensor, torch.Tensor]:
        """E(pair, pair) and E(pair, other) in one batched pass: (N, 1, h, w) each."""
        n = pair.shape[0]
        return E(torch.cat([pair, pair]), step, torch.cat([pair, other])).float().split(n)

    def _sb_loss(self, matched: torch.Tensor, mixed: torch.Tensor, x_t: torch.Tensor, fake: torch.Tensor,
                 i: int) -> torch.Tensor:
        """tau * ||x_t - x_1||^2 - (T - i) / T * tau * (E(matched) - logsumexp E(mixed)), per image, averaged."""
        u = self.cfg.unsb
        entropy = matched.mean() - per_image_logsumexp(mixed).mean()
        transport = (x_t.float() - fake.float()).square().mean()
        return -(u.num_timesteps - i) / u.num_timesteps * u.tau * entropy + u.tau * transport

    def _nce(self, src: torch.Tensor, tgt: torch.Tensor, noise: list[torch.Generator], s: torch.Tensor | None,
             weight: float | torch.Tensor) -> torch.Tensor:
        """PatchNCE between the features of ``src`` (keys) and ``tgt`` (queries, with gradients) at
        step 0 with one noise z (and strength, ``s`` (N,)) per sample, averaged over the layers, times
        ``weight`` (lambda_NCE; or per sample, (N,))."""
        u, n = self.cfg.unsb, src.shape[0]
        z = normal(noise, (4 * self.cfg.model.ngf,), self.device, src.dtype)
        step0 = torch.zeros(1, dtype=torch.long, device=self.device)
        queries = self.G(tgt, step0, z, self.nce_layers, encode_only=True, **self._strengths(s))
        with torch.no_grad():  # keys carry no gradient in the loss: skip their graph
            keys = self.G(src, step0, z, self.nce_layers, encode_only=True, **self._strengths(s))
        ids = self.F.sample_ids(keys, u.num_patches, self.patch_rng)  # the same locations for q and k
        with torch.no_grad():
            k = self.run["F"](keys, ids)
        return layered_patch_nce(self.run["F"](queries, ids), k, n, u.nce_T, weight)

    def _weights(self, seeds: torch.Tensor) -> tuple[float | torch.Tensor, torch.Tensor | None]:
        """(lambda_NCE, strengths): the config's weight and None at a fixed weight; with
        train.strength_range each sample's weight and strength, (N,) each."""
        if self.span is None:
            return self.cfg.unsb.lambda_NCE, None
        s = sampled_strengths(seeds, self.span).to(self.device)
        return weight_at(s, self.cfg.unsb.lambda_NCE), s

    def _strengths(self, s: torch.Tensor | None, groups: int = 1) -> dict[str, torch.Tensor]:
        """G's strength input for ``groups`` stacked copies of the batch: {} for a fixed-weight G."""
        return {} if s is None else {"strength": s.repeat(groups)}

    def _middle(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's strength input for the images x (N, ...): the middle of the range ({} at a fixed weight)."""
        return {} if self.span is None else {"strength": torch.full((len(x),), sum(self.span) / 2, device=x.device)}

    @property
    def trained_at(self) -> str | None:
        u = self.cfg.unsb
        return None if self.span is not None else f"unsb.lambda_NCE={u.lambda_NCE}, unsb.lambda_SB={u.lambda_SB}"

    def _update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, name: str, measure_grads: bool,
                stats: dict) -> None:
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if measure_grads:
            stats[f"grad_norm/{name}"] = grad_norm(opt, self.scaler)
        self.scaler.step(opt)

    # ---- panels and state

    @torch.no_grad()
    def sample_panels(self, fixed: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Panels for fixed inputs {"A", "B"}: real X | x_1 after each of the T steps, and real Y | G(Y)."""
        x, y = (fixed["A"], fixed["B"]) if self.source == "A" else (fixed["B"], fixed["A"])
        kind, arch, steps = kind_of(self.G), self.G_arch(), self.cfg.unsb.num_timesteps
        guesses: list[torch.Tensor] = []

        def record(xi: torch.Tensor, cond: dict) -> torch.Tensor:
            guesses.append(self.G(xi, **cond, **self._middle(xi)).float().cpu())
            return guesses[-1].to(xi.device)

        def identity(yi: torch.Tensor, cond: dict) -> torch.Tensor:
            return self.G(yi, **cond, **self._middle(yi))

        with self.autocast():
            kind.translate(record, x.to(self.device), arch, steps, 0)
            idt = kind.translate(identity, y.to(self.device), arch, steps, 0).float().cpu()
        return {"X": torch.stack([x, *guesses], dim=1), "Y": torch.stack([y, idt], dim=1)}

    def G_arch(self) -> dict:
        u = self.cfg.unsb
        return {"ngf": self.cfg.model.ngf, "num_timesteps": u.num_timesteps, "tau": u.tau}

    def extra_state(self) -> dict:
        return {"method_rng": {"patches": self.patch_rng.get_state(), "time": self.time_rng.get_state()}}

    def load_extra_state(self, state: dict) -> None:
        self.patch_rng.set_state(state["method_rng"]["patches"])
        self.time_rng.set_state(state["method_rng"]["time"])


def trainable(net: nn.Module) -> list[nn.Parameter]:
    """The generator's parameters that can change its output: the official blocks leave some unused,
    and UNSBGenerator marks those requires_grad=False (so DDP needs no find_unused_parameters)."""
    return [p for p in net.parameters() if p.requires_grad]


def per_image_logsumexp(energy: torch.Tensor) -> torch.Tensor:
    """log-sum-exp over each image's energy map (N, 1, h, w) -> (N,)."""
    return torch.logsumexp(energy.flatten(1), dim=1)


def energy_loss(matched: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """E's loss: -E(matched) + lse + lse^2 with lse the per-image log-sum-exp of E(mixed), averaged
    (the official -mean E + temp + temp^2, whose square keeps the log-partition near 0)."""
    lse = per_image_logsumexp(mixed)
    return -matched.mean() + (lse + lse.square()).mean()
