"""The typed training config: the sections every method shares, YAML loading, dotted overrides
and validation.

Each method extends ``Config`` in its own file (gan_style/methods/) with its ``method`` literal,
its own keys (a section such as ``cut:``, fields added to ``train``, its ``finetune`` targets) and
the values it gives to shared keys left null (``method_defaults``). The one config type is the
union of those classes, told apart by ``method``; ``gan_style.methods.load_config`` validates
against it (this module cannot import the methods: it sits below them).

A config is validated once, at the CLI boundary. Any error becomes a ``ConfigError`` whose
message is one line naming the key, the problem and the fix (for a typo, the closest key; for a
key of another method, which method uses it). The resolved config is saved as YAML in the run
directory and as a dict in every checkpoint.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Optional, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .io.atomic import write_atomic


class ConfigError(ValueError):
    """A config problem, reported to the user in one line."""


class Section(BaseModel):
    """A config section. extra="forbid": a typo is an error, not a silently ignored key."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


# DiffAugment's policies, in the order they are applied (gan_style/methods/diffaugment.py).
DiffAugmentPolicy = Literal["color", "translation", "cutout"]
DIFFAUGMENT_POLICIES: tuple[str, ...] = get_args(DiffAugmentPolicy)


class IntensityConfig(Section):
    """How one domain's data units map to the networks' [-1, 1] (io/intensity.py, docs/science.md).
    mode null = 8-bit RGB images (photos): the exact path for 16-bit, float and medical data is off."""

    mode: Optional[Literal["window", "percentile", "range"]] = None
    """null (8-bit RGB photos), window (fixed low/high in data units, e.g. CT -1000/2000 HU), percentile (low/high percentiles, per image or per dataset) or range (the dtype's full range)."""
    low: Optional[float] = None
    """window: the data value mapped to -1; percentile: the lower percentile (default 0.5)."""
    high: Optional[float] = None
    """window: the data value mapped to +1; percentile: the upper percentile (default 99.5)."""
    per: Literal["dataset", "image"] = "dataset"
    """percentile: computed once over the training data (dataset) or for each image (image)."""

    @model_validator(mode="before")
    @classmethod
    def _percentile_defaults(cls, values: Any) -> Any:
        # Filled in before validation (assigning after it would re-validate): the saved config says what ran.
        if isinstance(values, dict) and values.get("mode") == "percentile":
            values = {"low": 0.5, "high": 99.5} | {k: v for k, v in values.items() if v is not None}
        return values

    @model_validator(mode="after")
    def _check(self) -> "IntensityConfig":
        if self.mode == "window" and (self.low is None or self.high is None or self.low >= self.high):
            raise ValueError(f"mode=window needs low < high (data units), got low={self.low} high={self.high}")
        if self.mode == "percentile":
            if not 0 <= self.low < self.high <= 100:
                raise ValueError(f"mode=percentile needs 0 <= low < high <= 100, got low={self.low} high={self.high}")
        return self


class DomainIntensities(Section):
    A: IntensityConfig = IntensityConfig()
    """Domain A (trainA/)."""
    B: IntensityConfig = IntensityConfig()
    """Domain B (trainB/)."""


