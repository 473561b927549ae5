"""What every training method shares: the interface the one training loop calls (``Method``), the
base class of their training state (``MethodState``) and the helpers methods build on.

A method is one file in this folder plus its line in ``METHODS`` (methods/__init__.py). It owns
everything specific to it: its config class (``config_type``: the shared ``Config`` plus its own
keys, e.g. ``cut:``), the data it trains on (``make_data``), its networks and which of them are
generators (``generator_map``: direction -> network name, which checkpoints record), its sample
panels and their captions, and its checkpoint state. The loop, the config loader, inference,
the monitor, the bench, the app and the CLI never name a method.

``step`` never syncs with the host: statistics stay on the device until the loop logs them.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Mapping, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Dataset, Sampler

from ..config import Config
from ..domains import dataset_name, domain_names
from ..data.dataset import UnpairedDataset, UnpairedSampler, build_transform, load_fixed_images
from ..data.scans import Reading, ScanDataset, domain_planes, drop_empty, load_fixed_planes
from ..data.scans import resolve_intensity
from ..data.splits import panel_split
from ..io.intensity import Intensity


@dataclass
class TrainingData:
    """What a method trains on: a dataset of dict samples, the sampler that shards it over ranks
    (``set_epoch(epoch, start)``, ``len(shard)``), and fixed images for the sample panels."""

    dataset: Dataset
    sampler: Sampler
    fixed: dict[str, torch.Tensor]  # panel input name -> (n, C, H, W) in [-1, 1]
    intensity: dict[str, Intensity | None] = field(default_factory=dict)  # domain -> its units' mapping
    # (scientific data, data/scans.py); None or absent: 8-bit RGB


class Method(Protocol):
    """The interface the training loop (training/loop.py) calls; nothing else of a method is used."""

    config_type: ClassVar[type[Config]]  # this method's config class (``method: <name>`` selects it)
    batch_keys: ClassVar[tuple[str, ...]]  # the images of a batch (make_data's samples), e.g. ("A", "B")
    stat_names: tuple[str, ...]  # names of the entries of step()["vector"], logged as loss/..., D/...
    progress_keys: tuple[str, ...]  # the few stat names shown on the progress bar
    panel_columns: dict[str, str]  # sample panel name -> what its columns show
    scaler: torch.amp.GradScaler  # enabled for fp16 only

    def __init__(self, cfg: Config, device: torch.device, precision: str, world_size: int = 1,
                 rank: int = 0) -> None: ...

    @staticmethod
    def make_data(cfg: Config, rank: int, world_size: int) -> TrainingData: ...

    @staticmethod
    def synthetic_overrides(folder: Path) -> dict[str, object]:
        """Dotted config keys (and files written in ``folder``) that let the method run on
        synthetic batches (the bench, tests): e.g. a generated painting. Usually {}."""

    @property
    def nets(self) -> dict[str, nn.Module]: ...  # name -> plain module: what checkpoints store

    @property
    def generator_map(self) -> dict[str, str]: ...  # direction (AtoB/BtoA) -> name in ``nets``

    @property
    def domains(self) -> tuple[str, str]: ...  # the names of A and B, e.g. ("monet", "photo")

    def fit_data(self, data: TrainingData) -> None: ...  # read from the training data before training

    def step(self, batch: Mapping[str, torch.Tensor], measure_grads: bool = False) -> dict[str, torch.Tensor]:
        """One iteration; returns {"vector": (len(stat_names),) tensor, "grad_norm/...": ...}, detached."""

    strength_key: ClassVar[str | None]  # the config key of its loss-conditional strength range, or None
    domain_evaluation: ClassVar[bool]  # eval.every translates each direction's source domain and compares
    # it with the target domain (training/evaluation.py); False for methods without a target domain

    def evaluate(self, fixed: dict[str, torch.Tensor]) -> dict[str, float]:
        """The method's own eval.every metrics ("eval/<name>": value) on the fixed panel images; usually {}."""

    def end_epoch(self) -> None: ...  # one step of every LR scheduler
    def learning_rates(self) -> dict[str, float]: ...  # {"lr/G": ..., ...} for the logs
    def sample_panels(self, fixed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...  # name -> (n, k, 3, H, W)
    def autocast(self) -> torch.autocast: ...  # the one precision context
    def state_dict(self) -> dict: ...  # plain tensors and numbers only (weights_only loads it)
    def load_state_dict(self, state: dict) -> None: ...


def generators(method: Method) -> dict[str, nn.Module]:
    """Direction -> generator network, for evaluation, EMA and exports."""
    return {direction: method.nets[name] for direction, name in method.generator_map.items()}


def unpaired_data(cfg: Config, rank: int, world_size: int) -> TrainingData:
    """Two unpaired domains, trainA/ and trainB/ (CycleGAN, CUT): batches {"A": ..., "B": ...};
    the panels show fixed test images of both (train images when there is no test split).
    Scientific data (data.intensity set for a domain) is read exactly: ``scan_data``."""
    if cfg.data.intensity.A.mode or cfg.data.intensity.B.mode:
        return scan_data(cfg, rank, world_size)
    transform = build_transform(cfg.data.preprocess, cfg.data.load_size, cfg.data.crop_size, cfg.data.flip)
    dataset = UnpairedDataset(cfg.data.root, transform, cfg.data.max_dataset_size)
    sampler = UnpairedSampler(len(dataset.paths["A"]), len(dataset.paths["B"]), cfg.train.seed, rank, world_size)
    root = Path(cfg.data.root)
    split = panel_split(root)
    fixed = {d: load_fixed_images(root / f"{split}{d}", cfg.logging.n_samples, cfg.data.crop_size) for d in "AB"}
    return TrainingData(dataset, sampler, fixed)


def scan_data(cfg: Config, rank: int, world_size: int) -> TrainingData:
    """``unpaired_data`` for scientific images: planes in data units, each domain normalised by its
    resolved ``Intensity`` (recorded in ``TrainingData.intensity``), augmented in float32."""
    d, root = cfg.data, Path(cfg.data.root)
    reading = Reading(d.axis, d.volume)
    channels = {"A": cfg.model.input_nc, "B": cfg.model.output_nc}
    split = panel_split(root)
    planes, fixed, intensity = {}, {}, {}
    for domain in "AB":
        spec = getattr(d.intensity, domain)
        found = domain_planes(root / f"train{domain}", spec, reading)
        intensity[domain] = resolve_intensity(spec, found, reading, channels[domain], domain) if spec.mode else None
        planes[domain] = drop_empty(found, reading, intensity[domain], d.min_foreground, domain) \
            if spec.mode else found
        planes[domain] = planes[domain][: d.max_dataset_size]
        shown = domain_planes(root / f"{split}{domain}", spec, reading) if split == "test" else planes[domain]
        fixed[domain] = load_fixed_planes(shown, cfg.logging.n_samples, d.crop_size, intensity[domain], reading,
                                          channels[domain])
    transform = build_transform(d.preprocess, d.load_size, d.crop_size, d.flip, float_data=True)
    dataset = ScanDataset(planes, intensity, channels, reading, transform)
    sampler = UnpairedSampler(len(planes["A"]), len(planes["B"]), cfg.train.seed, rank, world_size)
    return TrainingData(dataset, sampler, fixed, intensity)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sampled_strengths(seeds: torch.Tensor, span: list[float]) -> torch.Tensor:
    """Loss-conditional training (docs/strength.md): each sample's strength, uniform in ``span`` =
    [lo, hi], drawn from the sample's seed (the dataset's ``seed``): the same whatever the batch,
    the number of ranks and workers, and after a resume. (N,) fp32 on the CPU."""
    lo, hi = span
    draws = [torch.rand((), generator=torch.Generator().manual_seed(int(s) * 2 + 2)) for s in seeds.tolist()]
    return lo + (hi - lo) * torch.stack(draws)


def weighted_l1(x: torch.Tensor, target: torch.Tensor, weight: float | torch.Tensor) -> torch.Tensor:
    """weight * mean |x - target| in fp32; ``weight`` one number, or one per sample (N,), which
    weights each image's own mean (the batch mean of weight_i * L1_i)."""
    if not torch.is_tensor(weight):
        return F.l1_loss(x.float(), target) * weight
    per_image = (x.float() - target).abs().flatten(1).mean(1)  # (N,)
    return (per_image * weight).mean()


def weight_at(strength: torch.Tensor, weight: float) -> torch.Tensor:
    """The loss weight a strength stands for: ``weight`` (the paper's) at s = 0.5, 4x at s = 0 (keeps
    the input most), 1/4 at s = 1 (translates most): weight * 4^(1 - 2s), per sample."""
    return weight * 4.0 ** (1.0 - 2.0 * strength)


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The reference's linear rule: 1 for the first ``n_epochs`` epochs, then linearly to
    1/(n_epochs_decay+1) at the last epoch (epoch is 0-based)."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def scaled_lr(cfg: Config, world_size: int) -> float:
    t = cfg.train
    batch = t.batch_size * world_size
    return t.lr * {"none": 1.0, "linear": batch, "sqrt": batch**0.5}[t.lr_scaling]


def adam(params: Iterable[nn.Parameter], cfg: Config, lr: float, device: torch.device) -> torch.optim.Adam:
    # Fused Adam: one pass over each tensor. On the CPU it is also 3-5x faster than foreach and the
    # for-loop (docs/benchmarks.md). Other devices (meta, for FLOP counting) take PyTorch's default.
    fused = device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=lr, betas=(cfg.train.beta1, cfg.train.beta2), fused=fused or None)


