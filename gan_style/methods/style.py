"""A feed-forward style network (Johnson, Alahi, Fei-Fei, ECCV 2016, "Perceptual Losses for
Real-Time Style Transfer", with instance normalisation as Ulyanov et al. 2016): one generator G,
trained on a folder of photos against one painting (or a blend of a few), with the normalised
content + strength x style + TV objective of gan_style/nets/perceptual.py through a frozen
feature network. Once trained, G stylises a photo in one pass: it is an ordinary gan_style
ResNet generator, so translate (exact tiling), export, video and the web app use it as it is.

Optionally (``style.lambda_GAN`` > 0), a PatchGAN D judges patches of G(photo) against random
crops of the painting(s), as in Li & Wand 2016 (MGAN): a generator and a discriminator trained
with content + strength x style, the framing of the document this project comes from.

Data: one folder of photos (``data.root``/``style.photos``); the painting(s) from
``style.paintings``. Direction AtoB: photo -> the painting's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Optional

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ..config import Config, FinetuneConfig, Section, check_strength_range
from ..data.dataset import PhotoDataset, UnpairedSampler, build_transform, load_fixed_images
from ..io.images import ImageReadError, list_images, read_rgb, write_image
from ..io.tensors import float_to_image, image_to_float
from ..nets import PatchDiscriminator, init_weights, resnet_generator
from ..nets.perceptual import DEFAULT_LAYERS, StyleObjective, fit_painting, load_features, style_grams
from .base import MethodState, Precision, TrainingData, adam, grad_norm, sampled_strengths, scaled_lr, set_requires_grad
from .base import wrap
from .losses import gan_loss


class StyleOptions(Section):
    """The painting(s) and the objective of ``method: style``."""

    paintings: list[str] = []
    """Painting files (or folders: their first image), absolute or relative to data.root; `make train STYLE=...` sets it."""
    painting_weights: list[float] = []
    """Blend weights of the paintings (default: equal)."""
    photos: str = "trainB"
    """The folder of training photos, relative to data.root (trainB: the photos of a *2photo dataset)."""
    strength: float = Field(0.5, ge=0, le=1)
    """Share of the normalised objective given to the painting's style (0 = the photo, 1 = style only)."""
    features: Literal["inception", "vgg19", "vgg16"] = "inception"
    """Feature network: inception (offline, the metrics extra's), vgg19 or vgg16 (torchvision's weights, downloaded once)."""
    content_layers: list[str] = []
    """Content layers of the feature network (empty = its defaults, docs/style.md)."""
    style_layers: list[str] = []
    """Style layers of the feature network (empty = its defaults)."""
    tv: float = Field(1e-3, ge=0)
    """Total-variation weight."""
    painting_size: int = Field(0, ge=0)
    """Long side, in px, at which the painting's style is measured (0 = data.load_size)."""
    lambda_GAN: float = Field(0.0, ge=0)
    """Weight of a PatchGAN judging G's patches against crops of the painting (MGAN); 0 = no discriminator."""
    strength_range: Optional[list[float]] = None
    """[lo, hi]: train one network for every strength in it (each sample's drawn from it, fed to G by FiLM; style.strength then unused), chosen at translate time with --strength (docs/strength.md); null = style.strength only."""

    @field_validator("strength_range")
    @classmethod
    def _strength_range(cls, span: list[float] | None) -> list[float] | None:
        return check_strength_range(span)

    @model_validator(mode="after")
    def _check(self) -> "StyleOptions":
        if self.painting_weights and len(self.painting_weights) != len(self.paintings):
            raise ValueError(f"style.painting_weights has {len(self.painting_weights)} values for "
                             f"{len(self.paintings)} paintings: give one per painting, or none")
        return self


class StyleFinetune(FinetuneConfig):
    G: Optional[str] = None
    """Weights for G (photo -> painting): a checkpoint, export or reference .pth of the same architecture."""