class DataConfig(Section):
    root: str = "datasets/monet2photo"
    """Folder with trainA/ trainB/ (and optionally testA/ testB/)."""
    dataset: Optional[str] = None
    """Official CycleGAN dataset fetched into `root` if it is missing (e.g. monet2photo); null = never fetch."""
    url: Optional[str] = None
    """Where to fetch it from; default: the reference's server for `dataset`."""
    preprocess: Literal["resize_and_crop", "scale_shortside_and_crop", "crop", "none"] = "resize_and_crop"
    """resize_and_crop (the paper), scale_shortside_and_crop, crop, or none (see data/README.md)."""
    load_size: int = Field(286, gt=0)
    """Images are resized to this size before the random crop."""
    crop_size: int = Field(256, gt=0)
    """Training crop size in pixels (a multiple of 4)."""
    flip: bool = True
    """Random horizontal flips."""
    num_workers: int = Field(4, ge=0)
    """DataLoader worker processes per GPU/process (0 = load in the main process)."""
    max_dataset_size: Optional[int] = Field(None, gt=0)
    """Use at most this many images of each domain (smoke runs, benchmarks)."""
    intensity: DomainIntensities = DomainIntensities()
    """Per-domain intensity normalisation of scientific data (16-bit, float, DICOM, NIfTI, TIFF stacks)."""
    axis: int = Field(2, ge=0, le=2)
    """NIfTI volumes: the axis they are sliced along into 2-D training images."""
    volume: Optional[int] = Field(None, ge=0)
    """4-D NIfTI: which 3-D volume to use (null: a 4-D file is skipped with a one-line message)."""
    min_foreground: float = Field(0.01, ge=0, lt=1)
    """Scientific data: skip slices with less than this fraction of pixels above 5% of their domain's window (empty slices of a volume); 0 = keep all."""
    direction: Optional[Literal["AtoB", "BtoA"]] = None
    """CUT/FastCUT: the one way G translates (BtoA = B -> A); CycleGAN: the default way to translate and evaluate. null = BtoA for *2photo datasets (photo -> painting), else AtoB."""


class ModelConfig(Section):
    input_nc: int = Field(3, ge=1)
    """Channels of domain A's images (1 = grayscale, CT, MR; 3 = RGB; N = multichannel); != 3 needs data.intensity.A.mode."""
    output_nc: int = Field(3, ge=1)
    """Channels of domain B's images; != 3 needs data.intensity.B.mode."""
    ngf: int = Field(64, gt=0)
    """Generator width: filters of the first conv layer."""
    ndf: int = Field(64, gt=0)
    """Discriminator width: filters of the first conv layer."""
    n_blocks: int = Field(9, ge=0)
    """Residual blocks in each generator (9 for 256 px in the paper, 6 for 128 px)."""
    n_layers_D: int = Field(3, ge=1)
    """Stride-2 conv layers of the PatchGAN (3 = 70x70 patches)."""
    init_gain: float = Field(0.02, gt=0)
    """Gain of the weight init (std for normal)."""
    init_type: Optional[Literal["normal", "xavier"]] = None
    """Weight init; null = the method's default (docs/methods.md)."""
    antialias: Optional[bool] = None
    """Antialiased downsampling (blur + subsample) in G and D; null = the method's default (docs/methods.md)."""
    antialias_up: Optional[bool] = None
    """Blur upsampling + conv instead of transposed convs in G (no checkerboard); null = same as model.antialias."""


class TrainConfig(Section):
    n_epochs: int = Field(100, ge=0)
    """Epochs at the initial learning rate."""
    n_epochs_decay: int = Field(100, ge=0)
    """Epochs over which the learning rate decays linearly to ~0."""
    batch_size: int = Field(1, gt=0)
    """Per-process batch; the global batch is batch_size x world size."""
    lr: float = Field(2e-4, gt=0)
    """Adam learning rate for both generators and discriminators (at global batch 1)."""
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    """How lr follows the global batch (relative to 1): none (as the reference), linear or sqrt."""
    beta1: float = Field(0.5, ge=0, lt=1)
    """Adam beta1."""
    beta2: float = Field(0.999, ge=0, lt=1)
    """Adam beta2."""
    gan_mode: Literal["lsgan", "vanilla"] = "lsgan"
    """lsgan (least squares, the paper) or vanilla (BCE with logits)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto = bf16 on CUDA devices that support it, else fp32."""
    channels_last: bool = False
    """NHWC memory layout (faster convolutions on recent GPUs)."""
    compile: bool = False
    """torch.compile the networks."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N (under torchrun the local rank picks the GPU)."""
    seed: int = 0
    """Seed for weights, data order, augmentation and the pools."""
    max_steps: Optional[int] = Field(None, gt=0)
    """Stop after this many steps in total (smoke runs and benchmarks)."""
    ema: float = Field(0.0, ge=0, lt=1)
    """EMA of the generators' weights with this decay (e.g. 0.999; 0 = off); step t uses min(ema, (1+t)/(10+t)). Panels, eval and translate use it."""
    diffaugment: str = ""
    """DiffAugment policy for every image D sees (real and fake, G and D pass): comma-separated color,translation,cutout; empty = off."""
    strength_range: Optional[list[float]] = None
    """[lo, hi] in [0, 1]: train one generator for every strength in it (loss-conditional training; each sample's loss weight drawn from it and fed to G), chosen at translate time with --strength (docs/strength.md); null = one fixed weight."""

    auto_weights: bool = False
    """Scale the adversarial term each step by ||grad content|| / ||grad adversarial|| at G's last layer (Esser et al.'s adaptive weight; cyclegan, cut, fastcut). How it measured against the defaults: docs/strength.md."""

    @field_validator("strength_range")
    @classmethod
    def _strength_range(cls, span: list[float] | None) -> list[float] | None:
        return check_strength_range(span)

    @model_validator(mode="after")
    def _one_way_to_weigh(self) -> "TrainConfig":
        if self.auto_weights and self.strength_range is not None:
            raise ValueError("train.auto_weights balances fixed weights, train.strength_range trains a range of them: "
                             "set one of the two")
        return self


