"""CUT and FastCUT (Park, Efros, Zhang, Zhu, "Contrastive Learning for Unpaired Image-to-Image
Translation", ECCV 2020): one generator G : X -> Y, one PatchGAN D judging Y, and the patch
sampler F. G is trained by the GAN loss plus PatchNCE: each patch of G(x) must be matched to
the patch of x at the same location rather than to the other patches of x.

X and Y are the dataset's A and B for ``data.direction: AtoB``, B and A for BtoA. CUT adds the
identity PatchNCE on G(y) vs y; FastCUT instead weights NCE by 10 and flips half the batches
(flip-equivariance). ``CUT`` holds everything a checkpoint restores for an exact continuation:
the three networks, both optimizers and schedulers, the GradScaler, and its own random streams
(patch locations, flips), identical on every rank so that DDP equals a bigger batch.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping, Optional

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ..config import Config, FinetuneConfig, Section
from ..domains import dataset_name, default_direction
from ..nets import PatchDiscriminator, PatchSampler, WithFeatures, init_weights, nce_channels, resnet_generator
from .base import Precision, MethodState, adam, adversarial_weights, grad_norm, parameters, scaled_lr
from .base import sampled_strengths, set_requires_grad, unpaired_data, weight_at, wrap
from .diffaugment import DiffAugment
from .losses import gan_loss, layered_patch_nce


class CutOptions(Section):
    """CUT / FastCUT (Park et al., ECCV 2020); null values take the method's default."""

    lambda_GAN: float = Field(1.0, ge=0)
    """Weight of the GAN loss of G(X)."""
    lambda_NCE: Optional[float] = Field(None, ge=0)
    """Weight of the PatchNCE loss; null = 1 (cut), 10 (fastcut)."""
    nce_idt: Optional[bool] = None
    """Also the identity PatchNCE loss on G(Y) vs Y (total NCE = mean of both); null = on (cut), off (fastcut)."""
    flip_equivariance: Optional[bool] = None
    """Flip half of the batches before G, flip the query features back; null = off (cut), on (fastcut)."""
    nce_layers: list[int] = [0, 4, 8, 12, 16]
    """Indices of the generator's layers whose features enter PatchNCE (the official choice)."""
    num_patches: int = Field(256, gt=0)
    """Patch locations sampled per NCE layer and image."""
    nce_T: float = Field(0.07, gt=0)
    """Temperature of the PatchNCE softmax."""
    netF_nc: int = Field(256, gt=0)
    """Output width of the patch sampler's MLPs (netF)."""

    @field_validator("nce_layers")
    @classmethod
    def _ascending(cls, layers: list[int]) -> list[int]:
        if not layers or layers != sorted(set(layers)) or layers[0] < 0:
            raise ValueError(f"give distinct layer indices in ascending order, e.g. [0, 4, 8, 12, 16], not {layers}")
        return layers


class CUTFinetune(FinetuneConfig):
    G: Optional[str] = None
    """Weights for G (the data.direction generator), e.g. official:horse2zebra_cut."""


class CUTConfig(Config):
    """CUT: the shared keys, the ``cut:`` section and its one generator in ``finetune``."""

    method_defaults: ClassVar[dict[str, Any]] = {
        "model.init_type": "xavier", "model.antialias": True,
        "cut.lambda_NCE": 1.0, "cut.nce_idt": True, "cut.flip_equivariance": False,
    }
    method: Literal["cut"] = "cut"
    """cut: one generator, PatchNCE + identity PatchNCE; see docs/methods.md."""
    cut: CutOptions = CutOptions()
    finetune: CUTFinetune = CUTFinetune()

    @model_validator(mode="after")
    def _check_channels_equal(self) -> "CUTConfig":
        # PatchNCE feeds G's own output (a target image) back through G's encoder.
        if self.model.input_nc != self.model.output_nc:
            raise ValueError(f"method={self.method} needs model.input_nc == output_nc (PatchNCE encodes both domains "
                             f"with G); got {self.model.input_nc} and {self.model.output_nc}: use method=cyclegan")
        return self


class FastCUTConfig(CUTConfig):
    """FastCUT: CUT's keys, with NCE weighted by 10, no identity NCE, flip-equivariance."""

    method_defaults: ClassVar[dict[str, Any]] = CUTConfig.method_defaults | {
        "cut.lambda_NCE": 10.0, "cut.nce_idt": False, "cut.flip_equivariance": True,
    }
    method: Literal["fastcut"] = "fastcut"  # type: ignore[assignment]
    """fastcut: CUT without the identity pass, 10 x PatchNCE, flip-equivariance; see docs/methods.md."""


def cut_direction(cfg: Config) -> str:
    """AtoB or BtoA: ``data.direction``, else BtoA for *2photo datasets (photo -> painting)."""
    return cfg.data.direction or default_direction(dataset_name(cfg.data.dataset, cfg.data.root))


