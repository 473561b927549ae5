"""Unpaired training data: the dataset layout, augmentation and a resumable, shardable sampler.

Layout (the reference's): ``<root>/trainA``, ``<root>/trainB`` (and ``testA``, ``testB`` for
samples and translation). For monet2photo, A = Monet paintings, B = photos.

Randomness is derived, never drawn from global state: the sampler yields
``(index_A, index_B, sample_seed)`` and each sample's augmentation is seeded by its position in
the epoch. So data order and augmentation are identical with 0 or 8 workers, after a resume in
the middle of an epoch, and across a change in the number of GPUs for A.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..io.images import ImageReadError, list_images, read_rgb

logger = logging.getLogger(__name__)

LAYOUT_HELP = "expected <root>/trainA and <root>/trainB folders of images (see data/README.md)"


class DataError(ValueError):
    """A dataset problem, reported in one line naming the folder."""


def find_images(folder: Path) -> list[Path]:
    """The images of one domain folder; a clear error if it is missing or empty."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist: {LAYOUT_HELP}")
    paths = list_images(folder)
    if not paths:
        raise DataError(f"image folder {folder} holds no images (.jpg, .png, ...): {LAYOUT_HELP}")
    return paths


def build_transform(preprocess: str, load_size: int, crop_size: int, flip: bool, float_data: bool = False) -> A.Compose:
    """Albumentations pipeline: HWC uint8 RGB array -> (3, crop, crop) float tensor in [-1, 1].

    ``float_data``: the input is float32 (H, W, C) already in [-1, 1] (scientific data, see
    scans.py): no scaling, and linear resizing, as cubic would overshoot the window at sharp
    edges (bone next to air).
    """
    reflect = cv2.BORDER_REFLECT_101
    interpolation = cv2.INTER_LINEAR if float_data else cv2.INTER_CUBIC
    steps: list = []
    if preprocess == "resize_and_crop":
        steps.append(A.Resize(load_size, load_size, interpolation=interpolation))
    elif preprocess == "scale_shortside_and_crop":
        steps.append(A.SmallestMaxSize(max_size=load_size, interpolation=interpolation))
    if preprocess == "none":
        # Keep the image's size, padded to a multiple of 4 for the generator's down/upsampling.
        steps.append(A.PadIfNeeded(None, None, pad_height_divisor=4, pad_width_divisor=4, border_mode=reflect))
    else:
        # Images smaller than the crop are padded by reflection rather than failing.
        steps += [A.PadIfNeeded(crop_size, crop_size, border_mode=reflect), A.RandomCrop(crop_size, crop_size)]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if not float_data:
        steps.append(A.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), max_pixel_value=255.0))
    steps.append(ToTensorV2())
    return A.Compose(steps, seed=0)


def build_eval_transform(size: int) -> A.Compose:
    """Deterministic: resize to ``size`` x ``size``, scale to [-1, 1]. For sample panels."""
    return build_transform("resize_and_crop", size, size, flip=False)


