"""The CycleGAN training state and one optimisation step.

``CycleGAN`` holds everything a checkpoint must restore to continue exactly: the four
networks, both optimizers, both LR schedulers, the GradScaler and both image pools (the
training loop adds epoch, step, RNG states and config). Names follow the reference and map to
the paper: G_A = G (A->B), G_B = F (B->A), D_A = D_Y (real B vs G_A(A)), D_B = D_X.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, Mapping, Optional

import torch
from pydantic import Field, model_validator
from torch import nn

from ..config import Config, FinetuneConfig, TrainConfig
from ..io.tensors import as_display
from ..nets import AnchoredGenerator, PatchDiscriminator, init_weights, resnet_generator
from .base import Precision, MethodState, TrainingData, adam, adversarial_weights, grad_norm, lr_factor, parameters
from .base import sampled_strengths, scaled_lr, set_requires_grad, unpaired_data, weight_at, weighted_l1, wrap
from .anchor import matched, matching_tables
from .diffaugment import DiffAugment
from .losses import gan_loss
from .pool import ImagePool

logger = logging.getLogger(__name__)

__all__ = ["CycleGAN", "CycleGANConfig", "STAT_NAMES", "lr_factor", "set_requires_grad"]


class CycleGANTrain(TrainConfig):
    lambda_A: float = Field(10.0, ge=0)
    """Weight of the cycle loss A -> B -> A."""
    lambda_B: float = Field(10.0, ge=0)
    """Weight of the cycle loss B -> A -> B."""
    lambda_identity: float = Field(0.5, ge=0)
    """Identity loss weight, relative to lambda_A/B (0 = off)."""
    pool_size: int = Field(50, ge=0)
    """Image history pool per discriminator (0 = off)."""
    histogram_prior: bool = False
    """Anchored generators: G_A(x) = histogram matching of x onto B's training data + a learned residual
    (G_B likewise onto A's), starting at the matching: they see absolute intensities, which a ResNet's
    instance norms hide (the science configs turn it on: docs/science.md)."""
    lambda_histogram: float = Field(0.0, ge=0)
    """Weight of the histogram anchor: an L1 pull of G_A(A) towards histogram matching of A onto B's
    training data, and of G_B(B) onto A's (0 = off). Measured worse than train.histogram_prior on every
    known-answer task (docs/science.md, "Learning that holds")."""


class CycleGANFinetune(FinetuneConfig):
    G_A: Optional[str] = None
    """Weights for G_A (A -> B): a checkpoint, export, reference .pth or official:NAME (e.g. official:monet2photo)."""
    G_B: Optional[str] = None
    """Weights for G_B (B -> A), e.g. official:style_monet (photo -> Monet)."""


class CycleGANConfig(Config):
    """CycleGAN (Zhu et al., ICCV 2017): the shared keys, the cycle and identity weights and the
    image pool in ``train``, and its two generators in ``finetune``."""

    method_defaults: ClassVar[dict[str, Any]] = {"model.init_type": "normal", "model.antialias": False}
    method: Literal["cyclegan"] = "cyclegan"
    """cyclegan: two generators, cycle loss; see docs/methods.md."""
    train: CycleGANTrain = CycleGANTrain()
    finetune: CycleGANFinetune = CycleGANFinetune()

    @model_validator(mode="after")
    def _check_identity(self) -> "CycleGANConfig":
        m = self.model
        t = self.train
        for key, on in (("histogram_prior", t.histogram_prior), ("lambda_histogram", t.lambda_histogram > 0)):
            if on and m.input_nc != m.output_nc:
                raise ValueError(f"train.{key}={getattr(t, key)} matches histograms channel by channel and needs "
                                 f"model.input_nc == output_nc (here {m.input_nc} and {m.output_nc}): turn it off")
        if t.histogram_prior and t.strength_range is not None:
            raise ValueError("train.histogram_prior=true does not combine with train.strength_range: "
                             "set train.strength_range=null or train.histogram_prior=false")
        if self.train.lambda_identity > 0 and m.input_nc != m.output_nc:
            raise ValueError(f"train.lambda_identity={self.train.lambda_identity} needs model.input_nc == output_nc "
                             f"(G_A(B) must take B's images; here {m.input_nc} and {m.output_nc}): "
                             "set train.lambda_identity=0")
        return self

# Order of the per-step statistics vector returned by `CycleGAN.step` (logged as loss/<name>, D/<name>).
LOSS_NAMES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "hist_A", "hist_B", "D_A", "D_B")
D_OUTPUT_NAMES = ("A_real", "A_fake", "B_real", "B_fake")
STAT_NAMES = tuple(f"loss/{n}" for n in LOSS_NAMES) + tuple(f"D/{n}" for n in D_OUTPUT_NAMES)


class CycleGAN(MethodState):
    config_type = CycleGANConfig
    make_data = staticmethod(unpaired_data)
    generator_map = {"AtoB": "G_A", "BtoA": "G_B"}
    stat_names = STAT_NAMES
    progress_keys = ("loss/G_A", "loss/G_B", "loss/cycle_A", "loss/D_A", "loss/D_B")
    panel_columns = {
        "A": "real A | G_A(A): A as B | G_B(G_A(A)): reconstructed A",
        "B": "real B | G_B(B): B as A | G_A(G_B(B)): reconstructed B",
    }

    def __init__(self, cfg: CycleGANConfig, device: torch.device, precision: str, world_size: int = 1, rank: int = 0):
        m, t = cfg.model, cfg.train
        self.cfg, self.device, self.precision = cfg, device, precision
        self.rank = rank
        # ---- networks (plain modules; these are what checkpoints store) ----
        torch.manual_seed(t.seed)  # same initial weights on every rank
        arch = dict(ngf=m.ngf, n_blocks=m.n_blocks, antialias=m.antialias, antialias_up=m.antialias_up)
        init = dict(gain=m.init_gain, init_type=m.init_type)
        # input_nc: A's channels, output_nc: B's (1 for CT or MR, 3 for RGB ...).
        self.span = t.strength_range  # loss-conditional training: both generators take each sample's strength
        self.G_A = init_weights(self._generator(m.input_nc, m.output_nc, arch), **init)
        self.G_B = init_weights(self._generator(m.output_nc, m.input_nc, arch), **init)
        if t.histogram_prior:
            for net in (self.G_A, self.G_B):
                net.start_at_prior()  # the identity map until fit_data sets the matching
        self.D_A = init_weights(PatchDiscriminator(m.output_nc, m.ndf, m.n_layers_D, m.antialias), **init)  # judges B
        self.D_B = init_weights(PatchDiscriminator(m.input_nc, m.ndf, m.n_layers_D, m.antialias), **init)  # judges A
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        for net in self.nets.values():
            net.to(device=device, memory_format=self.memory_format)
        # ---- the modules the step calls: DDP-wrapped and/or compiled views of the same parameters ----
        self.run = {name: wrap(net, world_size, device, t.compile) for name, net in self.nets.items()}
        # In the generator pass the discriminators only judge (no gradients for them): no DDP needed.
        self.judge = {name: torch.compile(net, dynamic=False) if t.compile else net
                      for name, net in (("D_A", self.D_A), ("D_B", self.D_B))}
        # ---- optimisation ----
        lr = scaled_lr(cfg, world_size)
        self.opt_G = adam(parameters(self.G_A, self.G_B), cfg, lr, device)
        self.opt_D = adam(parameters(self.D_A, self.D_B), cfg, lr, device)
        self.set_optimizers(G=self.opt_G, D=self.opt_D)
        amp = Precision(device, precision)
        self.autocast, self.scaler = amp.autocast, amp.scaler
        # Each rank keeps its own pool (seeded per rank): fakes never cross processes.
        self.pool_A = ImagePool(t.pool_size, seed=t.seed * world_size + rank)  # fake B images, for D_A
        self.pool_B = ImagePool(t.pool_size, seed=t.seed * world_size + rank + 7919)  # fake A images, for D_B
        # DiffAugment (off by default): what D sees, in both passes; its own per-rank random stream.
        self.augment = DiffAugment(t.diffaugment, t.seed * world_size + rank + 104729, device)
        self.anchors: dict[str, torch.Tensor] = {}  # train.lambda_histogram: domain -> its matching table

    def _generator(self, in_channels: int, out_channels: int, arch: dict) -> nn.Module:
        if self.cfg.train.histogram_prior:
            return AnchoredGenerator(in_channels, out_channels, **arch)
        return resnet_generator(in_channels, out_channels, **arch, strength_range=self.span)

    def fit_data(self, data: TrainingData) -> None:
        """The histogram-matching maps of the training data, both ways: the anchored generators' priors
        (train.histogram_prior) and the anchor loss's targets (train.lambda_histogram)."""
        t = self.cfg.train
        if not (t.histogram_prior or t.lambda_histogram > 0):
            return
        tables = {d: table.to(self.device) for d, table in matching_tables(data.dataset).items()}
        if t.histogram_prior:
            self.G_A.prior.table.copy_(tables["A"])
            self.G_B.prior.table.copy_(tables["B"])
            logger.info("anchored generators: each starts at histogram matching onto the other domain's training data")
        if t.lambda_histogram > 0:
            self.anchors = tables

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}

    def step(self, batch: Mapping[str, torch.Tensor], measure_grads: bool = False) -> dict[str, torch.Tensor]:
        """One iteration on a batch {"A": (N, 3, H, W), "B": (N, 3, H, W)}. Returns detached statistics
        (a vector in STAT_NAMES order, plus grad norms if asked) without any host sync."""
        t = self.cfg.train
        real_A, real_B = batch["A"], batch["B"]
        G_A, G_B, D_A, D_B = (self.run[n] for n in ("G_A", "G_B", "D_A", "D_B"))
        real_A = real_A.to(self.device, non_blocking=True, memory_format=self.memory_format)
        real_B = real_B.to(self.device, non_blocking=True, memory_format=self.memory_format)
        stats: dict[str, torch.Tensor] = {}
        # Loss-conditional training: sample i's strength s_i picks its cycle weights (and the identity
        # weights tied to them); both generators are told s_i. Fixed weights: the config's, no input.
        lambda_A, lambda_B, c = self._weights(batch)
        c2 = tuple(torch.cat([s, s]) for s in c)  # for the batches of 2N below

        # ---- generators: G_A and G_B, discriminators frozen ----
        set_requires_grad([self.D_A, self.D_B], False)
        n = real_A.shape[0]
        with self.autocast():
            # Independent passes through the same network run as one batch of 2N images: fewer,
            # larger kernels (measured in docs/benchmarks.md). InstanceNorm and the PatchGAN work
            # per image, so this equals separate passes up to float rounding.
            if t.lambda_identity > 0:  # G_A should be the identity on B, G_B on A
                fake_B, idt_A = G_A(torch.cat([real_A, real_B]), *c2).split(n)  # G(A), G(B): (N, 3, H, W) each
                fake_A, idt_B = G_B(torch.cat([real_B, real_A]), *c2).split(n)  # F(B), F(A)
                loss_idt_A = weighted_l1(idt_A, real_B, lambda_B * t.lambda_identity)
                loss_idt_B = weighted_l1(idt_B, real_A, lambda_A * t.lambda_identity)
            else:
                fake_B, fake_A = G_A(real_A, *c), G_B(real_B, *c)
                loss_idt_A = loss_idt_B = torch.zeros((), device=self.device)
            rec_A = G_B(fake_B, *c)  # F(G(A)) ~ A
            rec_B = G_A(fake_A, *c)  # G(F(B)) ~ B
            loss_G_A = gan_loss(self.judge["D_A"](self.augment(fake_B)), True, t.gan_mode)
            loss_G_B = gan_loss(self.judge["D_B"](self.augment(fake_A)), True, t.gan_mode)
            loss_cycle_A = weighted_l1(rec_A, real_A, lambda_A)
            loss_cycle_B = weighted_l1(rec_B, real_B, lambda_B)
            loss_hist_A, loss_hist_B = self._anchored(real_A, fake_B, real_B, fake_A)
            content = loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B + loss_hist_A + loss_hist_B
            adv = adversarial_weights(self.cfg, content, {"G_A": loss_G_A, "G_B": loss_G_B},
                                      {"G_A": self.G_A, "G_B": self.G_B}, self.scaler, stats)
            loss_G = adv["G_A"] * loss_G_A + adv["G_B"] * loss_G_B + content
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_G).backward()
        if measure_grads:
            stats["grad_norm/G"] = grad_norm(self.opt_G, self.scaler)
        self.scaler.step(self.opt_G)

        # ---- discriminators: D_A on real B vs pooled G_A(A), D_B on real A vs pooled G_B(B) ----
        set_requires_grad([self.D_A, self.D_B], True)
        # The pool returns NCHW tensors: back to the networks' memory format before joining real images.
        fake_B_pool = self.pool_A.query(fake_B.detach()).contiguous(memory_format=self.memory_format)
        fake_A_pool = self.pool_B.query(fake_A.detach()).contiguous(memory_format=self.memory_format)
        with self.autocast():
            pred_A_real, pred_A_fake = D_A(self.augment(torch.cat([real_B, fake_B_pool]))).split(n)  # (N, 1, h, w) each
            pred_B_real, pred_B_fake = D_B(self.augment(torch.cat([real_A, fake_A_pool]))).split(n)
            loss_D_A = 0.5 * (gan_loss(pred_A_real, True, t.gan_mode) + gan_loss(pred_A_fake, False, t.gan_mode))
            loss_D_B = 0.5 * (gan_loss(pred_B_real, True, t.gan_mode) + gan_loss(pred_B_fake, False, t.gan_mode))
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(loss_D_A + loss_D_B).backward()
        if measure_grads:
            stats["grad_norm/D"] = grad_norm(self.opt_D, self.scaler)
        self.scaler.step(self.opt_D)
        self.scaler.update()

        losses = (loss_G_A, loss_G_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B, loss_hist_A, loss_hist_B,
                  loss_D_A, loss_D_B)
        outputs = (pred_A_real, pred_A_fake, pred_B_real, pred_B_fake)
        stats["vector"] = torch.stack([x.detach().float() for x in losses] + [p.detach().float().mean() for p in outputs])
        return stats

    def _anchored(self, real_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor,
                  fake_A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The histogram anchor's two terms (zeros when train.lambda_histogram is 0): L1 of G_A(A)
        against A matched onto B's histogram, and of G_B(B) against B matched onto A's."""
        w = self.cfg.train.lambda_histogram
        if not self.anchors:
            zero = torch.zeros((), device=self.device)
            return zero, zero
        return (weighted_l1(fake_B, matched(real_A, self.anchors["A"]), w),
                weighted_l1(fake_A, matched(real_B, self.anchors["B"]), w))

    def _weights(self, batch: Mapping[str, torch.Tensor]) -> tuple:
        """(lambda_A, lambda_B, the generators' extra inputs): the config's weights and () at fixed
        weights; with train.strength_range, per-sample weights (N,) and ((N,) strengths,)."""
        t = self.cfg.train
        if self.span is None:
            return t.lambda_A, t.lambda_B, ()
        s = sampled_strengths(batch["seed"], self.span).to(self.device)
        return weight_at(s, t.lambda_A), weight_at(s, t.lambda_B), (s,)

    @property
    def trained_at(self) -> str | None:
        t = self.cfg.train
        return None if self.span is not None else \
            f"train.lambda_A={t.lambda_A}, train.lambda_B={t.lambda_B}, train.lambda_identity={t.lambda_identity}"

    @torch.no_grad()
    def sample_panels(self, fixed: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Panels for fixed inputs {"A", "B"}: (n, 3, H, W) each: rows of real | translated | reconstructed
        (at the middle of train.strength_range when trained on one)."""
        real_A, real_B = fixed["A"], fixed["B"]
        x_A, x_B = real_A.to(self.device), real_B.to(self.device)
        c = () if self.span is None else (torch.full((len(x_A),), sum(self.span) / 2, device=self.device),)
        c_B = () if self.span is None else (torch.full((len(x_B),), sum(self.span) / 2, device=self.device),)
        with self.autocast():
            fake_B, fake_A = self.G_A(x_A, *c), self.G_B(x_B, *c_B)
            rec_A, rec_B = self.G_B(fake_B, *c), self.G_A(fake_A, *c_B)
        cpu = lambda *xs: [as_display(x.float().cpu()) for x in xs]  # noqa: E731 - A and B may differ in channels
        return {"A": torch.stack(cpu(real_A, fake_B, rec_A), dim=1), "B": torch.stack(cpu(real_B, fake_A, rec_B), dim=1)}

    def extra_state(self) -> dict:
        return {"pools": {"A": self.pool_A.state_dict(), "B": self.pool_B.state_dict()},
                "diffaugment": self.augment.state_dict()} | ({"anchors": self.anchors} if self.anchors else {})

    def load_extra_state(self, state: dict) -> None:
        if "diffaugment" in state:  # checkpoints from before DiffAugment existed have none (it was off)
            self.augment.load_state_dict(state["diffaugment"])
        if "anchors" in state:  # the maps the run started with, whatever the data reads now
            self.anchors = {d: table.to(self.device) for d, table in state["anchors"].items()}
        self.pool_A.load_state_dict(state["pools"]["A"], self.device)
        self.pool_B.load_state_dict(state["pools"]["B"], self.device)
        if self.rank:  # checkpoints hold rank 0's pools: the other ranks go on with their own random streams
            for pool in (self.pool_A, self.pool_B):
                pool.generator.manual_seed(int(torch.randint(2**62, (1,), generator=pool.generator)) + self.rank)
