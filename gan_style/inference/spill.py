"""Whole-image activations kept in a file on disk instead of memory (tiling.py's caches past a limit).

A 16,384 px scan's 1/4-resolution activations of 32 channels take 2.1 GB each and a gigapixel
slide's far more: past ``Spill.limit`` a cache is a ``DiskTensor``, written and read a rectangle at
a time with ``pread``/``pwrite`` into ordinary memory. The file is cut into vertical strips
``STRIP`` px wide, each stored rows outermost, (H, C, STRIP): any rectangle is one contiguous read
per strip it crosses, so a 256 px tile with its 1 px halo reads about 1.1 times its bytes. (The zarr
arrays used before read whole tile-sized chunks, 3 to 9 times the bytes, through an event loop in a
second thread: 13 of a 4,096 px plane's 28 s.) Nothing is mapped, so the page cache holding the
file does not count in the process's resident memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

STRIP = 16  # px at the activation's own resolution; a multiple of every tile's width there


@dataclass(frozen=True)
class Spill:
    """Caches larger than ``limit`` bytes go to files in ``folder`` (disk), not memory: gigapixel
    slides (slide.py) and large scans then translate in bounded memory, exactly as in memory."""

    limit: int
    folder: Path


class DiskTensor:
    """A whole-image activation (1, C, H, W) on disk in ``dtype`` (the one it would have in memory:
    bf16 inside bf16 blocks, half the bytes), written and read by rectangle as ``t[..., y0:y1, x0:x1]``;
    reads come back as (1, C, h, w) CPU tensors of that dtype."""

    def __init__(self, shape: tuple[int, ...], folder: Path, dtype: torch.dtype = torch.float32) -> None:
        _, self.channels, self.height, self.width = shape
        self.dtype, self.itemsize = dtype, torch.empty((), dtype=dtype).element_size()
        self.strips = -(-self.width // STRIP)
        fd, self.path = tempfile.mkstemp(prefix="cache-", suffix=".raw", dir=folder)
        self.fd: int | None = fd
        os.ftruncate(fd, self._offset(self.strips, 0))  # sparse until written

    def release(self) -> None:
        """Delete the file now (a 40,000 px slide's caches take gigabytes each)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            Path(self.path).unlink(missing_ok=True)

    def __del__(self) -> None:
        self.release()

    def _offset(self, strip: int, row: int) -> int:
        return (strip * self.height + row) * self.channels * STRIP * self.itemsize

    def _io(self, call, block: torch.Tensor, strip: int, row: int) -> None:
        """pread or pwrite one block (h, C, STRIP) of ``strip`` from ``row`` down, all of it."""
        raw = block.view(torch.uint8).numpy()  # the block's bytes (numpy has no bfloat16)
        if call(self.fd, [raw], self._offset(strip, row)) != raw.nbytes:
            raise OSError(f"{self.path}: a spilled cache was cut short (disk full, or its folder removed?)")

    def _strip_rows(self, strip: int, y0: int, y1: int) -> torch.Tensor:
        """Rows y0:y1 of one strip: (y1-y0, C, STRIP)."""
        block = torch.empty((y1 - y0, self.channels, STRIP), dtype=self.dtype)
        self._io(os.preadv, block, strip, y0)
        return block

    def _span(self, index: tuple) -> tuple[int, int, int, int]:
        rows, cols = index[-2:]
        (y0, y1, _), (x0, x1, _) = rows.indices(self.height), cols.indices(self.width)
        return y0, y1, x0, x1

    @staticmethod
    def _strips(x0: int, x1: int) -> Iterator[tuple[int, int, int]]:
        """Each strip that columns [x0, x1) cross, with its columns inside them: (strip, a, b)."""
        for s in range(x0 // STRIP, -(-x1 // STRIP)):
            yield s, max(x0, s * STRIP), min(x1, (s + 1) * STRIP)

    def __getitem__(self, index: tuple) -> torch.Tensor:
        y0, y1, x0, x1 = self._span(index)
        out = torch.empty((1, self.channels, y1 - y0, x1 - x0), dtype=self.dtype)
        for s, a, b in self._strips(x0, x1):
            block = self._strip_rows(s, y0, y1)  # (h, C, STRIP)
            out[0, :, :, a - x0 : b - x0] = block[:, :, a - s * STRIP : b - s * STRIP].permute(1, 0, 2)
        return out

    def __setitem__(self, index: tuple, value: torch.Tensor) -> None:
        y0, y1, x0, x1 = self._span(index)
        v = value.to("cpu", self.dtype)[0]  # (C, h, w)
        for s, a, b in self._strips(x0, x1):
            whole = a == s * STRIP and b == min((s + 1) * STRIP, self.width)
            block = torch.zeros((y1 - y0, self.channels, STRIP), dtype=self.dtype) if whole else self._strip_rows(s, y0, y1)
            block[:, :, a - s * STRIP : b - s * STRIP] = v[:, :, a - x0 : b - x0].permute(1, 0, 2)
            self._io(os.pwritev, block, s, y0)
