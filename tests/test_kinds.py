"""Generator kinds (nets/kind.py, nets/kinds.py): a kind registered in one line is built, read,
translated and tiled with no other change; a kind without exact tiling gets blended tiles."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from gan_style.inference.tiling import blend_spans, blend_weights
from gan_style.inference.translate import AUTO_TILE, Generator, auto_tile, resolve_tile, translate_tensor
from gan_style.inference.weights import GeneratorInfo, check_state_dict
from gan_style.nets import KINDS, GeneratorKind, ResnetGenerator, kind_of, recognise


class Smooth(nn.Module):
    """A toy generator: two 3x3 convolutions (a 5 px receptive field), no normalisation."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.width = width
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.Tanh(),
                                  nn.Conv2d(width, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SmoothKind(GeneratorKind):
    """Registered by the tests alone: no exact tiling (``layers`` stays None)."""

    name = "smooth"
    module = Smooth

    def recognises(self, state) -> bool:
        return "body.0.weight" in state

    def arch(self, state) -> dict:
        first = state["body.0.weight"]
        return {"in_channels": first.shape[1], "out_channels": state["body.2.weight"].shape[0], "width": first.shape[0]}


@pytest.fixture
def smooth_kind(monkeypatch):
    monkeypatch.setitem(KINDS, "smooth", SmoothKind())
    return KINDS["smooth"]


def test_a_registered_kind_is_recognised_checked_and_built(smooth_kind):
    net = Smooth(width=6)
    assert kind_of(net) is smooth_kind and recognise(net.state_dict()) is smooth_kind
    kind, arch = check_state_dict(net.state_dict(), "toy.pth")
    assert kind is smooth_kind and arch == {"in_channels": 3, "out_channels": 3, "width": 6}
    assert recognise(ResnetGenerator(3, 3, 8, 1).state_dict()) is KINDS["resnet"]


def test_a_kind_without_exact_tiling_is_tiled_with_blended_tiles(smooth_kind, caplog):
    torch.manual_seed(0)
    net = Smooth().eval()
    gen = Generator(net, GeneratorInfo(arch={}, origin="toy", kind="smooth"), torch.device("cpu"), "fp32")
    x = torch.rand(1, 3, 100, 140) * 2 - 1
    whole = translate_tensor(gen, x, tile=0)
    with caplog.at_level(logging.INFO):
        tiled = translate_tensor(gen, x, tile=32)
        translate_tensor(gen, x, tile=32)
    # Each tile's 2 border pixels see zero padding instead of their neighbours; the ramps weight them
    # by at most 2/16 where tiles overlap: a small error, not a seam.
    assert 0 < (tiled - whole).abs().max() < 0.05
    notes = [r for r in caplog.records if "blended tiles" in r.getMessage()]
    assert len(notes) == 1  # said once per generator


def test_auto_tiles_on_the_cpu_keep_activations_in_mallocs_heap_and_blended_tiles_keep_their_size(smooth_kind):
    def resnet(ngf: int, device: str = "cpu") -> Generator:
        arch = {"in_channels": 3, "out_channels": 3, "ngf": ngf, "n_blocks": 1, "antialias": False, "antialias_up": False}
        return Generator(ResnetGenerator(3, 3, ngf, 1).eval(), GeneratorInfo(arch=arch, origin="r"), torch.device(device),
                         "fp32")

    # The widest activation, ngf fp32 channels at full resolution with a halo, under 32 MB:
    assert [auto_tile(resnet(ngf)) for ngf in (4, 8, 16, 32, 64)] == [1024, 512, 512, 256, 256]
    assert resolve_tile("auto", 3000, 4000, resnet(64)) == 256
    assert resolve_tile("auto", 1500, 2000, resnet(64)) == 0  # under 4 megapixels: whole
    assert auto_tile(resnet(64, "cuda")) == AUTO_TILE  # a GPU runs large tiles best (only its type is read)
    smooth = Generator(Smooth().eval(), GeneratorInfo(arch={}, origin="toy", kind="smooth"), torch.device("cpu"), "fp32")
    assert auto_tile(smooth) == AUTO_TILE  # each blended tile normalised alone: smaller ones would show more seams


@pytest.mark.parametrize("n,tile,overlap", [(100, 32, 8), (1000, 512, 64), (36, 32, 16), (32, 32, 8), (4, 32, 8)])
def test_blend_spans_cover_the_image_on_multiples_of_4(n, tile, overlap):
    spans = blend_spans(n, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a % 4 == 0 and b - a <= tile for a, b in spans)
    assert all(b0 >= a1 + min(overlap, b0 - a1) for (_, b0), (a1, _) in zip(spans, spans[1:]))  # overlapping
    total = torch.zeros(n)
    for a, b in spans:
        total[a:b] += blend_weights(n, a, b, overlap)
    assert (total > 0.99).all()  # every pixel fully weighted somewhere
