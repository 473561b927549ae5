"""Slide normalisation without whole-slide activations: the ``kernel`` and ``thumbnail`` modes.

Exact slide translation (tiling.py's ``Whole`` plan) normalises with each InstanceNorm's
whole-slide statistics, which needs the slide's 1/4-resolution activations kept whole: about
3·ngf bytes of temporary disk per pixel. These modes give tiling.py's ``Local`` plan its norms
instead, so memory and disk do not grow with the slide (beyond small tables):

- ``kernel``: statistics measured on a sample of cells of a grid, exactly there (each norm in
  turn, given the ones before it), with the cells weighted so that the sample matches the whole
  slide's proportions (``calibrate``: the regression estimator's calibration weights). By default
  (``SIGMA`` infinite) every pixel is normalised by them: one set of statistics, as exact's.
  With a finite kernel (URUST's Kernelized Instance Normalization: Ho et al., ECCV 2022, with
  Dense Normalization's per-pixel interpolation, Ho et al., CVPR 2024), a further pass records
  every cell's statistics (``collect``); their deviations from the whole slide's, smoothed over
  neighbouring cells by a Gaussian of ``sigma`` input pixels weighted by the cells' pixel counts
  (``smooth``), are added to the references and interpolated bilinearly between cell centres at
  each pixel: they change smoothly, so no cell border shows as a seam. Local statistics move the
  result away from exact's (docs/science.md measures both), hence the default.
- ``thumbnail``: the slide reduced by area means to at most ``THUMB_SIDE`` px (``thumbnail``) is
  translated exactly; every norm then uses the thumbnail's whole-image statistics on the slide.
  One cheap pass, but a reduced image has less fine detail, so the deeper norms' variances differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .spill import Spill
from .tiling import Input, Local, Node, Norm, Region, Whole, build, channel_moments, check_norm, forget, normalise

CELL = 512  # input pixels: the side of kernel mode's cells (grown for huge slides, see ``cell_size``)
SIGMA = math.inf  # input pixels: the kernel's standard deviation over the cells by default (inf: one set of statistics)
TABLE_BYTES = 256 * 2**20  # the statistics tables' budget: cells grow until they fit
SAMPLE = 32  # cells: the reference statistics' sample (``collect``; 16 missed the 99th-percentile target at 20,000 px)
THUMB_SIDE = 2048  # pixels: the thumbnail's longer side at most
READ_PIXELS = 2**21  # input pixels read at once while reducing the slide to its thumbnail


def cell_size(height: int, width: int, channels: int) -> int:
    """CELL, doubled while the tables (mean and variance per cell of ``channels`` norm channels
    in all, fp32) would take more than TABLE_BYTES (a 60,000 px slide at ngf 64: 1024)."""
    cell = CELL
    while math.ceil(height / cell) * math.ceil(width / cell) * channels * 8 > TABLE_BYTES:
        cell *= 2
    return cell


class Grid:
    """Kernel mode's cells: ``cell`` input pixels square over an input of ``height`` x ``width``
    (multiples of 4), shared by every ``KernelNorm`` of one network. ``at``: the cell the
    collecting pass is in (row, column), None when applying."""

    def __init__(self, height: int, width: int, cell: int, sigma: float = SIGMA) -> None:
        if cell % 4:
            raise ValueError(f"kernel cells of {cell} px: use a multiple of 4")
        if not sigma > 0:
            raise ValueError(f"a kernel of {sigma} px: use a positive width in pixels (inf: none)")
        self.height, self.width, self.cell, self.sigma = height, width, cell, sigma
        self.rows, self.cols = -(-height // cell), -(-width // cell)
        self.at: tuple[int, int] | None = None
        self.norms: list[KernelNorm] = []
        self.references: list[Norm] = []  # the same norms, measured exactly on a sample of cells (``collect``)
        self.sampled: list[tuple[int, int]] = []  # those cells
        self.source: Node | None = None  # the slide (``calibrate`` reads it)
        self.weights: torch.Tensor | None = None  # (len(sampled),) fp64: ``calibrate``'s

    def cells(self) -> Iterator[tuple[int, int]]:
        for gy in range(self.rows):
            for gx in range(self.cols):
                yield gy, gx

    def sample(self, k: int) -> list[tuple[int, int]]:
        """About ``k`` cells spread evenly over the grid (stratified: the middle cell of each stratum)."""
        ny = min(self.rows, max(1, round(math.sqrt(k * self.rows / self.cols))))
        nx = min(self.cols, max(1, k // ny))
        return [(int((i + 0.5) * self.rows / ny), int((j + 0.5) * self.cols / nx)) for i in range(ny) for j in range(nx)]

    def region(self, at: tuple[int, int], node: Node) -> Region:
        """Cell ``at`` in ``node``'s coordinates (its resolution)."""
        c = round(self.cell * node.scale)
        return at[0] * c, min((at[0] + 1) * c, node.height), at[1] * c, min((at[1] + 1) * c, node.width)