def linear_decay(opt: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.LambdaLR:
    t = cfg.train
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: lr_factor(epoch, t.n_epochs, t.n_epochs_decay))


def wrap(net: nn.Module, world_size: int, device: torch.device, compile: bool) -> nn.Module:
    """The module a step calls: DDP-wrapped (gradients averaged over ranks) and/or compiled."""
    if world_size > 1:
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    # Static shapes: each network sees at most two input shapes (N and 2N images): one
    # specialised graph for each rather than one with a symbolic batch size.
    return torch.compile(net, dynamic=False) if compile else net


def last_layer(net: nn.Module) -> torch.Tensor:
    """The weight of a generator's last convolution (the output layer), where ``adaptive_weights`` compares gradients."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1].weight


def adaptive_weights(content: torch.Tensor, adversarial: list[torch.Tensor], layers: list[torch.Tensor],
                     scaler: torch.amp.GradScaler) -> list[torch.Tensor]:
    """train.auto_weights: the adaptive weight of Esser et al. ("Taming Transformers", CVPR 2021) for
    each generator: ||grad content|| / (||grad adversarial_k|| + 1e-4) at its last layer ``layers[k]``,
    clamped to [0, 1e4] and detached, to multiply adversarial_k by. Under DDP the two gradients are
    averaged over the ranks first (the gradients of the global batch). Both are taken of the scaled
    losses (fp16 keeps them representable), so the ratio is the unscaled one."""
    scale = scaler.get_scale() if scaler.is_enabled() else 1.0
    grads_c = torch.autograd.grad(scaler.scale(content), layers, retain_graph=True)
    weights = []
    for adv, layer, g_c in zip(adversarial, layers, grads_c):
        (g_a,) = torch.autograd.grad(scaler.scale(adv), layer, retain_graph=True)
        both = torch.stack([g_c.float(), g_a.float()])  # (2, *layer.shape)
        if torch.distributed.is_initialized():  # the mean over the ranks: the global batch's gradients
            torch.distributed.all_reduce(both)
            both = both / torch.distributed.get_world_size()
        ratio = torch.linalg.vector_norm(both[0]) / (torch.linalg.vector_norm(both[1]) + 1e-4 * scale)
        weights.append(torch.nan_to_num(ratio, nan=1.0, posinf=1e4).clamp(0.0, 1e4).detach())
    return weights


def adversarial_weights(cfg: Config, content: torch.Tensor, adversarial: Mapping[str, torch.Tensor],
                        nets: Mapping[str, nn.Module], scaler: torch.amp.GradScaler,
                        stats: dict) -> dict[str, float | torch.Tensor]:
    """Each generator's GAN-term weight, by name: 1, or with train.auto_weights its adaptive weight
    (``adaptive_weights``) at the last layer of ``nets[name]`` against the ``content`` terms,
    logged as ``auto_weight/<name>``."""
    if not cfg.train.auto_weights:
        return dict.fromkeys(adversarial, 1.0)
    layers = [last_layer(nets[name]) for name in adversarial]
    weights = dict(zip(adversarial, adaptive_weights(content, list(adversarial.values()), layers, scaler)))
    stats.update({f"auto_weight/{name}": w for name, w in weights.items()})
    return weights


def grad_norm(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> torch.Tensor:
    """Norm of the true (unscaled) gradients; for fp16 the scaler's factor is divided out."""
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    return norm / scaler.get_scale() if scaler.is_enabled() else norm


