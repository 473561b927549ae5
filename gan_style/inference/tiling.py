"""Translate an image of any size tile by tile, giving the same result as translating it whole.

Naive tiling of a CycleGAN generator shows seams for two reasons: InstanceNorm normalises each
tile by its own statistics (tiles differ in colour and contrast), and pixels near a tile's edge
see padding instead of their true neighbours. Blending overlapping tiles only hides this.

Here the generator is run *layer by layer over the whole image*, one tile at a time:

- every layer is a lazy ``Node`` that computes any rectangle of its output on demand, pulling
  exactly the rectangle of its input it needs (a convolution's halo; reflection padding mirrored
  at the image border, not at the tile border; zero padding only at the image border);
- an InstanceNorm first streams its whole input tile by tile to get the whole-image per-channel
  mean and variance, then normalises any rectangle with them;
- CUT's antialiased blur layers are a padding (reflection down, replication up, both only at the
  image border) followed by a fixed depthwise (transposed) convolution and, for upsampling, an
  exact crop: the same nodes serve them;
- activations at 1/4 resolution (the input of each norm there, and each residual block's
  output) are kept whole between stages, on the GPU while they take under 1/8 of its free
  memory, else in host memory; full- and half-resolution layers are cheap and recomputed.

So tiles overlap only by their convolution halos, nothing is blended, and the output equals the
untiled one up to float rounding. Memory: the tile's activations, plus at most three whole
1/4-resolution activations of 4 ngf channels, i.e. 3 x 4 ngf / 16 values per input pixel
(about 190 bytes per pixel in fp32 for ngf 64: 2.3 GB for 4000 x 3000, where an untiled pass
needs several full-resolution 64-channel activations, 3 GB each). The arithmetic is about 12%
more than one untiled pass (the stem and the upsampling layers run 2-3 times).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import BlurDownsample, BlurUpsample, ChannelAffine, Residual, Skip
from .spill import DiskTensor, Spill

Region = tuple[int, int, int, int]  # y0, y1, x0, x1 (end exclusive)


class Node:
    """A layer's output over the whole image, computed one rectangle at a time."""

    channels: int
    height: int
    width: int
    scale: float  # resolution relative to the input image (1, 1/2, 1/4 ...)
    inputs: tuple[Node, ...] = ()

    fresh = False  # pull returns a new tensor that nothing else holds: in-place operations on it are safe
    meter = None  # Norm and Cache: an object with update(n) (a tqdm bar) told of each rectangle of their whole-image pass

    def pull(self, region: Region) -> torch.Tensor:
        """The output inside ``region`` (within [0, height) x [0, width)): (1, C, y1-y0, x1-x0)."""
        raise NotImplementedError

    def tick(self) -> None:
        if self.meter is not None:
            self.meter.update(1)


def regions(node: Node, tile: int) -> Iterator[Region]:
    """Tiles covering ``node``'s output, each about ``tile`` input pixels wide at its resolution."""
    step = max(4, round(tile * node.scale))
    for y in range(0, node.height, step):
        for x in range(0, node.width, step):
            yield y, min(y + step, node.height), x, min(x + step, node.width)


class Input(Node):
    def __init__(self, x: torch.Tensor, device: torch.device) -> None:  # x (1, C, H, W) on the CPU
        self.x, self.device = x, device
        self.channels, self.height, self.width = x.shape[1:]
        self.scale = 1.0

    def pull(self, r: Region) -> torch.Tensor:
        return self.x[..., r[0] : r[1], r[2] : r[3]].to(self.device, non_blocking=True)


def _reflect_span(r0: int, r1: int, pad: int, n: int) -> tuple[int, int, int, int, int]:
    """For output rows [r0, r1) of a reflection pad by ``pad`` of ``n`` rows: the source rows
    [a, b) to fetch, how many rows to mirror before and after them, and where to crop."""
    s0, s1 = r0 - pad, r1 - pad  # wanted source rows; <0 or >=n are mirrored
    before, after = max(0, -s0), max(0, s1 - n)
    a, b = max(s0, 0), min(s1, n)
    if before:
        b = max(b, before + 1)  # mirroring k rows at the top needs rows 1..k
    if after:
        a = min(a, n - 1 - after)  # and at the bottom rows n-1-k..n-2
    return a, b, before, after, s0 - (a - before)