class KernelNorm(Node):
    """InstanceNorm2d with statistics that vary smoothly over the image (see the module doc):
    per-cell statistics recorded by the collecting pass, then smoothed and interpolated."""

    fresh = True

    def __init__(self, src: Node, norm: nn.InstanceNorm2d, grid: Grid) -> None:
        check_norm(norm)
        self.inputs, self.norm, self.grid = (src,), norm, grid
        self.channels, self.height, self.width, self.scale = src.channels, src.height, src.width, src.scale
        # Per-cell tables (smoothed by ``smooth``), for a finite kernel only: a 60,000 px slide's take 100s of MB.
        shape = (grid.rows, grid.cols, src.channels) if not math.isinf(grid.sigma) else (0, 0, src.channels)
        self.mean, self.var = torch.zeros(shape), torch.zeros(shape)
        self.raw = (torch.zeros(shape), torch.zeros(shape))
        self.reference: tuple[torch.Tensor, torch.Tensor] | None = None  # (C,) each: normalises the collecting pass
        self.constant = False  # True: the references normalise everywhere (an infinite kernel: no collecting pass)
        self.count = torch.zeros(shape[:2])  # pixels per cell at this resolution
        self.seen = torch.zeros(shape[:2], dtype=torch.bool)
        grid.norms.append(self)

    def pull(self, r: Region) -> torch.Tensor:
        x = self.inputs[0].pull(r).float()  # (1, C, h, w), fp32 as autocast does for instance_norm
        if self.grid.at is not None:
            return self._collect(x, r, self.grid.at)
        if self.constant:
            return normalise(x, *self.reference, self.norm)
        return self._apply(x, r)

    def _collect(self, x: torch.Tensor, r: Region, at: tuple[int, int]) -> torch.Tensor:
        """Normalise the rectangle by the statistics of the cell ``at`` (inside it), recording them."""
        if not self.seen[at]:
            c = self.grid.region(at, self)
            if not (r[0] <= c[0] and c[1] <= r[1] and r[2] <= c[2] and c[3] <= r[3]):
                raise ValueError(f"kernel normalisation: rectangle {r} does not hold cell {c}")
            inside = x[0, :, c[0] - r[0] : c[1] - r[0], c[2] - r[2] : c[3] - r[2]].flatten(1)  # (C, n)
            mean, var = channel_moments(inside)  # as Norm measures
            self.raw[0][at], self.raw[1][at], self.count[at], self.seen[at] = mean.cpu(), var.cpu(), inside.shape[1], True
        if self.reference is None:  # URUST's first pass: the cell's own statistics
            return normalise(x, self.raw[0][at], self.raw[1][at], self.norm)
        return normalise(x, *self.reference, self.norm)

    def smooth(self, sigma: float) -> None:
        """Replace the cells' statistics by their Gaussian-weighted mixtures over the neighbours
        (``sigma`` input pixels), each cell weighted by its pixel count: the moments of the
        pixels under the kernel, as if measured on them together."""
        ky, kx = (_gaussian(n, sigma / self.grid.cell) for n in (self.grid.rows, self.grid.cols))
        n = self.count.double()[..., None]  # (rows, cols, 1)
        mean, var = self.raw[0].double(), self.raw[1].double()

        def blur(t: torch.Tensor) -> torch.Tensor:  # (rows, cols, C) -> the same, smoothed along both axes
            return torch.einsum("ij,jkc,lk->ilc", ky, t, kx)

        total = blur(n)
        m1 = blur(n * mean) / total
        local_var = (blur(n * (var + mean.square())) / total - m1.square()).clamp_(min=0)
        # The whole slide's moments under the same first pass: the kernel's limit as sigma grows.
        w = n / n.sum()
        p1 = (w * mean).sum((0, 1))
        pooled_var = (w * (var + mean.square())).sum((0, 1)) - p1.square()
        ref_mean, ref_var = (t.double() for t in self.reference)
        # Each cell's deviation from the whole slide, carried over to the reference statistics (measured
        # exactly on the sample): what the first pass's references changed cancels in the ratio.
        ratio = (ref_var + self.norm.eps) / (pooled_var.clamp(min=0) + self.norm.eps)
        self.mean = (ref_mean + (m1 - p1) * ratio.sqrt()).float()
        self.var = (ref_var + (local_var - pooled_var) * ratio).clamp_(min=0).float()

    def _apply(self, x: torch.Tensor, r: Region) -> torch.Tensor:
        """Normalise by the smoothed statistics interpolated at each pixel, a band of rows at a time
        (the per-pixel scale and shift maps of one band only: memory stays that of x)."""
        rows, cols = _weights(r[0], r[1], self, vertical=True), _weights(r[2], r[3], self, vertical=False)
        scale = torch.rsqrt(self.var + self.norm.eps)  # (rows, cols, C)
        shift = -self.mean * scale
        if self.norm.affine:
            scale, shift = scale * self.norm.weight.float().cpu(), shift * self.norm.weight.float().cpu()
            shift = shift + self.norm.bias.float().cpu()
        out = torch.empty_like(x)
        band = max(1, 2**22 // max(1, x.shape[1] * x.shape[3]))  # rows of about 4 M values
        for y in range(0, x.shape[2], band):
            a = _interpolate(scale, rows, cols, y, y + band).to(x.device)  # (1, C, band, w)
            b = _interpolate(shift, rows, cols, y, y + band).to(x.device)
            out[..., y : y + band, :] = b.addcmul_(x[..., y : y + band, :], a)
        return out


def _gaussian(n: int, sigma: float) -> torch.Tensor:
    """(n, n) fp64 weights between cells i and j: exp(-(i - j)^2 / 2 sigma^2), cut at 4 sigma."""
    d = torch.arange(n, dtype=torch.float64)
    d = (d[:, None] - d[None, :]).abs()
    if sigma <= 0:
        return (d == 0).double()
    return torch.where(d <= 4 * sigma, torch.exp(-0.5 * (d / sigma) ** 2), torch.zeros(()))


def _weights(start: int, stop: int, node: KernelNorm, vertical: bool) -> tuple[torch.Tensor, ...]:
    """Bilinear weights of pixels start..stop-1 of ``node`` along one axis between cell centres:
    (i0, i1, t) each (stop - start,), value = (1 - t) * cell[i0] + t * cell[i1]; constant past the
    first and last centres."""
    n, size = (node.grid.rows, node.height) if vertical else (node.grid.cols, node.width)
    c = round(node.grid.cell * node.scale)
    centres = torch.tensor([(i * c + min((i + 1) * c, size)) / 2 for i in range(n)], dtype=torch.float64)
    pos = torch.arange(start, stop, dtype=torch.float64) + 0.5
    i1 = torch.searchsorted(centres, pos).clamp_(1, max(n - 1, 1))
    i0 = i1 - 1 if n > 1 else torch.zeros_like(i1)
    i1 = i1 if n > 1 else i0
    span = (centres[i1] - centres[i0]).clamp(min=1e-9)
    t = ((pos - centres[i0]) / span).clamp_(0, 1).float()
    return i0, i1, t


def _interpolate(table: torch.Tensor, rows: tuple, cols: tuple, y0: int, y1: int) -> torch.Tensor:
    """``table`` (rows, cols, C) at pixel rows y0..y1-1 (of ``rows``' pixels) and every pixel of
    ``cols``: (1, C, y1 - y0, w)."""
    i0, i1, ty = (v[y0:y1] for v in rows)
    j0, j1, tx = cols
    along_y = table[i0] * (1 - ty)[:, None, None] + table[i1] * ty[:, None, None]  # (h, cols, C)
    both = along_y[:, j0] * (1 - tx)[None, :, None] + along_y[:, j1] * tx[None, :, None]  # (h, w, C)
    return both.permute(2, 0, 1)[None]


class SampledNorm(Norm):
    """A Norm whose statistics are measured on some cells of a grid only (exactly there, given the
    norms before it: each is measured in turn, recomputing its input from the slide), each cell's
    moments weighted by ``grid.weights`` (``calibrate``; uniform per pixel until then)."""

    def __init__(self, src: Node, norm: nn.InstanceNorm2d, tile: int, grid: Grid, cells: list[tuple[int, int]]) -> None:
        super().__init__(src, norm, tile)
        self.grid, self.cells = grid, cells

    def measured_regions(self) -> Iterator[tuple[Region, float]]:
        weights = self.grid.weights.tolist() if self.grid.weights is not None else [1] * len(self.cells)
        return ((self.grid.region(at, self), w) for at, w in zip(self.cells, weights))


def kernel_plan(layers: list[nn.Module], src: Node, tile: int, block_dtype: torch.dtype | None = None,
                cell: int | None = None, sample: int | None = None, sigma: float | None = None) -> tuple[Local, Grid]:
    """Kernel mode's ``Local`` plan over ``src`` and its grid (``cell``: default ``cell_size``), with
    the reference norms measured on ``sample`` cells (default SAMPLE) and a kernel of ``sigma`` input
    pixels (default SIGMA; see ``collect``)."""
    sigma = SIGMA if sigma is None else sigma
    if cell is None:  # cells grow only to keep a finite kernel's tables small (an infinite one has none)
        cell = cell_size(src.height, src.width, norm_channels(layers)) if not math.isinf(sigma) else CELL
    grid = Grid(src.height, src.width, cell, sigma)
    grid.source, grid.sampled = src, grid.sample(SAMPLE if sample is None else sample)
    cells = grid.sampled
    reference = Local(lambda node, norm: SampledNorm(node, norm, tile, grid, cells))
    build(layers, src, tile, block_dtype, plan=reference)
    grid.references = reference.norms
    return Local(lambda node, norm: KernelNorm(node, norm, grid)), grid


def first_pass_tiles(grid: Grid) -> int:
    """The rectangles ``collect`` pulls: every cell's input (``calibrate``), the sample's for each
    reference norm, then every cell (a finite kernel only)."""
    return sum(len(n.cells) for n in grid.references) + grid.rows * grid.cols * (1 if math.isinf(grid.sigma) else 2)


def descriptors(x: torch.Tensor) -> torch.Tensor:
    """What the calibration matches, of one cell of the input x (1, C, h, w): per channel its mean,
    mean square and mean squared difference between vertical neighbours (texture): (3C,) fp64."""
    x = x[0].double()
    return torch.cat([x.mean((1, 2)), x.square().mean((1, 2)), x.diff(dim=1).square().mean((1, 2))])


def calibration_weights(features: torch.Tensor, counts: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
    """Weights of the sampled cells whose pixel-weighted mean of ``features`` (cells, D) equals the
    whole grid's (``counts``: pixels per cell; ``sampled``: the sample's cell indices), as close to
    uniform as that allows (the regression estimator's calibration weights, Deville & Sarndal 1992),
    then clipped at zero: (len(sampled),) fp64, per pixel, uniform = 1."""
    x = torch.cat([torch.ones(len(features), 1, dtype=torch.float64), features], 1)
    scale = x.abs().amax(0).clamp(min=1e-12)  # columns of one magnitude: a well-conditioned system
    x, n = x / scale, counts.double()
    total = (n[:, None] * x).sum(0) / n.sum()  # the whole grid's mean of each feature
    xs, ns = x[sampled], n[sampled]
    moment = (ns[:, None, None] * xs[:, :, None] * xs[:, None, :]).sum(0) / ns.sum()
    # w_i = 1 + x_i . l, with sum_i n_i w_i x_i / sum_i n_i = total: (moment) l = total - sample mean.
    lam = torch.linalg.lstsq(moment, total - (ns[:, None] * xs).sum(0) / ns.sum()).solution
    return (1 + xs @ lam).clamp_(min=0)


def calibrate(grid: Grid, meter=None) -> None:
    """Read every cell of the slide once for ``descriptors`` and set ``grid.weights`` for the sample:
    a sample of a few cells misses the slide's proportions (of glass and tissue, say) by chance,
    which every deeper norm amplifies; weighted to match the whole slide's descriptors, it measures
    the norms' statistics several times closer to the whole slide's (docs/science.md)."""
    index = {at: i for i, at in enumerate(grid.cells())}
    # Filled in place: a small tensor kept per cell, among each cell's freed megabytes, stops malloc
    # from returning them (resident memory grew by 4 MB a cell on a 20,000 px slide).
    features = torch.empty(len(index), 3 * grid.source.channels, dtype=torch.float64)
    counts = torch.empty(len(index), dtype=torch.float64)
    for i, at in enumerate(grid.cells()):
        r = grid.region(at, grid.source)
        features[i] = descriptors(grid.source.pull(r).float().cpu())
        counts[i] = (r[1] - r[0]) * (r[3] - r[2])
        if meter is not None:
            meter.update(1)
    sampled = torch.tensor([index[at] for at in grid.sampled])
    grid.weights = calibration_weights(features, counts, sampled)


def collect(node: Node, grid: Grid, meter=None, cells=None) -> None:
    """Kernel mode's first pass. The reference norms are measured exactly on the sample of cells
    (each norm in turn, recomputing its input: consistent statistics, as the whole slide's would
    be), weighted to the whole slide's proportions (``calibrate``). With an infinite kernel (the
    default) they serve every pixel. Otherwise ``node`` (the network's output) is pulled over every
    cell, each norm normalising by its reference and recording the cell's statistics; then they
    are smoothed (``grid.sigma`` px) as deviations from the references (``KernelNorm.smooth``).

    URUST normalises the first pass by each cell's own statistics instead; but a deeper norm's
    statistics then describe activations that earlier norms normalised differently from the
    second pass (a cell of glass has its noise raised to unit variance), and mixing them over
    cells gives statistics that fit no cell (docs/science.md measures both)."""
    calibrate(grid, meter)
    for ref, norm in zip(grid.references, grid.norms):
        ref.meter = meter
        norm.reference, norm.constant = ref.statistics(), math.isinf(grid.sigma)
    if math.isinf(grid.sigma):
        return
    try:
        for at in grid.cells() if cells is None else cells:
            grid.at = at
            node.pull(grid.region(at, node))
            if meter is not None:
                meter.update(1)
    finally:
        grid.at = None
        forget(node)  # the Memos hold the last cell's activations, normalised by the references
    for norm in grid.norms:
        norm.smooth(grid.sigma)


def reduction(height: int, width: int, side: int | None = None) -> int:
    """The thumbnail's factor: the smallest that brings the longer side to ``side`` px at most (default THUMB_SIDE)."""
    return max(1, math.ceil(max(height, width) / (THUMB_SIDE if side is None else side)))


def thumbnail_shape(height: int, width: int, side: int | None = None) -> tuple[int, int]:
    """The (h, w) of ``thumbnail`` for an input of ``height`` x ``width``."""
    f = reduction(height, width, side)
    return -(-height // f) // 4 * 4, -(-width // f) // 4 * 4


def thumbnail(src: Node, side: int | None = None) -> torch.Tensor:
    """``src`` (the slide's input node) reduced by area means of f x f pixels (``reduction``),
    cropped to multiples of 4 (a valid generator input): (1, C, h, w) on the CPU, as
    ``thumbnail_shape`` says. Read in rectangles of about READ_PIXELS."""
    f = reduction(src.height, src.width, side)
    step_y = f * max(1, round(math.sqrt(READ_PIXELS) / f))
    step_x = f * max(1, READ_PIXELS // step_y // f)
    rows = []
    for y in range(0, src.height, step_y):
        blocks = [F.avg_pool2d(src.pull((y, min(y + step_y, src.height), x, min(x + step_x, src.width))).float().cpu(),
                               f, ceil_mode=True) for x in range(0, src.width, step_x)]
        rows.append(torch.cat(blocks, dim=3))
    small = torch.cat(rows, dim=2)
    h, w = small.shape[2] // 4 * 4, small.shape[3] // 4 * 4
    if min(h, w) < 8:
        raise ValueError(f"a {src.height} x {src.width} px slide reduced {f}x is too small for a thumbnail pass")
    return small[..., :h, :w]


def thumbnail_plan(layers: list[nn.Module], src: Node, tile: int, block_dtype: torch.dtype | None,
                   spill: Spill | None, device: torch.device, side: int | None = None) -> Local:
    """Thumbnail mode's ``Local`` plan: the thumbnail of ``src`` translated exactly (whole-image
    statistics, caches spilled past ``spill``), each slide norm given its norm's statistics there."""
    whole = Whole(tile, spill)
    build(layers, Input(thumbnail(src, side), device), tile, block_dtype, plan=whole)
    stats = iter([norm.statistics() for norm in whole.norms])  # in the network's order
    whole.release()  # the thumbnail's caches: their disk now, not at the end
    return Local(lambda node, norm: Norm(node, norm, tile, stats=next(stats)))


def norm_channels(layers: list[nn.Module]) -> int:
    """The channels of all InstanceNorms of ``layers`` together (kernel mode's table width)."""
    return sum(m.num_features for layer in layers for m in layer.modules() if isinstance(m, nn.InstanceNorm2d))
