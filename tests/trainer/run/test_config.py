"""Config loading: presets, overrides, errors naming the key, resolved-config round trip, hash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.schedule import ScheduleConfig
from trainer.report.rundir import RunDir
from trainer.run.build import mode_schedule, per_rank_batch
from trainer.run.config import ConfigError, hashed_view, load_config, parse_override

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
PRESETS = sorted(CONFIGS.glob("*.toml"))


def test_all_presets_exist_and_load():
    names = {p.stem for p in PRESETS}
    for stem in ("cifar10_resnet18", "cifar10_resnet50", "fmnist_small", "imagenette"):
        assert {f"{stem}_baseline", f"{stem}_lowmode", f"{stem}_paper"} <= names
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
    low = load_config(CONFIGS / f"cifar10_{model}_paper.toml")
    assert (low.train.epochs, low.train.global_batch_size) == (200, 125)
    assert (low.optim.lr, low.optim.momentum, low.optim.weight_decay) == (0.1, 0.9, 5e-4)
    assert low.optim.lr_milestones_epochs == (80, 120) and low.optim.lr_gamma == 0.1
    assert (low.schedule.policy, low.schedule.p, low.schedule.full_epochs_after_milestone) == ("bernoulli", 0.5, 4)
    assert low.model.name == model and low.model.dual_mode and low.model.stem == "cifar_maxpool"
    sched = mode_schedule(low)
    assert sched.full_only_epoch(80) and sched.full_only_epoch(83) and not sched.full_only_epoch(84)


@pytest.mark.parametrize("stem", ["cifar10_resnet18", "cifar10_resnet50", "fmnist_small", "imagenette"])
def test_baseline_lowmode_and_paper_differ_only_in_the_mode(stem):
    """The default low mode (the adaptive schedule, kernels kept) and the paper's are the baseline plus the mode."""
    base = hashed_view(load_config(CONFIGS / f"{stem}_baseline.toml").to_dict())
    low = load_config(CONFIGS / f"{stem}_lowmode.toml")
    assert (low.schedule.policy, low.model.low_kernels) == ("adaptive", "keep")
    low = hashed_view(low.to_dict())
    paper = hashed_view(load_config(CONFIGS / f"{stem}_paper.toml").to_dict())
    assert {k for k in set(base) | set(low) if base.get(k) != low.get(k)} == {
        "schedule.policy", "model.dual_mode", "model.low_kernels"}
    assert {k for k in base if base[k] != paper[k]} == {"schedule.policy", "model.dual_mode"}
    assert load_config(CONFIGS / f"{stem}_baseline.toml").job_type() == "baseline"
    for kind in ("lowmode", "paper"):
        assert load_config(CONFIGS / f"{stem}_{kind}.toml").logging.experiment == stem


def test_imagenette_presets_share_the_tuned_baseline():
    base = load_config(CONFIGS / "imagenette_baseline.toml")
    assert (base.model.name, base.model.stem, base.model.width) == ("resnet18", "imagenet", 32)
    assert (base.optim.lr_schedule, base.optim.lr_milestones_epochs, base.optim.label_smoothing) == ("cosine", (), 0.1)
    best = hashed_view(load_config(CONFIGS / "imagenette_best.toml").to_dict())
    flat = hashed_view(base.to_dict())
    assert {k for k in set(flat) | set(best) if flat.get(k) != best.get(k)} == {
        "schedule.policy", "schedule.p", "schedule.ramp_end", "schedule.ramp_shape", "model.dual_mode",
        "model.low_kernels"}