class StyleConfig(Config):
    """``method: style``: the shared keys and the ``style:`` section."""

    method_defaults: ClassVar[dict[str, Any]] = {"model.init_type": "normal", "model.antialias": False}
    method: Literal["style"] = "style"
    """style: a feed-forward network trained against one painting (content + strength x style); see docs/style.md."""
    style: StyleOptions = StyleOptions()
    finetune: StyleFinetune = StyleFinetune()

    @model_validator(mode="after")
    def _check_style(self) -> "StyleConfig":
        if not self.style.paintings:
            raise ValueError("style.paintings is empty: give a painting, e.g. `make train DOMAIN=style_monet "
                             "STYLE=painting.jpg` or style.paintings=[painting.jpg]")
        if self.train.strength_range is not None:
            raise ValueError("train.strength_range is the GAN methods' key: method=style takes style.strength_range")
        if self.train.auto_weights:
            raise ValueError("train.auto_weights balances a GAN term: method=style has none (its weight is style.strength)")
        if (self.model.input_nc, self.model.output_nc) != (3, 3):
            raise ValueError("method=style translates RGB photos: model.input_nc and output_nc must be 3")
        if self.eval.fid or (self.eval.best and self.eval.best not in ("style", "content")):
            raise ValueError("method=style evaluates its own metrics (eval/style, eval/content on the panel photos): "
                             "set eval.fid=false and eval.best to style, content or null")
        return self


def painting_path(spec: str, root: Path) -> Path:
    """A painting file from ``spec``: as given, else relative to ``root``; a folder means its first image."""
    path = Path(spec).expanduser()
    path = path if path.exists() or path.is_absolute() else root / path
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise ImageReadError(f"style.paintings: {path} holds no images")
        return images[0]
    return path


def read_paintings(paths: list[Path]) -> list[torch.Tensor]:
    """The painting(s) as (1, 3, H, W) in [-1, 1] (grayscale, RGBA, 16-bit converted)."""
    return [image_to_float(read_rgb(path))[None] for path in paths]