class CUT(MethodState):
    config_type: ClassVar[type[Config]] = CUTConfig
    make_data = staticmethod(unpaired_data)
    progress_keys = ("loss/G_GAN", "loss/NCE", "loss/D_real", "loss/D_fake")
    panel_columns = {"X": "real X | G(X): translated", "Y": "real Y | G(Y): identity (should stay Y)"}

    def __init__(self, cfg: CUTConfig, device: torch.device, precision: str, world_size: int = 1, rank: int = 0):
        m, t, c = cfg.model, cfg.train, cfg.cut
        self.cfg, self.device, self.precision, self.rank = cfg, device, precision, rank
        self.direction = cut_direction(cfg)
        self.nce_layers = tuple(c.nce_layers)
        losses = ("G_GAN", "NCE") + (("NCE_Y",) if c.nce_idt else ()) + ("D_real", "D_fake")
        self.stat_names = tuple(f"loss/{n}" for n in losses) + ("D/real", "D/fake")
        # ---- networks (plain modules; these are what checkpoints store) ----
        torch.manual_seed(t.seed)  # same initial weights on every rank
        init = dict(gain=m.init_gain, init_type=m.init_type)
        nc = m.input_nc  # == output_nc (CUTConfig checks)
        self.span = t.strength_range  # loss-conditional training: G takes each sample's strength
        self.G = init_weights(resnet_generator(nc, nc, m.ngf, m.n_blocks, m.antialias, m.antialias_up, self.span), **init)
        self.D = init_weights(PatchDiscriminator(nc, m.ndf, m.n_layers_D, m.antialias), **init)
        channels = nce_channels(m.ngf, m.n_blocks, self.nce_layers, m.antialias, m.antialias_up, in_channels=nc)
        self.F = init_weights(PatchSampler(channels, c.netF_nc), **init)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        for net in self.nets.values():
            net.to(device=device, memory_format=self.memory_format)
        # G's pass also returns its NCE-layer features (the keys): wrapped as one module for DDP and compile.
        self.run = {"G": wrap(WithFeatures(self.G, self.nce_layers), world_size, device, t.compile),
                    "D": wrap(self.D, world_size, device, t.compile),
                    "F": wrap(self.F, world_size, device, False)}  # F's shapes vary by layer: left eager
        self.judge = torch.compile(self.D, dynamic=False) if t.compile else self.D  # G pass: D only judges
        # ---- optimisation: F learns with G (one Adam; Adam is per-parameter, so this equals two) ----
        lr = scaled_lr(cfg, world_size)
        self.opt_G = adam(parameters(self.G, self.F), cfg, lr, device)
        self.opt_D = adam(self.D.parameters(), cfg, lr, device)
        self.set_optimizers(G=self.opt_G, D=self.opt_D)
        amp = Precision(device, precision)
        self.autocast, self.scaler = amp.autocast, amp.scaler
        # ---- random streams of the method, the same on every rank ----
        self.patch_rng = torch.Generator(device=device).manual_seed(t.seed + 1)  # patch locations
        self.flip_rng = torch.Generator().manual_seed(t.seed + 2)  # flip-equivariance: on the CPU, no sync
        self.augment = DiffAugment(t.diffaugment, t.seed * world_size + rank + 104729, device)  # off by default

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "F": self.F}

    @property
    def generator_map(self) -> dict[str, str]:
        return {self.direction: "G"}

    def step(self, batch: Mapping[str, torch.Tensor], measure_grads: bool = False) -> dict[str, torch.Tensor]:
        """One iteration on a batch {"A": (N, 3, H, W), "B": (N, 3, H, W)}: D first, then G and F, as the
        official code does. Returns detached statistics (stat_names order) without any host sync."""
        c = self.cfg.cut
        x, y = (batch["A"], batch["B"]) if self.direction == "AtoB" else (batch["B"], batch["A"])  # source X, target Y
        x = x.to(self.device, non_blocking=True, memory_format=self.memory_format)
        y = y.to(self.device, non_blocking=True, memory_format=self.memory_format)
        n, stats = x.shape[0], {}
        flip = bool(c.flip_equivariance and torch.rand((), generator=self.flip_rng) < 0.5)
        # Loss-conditional training: sample i's strength picks its NCE weight; G is told it.
        lambda_NCE, cond = self._weights(batch)
        cond = tuple(torch.cat([s, s]) for s in cond) if c.nce_idt else cond  # for G(x) and G(y)

        # ---- G's forward: G(x) and, for CUT, G(y) in one batch of 2N; keys from the same pass ----
        real = torch.cat([x, y]) if c.nce_idt else x  # (N or 2N, 3, H, W)
        with self.autocast():
            fake, keys = self.run["G"](real.flip(3) if flip else real, *cond)
            if flip:  # the keys must come from the unflipped images: a separate no-grad pass
                with torch.no_grad():
                    keys = self.G.encode(real, self.nce_layers, *cond)
        keys = [k.detach() for k in keys]
        fake_y = fake[:n]  # G(x): (N, 3, H, W)

        # ---- D: real y vs G(x), one batched pass ----
        set_requires_grad([self.D], True)
        with self.autocast():
            pred_real, pred_fake = self.run["D"](self.augment(torch.cat([y, fake_y.detach()]))).split(n)  # (N, 1, h, w)
            loss_D_real = gan_loss(pred_real, True, self.cfg.train.gan_mode)
            loss_D_fake = gan_loss(pred_fake, False, self.cfg.train.gan_mode)
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(0.5 * (loss_D_real + loss_D_fake)).backward()
        if measure_grads:
            stats["grad_norm/D"] = grad_norm(self.opt_D, self.scaler)
        self.scaler.step(self.opt_D)

        # ---- G and F: fool the (updated, frozen) D; PatchNCE between G's inputs and outputs ----
        set_requires_grad([self.D], False)
        with self.autocast():
            loss_G_GAN = gan_loss(self.judge(self.augment(fake_y)), True, self.cfg.train.gan_mode) * c.lambda_GAN
            queries = self.G.encode(fake, self.nce_layers, *cond)  # features of G(x) (and G(y)), with gradients
            if flip:
                queries = [q.flip(3) for q in queries]
            loss_NCE = self._nce([q[:n] for q in queries], [k[:n] for k in keys], n, lambda_NCE)
            losses = [loss_G_GAN, loss_NCE]
            if c.nce_idt:
                loss_NCE_Y = self._nce([q[n:] for q in queries], [k[n:] for k in keys], n, lambda_NCE)
                content = 0.5 * (loss_NCE + loss_NCE_Y)
                losses.append(loss_NCE_Y)
            else:
                content = loss_NCE
            adv = adversarial_weights(self.cfg, content, {"G": loss_G_GAN}, {"G": self.G}, self.scaler, stats)
            loss_G = adv["G"] * loss_G_GAN + content
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_G).backward()
        if measure_grads:
            stats["grad_norm/G"] = grad_norm(self.opt_G, self.scaler)
        self.scaler.step(self.opt_G)
        self.scaler.update()

        losses += [loss_D_real, loss_D_fake]
        outputs = [pred_real.detach().float().mean(), pred_fake.detach().float().mean()]
        stats["vector"] = torch.stack([x.detach().float() for x in losses] + outputs)
        return stats

    def _nce(self, queries: list[torch.Tensor], keys: list[torch.Tensor], n: int,
             weight: float | torch.Tensor) -> torch.Tensor:
        """PatchNCE averaged over the NCE layers, times ``weight`` (lambda_NCE; or per sample, (N,)).
        Features: (N, C_l, H_l, W_l)."""
        c = self.cfg.cut
        ids = self.F.sample_ids(keys, c.num_patches, self.patch_rng)  # the same locations for q and k
        with torch.no_grad():  # keys carry no gradient in the loss: skip their graph
            k = self.run["F"](keys, ids)
        return layered_patch_nce(self.run["F"](queries, ids), k, n, c.nce_T, weight)

    def _weights(self, batch: Mapping[str, torch.Tensor]) -> tuple:
        """(lambda_NCE, G's extra inputs): the config's and () at a fixed weight; with
        train.strength_range the per-sample weights (N,) and ((N,) strengths,)."""
        if self.span is None:
            return self.cfg.cut.lambda_NCE, ()
        s = sampled_strengths(batch["seed"], self.span).to(self.device)
        return weight_at(s, self.cfg.cut.lambda_NCE), (s,)

    @property
    def trained_at(self) -> str | None:
        return None if self.span is not None else f"cut.lambda_NCE={self.cfg.cut.lambda_NCE}"

    @torch.no_grad()
    def sample_panels(self, fixed: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Panels for fixed inputs {"A", "B"}: (n, 3, H, W) each: real X | G(X), and real Y | G(Y)."""
        x, y = (fixed["A"], fixed["B"]) if self.direction == "AtoB" else (fixed["B"], fixed["A"])
        middle = () if self.span is None else (sum(self.span) / 2,)  # the middle of the strength range
        cx, cy = ([torch.full((len(v),), s, device=self.device) for s in middle] for v in (x, y))
        with self.autocast():
            fake_y, idt_y = self.G(x.to(self.device), *cx).float().cpu(), self.G(y.to(self.device), *cy).float().cpu()
        return {"X": torch.stack([x, fake_y], dim=1), "Y": torch.stack([y, idt_y], dim=1)}

    def extra_state(self) -> dict:
        return {"method_rng": {"patches": self.patch_rng.get_state(), "flip": self.flip_rng.get_state()},
                "diffaugment": self.augment.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.patch_rng.set_state(state["method_rng"]["patches"])
        self.flip_rng.set_state(state["method_rng"]["flip"])
        self.augment.load_state_dict(state["diffaugment"])


class FastCUT(CUT):
    """FastCUT (the same paper): CUT's networks and step with FastCUT's defaults (FastCUTConfig)."""

    config_type = FastCUTConfig