class ReflectPad(Node):
    def __init__(self, src: Node, pad: tuple[int, int, int, int]) -> None:  # (left, right, top, bottom)
        if pad[0] >= src.width or pad[1] >= src.width or pad[2] >= src.height or pad[3] >= src.height:
            raise ValueError(f"reflection padding {pad} needs an input larger than {src.height}x{src.width}")
        self.inputs, self.pad = (src,), pad
        self.channels, self.scale = src.channels, src.scale
        self.height, self.width = src.height + pad[2] + pad[3], src.width + pad[0] + pad[1]

    def pull(self, r: Region) -> torch.Tensor:
        src = self.inputs[0]
        y0, y1, top, bottom, cy = _reflect_span(r[0], r[1], self.pad[2], src.height)
        x0, x1, left, right, cx = _reflect_span(r[2], r[3], self.pad[0], src.width)
        x = src.pull((y0, y1, x0, x1))
        if top or bottom or left or right:  # the region reaches the image border: mirror there
            x = F.pad(x, (left, right, top, bottom), mode="reflect")
        return x[..., cy : cy + r[1] - r[0], cx : cx + r[3] - r[2]]


class ReplicatePad(Node):
    """Replication padding: rows outside the image repeat its first or last row (BlurUpsample)."""

    def __init__(self, src: Node, pad: tuple[int, int, int, int]) -> None:  # (left, right, top, bottom)
        self.inputs, self.pad = (src,), pad
        self.channels, self.scale = src.channels, src.scale
        self.height, self.width = src.height + pad[2] + pad[3], src.width + pad[0] + pad[1]

    @staticmethod
    def _span(r0: int, r1: int, pad: int, n: int) -> tuple[int, int, int, int, int]:
        s0, s1 = r0 - pad, r1 - pad  # wanted source rows; outside [0, n) they repeat the edge row
        a, b = min(max(s0, 0), n - 1), max(min(s1, n), 1)
        b = max(b, a + 1)
        before, after = max(0, a - s0), max(0, s1 - b)
        return a, b, before, after, s0 - (a - before)

    def pull(self, r: Region) -> torch.Tensor:
        y0, y1, top, bottom, cy = self._span(r[0], r[1], self.pad[2], self.inputs[0].height)
        x0, x1, left, right, cx = self._span(r[2], r[3], self.pad[0], self.inputs[0].width)
        x = self.inputs[0].pull((y0, y1, x0, x1))
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), mode="replicate")
        return x[..., cy : cy + r[1] - r[0], cx : cx + r[3] - r[2]]


class Crop(Node):
    """Rows and columns [start, start + size) of its input (BlurUpsample's exact 2x crop)."""

    def __init__(self, src: Node, start: int, height: int, width: int) -> None:
        self.inputs, self.start = (src,), start
        self.channels, self.height, self.width, self.scale = src.channels, height, width, src.scale

    def pull(self, r: Region) -> torch.Tensor:
        o = self.start
        return self.inputs[0].pull((r[0] + o, r[1] + o, r[2] + o, r[3] + o))


class Conv(Node):
    """A convolution with zero padding: the padding exists only at the image border.

    ``weight`` (C_out, C_in / groups, k, k): an nn.Conv2d's (see ``of``) or a fixed blur filter.
    ``dtype``: compute this convolution alone under autocast to it (bf16-blocks precision).
    """

    def __init__(self, src: Node, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int,
                 groups: int = 1, dtype: torch.dtype | None = None) -> None:
        self.inputs, self.weight, self.bias, self.groups, self.dtype = (src,), weight, bias, groups, dtype
        self.k, self.s, self.p = weight.shape[-1], stride, padding
        self.channels, self.scale = weight.shape[0], src.scale / self.s
        self.height, self.width = ((n + 2 * self.p - self.k) // self.s + 1 for n in (src.height, src.width))

    @classmethod
    def of(cls, src: Node, conv: nn.Conv2d, dtype: torch.dtype | None = None) -> Conv:
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"tiling does not support {conv}")
        (k, kw), (s, sw), (p, pw) = conv.kernel_size, conv.stride, conv.padding
        if (kw, sw, pw) != (k, s, p):
            raise ValueError(f"tiling needs square kernels, strides and padding: {conv}")
        return cls(src, conv.weight, conv.bias, s, p, dtype=dtype)

    def pull(self, r: Region) -> torch.Tensor:
        src, k, s, p = self.inputs[0], self.k, self.s, self.p
        want = (r[0] * s - p, (r[1] - 1) * s - p + k, r[2] * s - p, (r[3] - 1) * s - p + k)  # input rows, cols
        have = (max(want[0], 0), min(want[1], src.height), max(want[2], 0), min(want[3], src.width))
        x = src.pull(have)
        pad = (have[2] - want[2], want[3] - have[3], have[0] - want[0], want[1] - have[1])
        if any(pad):  # only at the image border
            x = F.pad(x, pad)
        weight = self.weight.to(x.dtype) if self.groups > 1 else self.weight  # a blur buffer follows x
        if self.dtype is None:
            return F.conv2d(x, weight, self.bias, stride=s, groups=self.groups)
        with torch.autocast(x.device.type, dtype=self.dtype):
            return F.conv2d(x, weight, self.bias, stride=s, groups=self.groups)


