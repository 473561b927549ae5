"""Learning that holds on unpaired intensity tasks: the histogram-matching map learned from the
training data (data/histograms.py), CycleGAN's histogram anchor (train.lambda_histogram) that pulls
the generators towards it, and the inverted-map warning on the sample panels (training/inversion.py)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_overrides
from gan_style.config import ConfigError
from gan_style.data.histograms import GRID, LEVELS, matching_table
from gan_style.methods import load_config
from gan_style.methods.anchor import matched
from gan_style.training.inversion import INVERTED, panel_correlations
from gan_style.training.loop import check_inversion, train
from test_science import write_16bit_domains

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LEVELS_01 = np.linspace(0, 1, LEVELS)


def quantiles(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, LEVELS_01)[None]  # (1, LEVELS): one channel


def test_the_table_is_the_curve_between_two_distributions():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 200_000)
    curve = lambda v: 2 * ((v + 1) / 2) ** 2 - 1  # noqa: E731 - monotone on [-1, 1]
    table = matching_table(quantiles(x), quantiles(curve(rng.uniform(-1, 1, 200_000))))
    grid = np.linspace(-1, 1, GRID)
    assert table.shape == (1, GRID) and table.dtype == np.float32
    np.testing.assert_allclose(table[0], curve(grid), atol=0.02)


def test_a_value_many_pixels_share_maps_to_the_mean_of_their_targets():
    rng = np.random.default_rng(1)
    source = np.concatenate([np.full(40_000, -1.0), rng.uniform(-1, 1, 60_000)])  # 40 % "air" at exactly -1
    target = rng.uniform(-1, 1, 100_000)
    table = matching_table(quantiles(source), quantiles(target))
    # The lowest 40 % of a uniform [-1, 1] is [-1, -0.2]: its mean is -0.6 (the first quantile alone would be -1).
    assert table[0, 0] == pytest.approx(-0.6, abs=0.02)
    assert np.all(np.diff(table[0]) >= 0)


def test_matched_interpolates_each_channel_in_its_own_table():
    grid = np.linspace(-1, 1, GRID)
    table = torch.tensor(np.stack([grid ** 3, -0.5 * grid]), dtype=torch.float32)  # two channels, two maps
    x = torch.rand(2, 2, 5, 7) * 2.2 - 1.1  # a little outside [-1, 1]: clamped to the table's ends
    y = matched(x, table)
    for c in range(2):
        expected = np.interp(x[:, c].clamp(-1, 1).numpy().ravel(), grid, table[c].numpy())
        np.testing.assert_allclose(y[:, c].numpy().ravel(), expected, atol=1e-6)


def windowed_16bit_run(root, **extra):
    """A 4-step 1-channel CycleGAN on write_16bit_domains' data (both windows fixed, so a change of the
    data does not move them), with ``extra`` train keys: (overrides, last.pt)."""
    write_16bit_domains(root / "data")
    overrides = tiny_overrides(root / "data", root / "runs", train__max_steps=4, train__lambda_identity=0,
                               **{f"train__{k}": v for k, v in extra.items()}) + [
        "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=window", "data.intensity.A.low=1000",
        "data.intensity.A.high=5000", "data.intensity.B.mode=window", "data.intensity.B.low=0",
        "data.intensity.B.high=30000"]
    return overrides, train(load_config(None, overrides))


def darken_domain_b(root) -> None:
    """Change the data between a run and its resume."""
    for path in (root / "data" / "trainB").iterdir():
        Image.fromarray((np.asarray(Image.open(path)) // 3).astype(np.uint16)).save(path)


@pytest.fixture(scope="module")
def anchored_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("anchor")
    return root, *windowed_16bit_run(root, lambda_histogram=5)


def test_the_anchor_maps_each_domain_onto_the_other_and_is_trained_on(anchored_run):
    root, _, last = anchored_run
    ckpt = torch.load(last, weights_only=True)
    tables = ckpt["anchors"]
    assert set(tables) == {"A", "B"} and tables["A"].shape == (1, GRID)
    values = {d: np.concatenate([np.asarray(Image.open(p), np.float64).ravel()
                                 for p in sorted((root / "data" / f"train{d}").iterdir())]) for d in "AB"}
    model_a = torch.tensor((values["A"] - 1000) / 4000 * 2 - 1, dtype=torch.float32).view(1, 1, 1, -1)
    model_b = (values["B"] / 30000) * 2 - 1
    # A matched onto B has B's distribution (the quantiles agree), in the networks' units.
    mapped = matched(model_a, tables["A"]).numpy().ravel()
    np.testing.assert_allclose(np.quantile(mapped, [0.1, 0.5, 0.9]), np.quantile(model_b, [0.1, 0.5, 0.9]), atol=0.03)
    rows = [json.loads(line) for line in (last.parent / "metrics.jsonl").read_text().splitlines()]
    assert all(row["loss/hist_A"] > 0 and row["loss/hist_B"] > 0 for row in rows if "loss/hist_A" in row)


def test_a_resumed_run_keeps_the_anchor_it_started_with(anchored_run, tmp_path):
    root, overrides, last = anchored_run
    before = torch.load(last, weights_only=True)["anchors"]
    darken_domain_b(root)
    after = torch.load(train(load_config(None, overrides + ["train.max_steps=6", "resume=auto"])), weights_only=True)
    for d in "AB":
        torch.testing.assert_close(after["anchors"][d], before[d])


def test_without_the_anchor_its_terms_are_zero(tmp_path):
    write_16bit_domains(tmp_path / "data")
    overrides = tiny_overrides(tmp_path / "data", tmp_path / "runs", train__max_steps=2, train__lambda_identity=0) + [
        "model.input_nc=1", "model.output_nc=1", "data.intensity.A.mode=range", "data.intensity.B.mode=range"]
    last = train(load_config(None, overrides))
    assert "anchors" not in torch.load(last, weights_only=True)
    rows = [json.loads(line) for line in (last.parent / "metrics.jsonl").read_text().splitlines()]
    assert [row["loss/hist_A"] for row in rows if "loss/hist_A" in row] == [0.0]


def test_the_anchor_needs_as_many_channels_in_a_as_in_b(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.lambda_histogram=2.0 .*model.input_nc == output_nc"):
        load_config(None, tiny_overrides(tmp_path, tmp_path, train__lambda_histogram=2, train__lambda_identity=0)
                    + ["model.input_nc=1", "model.output_nc=3", "data.intensity.A.mode=range"])


# ---------------------------------------------------------------- the inverted-map warning


def panels(sign: float) -> dict[str, torch.Tensor]:
    x = torch.rand(3, 1, 3, 16, 16) * 2 - 1  # (n, 1 column, C, H, W)
    y = sign * x + 0.05 * torch.randn_like(x)
    return {"A": torch.cat([x, y, x], dim=1)}  # input | translation | reconstruction


class Recorder:
    def __init__(self):
        self.alerts = []

    def alert(self, title, text):
        self.alerts.append(text)


class State:
    def __init__(self, step, scientific=True):
        self.monitor = Recorder()
        self.pos = type("Pos", (), {"step": step})()
        self.data = type("Data", (), {"intensity": {"A": object() if scientific else None}})()


def test_panel_correlation_is_the_sign_of_the_map():
    assert panel_correlations(panels(1.0))["panels/A_correlation"] > 0.95
    assert panel_correlations(panels(-1.0))["panels/A_correlation"] < -0.95


def test_an_inverted_translation_is_logged_warned_and_alerted(caplog):
    state = State(step=500)
    with caplog.at_level(logging.WARNING):
        check_inversion(state, panel_correlations(panels(-1.0)))
    assert panel_correlations(panels(-1.0))["panels/A_correlation"] < INVERTED
    assert len(state.monitor.alerts) == 1 and "A -1.00" in state.monitor.alerts[0]
    assert "anti-correlate" in caplog.text


@pytest.mark.parametrize("sign, step, scientific", [(1.0, 500, True), (-1.0, 0, True), (-1.0, 500, False)])
def test_no_warning_for_a_faithful_map_an_untrained_network_or_photos(sign, step, scientific, caplog):
    state = State(step=step, scientific=scientific)
    with caplog.at_level(logging.WARNING):
        check_inversion(state, panel_correlations(panels(sign)))
    assert state.monitor.alerts == [] and "anti-correlate" not in caplog.text