class UnpairedDataset(Dataset):
    """Items are dicts {'A': (3,H,W), 'B': (3,H,W), 'A_path', 'B_path', 'skipped'}.

    Indexed by the ``(index_A, index_B, sample_seed)`` triples of ``UnpairedSampler``. A file
    that cannot be read is skipped (the next file of that domain is used instead) and named in
    'skipped', so the training loop can warn once and count; the run does not die.
    """

    def __init__(self, root: str | Path, transform: A.Compose, max_size: int | None = None, split: str = "train"):
        root = Path(root)
        self.paths = {d: find_images(root / f"{split}{d}")[:max_size] for d in "AB"}
        self.transform = transform
        self._bad: set[Path] = set()  # per worker process: files already known to be unreadable

    def __len__(self) -> int:
        return max(len(paths) for paths in self.paths.values())

    def _read(self, domain: str, index: int, skipped: list[str]) -> tuple[np.ndarray, Path]:
        paths = self.paths[domain]
        for offset in range(len(paths)):
            path = paths[(index + offset) % len(paths)]
            if path in self._bad:
                continue
            try:
                return self._decode(domain, path), path
            except ImageReadError as e:
                self._bad.add(path)
                skipped.append(str(e))
        raise DataError(f"no image in {paths[0].parent} can be read: {LAYOUT_HELP}")

    def _decode(self, domain: str, path: Path) -> np.ndarray:
        """One file as the transform's input: (H, W, 3) uint8 RGB here; ImageReadError if unusable."""
        return np.asarray(read_rgb(path))

    def model_image(self, domain: str, item) -> np.ndarray:
        """One file in the networks' units, before augmentation: (H, W, C) float32 in [-1, 1]."""
        x = self._decode(domain, item)
        return x.astype(np.float32) / 127.5 - 1.0 if x.dtype == np.uint8 else x

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        index_a, index_b, seed = key
        skipped: list[str] = []
        out = {}
        # zip: a dataset of one folder (PhotoDataset) uses the first index only.
        for (domain, index), offset in zip(zip(self.paths, (index_a, index_b)), (0, 1)):
            image, path = self._read(domain, index, skipped)
            # Seeded per sample (not per worker): the same augmentation whatever the worker count.
            self.transform.set_random_seed(seed * 2 + offset)
            out[domain] = self.transform(image=image)["image"]
            out[f"{domain}_path"] = str(path)
        out["skipped"] = "\n".join(skipped)
        out["seed"] = seed  # the sample's own randomness (loss-conditional strengths, UNSB's noise) follows it
        return out


class PhotoDataset(UnpairedDataset):
    """One folder of photos: items {'photo': (3,H,W), 'photo_path', 'skipped'}, indexed like
    ``UnpairedDataset`` (by ``UnpairedSampler(n, 1, ...)``; the second index is unused)."""

    def __init__(self, folder: str | Path, transform: A.Compose, max_size: int | None = None):
        self.paths = {"photo": find_images(Path(folder))[:max_size]}
        self.transform = transform
        self._bad = set()


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGINT and SIGTERM.

    A terminal's Ctrl-C, ``timeout`` and cluster schedulers signal the whole process group. The
    main process then finishes its step and saves; a worker killed by the same signal would make
    the loader raise first, and nothing would be saved. The main process still shuts the workers
    down when it exits, and they exit by themselves if it dies.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class UnpairedSampler(Sampler):
    """One epoch = max(|A|, |B|) samples: A shuffled (and sharded over ranks by PyTorch's
    ``DistributedSampler``), B drawn at random per rank, so the pairs are unpaired.

    B's generator is seeded with ``seed * world_size + rank`` (and the epoch); each sample's
    augmentation seed comes from its global position in the epoch. ``set_epoch`` must be
    called every epoch; ``start`` skips the first samples of this rank (mid-epoch resume).
    """

    def __init__(self, n_a: int, n_b: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n_a, self.n_b, self.seed = n_a, n_b, seed
        self.rank, self.world_size = rank, world_size
        self.length = max(n_a, n_b)
        # drop_last keeps every rank at the same number of steps (DDP needs that).
        self.shard = DistributedSampler(
            range(self.length), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start
        self.shard.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.shard) - self.start

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        positions = list(self.shard)  # global positions in the shuffled epoch, this rank's share
        g = torch.Generator().manual_seed((self.seed * self.world_size + self.rank) * 1_000_003 + self.epoch)
        b_indices = torch.randint(self.n_b, (len(positions),), generator=g).tolist()
        for i in range(self.start, len(positions)):
            pos = positions[i]
            sample_seed = ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + pos) % (2**31)
            yield pos % self.n_a, b_indices[i], sample_seed


def load_fixed_images(folder: Path, n: int, size: int) -> torch.Tensor:
    """The first ``n`` readable images of ``folder`` as a (n, 3, size, size) tensor in [-1, 1]."""
    transform = build_eval_transform(size)
    images = []
    for path in list_images(folder):
        if len(images) == n:
            break
        try:
            images.append(transform(image=np.asarray(read_rgb(path)))["image"])
        except ImageReadError as e:
            logger.warning("%s", e)
    return torch.stack(images) if images else torch.empty(0, 3, size, size)
