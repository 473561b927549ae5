"""Caches spilled to disk (inference/spill.py): any rectangle written or read gives the values an
in-memory tensor would, and a released cache leaves no file behind."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_style.inference.spill import STRIP, DiskTensor


@pytest.mark.parametrize("width", [4 * STRIP, 3 * STRIP + 5])
def test_rectangles_read_back_what_an_in_memory_tensor_holds(tmp_path, width):
    rng = np.random.default_rng(0)
    shape = (1, 3, 37, width)
    disk, ref = DiskTensor(shape, tmp_path), torch.zeros(shape)
    # Tile-aligned writes (whole strips) and unaligned ones (a strip read, changed and written back).
    writes = [(0, 20, 0, 2 * STRIP), (20, 37, 0, width), (5, 9, 7, width - 3), (0, 37, STRIP + 1, STRIP + 2)]
    for y0, y1, x0, x1 in writes:
        value = torch.from_numpy(rng.standard_normal((1, 3, y1 - y0, x1 - x0)).astype(np.float32))
        disk[..., y0:y1, x0:x1] = value
        ref[..., y0:y1, x0:x1] = value
    for _ in range(30):
        y0, x0 = int(rng.integers(0, 36)), int(rng.integers(0, width - 1))
        y1, x1 = int(rng.integers(y0 + 1, 38)), int(rng.integers(x0 + 1, width + 1))
        got = disk[..., y0:y1, x0:x1]
        assert got.shape == (1, 3, y1 - y0, x1 - x0)
        assert torch.equal(got, ref[..., y0:y1, x0:x1]), (y0, y1, x0, x1)
    assert torch.equal(disk[..., 0:37, 0:width], ref)
    disk.release()
    assert list(tmp_path.iterdir()) == []


def test_a_cache_keeps_its_dtype_so_bf16_takes_half_the_disk(tmp_path):
    value = torch.randn(1, 2, 4, 2 * STRIP)
    files = {}
    for dtype in (torch.float32, torch.bfloat16):
        disk = DiskTensor((1, 2, 4, 2 * STRIP), tmp_path, dtype)
        disk[..., 0:4, 0 : 2 * STRIP] = value.to(dtype)
        got = disk[..., 0:4, 3 : 2 * STRIP]
        assert got.dtype == dtype and torch.equal(got, value.to(dtype)[..., 3:])
        files[dtype] = Path(disk.path).stat().st_size
    assert files[torch.bfloat16] * 2 == files[torch.float32]
