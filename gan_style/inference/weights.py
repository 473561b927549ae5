"""Find and read generator weights: our checkpoints, our exports, the reference's files.

``read_generator(spec, direction)`` accepts

- our training checkpoint (``runs/monet/last.pt``, or the run folder ``runs/monet``): it
  records its generators (``generators``: direction -> network, domain names, architecture),
  and ``direction`` picks one; version-1 checkpoints (v0.1) are upgraded on reading;
- our exported generator (``*.safetensors`` written by ``gan-style export``): weights plus
  architecture, preprocessing and domain names as metadata;
- a reference CycleGAN generator state_dict (``latest_net_G_A.pth``, the published
  ``style_monet.pth``...), including old ones with stale InstanceNorm statistics;
- a CUT generator (``latest_net_G.pth`` of the official CUT code), antialiased or not;
- ``official:NAME``: a published CycleGAN or CUT model, downloaded once into a cache folder
  (see zoo.py).

It returns a clean state_dict and a ``GeneratorInfo``; the architecture is always read from
the tensors, never guessed. Everything is loaded with ``torch.load(weights_only=True)`` or
safetensors, so no file can run code. Imports nothing from the training code.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..domains import DIRECTIONS, dataset_name, default_direction
from ..io.checkpoint import CheckpointError, load_safe, upgrade_checkpoint
from ..io.intensity import Intensity
from ..nets import GeneratorKind, kind_named, recognise
from .zoo import ZooError, official_direction, official_domains, official_weights


# The reference normalises images to [-1, 1] with mean 0.5 and std 0.5 per channel.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
MULTIPLE = 4  # two stride-2 convolutions: H and W must be multiples of 4

EXPORT_FORMAT = "gan_style.generator"
EXPORT_FORMAT_VERSION = 1


class WeightsError(ZooError):
    """Weights that cannot be used as a generator; the message names the file and the mismatch."""


class OneDirectionError(WeightsError):
    """A one-generator checkpoint (CUT, FastCUT) asked for the direction it was not trained in."""


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator does and how to feed it (stored as metadata in our exports)."""

    arch: dict  # the kind's constructor arguments: in_channels, out_channels, ngf, n_blocks ...
    origin: str  # where the weights came from, for messages: "runs/monet/last.pt (G_B)"
    kind: str | None = None  # the generator kind (nets/kinds.py); None until read from the tensors
    trained_at: str | None = None  # the loss weight a fixed-weight generator was trained with, e.g. "style.strength=0.5"
    direction: str | None = None  # AtoB / BtoA when known
    source: str = "input"  # domain names, e.g. "photo" -> "monet"
    target: str = "output"
    mean: tuple = MEAN
    std: tuple = STD
    multiple: int = MULTIPLE
    run_name: str | None = None  # training checkpoints only: for default output folders
    data_root: str | None = None  # training checkpoints only: for the default input folder
    source_intensity: dict | None = None  # scientific data: io.intensity.Intensity.to_dict() of each side
    target_intensity: dict | None = None

    @property
    def generator_kind(self) -> GeneratorKind:
        return kind_named(self.kind)

    @property
    def exact(self) -> bool:
        """A generator for scientific data (data units, or not 3 -> 3 channels): files go through
        the exact path (inference/scans.py), not the 8-bit RGB one."""
        channels = (self.arch.get("in_channels", 3), self.arch.get("out_channels", 3))
        return bool(self.source_intensity or self.target_intensity) or channels != (3, 3)

    def check_rgb(self) -> None:
        """WeightsError (one line) for a generator of scientific data, where only photos can go."""
        if self.exact:
            a = self.arch
            raise WeightsError(f"{self.origin}: a generator for scientific data ({a.get('in_channels')} -> "
                               f"{a.get('out_channels')} channels, data units): translate its files with "
                               "gan-style translate and measure with gan-style eval --paired (docs/science.md)")

    @property
    def label(self) -> str:
        way = f"{self.direction}: " if self.direction else ""
        return f"{self.origin} [{way}{self.source} -> {self.target}]"

    def to_metadata(self) -> dict[str, str]:
        # safetensors metadata is str -> str; JSON keeps the types.
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        meta = {k: json.dumps(v) for k, v in fields.items()}
        meta["format"] = EXPORT_FORMAT
        meta["format_version"] = str(EXPORT_FORMAT_VERSION)
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str], origin: str) -> GeneratorInfo:
        known = {f for f in cls.__dataclass_fields__ if f != "origin"}
        values = {k: json.loads(v) for k, v in meta.items() if k in known}
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(origin=origin, **values)


def side_intensity(info: GeneratorInfo, side: str) -> Intensity:
    """The generator's ``source`` or ``target`` intensity; the reference's 8-bit rule when none is recorded."""
    recorded = getattr(info, f"{side}_intensity")
    if recorded:
        return Intensity.from_dict(recorded)
    channels = info.arch.get("in_channels" if side == "source" else "out_channels", 3)
    return Intensity(mode="range", low=0.0, high=255.0, dtype="uint8", channels=channels)