def check_strength_range(span: list[float] | None) -> list[float] | None:
    """A strength range [lo, hi] with 0 <= lo <= hi <= 1 (the message names the problem; the loader the key)."""
    if span is not None and (len(span) != 2 or not 0.0 <= span[0] <= span[1] <= 1.0):
        raise ValueError("give [lo, hi] with 0 <= lo <= hi <= 1, e.g. [0.1, 0.9]")
    return span


class FinetuneConfig(Section):
    """Start generators from published or earlier weights; the discriminators start fresh. Each
    method lists its generators here (e.g. ``finetune.G_B``), one key per network."""


class CheckpointConfig(Section):
    save_every: int = Field(10, ge=0)
    """Also keep a numbered copy every N epochs (0 = only last.pt)."""


class LoggingConfig(Section):
    log_every: int = Field(50, gt=0)
    """Steps between scalar logs; also how often losses are checked for NaN/inf."""
    image_every: int = Field(1000, ge=0)
    """Steps between image panels (0 = only at epoch ends)."""
    n_samples: int = Field(4, ge=0)
    """Fixed validation images per domain shown in the panels."""
    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    """W&B: auto = online if logged in, else offline (`wandb sync` later); WANDB_MODE wins unless disabled."""
    wandb_project: str = "gan_style"
    """W&B project (WANDB_PROJECT wins when set)."""
    wandb_entity: Optional[str] = None
    """W&B user or team; null = your default entity (WANDB_ENTITY wins when set)."""
    log_artifacts: bool = False
    """Upload the final checkpoint and the exported generators to W&B as model artifacts (large: off by default)."""


class EvalConfig(Section):
    every: int = Field(0, ge=0)
    """Evaluate every N epochs during training (0 = never)."""
    n_images: int = Field(100, gt=0)
    """Images per domain used by the evaluation during training (a fixed subset)."""
    fid: bool = False
    """Also compute FID/KID with the Inception network (needs gan_style[metrics]; slow on a CPU)."""
    best: Optional[str] = Field(None, pattern=r"^((fid|kid|colour_w1|colour_tv)_[AB]|style|content)$")
    """Keep best.pt whenever this eval metric improves (lower is better), e.g. kid_A, fid_A (need eval.fid), colour_w1_A, or style (method: style); null = off."""


