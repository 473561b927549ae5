"""GAN losses on hand-made tensors, the image pool, and the linear LR schedule."""

import math

import pytest
import torch

from gan_style.methods import load_config
from gan_style.methods.cyclegan import CycleGAN, lr_factor
from gan_style.methods.losses import gan_loss
from gan_style.methods.pool import ImagePool


def test_lsgan_loss_values():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 0.5]]]])
    assert gan_loss(pred, True, "lsgan").item() == pytest.approx((1 + 0 + 1 + 0.25) / 4)
    assert gan_loss(pred, False, "lsgan").item() == pytest.approx((0 + 1 + 4 + 0.25) / 4)


def test_vanilla_loss_is_bce_with_logits():
    pred = torch.zeros(1, 1, 2, 2)
    assert gan_loss(pred, True, "vanilla").item() == pytest.approx(math.log(2))
    big = torch.full((1, 1, 2, 2), 20.0)
    assert gan_loss(big, True, "vanilla").item() < 1e-6
    assert gan_loss(big, False, "vanilla").item() == pytest.approx(20.0, rel=1e-4)


def test_loss_is_float32_under_bf16_input():
    pred = torch.full((1, 1, 3, 3), 0.5, dtype=torch.bfloat16)
    out = gan_loss(pred, True, "lsgan")
    assert out.dtype == torch.float32 and out.item() == pytest.approx(0.25)


def test_pool_size_zero_passes_through():
    pool = ImagePool(0)
    x = torch.randn(2, 3, 4, 4)
    assert pool.query(x) is x


def test_pool_fills_then_mixes_history():
    pool = ImagePool(3, seed=1)
    first = [torch.full((1, 3, 2, 2), float(i)) for i in range(3)]
    for x in first:  # while filling, every image comes back as is
        assert torch.equal(pool.query(x), x)
    returned = [pool.query(torch.full((1, 3, 2, 2), 100.0 + i)).flatten()[0].item() for i in range(40)]
    fresh = [v for i, v in enumerate(returned) if v == 100 + i]
    from_history = [v for i, v in enumerate(returned) if v != 100 + i]
    assert fresh and from_history  # each happens with probability 1/2 per query
    assert all(v in (0.0, 1.0, 2.0) or v >= 100 for v in from_history)
    assert len(pool.images) == 3


def test_pool_state_round_trip_continues_identically():
    a = ImagePool(2, seed=5)
    for i in range(4):
        a.query(torch.full((1, 3, 2, 2), float(i)))
    b = ImagePool(2, seed=999)
    b.load_state_dict(a.state_dict())
    for i in range(10):
        x = torch.full((1, 3, 2, 2), 10.0 + i)
        assert torch.equal(a.query(x), b.query(x))


@pytest.mark.parametrize(
    "epoch,expected", [(0, 1.0), (99, 1.0), (100, 1 - 1 / 101), (150, 1 - 51 / 101), (199, 1 / 101)]
)
def test_lr_factor_reference_rule(epoch, expected):
    assert lr_factor(epoch, 100, 100) == pytest.approx(expected)


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_scheduler_follows_rule():
    cfg = load_config(None, ["model.ngf=8", "model.ndf=8", "model.n_blocks=1", "train.n_epochs=2",
                             "train.n_epochs_decay=3", "train.lr=0.001"])
    model = CycleGAN(cfg, torch.device("cpu"), "fp32")
    lrs = []
    for _ in range(5):
        lrs.append(model.opt_G.param_groups[0]["lr"])
        model.schedulers["G"].step()
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3 * 3 / 4, 1e-3 * 2 / 4, 1e-3 * 1 / 4])


def test_lr_scaling_with_global_batch():
    cfg = load_config(None, ["model.ngf=8", "model.ndf=8", "model.n_blocks=1", "train.batch_size=4",
                             "train.lr_scaling=linear"])
    assert CycleGAN(cfg, torch.device("cpu"), "fp32").opt_G.param_groups[0]["lr"] == pytest.approx(8e-4)