class ConvTranspose(Node):
    """A transposed convolution: output rows [o0, o1) receive from the input rows whose kernels reach them.

    ``weight`` (C_in, C_out / groups, k, k): an nn.ConvTranspose2d's (see ``of``) or a fixed blur filter.
    """

    def __init__(self, src: Node, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int,
                 output_padding: int = 0, groups: int = 1) -> None:
        self.inputs, self.weight, self.bias, self.groups = (src,), weight, bias, groups
        self.k, self.s, self.p = weight.shape[-1], stride, padding
        self.channels, self.scale = weight.shape[1] * groups, src.scale * self.s
        self.height, self.width = ((n - 1) * self.s - 2 * self.p + self.k + output_padding
                                   for n in (src.height, src.width))

    @classmethod
    def of(cls, src: Node, conv: nn.ConvTranspose2d) -> ConvTranspose:
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError(f"tiling does not support {conv}")
        return cls(src, conv.weight, conv.bias, conv.stride[0], conv.padding[0], conv.output_padding[0])

    def _span(self, o0: int, o1: int, n: int) -> tuple[int, int, int, int]:
        # In "full" coordinates f = o + p, input i covers [i*s, i*s + k).
        f0, f1 = o0 + self.p, o1 + self.p
        i0, i1 = max(-((self.k - 1 - f0) // self.s), 0), min((f1 - 1) // self.s + 1, n)
        return i0, i1, f0 - i0 * self.s, f1 - i0 * self.s  # input span; output crop in its result

    def pull(self, r: Region) -> torch.Tensor:
        src = self.inputs[0]
        y0, y1, cy0, cy1 = self._span(r[0], r[1], src.height)
        x0, x1, cx0, cx1 = self._span(r[2], r[3], src.width)
        x, w, b, g = src.pull((y0, y1, x0, x1)), self.weight, self.bias, self.groups
        w = w.to(x.dtype) if g > 1 else w  # a blur buffer follows the activations' dtype, as BlurUpsample does
        h, wd = (y1 - y0 - 1) * self.s + self.k, (x1 - x0 - 1) * self.s + self.k  # the result's size
        if cy1 <= h and cx1 <= wd:
            return F.conv_transpose2d(x, w, b, stride=self.s, groups=g)[..., cy0:cy1, cx0:cx1]
        # Rows/cols past the last input's reach (output_padding) hold only the bias.
        y = F.conv_transpose2d(x, w, None, stride=self.s, groups=g)
        y = F.pad(y, (0, max(cx1 - wd, 0), 0, max(cy1 - h, 0)))[..., cy0:cy1, cx0:cx1]
        return y if b is None else y + b.view(1, -1, 1, 1).to(y.dtype)


class Pointwise(Node):
    def __init__(self, src: Node, fn) -> None:
        self.inputs, self.fn = (src,), fn
        self.channels, self.height, self.width, self.scale = src.channels, src.height, src.width, src.scale

    def pull(self, r: Region) -> torch.Tensor:
        return self.fn(self.inputs[0].pull(r))


class Add(Node):
    """a + b: a residual block's skip (a) and body (b)."""

    def __init__(self, a: Node, b: Node) -> None:
        self.inputs = (a, b)
        self.channels, self.height, self.width, self.scale = a.channels, a.height, a.width, a.scale

    def pull(self, r: Region) -> torch.Tensor:
        # The body first: it asks the block's input for the larger rectangle (its convolutions' halo),
        # so a Memo on that input serves the skip's smaller one without recomputing it.
        body = self.inputs[1].pull(r).float()
        return self.inputs[0].pull(r).float() + body


class Memo(Node):
    """Its input's last rectangle, kept for one more pull inside it: a residual block's input is
    pulled twice (body, then skip) where no whole-image Cache holds it (``Local`` plans)."""

    def __init__(self, src: Node) -> None:
        self.inputs = (src,)
        self.channels, self.height, self.width, self.scale = src.channels, src.height, src.width, src.scale
        self.kept: tuple[Region, torch.Tensor] | None = None

    def pull(self, r: Region) -> torch.Tensor:
        if self.kept is not None:
            (y0, y1, x0, x1), x = self.kept
            if y0 <= r[0] and r[1] <= y1 and x0 <= r[2] and r[3] <= x1:
                self.kept = None  # served its one reuse: free it before the next rectangle
                return x[..., r[0] - y0 : r[1] - y0, r[2] - x0 : r[3] - x0]
        x = self.inputs[0].pull(r)
        self.kept = (r, x)
        return x


def upstream(node: Node) -> Iterator[Node]:
    """``node`` and every node it reads from, each once."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen.add(id(n))
            yield n
            stack.extend(n.inputs)


def forget(node: Node) -> None:
    """Drop every Memo's kept rectangle upstream of ``node``: after a pass whose norms normalised
    differently (kernel mode's first pass), a kept rectangle would serve stale values."""
    for n in upstream(node):
        if isinstance(n, Memo):
            n.kept = None


def check_norm(norm: nn.InstanceNorm2d) -> None:
    if norm.track_running_stats:
        raise ValueError("tiling does not support InstanceNorm2d with running statistics")


def channel_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance of x (C, n), (C,) each."""
    # Two passes (mean, then squared deviations): exact enough and ~3x faster than var_mean here.
    mean = x.mean(1)
    return mean, (x - mean[:, None]).square_().mean(1)


def normalise(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, norm: nn.InstanceNorm2d) -> torch.Tensor:
    """x (1, C, h, w) fp32 normalised by per-channel ``mean`` and ``var`` (C,), then ``norm``'s affine."""
    # batch_norm in eval mode is exactly (x - mean) / sqrt(var + eps) [* weight + bias], in one fused pass.
    return F.batch_norm(x, mean.to(x.device), var.to(x.device), norm.weight if norm.affine else None,
                        norm.bias if norm.affine else None, False, 0.0, norm.eps)


class Norm(Node):
    """InstanceNorm2d with whole-image statistics, measured by streaming the input once, or
    given (``stats``: per-channel mean and variance, (C,) each, e.g. from a thumbnail)."""

    fresh = True

    def __init__(self, src: Node, norm: nn.InstanceNorm2d, tile: int,
                 stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        check_norm(norm)
        self.inputs, self.norm, self.tile = (src,), norm, tile
        self.channels, self.height, self.width, self.scale = src.channels, src.height, src.width, src.scale
        self.stats = stats

    def measured_regions(self) -> Iterator[tuple[Region, float]]:
        """Where the statistics are measured, each rectangle with its weight per pixel: the whole
        image, 1 each (a subclass may sample and weight it)."""
        return ((r, 1) for r in regions(self, self.tile))

    def _measure(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Per-channel mean and variance merged over tiles (Chan et al.'s parallel update, fp64),
        # each tile counted as its pixels times its weight.
        n, mean, m2 = 0, 0.0, 0.0
        for r, weight in self.measured_regions():
            if weight == 0:  # a sampled cell weighted out (slide_norm.calibrate): nothing to measure
                self.tick()
                continue
            mean_t, var_t = channel_moments(self.inputs[0].pull(r).float()[0].flatten(1))
            var_b, mean_b = var_t.double().cpu(), mean_t.double().cpu()
            self.tick()
            n_b = weight * (r[1] - r[0]) * (r[3] - r[2])
            delta, total = mean_b - mean, n + n_b
            mean, m2, n = mean + delta * n_b / total, m2 + var_b * n_b + delta**2 * n * n_b / total, total
        return mean.float(), (m2 / n).float()

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole-image per-channel mean and variance, (C,) fp32 each (measured on first use)."""
        if self.stats is None:
            self.stats = self._measure()
        return self.stats

    def pull(self, r: Region) -> torch.Tensor:
        mean, var = self.statistics()
        x = self.inputs[0].pull(r).float()  # in fp32, as autocast does for instance_norm
        return normalise(x, mean, var, self.norm)


class Cache(Node):
    """Materialises its input over the whole image in host memory on first use.

    A cache is released as soon as every cache downstream that reads it has been filled, so
    only a few whole-image activations are alive at any time.
    """

    def __init__(self, src: Node, tile: int, spill: Spill | None = None) -> None:
        self.inputs, self.tile, self.spill = (src,), tile, spill
        self.channels, self.height, self.width, self.scale = src.channels, src.height, src.width, src.scale
        self.data: torch.Tensor | DiskTensor | None = None
        self.device: torch.device | None = None
        self.readers: set[int] = set()  # ids of the downstream caches not yet filled
        self.sources = _nearest_caches(src)
        for up in self.sources:
            up.readers.add(id(self))

    def fill(self) -> torch.Tensor:
        if self.data is None:
            for r in regions(self, self.tile):
                y = self.inputs[0].pull(r)
                if self.data is None:
                    self.device = y.device
                    shape = (1, self.channels, self.height, self.width)
                    self.data = _allocate(shape, y, self.spill)
                self.data[..., r[0] : r[1], r[2] : r[3]] = y
                self.tick()
            for up in self.sources:
                up.readers.discard(id(self))
                if not up.readers:  # nothing downstream needs it any more
                    if isinstance(up.data, DiskTensor):
                        up.data.release()
                    up.data = None
        return self.data

    def pull(self, r: Region) -> torch.Tensor:
        # Contiguous, as a rectangle read from disk is: convolutions of a strided view can round
        # differently, and a cache spilled to disk must give the same pixels (memory.py's budget).
        return self.fill()[..., r[0] : r[1], r[2] : r[3]].to(self.device, non_blocking=True).contiguous()


def _allocate(shape: tuple[int, ...], y: torch.Tensor, spill: Spill | None) -> torch.Tensor | DiskTensor:
    if spill is not None and math.prod(shape) * y.element_size() > spill.limit:
        return DiskTensor(shape, spill.folder, y.dtype)
    return torch.empty(shape, dtype=y.dtype, device=_cache_device(shape, y))


def _cache_device(shape: tuple[int, ...], y: torch.Tensor) -> torch.device:
    """Keep a cache on the GPU while it takes under 1/8 of the free memory, else in host memory.

    1/4-resolution activations are small next to the full-resolution ones of an untiled pass,
    and keeping them on the GPU avoids copying every block's activations over PCIe.
    """
    if y.device.type != "cuda":
        return torch.device("cpu")
    free, _ = torch.cuda.mem_get_info(y.device)
    return y.device if math.prod(shape) * y.element_size() * 8 < free else torch.device("cpu")


def whole_image_passes(node: Node, meter) -> int:
    """Give every Cache and every Norm still to measure upstream of ``node`` the ``meter``; returns
    how many rectangles their whole-image passes will take (for a progress bar's total)."""
    total = 0
    for n in upstream(node):
        if isinstance(n, Cache) or (isinstance(n, Norm) and n.stats is None):
            n.meter = meter
            total += sum(1 for _ in regions(n, n.tile))
    return total


def _nearest_caches(node: Node) -> list[Cache]:
    if isinstance(node, Cache):
        return [node]
    found = {id(c): c for src in node.inputs for c in _nearest_caches(src)}
    return list(found.values())


class Whole:
    """How ``build`` normalises and keeps activations, exactly (the default): whole-image statistics,
    and whole-image caches of each norm's input at 1/4 resolution or below and of each residual
    block's output (in memory, or on disk past ``spill``'s limit)."""

    def __init__(self, tile: int, spill: Spill | None = None) -> None:
        self.tile, self.spill = tile, spill
        self.norms: list[Norm] = []  # in the order build made them (the network's order)
        self.caches: list[Cache] = []

    def norm(self, src: Node, norm: nn.InstanceNorm2d) -> Node:
        node = Norm(self._cache(src) if src.scale <= 0.25 else src, norm, self.tile)
        self.norms.append(node)
        return node

    def block(self, x: Node, body: Node) -> Node:
        return self._cache(Add(x, body))

    def _cache(self, src: Node) -> Cache:
        self.caches.append(Cache(src, self.tile, self.spill))
        return self.caches[-1]

    def release(self) -> None:
        """Free every cache now (the files of those on disk), e.g. once the norms' statistics are known."""
        for cache in self.caches:
            if isinstance(cache.data, DiskTensor):
                cache.data.release()
            cache.data = None

    def shared(self, x: Node) -> Node:
        return x  # a residual block's input: already a Cache, or cheap to recompute from one


class Local:
    """``build`` without whole-image activations: each norm is ``make_norm(src, norm)`` (statistics
    from elsewhere: inference/slide_norm.py), and a residual block's input is kept for one rectangle
    (``Memo``), so memory and disk do not grow with the image."""

    def __init__(self, make_norm) -> None:
        self.make_norm = make_norm
        self.norms: list[Node] = []  # in the order build made them (the network's order)

    def norm(self, src: Node, norm: nn.InstanceNorm2d) -> Node:
        self.norms.append(self.make_norm(src, norm))
        return self.norms[-1]

    def block(self, x: Node, body: Node) -> Node:
        return Add(x, body)

    def shared(self, x: Node) -> Node:
        return x if isinstance(x, Memo) else Memo(x)


def build(
    modules: list[nn.Module],
    src: Node,
    tile: int,
    block_dtype: torch.dtype | None = None,
    conv_dtype: torch.dtype | None = None,
    spill: Spill | None = None,
    plan: Whole | Local | None = None,
) -> Node:
    """Lazy nodes for a chain of generator layers applied to ``src``.

    ``plan`` (default ``Whole(tile, spill)``: exact) makes the norms and keeps what is reused. Exactly,
    the input of each norm at 1/4 resolution or below is cached (cheap in memory, and it saves
    recomputing everything upstream when the norm measures its statistics); so is each residual
    block's output. ``block_dtype``: the residual blocks' convolutions run under autocast to it
    (``conv_dtype``: every convolution of ``modules``, for the inside of a block). ``spill``:
    caches over its limit live on disk (gigapixel slides).
    """
    plan = plan if plan is not None else Whole(tile, spill)
    node = src
    for m in modules:
        if isinstance(m, nn.ReflectionPad2d):
            node = ReflectPad(node, tuple(m.padding))
        elif isinstance(m, nn.Conv2d):
            node = Conv.of(node, m, conv_dtype)
        elif isinstance(m, nn.ConvTranspose2d):
            node = ConvTranspose.of(node, m)
        elif isinstance(m, BlurDownsample):  # reflect-pad 1, depthwise 3x3 blur, stride 2
            node = Conv(ReflectPad(node, (1, 1, 1, 1)), m.filt, None, stride=2, padding=0, groups=node.channels)
        elif isinstance(m, BlurUpsample):  # replicate-pad 1, depthwise 4x4 transposed blur, crop to 2x
            up = ConvTranspose(ReplicatePad(node, (1, 1, 1, 1)), m.filt, None, stride=2, padding=2,
                               groups=node.channels)
            node = Crop(up, 1, up.height - 2, up.width - 2)
        elif isinstance(m, nn.InstanceNorm2d):
            node = plan.norm(node, m)
        elif isinstance(m, nn.ReLU):
            # In place only on a fresh tensor (a norm's output), never on a view of a cache.
            node = Pointwise(node, F.relu_ if node.fresh else F.relu)
        elif isinstance(m, nn.Tanh):
            node = Pointwise(node, torch.tanh)
        elif isinstance(m, ChannelAffine):  # a conditioning bound to one value: per channel
            node = Pointwise(node, m)
        elif isinstance(m, nn.Dropout):
            continue  # off at inference
        elif isinstance(m, Residual):
            node = plan.shared(node)
            node = plan.block(node, build(list(m.body), node, tile, conv_dtype=block_dtype, plan=plan))
        elif isinstance(m, Skip):  # a per-pixel map of the input plus a whole network (anchored generators)
            shared = plan.shared(node)
            node = Add(Pointwise(shared, m.skip), build(list(m.body), shared, tile, block_dtype, conv_dtype, plan=plan))
        elif isinstance(m, nn.Hardtanh):
            node = Pointwise(node, m)
        elif isinstance(m, nn.Sequential):
            node = build(list(m), node, tile, block_dtype, conv_dtype, plan=plan)
        else:
            raise TypeError(f"tiling does not support the layer {m.__class__.__name__}")
    return node


def translate_tiled(
    net: nn.Module, x: torch.Tensor, tile: int, device: torch.device, block_dtype: torch.dtype | None = None,
    spill: Spill | None = None,
) -> torch.Tensor:
    """Run ``net`` (a chain of plain layers: a ResnetGenerator, or a kind's ``layers`` at fixed
    conditioning as an ``nn.Sequential``) on x (1, C, H, W) in tiles of about ``tile`` pixels.

    Call under ``torch.inference_mode()`` and the wanted autocast (``block_dtype``: autocast the
    residual blocks' convolutions alone to it). H and W must be valid input sizes for ``net``
    (multiples of 4, at least 8). ``spill``: whole-image caches over its limit on disk (the same
    result). Returns (1, C_out, H, W) fp32 on the CPU.
    """
    out_node = build(list(net.children()), Input(x, device), tile, block_dtype, plan=Whole(tile, spill))
    out = torch.empty(1, out_node.channels, out_node.height, out_node.width)
    for r in regions(out_node, tile):
        out[..., r[0] : r[1], r[2] : r[3]] = out_node.pull(r).float().cpu()
    return out


def blend_weights(n: int, start: int, stop: int, overlap: int) -> torch.Tensor:
    """Weights (stop - start,) of a tile covering [start, stop) of n pixels: a linear ramp over the
    ``overlap`` pixels shared with a neighbour, 1 elsewhere and at the image border."""
    pos = torch.arange(start, stop, dtype=torch.float32)
    up = (pos - start + 0.5) / overlap if start > 0 else torch.ones_like(pos)
    down = (stop - pos - 0.5) / overlap if stop < n else torch.ones_like(pos)
    return up.clamp(max=1.0) * down.clamp(max=1.0)


def blend_spans(n: int, tile: int, overlap: int, multiple: int = 4) -> list[tuple[int, int]]:
    """[start, stop) spans of about ``tile`` pixels covering n, overlapping by ``overlap``; starts
    and sizes are multiples of ``multiple`` (the generator's input size rule)."""
    if n <= tile:
        return [(0, n)]
    step = max(multiple, (tile - overlap) // multiple * multiple)
    spans, start = [], 0
    while True:
        stop = min(start + tile, n)
        spans.append((max(0, stop - tile) // multiple * multiple if stop == n else start, stop))
        if stop == n:
            return spans
        start += step


def translate_blended(run, x: torch.Tensor, tile: int, device: torch.device, overlap: int | None = None) -> torch.Tensor:
    """``run`` (a network evaluation: (1, C, h, w) on ``device`` -> (1, C_out, h, w)) over x (1, C, H, W)
    on the CPU in overlapping tiles of about ``tile`` pixels, blended with linear ramps: for generators
    that cannot be tiled exactly. Each tile is normalised by its own statistics, so seams are possible
    (the overlap hides most). Memory: one tile's activations plus two whole fp32 outputs."""
    overlap = overlap if overlap is not None else max(16, tile // 8 // 4 * 4)
    _, _, h, w = x.shape
    out, total = None, torch.zeros(1, 1, h, w)
    for y0, y1 in blend_spans(h, tile, overlap):
        for x0, x1 in blend_spans(w, tile, overlap):
            y = run(x[..., y0:y1, x0:x1].to(device, non_blocking=True)).float().cpu()  # (1, C_out, th, tw)
            if out is None:
                out = torch.zeros(1, y.shape[1], h, w)
            weight = blend_weights(h, y0, y1, overlap)[:, None] * blend_weights(w, x0, x1, overlap)[None, :]
            out[..., y0:y1, x0:x1] += y * weight
            total[..., y0:y1, x0:x1] += weight
    return out / total
