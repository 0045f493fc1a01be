"""Config loading: presets, overrides, errors naming the key, resolved-config round trip, hash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trainer.build import per_rank_batch
from trainer.config import ConfigError, hashed_view, load_config, parse_override, save_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = sorted(CONFIGS.glob("*.toml"))


def test_all_presets_exist_and_load():
    names = {p.stem for p in PRESETS}
    for stem in ("cifar10_resnet18", "cifar10_resnet50", "fmnist_small"):
        assert {f"{stem}_baseline", f"{stem}_lowmode"} <= names
    for path in PRESETS:
        config = load_config(path)
        # keys that scripts rely on
        for key in ("data.dir", "data.loader", "data.max_train_samples", "train.epochs", "train.seed",
                    "schedule.policy", "schedule.p", "logging.wandb"):
            section, name = key.split(".")
            assert hasattr(getattr(config, section), name), key
        assert config.logging.wandb == "offline"


@pytest.mark.parametrize("model", ["resnet18", "resnet50"])
def test_cifar_presets_have_the_papers_settings(model):
    low = load_config(CONFIGS / f"cifar10_{model}_lowmode.toml")
    assert (low.train.epochs, low.train.global_batch_size) == (200, 125)
    assert (low.optim.lr, low.optim.momentum, low.optim.weight_decay) == (0.1, 0.9, 5e-4)
    assert low.optim.lr_milestones_epochs == (80, 120) and low.optim.lr_gamma == 0.1
    assert (low.schedule.policy, low.schedule.p, low.schedule.full_epochs_after_milestone) == ("bernoulli", 0.5, 4)
    assert low.model.name == model and low.model.dual_mode and low.model.stem == "cifar_maxpool"
    sched = low.schedule_config()
    assert sched.full_only_epoch(80) and sched.full_only_epoch(83) and not sched.full_only_epoch(84)


@pytest.mark.parametrize("stem", ["cifar10_resnet18", "cifar10_resnet50", "fmnist_small"])
def test_baseline_and_lowmode_differ_only_in_the_mode(stem):
    base = hashed_view(load_config(CONFIGS / f"{stem}_baseline.toml").to_dict())
    low = hashed_view(load_config(CONFIGS / f"{stem}_lowmode.toml").to_dict())
    assert {k for k in base if base[k] != low[k]} == {"schedule.policy", "model.dual_mode"}
    assert load_config(CONFIGS / f"{stem}_baseline.toml").job_type() == "baseline"
    assert load_config(CONFIGS / f"{stem}_lowmode.toml").logging.experiment == stem


def test_overrides_are_toml_literals_with_string_fallback():
    assert parse_override("train.epochs=3") == ("train", "epochs", 3)
    assert parse_override("optim.lr_milestones_epochs=[2, 4]") == ("optim", "lr_milestones_epochs", [2, 4])
    assert parse_override("data.dir=/data/cifar 10") == ("data", "dir", "/data/cifar 10")
    assert parse_override('data.loader="dali"') == ("data", "loader", "dali")
    config = load_config(CONFIGS / "fmnist_small_lowmode.toml", ["train.epochs=3", "data.dir=/x", "optim.lr_milestones_epochs=[1]"])
    assert config.train.epochs == 3 and config.data.dir == "/x" and config.optim.lr_milestones_epochs == (1,)


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "train.epoch: unknown key"),
    ("trian.epochs=3", "unknown section 'trian'"),
    ("train.epochs=three", "train.epochs: expected an integer"),
    ("train.epochs=0", "train.epochs: expected an integer >= 1"),
    ("schedule.p=1.5", "schedule: ScheduleConfig.p must be in [0, 1]"),
    ("schedule.policy=sometimes", "schedule: ScheduleConfig.policy"),
    ("data.loader=tf", "data.loader: expected one of"),
    ("logging.wandb=yes", "logging.wandb: expected one of"),
    ("model.bn_policy=none", "model.bn_policy"),
    ("model.dual_mode=1", "model.dual_mode: expected true or false"),
    ("optim.lr_milestones_epochs=[12]", "must be < train.epochs"),
    ("optim.lr_milestones_epochs=[4, 2]", "optim.lr_milestones_epochs: expected strictly increasing"),
    ("model.dual_mode=false", "model.dual_mode: must be true when schedule.policy is 'bernoulli'"),
    ("data.dir=''", "data.dir: expected a dataset directory"),
    ("train.epochs", "expected section.key=value"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "fmnist_small_lowmode.toml", [override])
    assert message in str(info.value)


def test_unknown_key_in_a_file_is_an_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[data]\ndir = "d"\nloaders = "torch"\n')
    with pytest.raises(ConfigError, match="data.loaders: unknown key"):
        load_config(path)
    path.write_text("[data\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_resolved_config_round_trips(tmp_path):
    config = load_config(CONFIGS / "cifar10_resnet18_lowmode.toml", ["train.epochs=150", "schedule.epoch_probabilities=[0.0, 0.5]"])
    save_config(config, tmp_path / "config.toml")
    assert load_config(tmp_path / "config.toml") == config


def test_hash_ignores_resumable_keys_only():
    config = load_config(CONFIGS / "fmnist_small_lowmode.toml")
    same = load_config(CONFIGS / "fmnist_small_lowmode.toml", ["logging.wandb=disabled", "checkpoint.every_steps=9",
                                                               "data.dir=/elsewhere", "train.dist_timeout_s=30"])
    assert same.hash() == config.hash()
    for override in ("optim.lr=0.2", "train.seed=1", "schedule.p=0.25", "model.bn_policy=shared", "data.max_train_samples=10"):
        assert load_config(CONFIGS / "fmnist_small_lowmode.toml", [override]).hash() != config.hash(), override


def test_configs_are_frozen():
    config = load_config(CONFIGS / "fmnist_small_lowmode.toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3


def test_global_batch_must_divide_over_ranks():
    assert per_rank_batch(125, 5) == 25
    with pytest.raises(ConfigError, match="train.global_batch_size: 125 is not divisible by the world size 2"):
        per_rank_batch(125, 2)
