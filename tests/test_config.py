"""The typed config: defaults, YAML files, dotted overrides and one-line errors."""

from pathlib import Path

import pytest
import yaml

from gan_style.config import ConfigError, parse_override
from gan_style.methods import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["monet", "cezanne", "ukiyoe", "vangogh", "horse2zebra", "tiny"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.name == name
    if name != "tiny":
        assert (cfg.model.n_blocks, cfg.data.crop_size, cfg.train.n_epochs, cfg.train.n_epochs_decay) == (9, 256, 100, 100)


def test_paper_defaults():
    cfg = load_config()
    t = cfg.train
    assert (t.lr, t.beta1, t.beta2, t.batch_size, t.pool_size) == (2e-4, 0.5, 0.999, 1, 50)
    assert (t.lambda_A, t.lambda_B, t.lambda_identity, t.gan_mode) == (10.0, 10.0, 0.5, "lsgan")
    assert (cfg.data.load_size, cfg.data.crop_size) == (286, 256)


def test_overrides_are_typed_and_dotted():
    cfg = load_config(None, ["train.lr=1e-4", "data.flip=false", "model.n_blocks=6", "name=x", "resume=null"])
    assert cfg.train.lr == 1e-4 and cfg.data.flip is False and cfg.model.n_blocks == 6 and cfg.name == "x"
    assert cfg.resume is None
    assert parse_override("data.root=/a=b") == (["data", "root"], "/a=b")


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lamda_A'.*did you mean 'train.lambda_A'"):
        load_config(None, ["train.lamda_A=5"])


def test_unknown_key_in_yaml_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": {"n_block": 6}}))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "model.n_blocks" in str(e.value)
    assert "\n" not in str(e.value)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"'train.batch_size' \('four'\)"):
        load_config(None, ["train.batch_size=four"])


def test_bad_choice_names_key():
    with pytest.raises(ConfigError, match=r"'train.precision'.*fp32"):
        load_config(None, ["train.precision=fp8"])


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("train.n_epochs=-1", "train.n_epochs"),
        ("data.crop_size=300", "crop_size (300) is larger than data.load_size (286)"),
        ("data.crop_size=30", "multiple of 4"),
        ("train.lr=0", "train.lr"),
    ],
)
def test_impossible_values(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "b.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.lr"])