# ---------------------------------------------------------------- reading files


def _is_safetensors(path: Path) -> bool:
    # A safetensors file starts with the little-endian u64 length of its JSON header, then '{'.
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < (1 << 30)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise WeightsError(f"{path}: not a readable safetensors file, truncated or corrupt? ({first})") from None
    return tensors, meta


def _is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Make a generator state_dict from any known writer load into ``ResnetGenerator`` strictly.

    - ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes are removed;
    - InstanceNorm ``running_mean/running_var/num_batches_tracked`` of old reference checkpoints
      are dropped (the norm has no running statistics, as the reference does when loading);
    - residual blocks saved with dropout (``conv_block.6``) are renumbered to ``conv_block.5``:
      dropout holds no weights and is off at inference.
    """
    out = {}
    for key, value in state.items():
        key = re.sub(r"^(module\.|_orig_mod\.)+", "", key)
        if key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue
        out[key] = value
    if any(".conv_block.6." in k for k in out):
        out = {re.sub(r"\.conv_block\.6\.", ".conv_block.5.", k): v for k, v in out.items()}
    return out


def check_state_dict(state: dict[str, torch.Tensor], origin: str, kind: str | None = None,
                     recorded: dict | None = None) -> tuple[GeneratorKind, dict]:
    """The generator's kind (``kind`` as recorded, else recognised from the keys) and architecture:
    what the tensors tell, the ``recorded`` arguments they cannot tell (a schedule...), else the
    kind's defaults. Every tensor is checked against it.

    Raises ``WeightsError`` saying what does not match (missing, unexpected or mis-shaped keys, or
    a recorded architecture the tensors contradict).
    """
    try:
        gen_kind = kind_named(kind) if kind is not None else recognise(state)
        told = gen_kind.arch(state)
    except (ValueError, KeyError, IndexError) as e:
        what = f"a {kind} generator" if kind is not None else "a generator"
        raise WeightsError(f"{origin}: not {what} ({e})") from None
    recorded = recorded or {}
    contradicted = {k: (recorded[k], v) for k, v in told.items() if k in recorded and recorded[k] != v}
    if contradicted:
        raise WeightsError(f"{origin}: metadata says architecture {recorded} but the weights are {told}")
    arch = gen_kind.defaults() | {k: v for k, v in recorded.items() if k in gen_kind.defaults()} | told
    expected = gen_kind.build(arch).state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    if shapes:
        problems.append(f"size mismatch: {_few(shapes)}")
    if problems:
        desc = ", ".join(f"{k}={v}" for k, v in arch.items())
        raise WeightsError(f"{origin}: does not match a {gen_kind.name} generator({desc}): {'; '.join(problems)}")
    return gen_kind, arch


def _few(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def resolve_path(spec: str | Path) -> Path:
    """``official:NAME`` -> cached download; a run folder -> its last.pt; else the path itself."""
    text = str(spec)
    if text.startswith("official:"):
        try:
            return official_weights(text.removeprefix("official:"))
        except ZooError as e:
            raise WeightsError(str(e)) from None
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "last.pt").is_file():
            return path / "last.pt"
        raise WeightsError(f"{path}: a folder without last.pt; pass a checkpoint or exported file")
    if not path.is_file():
        raise WeightsError(
            f"{path}: weights file not found; pass a training checkpoint (runs/NAME/last.pt, from make train), "
            "an export (*.safetensors), a reference .pth, or official:NAME (e.g. official:style_monet)"
        )
    return path


def read_generator(spec: str | Path, direction: str | None = None,
                   ema: bool = True) -> tuple[dict[str, torch.Tensor], GeneratorInfo]:
    """Load generator weights from ``spec`` (see the module doc) as fp32 CPU tensors, checked.

    ``direction`` (AtoB / BtoA) picks the generator of a training checkpoint; default: BtoA for
    ``*2photo`` datasets (photo -> painting), else AtoB. For a file holding one generator it must
    agree with the file's own direction when that is recorded. ``ema``: take a training
    checkpoint's averaged generator weights when it has them (``train.ema``), else the raw ones.
    """
    if direction is not None and direction not in DIRECTIONS:
        raise WeightsError(f"direction {direction!r}: use AtoB or BtoA")
    path = resolve_path(spec)
    name = str(spec) if str(spec).startswith("official:") else str(path)
    if _is_safetensors(path):
        state, meta = _read_safetensors(path)
        info = _info_from_export(meta, name)
    else:
        try:
            obj = load_safe(path)
        except CheckpointError as e:
            if name.startswith("official:"):  # a damaged cache entry: say how to refresh it
                raise WeightsError(f"{e}; delete {path} to download it again") from None
            raise
        state, info = _unpack_torch(obj, name, direction, ema)
    state = {k: v.float() if v.is_floating_point() else v for k, v in clean_state_dict(state).items()}
    # Exports written before antialiasing existed record no flags: they were plain generators.
    recorded = ({"antialias": False, "antialias_up": False} if info.arch and info.kind is None else {}) | info.arch
    kind, arch = check_state_dict(state, name, info.kind, recorded)
    if direction is not None and info.direction is not None and direction != info.direction:
        raise WeightsError(
            f"{name}: holds only the {info.direction} generator ({info.source} -> {info.target}), "
            f"not {direction}: export the other direction from the training checkpoint"
        )
    return state, GeneratorInfo(**{**asdict(info), "arch": arch, "kind": kind.name})


def _info_from_export(meta: dict[str, str], name: str) -> GeneratorInfo:
    if meta.get("format") != EXPORT_FORMAT:
        return GeneratorInfo(arch={}, origin=name)  # a bare state_dict saved as safetensors
    try:
        return GeneratorInfo.from_metadata(meta, name)
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{name}: unreadable gan_style metadata ({e})") from None


def _unpack_torch(obj: object, name: str, direction: str | None, ema: bool) -> tuple[dict, GeneratorInfo]:
    if isinstance(obj, dict) and isinstance(obj.get("models"), dict):  # our training checkpoint
        return _from_training_checkpoint(obj, name, direction, ema)
    if isinstance(obj, dict) and _is_tensor_dict(obj.get("state_dict")):  # {"state_dict": ...} wrappers
        obj = obj["state_dict"]
    if _is_tensor_dict(obj):
        if name.startswith("official:"):
            model = name.removeprefix("official:")
            source, target = official_domains(model)
            return obj, GeneratorInfo(arch={}, origin=name, direction=official_direction(model), source=source,
                                      target=target)
        return obj, GeneratorInfo(arch={}, origin=name)
    raise WeightsError(
        f"{name}: neither a gan_style checkpoint nor a generator state_dict "
        f"(found {type(obj).__name__}{' with keys ' + _few(list(map(str, obj))) if isinstance(obj, dict) else ''})"
    )


def _from_training_checkpoint(ckpt: dict, name: str, direction: str | None, ema: bool) -> tuple[dict, GeneratorInfo]:
    """The generator of ``direction`` that the checkpoint's ``generators`` record names (default:
    its only one, else the run's data.direction, else the dataset's name decides)."""
    try:
        ckpt = upgrade_checkpoint(ckpt)
    except CheckpointError as e:
        raise WeightsError(f"{name}: {e}") from None
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    described = ckpt["generators"]
    if direction is None:
        direction = next(iter(described)) if len(described) == 1 else (
            data.get("direction") or default_direction(dataset_name(data.get("dataset"), data.get("root"))))
    if direction not in described:
        (only,) = described  # a checkpoint without the asked direction holds one generator
        raise OneDirectionError(f"{name}: a {config.get('method', 'one-generator')} checkpoint holds one generator, "
                                f"{only}; it cannot translate {direction} (train another run with "
                                f"data.direction={direction})")
    spec = described[direction]
    key = spec["net"]
    averaged = ckpt.get("ema", {}).get("models", {}) if isinstance(ckpt.get("ema"), dict) else {}
    use_ema = ema and _is_tensor_dict(averaged.get(key))
    state = averaged[key] if use_ema else ckpt["models"].get(key)
    if not _is_tensor_dict(state):
        raise WeightsError(f"{name}: training checkpoint without generator {key} (has {_few(list(ckpt['models']))})")
    info = GeneratorInfo(
        arch=spec.get("arch", {}),
        origin=f"{name} ({key}{', EMA' if use_ema else ''})",
        kind=spec.get("kind", "resnet"),
        trained_at=spec.get("trained_at"),
        direction=direction,
        source=spec["source"],
        target=spec["target"],
        run_name=config.get("name"),
        data_root=data.get("root"),
        source_intensity=spec.get("source_intensity"),
        target_intensity=spec.get("target_intensity"),
    )
    return state, info


def generator_directions(spec: str | Path) -> list[str]:
    """The directions a training checkpoint holds generators for (a generator file: its one direction)."""
    path = resolve_path(spec)
    if _is_safetensors(path):
        return [_info_from_export(_read_safetensors(path)[1], str(path)).direction or "AtoB"]
    obj = load_safe(path)
    if isinstance(obj, dict) and isinstance(obj.get("models"), dict):
        try:
            return list(upgrade_checkpoint(obj)["generators"])
        except CheckpointError as e:
            raise WeightsError(f"{path}: {e}") from None
    return [_unpack_torch(obj, str(path), None, True)[1].direction or "AtoB"]