class StyleTransfer(MethodState):
    config_type = StyleConfig
    batch_keys = ("photo",)
    domain_evaluation = False  # no target domain of photos: eval.every measures the objective's terms instead
    strength_key = "style.strength_range"
    generator_map = {"AtoB": "G"}
    panel_columns = {"photo": "photo | G(photo): stylised (with a strength range: at its low end, middle, high end)"}

    def __init__(self, cfg: StyleConfig, device: torch.device, precision: str, world_size: int = 1, rank: int = 0):
        m, t, st = cfg.model, cfg.train, cfg.style
        self.cfg, self.device, self.precision, self.rank = cfg, device, precision, rank
        # ---- the frozen feature network and the painting's target Gram matrices ----
        self.features = load_features(st.features).to(device)
        self.content_layers = tuple(st.content_layers or DEFAULT_LAYERS[st.features][0])
        self.style_layers = tuple(st.style_layers or DEFAULT_LAYERS[st.features][1])
        self.features.check([*self.content_layers, *self.style_layers])
        paths = [painting_path(spec, Path(cfg.data.root)) for spec in st.paintings]
        self._domains = ("photo", "+".join(path.stem for path in paths))  # the checkpoint's labels: photo -> painting
        paintings = read_paintings(paths)
        side = st.painting_size or cfg.data.load_size
        fitted = [fit_painting(p, side).to(device) for p in paintings]
        self.grams = style_grams(self.features, fitted, st.painting_weights or [1.0] * len(fitted), self.style_layers)
        # ---- networks (plain modules; what checkpoints store) ----
        torch.manual_seed(t.seed)  # same initial weights on every rank
        init = dict(gain=m.init_gain, init_type=m.init_type)
        self.span = st.strength_range  # loss-conditional training: G takes each sample's strength
        self.G = init_weights(resnet_generator(3, 3, m.ngf, m.n_blocks, m.antialias, m.antialias_up, self.span), **init)
        self.D = init_weights(PatchDiscriminator(3, m.ndf, m.n_layers_D, m.antialias), **init) if st.lambda_GAN else None
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        for net in self.nets.values():
            net.to(device=device, memory_format=self.memory_format)
        self.run = {name: wrap(net, world_size, device, t.compile) for name, net in self.nets.items()}
        # ---- optimisation ----
        lr = scaled_lr(cfg, world_size)
        self.opt_G = adam(self.G.parameters(), cfg, lr, device)
        self.opt_D = adam(self.D.parameters(), cfg, lr, device) if self.D is not None else None
        self.set_optimizers(G=self.opt_G, **({"D": self.opt_D} if self.opt_D is not None else {}))
        if self.D is not None:
            self.paintings = fitted  # the real patches D sees: random crops of these
            self.crop_rng = torch.Generator().manual_seed(t.seed + 3)  # the same on every rank, on the CPU
        amp = Precision(device, precision)
        self.autocast, self.scaler = amp.autocast, amp.scaler
        losses = ("total", "content", "style", "tv") + (("G_GAN", "D_real", "D_fake") if self.D is not None else ())
        self.stat_names = tuple(f"loss/{n}" for n in losses)
        self.progress_keys = ("loss/total", "loss/content", "loss/style")

    @staticmethod
    def make_data(cfg: StyleConfig, rank: int, world_size: int) -> TrainingData:
        """The photos of data.root/style.photos; the panels show the first ``logging.n_samples`` of them."""
        folder = Path(cfg.data.root) / cfg.style.photos
        transform = build_transform(cfg.data.preprocess, cfg.data.load_size, cfg.data.crop_size, cfg.data.flip)
        dataset = PhotoDataset(folder, transform, cfg.data.max_dataset_size)
        sampler = UnpairedSampler(len(dataset.paths["photo"]), 1, cfg.train.seed, rank, world_size)
        fixed = {"photo": load_fixed_images(folder, cfg.logging.n_samples, cfg.data.crop_size)}
        return TrainingData(dataset, sampler, fixed)

    @staticmethod
    def synthetic_overrides(folder: Path) -> dict[str, object]:
        """A generated painting (smooth colour fields and stripes, 96 px) in ``folder``."""
        g = torch.Generator().manual_seed(0)
        low = torch.rand(1, 3, 6, 6, generator=g) * 2 - 1
        painting = torch.nn.functional.interpolate(low, size=(96, 96), mode="bicubic", align_corners=False)
        painting = (painting + 0.3 * torch.sin(torch.arange(96.0) / 2)).clamp(-1, 1)
        path = write_image(folder / "synthetic_painting.png", float_to_image(painting[0]))
        return {"style.paintings": [str(path)]}

    @property
    def nets(self) -> dict[str, nn.Module]:
        return {"G": self.G} | ({"D": self.D} if self.D is not None else {})

    @property
    def domains(self) -> tuple[str, str]:
        return self._domains

    def step(self, batch: Mapping[str, torch.Tensor], measure_grads: bool = False) -> dict[str, torch.Tensor]:
        """One iteration on photos {"photo": (N, 3, H, W)}: G against the objective (and D, if any)."""
        st, stats = self.cfg.style, {}
        photos = batch["photo"].to(self.device, non_blocking=True, memory_format=self.memory_format)
        strength, conditioning = self._strengths(batch)  # st.strength, or (N,) drawn from the range
        if self.D is not None:
            set_requires_grad([self.D], False)
        with self.autocast():
            out = self.run["G"](photos, *conditioning)  # (N, 3, H, W)
            objective = StyleObjective(self.features, photos, self.grams, self.content_layers, strength, st.tv)
            total, parts = objective(out)
            loss = total.mean()
            extra = []
            if self.D is not None:
                loss_gan = gan_loss(self.D(out), True, self.cfg.train.gan_mode) * st.lambda_GAN
                loss, extra = loss + loss_gan, [loss_gan]
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if measure_grads:
            stats["grad_norm/G"] = grad_norm(self.opt_G, self.scaler)
        self.scaler.step(self.opt_G)
        if self.D is not None:
            extra += self._step_D(out.detach(), measure_grads, stats)
        self.scaler.update()
        values = [total.mean(), parts["content"].mean(), parts["style"].mean(), parts["tv"].mean(), *extra]
        stats["vector"] = torch.stack([v.detach().float() for v in values])
        return stats

    def _strengths(self, batch: Mapping[str, torch.Tensor]) -> tuple[float | torch.Tensor, tuple]:
        """The objective's strength and G's extra inputs: (style.strength, ()) at a fixed weight; with
        style.strength_range each sample's strength (N,), also given to G."""
        if self.span is None:
            return self.cfg.style.strength, ()
        s = sampled_strengths(batch["seed"], self.span).to(self.device)
        return s, (s,)

    def _at(self, photos: torch.Tensor, strength: float) -> torch.Tensor:
        """G on ``photos`` at ``strength`` (a fixed-weight G ignores it)."""
        extra = () if self.span is None else (torch.full((photos.shape[0],), strength, device=photos.device),)
        return self.G(photos, *extra)

    @property
    def trained_at(self) -> str | None:
        return None if self.span is not None else f"style.strength={self.cfg.style.strength}"

    def _step_D(self, fake: torch.Tensor, measure_grads: bool, stats: dict) -> list[torch.Tensor]:
        """D: random crops of the painting(s) (real) against G's outputs (fake), one batched pass."""
        set_requires_grad([self.D], True)
        real = self._painting_crops(fake.shape[0], fake.shape[-2:]).to(memory_format=self.memory_format)
        n = fake.shape[0]
        with self.autocast():
            pred_real, pred_fake = self.run["D"](torch.cat([real, fake])).split(n)  # (N, 1, h, w) each
            loss_real = gan_loss(pred_real, True, self.cfg.train.gan_mode)
            loss_fake = gan_loss(pred_fake, False, self.cfg.train.gan_mode)
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(0.5 * (loss_real + loss_fake)).backward()
        if measure_grads:
            stats["grad_norm/D"] = grad_norm(self.opt_D, self.scaler)
        self.scaler.step(self.opt_D)
        return [loss_real, loss_fake]

    def _painting_crops(self, n: int, size: torch.Size) -> torch.Tensor:
        """n random (3, h, w) crops of the paintings (chosen by weight), (n, 3, h, w) on the device."""
        h, w = size
        weights = torch.tensor(self.cfg.style.painting_weights or [1.0] * len(self.paintings))
        crops = []
        for _ in range(n):
            p = self.paintings[int(torch.multinomial(weights, 1, generator=self.crop_rng))]
            p = p if p.shape[-2] >= h and p.shape[-1] >= w else fit_painting(p, max(h, w) * 2)
            y = int(torch.randint(p.shape[-2] - h + 1, (1,), generator=self.crop_rng))
            x = int(torch.randint(p.shape[-1] - w + 1, (1,), generator=self.crop_rng))
            crops.append(p[0, :, y:y + h, x:x + w])
        return torch.stack(crops)

    @torch.no_grad()
    def evaluate(self, fixed: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """eval.every: the style distance (1 = the photos') and content distance of G on the fixed photos."""
        photos = fixed["photo"].to(self.device)
        if photos.numel() == 0:
            return {}
        with self.autocast():
            out = self._at(photos, self.middle)
            objective = StyleObjective(self.features, photos, self.grams, self.content_layers, 0.5)
            _, parts = objective(out)
        return {"eval/style": float(parts["style"].mean()), "eval/content": float(parts["content"].mean())}

    @torch.no_grad()
    def sample_panels(self, fixed: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fixed photos {"photo": (n, 3, H, W)}: rows of photo | G(photo) (at the range's low end,
        middle and high end when trained on a strength range)."""
        photos = fixed["photo"]
        with self.autocast():
            outs = [self._at(photos.to(self.device), s).float().cpu() for s in self.panel_strengths]
        return {"photo": torch.stack([photos, *outs], dim=1)}

    @property
    def middle(self) -> float:
        return self.cfg.style.strength if self.span is None else (self.span[0] + self.span[1]) / 2

    @property
    def panel_strengths(self) -> list[float]:
        return [self.middle] if self.span is None else [self.span[0], self.middle, self.span[1]]

    def extra_state(self) -> dict:
        return {"crop_rng": self.crop_rng.get_state()} if self.D is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.D is not None:
            self.crop_rng.set_state(state["crop_rng"])