@pytest.mark.parametrize("preset, heights", [
    # RESULTS 0.6's two ladders, epoch by epoch on the 64/80/96/112/128-px dataset
    ("imagenette_ladder_fast", [64] * 10 + [80, 96, 112] + [128] * 3),
    ("imagenette_ladder_accurate", [64] * 3 + [80] * 2 + [96] * 3 + [112] * 2 + [128] * 6),
])
def test_imagenette_ladder_presets_are_the_tuned_baseline_on_a_ladder(preset, heights):
    from pipeline.schedule import Ladder

    base = hashed_view(load_config(CONFIGS / "imagenette_baseline.toml").to_dict())
    config = load_config(CONFIGS / f"{preset}.toml")
    flat = hashed_view(config.to_dict())
    changed = {k for k in set(base) | set(flat) if base.get(k) != flat.get(k)}
    assert changed - {"schedule.ramp_start", "schedule.ramp_end", "schedule.ramp_shape"} == {
        "schedule.policy", "model.dual_mode", "model.low_kernels"}
    assert config.data.dir == "data/imagenette128_ladder"
    ladder = Ladder(full_height=128, rungs=tuple(("low" if h == 64 else f"low{h}", h) for h in (64, 80, 96, 112)))
    schedule = mode_schedule(config).with_ladder(ladder)
    assert [ladder.height(schedule.resolution(e, 0)) for e in range(config.train.epochs)] == heights


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
    ("schedule.p=1.5", "schedule.p: expected a number in [0, 1], got 1.5"),
    ("schedule.policy=sometimes", "schedule.policy: expected one of"),
    ("model.name=resnet9", "model.name: expected one of"),
    ("model.stem=tall", "model.stem: expected one of"),
    ("model.dual_preset=vgg", "model.dual_preset: expected one of"),
    ("model.name_pattern='conv('", "model.name_pattern: expected a valid regular expression"),
    ("train.device=tpu", "train.device: expected one of"),
    ("train.precision=fp8", "train.precision: expected one of"),
    ("train.dist_timeout_s=inf", "train.dist_timeout_s: expected a positive, finite number"),
    ("logging.progress=loud", "logging.progress: expected one of"),
    ("train.sync_every_steps=0", "train.sync_every_steps: expected an integer >= 1"),
    ("train.sync_every_steps=2.5", "train.sync_every_steps: expected an integer"),
    ("schedule.ramp_end=0", "schedule.ramp_end: expected a number in (0, 1]"),
    ("schedule.low_batch_scale=0", "schedule.low_batch_scale: expected an integer >= 1"),
    ("schedule.low_batch_scale=1.5", "schedule.low_batch_scale: expected an integer"),
    ("model.low_kernels=blur", "model.low_kernels: expected one of"),
    ("optim.low_lr_scale=-1.0", "optim.low_lr_scale: expected a finite number >= 0"),
    ("data.loader=tf", "data.loader: expected one of"),
    ("data.batches_ahead=-1", "data.batches_ahead: expected an integer >= 0, got -1"),
    ("data.batches_ahead=true", "data.batches_ahead: expected an integer"),
    ("logging.wandb=yes", "logging.wandb: expected one of"),
    ("model.bn_policy=none", "model.bn_policy"),
    ("model.dual_mode=1", "model.dual_mode: expected true or false"),
    ("optim.lr_milestones_epochs=[12]", "must be < train.epochs"),
    ("optim.lr_milestones_epochs=[4, 2]", "optim.lr_milestones_epochs: expected strictly increasing"),
    ("model.dual_mode=false", "model.dual_mode: must be true when schedule.policy is 'adaptive'"),
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
    config = load_config(CONFIGS / "cifar10_resnet18_paper.toml", ["train.epochs=150", "schedule.epoch_probabilities=[0.0, 0.5]"])
    run_dir = RunDir(tmp_path)
    run_dir.write_config(config.to_dict())
    assert load_config(run_dir.config) == config


def test_schedule_section_is_the_pipelines_schedule_config():
    config = load_config(CONFIGS / "fmnist_small_lowmode.toml")
    assert type(config.schedule) is ScheduleConfig
    assert set(config.to_dict()["schedule"]) == {"policy", "p", "alternate_every", "full_epochs_after_milestone",
                                                 "warmup_full_epochs", "epoch_probabilities", "ramp_end",
                                                 "ramp_shape", "low_batch_scale", "ramp_start", "low_size",
                                                 "constant_pixels", "adapt_every_steps", "adapt_margin",
                                                 "adapt_probe_batches", "adapt_full_from"}


def test_keys_added_later_are_hashed_only_when_set():
    """Runs that predate a key ran with its default: their checkpoints must keep matching."""
    base = load_config(CONFIGS / "fmnist_small_paper.toml")  # the paper's form sets none of them
    view = hashed_view(base.to_dict())
    for key in ("model.low_kernels", "optim.low_lr_scale", "schedule.ramp_end", "schedule.ramp_shape",
                "schedule.low_batch_scale"):
        assert key not in view
    for override in ('model.low_kernels="keep"', "schedule.low_batch_scale=2", "optim.low_lr_scale=2.0",
                     "schedule.ramp_end=0.5", 'schedule.ramp_shape="cosine"'):
        changed = load_config(CONFIGS / "fmnist_small_paper.toml", [override])
        assert changed.hash() != base.hash(), override
        assert override.split("=")[0] in hashed_view(changed.to_dict())


def test_choice_lists_are_the_owning_modules():
    from pipeline.loader import KINDS
    from trainer.method.bn_policy import BN_POLICIES
    from trainer.method.models import MODEL_NAMES

    for key, choices in (("data.loader", KINDS), ("model.bn_policy", BN_POLICIES), ("model.name", MODEL_NAMES)):
        with pytest.raises(ConfigError) as info:
            load_config(CONFIGS / "fmnist_small_lowmode.toml", [f"{key}=nope"])
        assert str(choices) in str(info.value)


def test_hash_ignores_resumable_keys_only():
    config = load_config(CONFIGS / "fmnist_small_lowmode.toml")
    same = load_config(CONFIGS / "fmnist_small_lowmode.toml", ["logging.wandb=disabled", "checkpoint.every_steps=9",
                                                               "data.dir=/elsewhere", "train.dist_timeout_s=30",
                                                               "data.batches_ahead=0", "model.channels_last=false"])
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