class Config(Section):
    """The keys every method shares. A method's own config class extends it (see the module doc)."""

    method_defaults: ClassVar[dict[str, Any]] = {}
    """Dotted key -> the value this method gives it when the config leaves it null."""

    method: str = ""
    """The training method; `gan-style train --help` lists them and docs/methods.md describes them."""
    name: str = "run"
    """Run name: outputs go to <out_dir>/<name>/."""
    out_dir: str = "runs"
    """Parent folder of run directories."""
    resume: Optional[str] = None
    """null, auto (resume <out_dir>/<name>/last.pt if present) or a checkpoint path."""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    logging: LoggingConfig = LoggingConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _check_consistency(self) -> "Config":
        d = self.data
        if d.preprocess in ("resize_and_crop", "scale_shortside_and_crop") and d.crop_size > d.load_size:
            raise ValueError(
                f"data.crop_size ({d.crop_size}) is larger than data.load_size ({d.load_size}): "
                "set crop_size <= load_size"
            )
        if d.crop_size % 4:
            raise ValueError(f"data.crop_size ({d.crop_size}) must be a multiple of 4 (the generator downsamples twice)")
        if d.preprocess == "none" and self.train.batch_size > 1:
            raise ValueError("data.preprocess=none keeps each image's size, so train.batch_size must be 1")
        if self.train.n_epochs + self.train.n_epochs_decay == 0:
            raise ValueError("train.n_epochs + train.n_epochs_decay is 0: nothing to train")
        if not self.name or "/" in self.name:
            raise ValueError(f"name {self.name!r} must be a non-empty folder name without '/'")
        self._resolve_method_defaults()
        self._check_eval_and_training_options()
        self._check_channels()
        return self

    def _check_channels(self) -> None:
        # 8-bit RGB photos (intensity mode null) have 3 channels; other counts need the exact path.
        for domain, nc, key in (("A", self.model.input_nc, "input_nc"), ("B", self.model.output_nc, "output_nc")):
            if nc != 3 and getattr(self.data.intensity, domain).mode is None:
                raise ValueError(f"model.{key}={nc} needs data.intensity.{domain}.mode (window, percentile or range): "
                                 "8-bit photos have 3 channels (docs/science.md)")
        if self.eval.every and (self.data.intensity.A.mode or self.data.intensity.B.mode):
            raise ValueError("eval.every measures photo metrics (FID, colour); with data.intensity set, set eval.every=0 "
                             "and measure with gan-style eval --paired (docs/science.md)")

    def _check_eval_and_training_options(self) -> None:
        best = self.eval.best
        if best and not self.eval.every:
            raise ValueError(f"eval.best={best} needs eval.every > 0 (how often to evaluate)")
        if best and best.startswith(("fid", "kid")) and not self.eval.fid:
            raise ValueError(f"eval.best={best} needs eval.fid=true (FID and KID use the Inception network)")
        policy = [p.strip() for p in self.train.diffaugment.split(",") if p.strip()]
        unknown = [p for p in policy if p not in DIFFAUGMENT_POLICIES]
        if unknown:
            raise ValueError(f"train.diffaugment={self.train.diffaugment!r}: unknown {', '.join(unknown)}; "
                             f"use a comma-separated subset of {','.join(DIFFAUGMENT_POLICIES)} (empty = off)")

    def _resolve_method_defaults(self) -> None:
        # Fill the null keys with this method's values, so the saved config says what ran.
        for key, value in self.method_defaults.items():
            section, name = key.split(".")
            node = getattr(self, section)
            if getattr(node, name) is None:
                setattr(node, name, value)
        if self.model.antialias_up is None:
            self.model.antialias_up = self.model.antialias

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


ConfigTypes = Mapping[str, type[Config]]  # method name -> its config class (gan_style.methods builds it)


def config_keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every leaf key of ``model`` as (dotted name, default, description), for errors, --help and docs."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += config_keys(ann, f"{prefix}{name}.")
        else:
            rows.append((prefix + name, field.default, field.description or ""))
    return rows


def all_config_keys(types: ConfigTypes) -> list[tuple[str, Any, str, tuple[str, ...]]]:
    """The keys of every method's config: (key, default, description, the methods that have it)."""
    rows: dict[str, tuple[Any, str, list[str]]] = {}
    shared = {key: desc for key, _, desc in config_keys(Config)}  # a method may narrow a shared key's text
    for method, cls in types.items():
        for key, default, desc in config_keys(cls):
            rows.setdefault(key, (default, shared.get(key, desc), []))[2].append(method)
    every = len(types)
    return [(key, default, desc, tuple(owners) if len(owners) < every else ()) for key, (default, desc, owners)
            in rows.items()]


def flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """{'train': {'lr': 1e-4}} -> [('train.lr', 1e-4)] (an empty section is a leaf)."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out += flatten(value, f"{prefix}{key}.")
        else:
            out.append((prefix + str(key), value))
    return out


def _drop(tree: dict[str, Any], key: str) -> None:
    *parents, name = key.split(".")
    nodes = [tree]
    for part in parents:
        nodes.append(nodes[-1][part])
    del nodes[-1][name]
    for node, part in zip(reversed(nodes[:-1]), reversed(parents)):  # sections left empty go too
        if not node[part]:
            del node[part]


def _drop_other_methods_keys(tree: dict[str, Any], method: str, types: ConfigTypes, source: str) -> None:
    """A key only other methods use may stay null or at its default (a shared YAML file, an older
    saved config) and is dropped; set to anything else it is a one-line error."""
    own = {key for key, _, _ in config_keys(types[method])}
    defaults = {m: {key: default for key, default, _ in config_keys(cls)} for m, cls in types.items()}
    for key, value in flatten(tree):
        owners = [m for m in types if key in defaults[m]]
        if key in own or not owners:
            continue  # ours, or unknown to every method: validation names it
        if value is not None and all(value != defaults[m][key] for m in owners):
            raise ConfigError(f"{source}: {key}={value!r} does not apply to method={method} (only to "
                              f"{' / '.join(owners)}): remove it, or choose method={owners[0]}")
        _drop(tree, key)


def _format_error(err: ValidationError, source: str, cls: type[Config]) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        keys = [k for k, _, _ in config_keys(cls)]
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(keys)}"
        return f"{source}: unknown config key '{key}'{hint}"
    msg = e["msg"].removeprefix("Value error, ")
    if not key:  # a cross-field check: its message already names the keys
        return f"{source}: {msg}"
    return f"{source}: bad value for '{key}' ({e.get('input')!r}): {msg}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.lr=1e-4' -> (['train', 'lr'], 0.0001). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.lr=1e-4)")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value != "" else None
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def set_dotted(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override: '{'.'.join(path)}' goes below '{part}', which is not a section")
        node = child
    node[path[-1]] = value


def bundled_configs() -> dict[str, Path]:
    """The configs that ship with the package (name -> file), from the one copy in ``configs/``.

    Installed, they are the package data ``gan_style.configs`` (pyproject.toml maps configs/ there);
    in a clone without installing, the repository's ``configs/`` folder next to the package.
    """
    here = Path(__file__).resolve().parent
    folder = here / "configs" if (here / "configs").is_dir() else here.parent / "configs"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def describe_config(path: Path) -> str:
    """The first comment line of a config file: what it trains."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def find_config(path: str | Path) -> Path:
    """A config file path, or the name of a bundled config (``monet``, ``horse2zebra_cut``)."""
    path = Path(path)
    if path.is_file():
        return path
    bundled = bundled_configs()
    name = path.name.removesuffix(".yaml")
    if name in bundled and (path.parent == Path(".") or path.parent.name == "configs"):
        return bundled[name]
    close = difflib.get_close_matches(name, list(bundled), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"config file {path} not found; {hint}give a YAML file or one of the bundled configs "
                      f"({', '.join(bundled)}; gan-style train --list-configs)")


def read_config(path: str | Path | None, overrides: list[str], types: ConfigTypes) -> Config:
    """Load a YAML config (a path, or a bundled config's name; None = the defaults), apply
    ``key=value`` overrides, validate against ``types`` (see ``gan_style.methods.load_config``)."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = find_config(path)
        source = str(path)
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of config keys")
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(tree, key, value)
    if overrides:
        source += " + overrides"
    return validate_config(tree, types, source)


def validate_config(tree: dict[str, Any], types: ConfigTypes, source: str = "config") -> Config:
    """The config of ``tree["method"]`` (default: the first of ``types``), validated."""
    tree = copy.deepcopy(tree)
    method = tree.setdefault("method", next(iter(types)))
    if method not in types:
        close = difflib.get_close_matches(str(method), list(types), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{source}: unknown method {method!r}; {hint}use one of {', '.join(types)}")
    _drop_other_methods_keys(tree, method, types, source)
    try:
        return types[method].model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_error(e, source, types[method])) from None


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved config as YAML, atomically."""
    write_atomic(path, lambda f: f.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))