class Precision:
    """One autocast context and one GradScaler, active only for fp16: never two code paths."""

    def __init__(self, device: torch.device, precision: str) -> None:
        dtype = DTYPES[precision]
        self.autocast: Callable = lambda: torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def parameters(*nets: nn.Module) -> Iterable[nn.Parameter]:
    return itertools.chain(*(net.parameters() for net in nets))


def training_state(nets: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   schedulers: dict[str, object], scaler: torch.amp.GradScaler) -> dict:
    """The part of a checkpoint every method has: plain tensors and numbers (weights_only loads it)."""
    return {
        "models": {name: net.state_dict() for name, net in nets.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: sched.state_dict() for name, sched in schedulers.items()},
        "scaler": scaler.state_dict(),
    }


def load_training_state(state: dict, nets: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                        schedulers: dict[str, object], scaler: torch.amp.GradScaler) -> None:
    for name, net in nets.items():
        net.load_state_dict(state["models"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][name])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])


class MethodState:
    """What every method's training state has beside its networks: its optimizers and their
    linear-decay schedulers (``optimizers`` / ``schedulers``: name -> object, e.g. "G", "D"; set by
    the method), one GradScaler, and how they are stepped, logged and saved. Methods add their
    own state (random streams, pools) in ``extra_state``."""

    cfg: Config
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]
    scaler: torch.amp.GradScaler
    nets: dict[str, nn.Module]
    batch_keys: ClassVar[tuple[str, ...]] = ("A", "B")
    domain_evaluation: ClassVar[bool] = True
    strength_key: ClassVar[str | None] = "train.strength_range"  # its loss-conditional range (None: none)

    @staticmethod
    def synthetic_overrides(folder: Path) -> dict[str, object]:
        return {}

    def evaluate(self, fixed: dict[str, torch.Tensor]) -> dict[str, float]:
        return {}

    def fit_data(self, data: TrainingData) -> None:
        """What the method reads from its training data before the first step (e.g. CycleGAN's
        histogram anchor); nothing by default. A resumed run's checkpoint then restores it."""

    @property
    def trained_at(self) -> str | None:
        """The loss weight(s) its generators were trained at, as config keys (the checkpoint records it,
        for `--strength` on a fixed-weight model); None when trained on a strength range."""
        return None

    def set_optimizers(self, **optimizers: torch.optim.Optimizer) -> None:
        """Register the optimizers (name -> Adam) and give each the reference's linear-decay schedule."""
        self.optimizers = optimizers
        self.schedulers = {name: linear_decay(opt, self.cfg) for name, opt in optimizers.items()}

    @property
    def domains(self) -> tuple[str, str]:
        """The names of A and B, read from the dataset's name (monet2photo: monet, photo)."""
        return domain_names(dataset_name(self.cfg.data.dataset, self.cfg.data.root))

    def end_epoch(self) -> None:
        for sched in self.schedulers.values():
            sched.step()

    def learning_rates(self) -> dict[str, float]:
        return {f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    def extra_state(self) -> dict:
        """The method's own resumable state (random streams, pools): plain tensors and numbers."""
        return {}

    def load_extra_state(self, state: dict) -> None: ...

    def state_dict(self) -> dict:
        return training_state(self.nets, self.optimizers, self.schedulers, self.scaler) | {"method": self.cfg.method} \
            | self.extra_state()

    def load_state_dict(self, state: dict) -> None:
        load_training_state(state, self.nets, self.optimizers, self.schedulers, self.scaler)
        self.load_extra_state(state)
