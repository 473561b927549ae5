"""The networks match the reference CycleGAN's architecture, parameter counts and state_dict layout."""

import pytest
import torch

from gan_style.nets import PatchDiscriminator, ResnetGenerator, generator_arch, init_weights


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def reference_generator_shapes(in_c: int, out_c: int, ngf: int, n_blocks: int) -> dict[str, tuple]:
    """The reference's ResnetGenerator keys and shapes, enumerated by hand from its layer list."""
    shapes = {"model.1.weight": (ngf, in_c, 7, 7), "model.1.bias": (ngf,)}
    shapes |= {"model.4.weight": (2 * ngf, ngf, 3, 3), "model.4.bias": (2 * ngf,)}
    shapes |= {"model.7.weight": (4 * ngf, 2 * ngf, 3, 3), "model.7.bias": (4 * ngf,)}
    for i in range(10, 10 + n_blocks):
        for j in (1, 5):
            shapes[f"model.{i}.conv_block.{j}.weight"] = (4 * ngf, 4 * ngf, 3, 3)
            shapes[f"model.{i}.conv_block.{j}.bias"] = (4 * ngf,)
    up = 10 + n_blocks
    shapes |= {f"model.{up}.weight": (4 * ngf, 2 * ngf, 3, 3), f"model.{up}.bias": (2 * ngf,)}  # ConvTranspose: (in, out)
    shapes |= {f"model.{up + 3}.weight": (2 * ngf, ngf, 3, 3), f"model.{up + 3}.bias": (ngf,)}
    shapes |= {f"model.{up + 7}.weight": (out_c, ngf, 7, 7), f"model.{up + 7}.bias": (out_c,)}
    return shapes


@pytest.mark.parametrize("n_blocks,count", [(9, 11_378_179), (6, 7_837_699)])
def test_generator_parameter_count(n_blocks, count):
    assert n_params(ResnetGenerator(3, 3, 64, n_blocks)) == count


@pytest.mark.parametrize("n_blocks", [9, 6, 2])
def test_generator_state_dict_matches_reference_layout(n_blocks):
    sd = ResnetGenerator(3, 3, 64 if n_blocks > 2 else 8, n_blocks).state_dict()
    ngf = 64 if n_blocks > 2 else 8
    expected = reference_generator_shapes(3, 3, ngf, n_blocks)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    if n_blocks == 9:
        assert len(sd) == 48 and list(sd)[0] == "model.1.weight" and list(sd)[-1] == "model.26.bias"


def test_discriminator_count_keys_and_patch_map():
    d = PatchDiscriminator(3, 64, 3)
    assert n_params(d) == 2_764_737
    assert list(d.state_dict()) == [f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")]
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert d(torch.zeros(2, 3, 128, 192)).shape == (2, 1, 14, 22)


@pytest.mark.parametrize("h,w,out_h,out_w", [(64, 96, 64, 96), (32, 48, 32, 48), (50, 70, 52, 72)])
def test_generator_output_shape_non_square(h, w, out_h, out_w):
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=2).eval()
    y = g(torch.randn(2, 3, h, w))
    assert y.shape == (2, 3, out_h, out_w)
    assert y.abs().max() <= 1.0  # tanh output


def test_init_weights_normal_002_and_zero_bias():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(3, 3, 64, 9), 0.02)
    w = g.model[10].conv_block[1].weight  # 256*256*9 values
    assert abs(w.mean().item()) < 1e-3
    assert abs(w.std().item() - 0.02) < 5e-4
    assert all(m.bias.abs().max() == 0 for m in g.modules() if isinstance(m, torch.nn.Conv2d))


def test_generator_arch_is_read_from_state_dict():
    sd = ResnetGenerator(3, 1, ngf=16, n_blocks=4).state_dict()
    plain = {"in_channels": 3, "out_channels": 1, "ngf": 16, "n_blocks": 4, "antialias": False, "antialias_up": False}
    assert generator_arch(sd) == plain
    for down, up in ((True, True), (True, False), (False, True)):  # CUT's layout and the two half-way ones
        sd = ResnetGenerator(3, 1, ngf=16, n_blocks=4, antialias=down, antialias_up=up).state_dict()
        assert generator_arch(sd) == plain | {"antialias": down, "antialias_up": up}
    with pytest.raises(ValueError, match="model.1.weight"):
        generator_arch({"foo": torch.zeros(1)})


def test_instance_norm_has_no_state():
    # Reference InstanceNorm: affine=False, track_running_stats=False -> no norm keys at all.
    assert not any("running" in k for k in ResnetGenerator(3, 3, 8, 2).state_dict())
    assert not any("running" in k for k in PatchDiscriminator(3, 8, 3).state_dict())
