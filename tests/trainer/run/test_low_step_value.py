"""rho, what a low step buys relative to a full one (trainer/run/low_step_value.py), and its script."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from pipeline.device_downsample import downsample_batch
from pipeline.schedule import FULL, LOW
from tests.trainer.train_helpers import ROOT, make_dataset, run_train, subprocess_env, tiny_overrides
from trainer.method.dualmode import get_mode, set_mode
from trainer.method.models import build_dual_mode_model
from trainer.run.low_step_value import probe, summarise


def _grad(model, images, labels, mode):
    set_mode(model, mode)
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])


@pytest.mark.parametrize("low_kernels,bn_policy", [("pool", "frozen"), ("keep", "frozen"), ("keep", "separate")])
def test_probe_is_the_three_gradients_and_leaves_the_model_as_it_was(low_kernels, bn_policy):
    torch.manual_seed(0)
    model, _ = build_dual_mode_model("resnet8", low_kernels=low_kernels, bn_policy=bn_policy)
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    model.eval()  # probe trains with batch statistics and puts the flag back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}  # separate's low statistics are non-persistent
    parts = probe(model, images, labels, ratio=2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN buffers too
    assert all(torch.equal(buffers[k], v) for k, v in model.named_buffers())
    assert not model.training and get_mode(model) == FULL
    assert all(p.grad is None for p in model.parameters())

    reference = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    g_b = _grad(model, images[4:], labels[4:], FULL)
    model.load_state_dict(reference)
    g_a = _grad(model, images[:4], labels[:4], FULL)
    model.load_state_dict(reference)
    g_low = _grad(model, downsample_batch(images[:4], 2), labels[:4], LOW)
    assert parts["low_full_dot"] == pytest.approx(float(g_low @ g_b), rel=1e-5)
    assert parts["full_full_dot"] == pytest.approx(float(g_a @ g_b), rel=1e-5)
    summary = summarise([parts, parts])
    assert summary["rho"] == pytest.approx(float(g_low @ g_b) / float(g_a @ g_b), rel=1e-5)
    assert summary["cos_low_full"] == pytest.approx(float(g_low @ g_a / (g_low.norm() * g_a.norm())), rel=1e-5)
    assert -1 <= summary["cos_low_full"] <= 1 and summary["batches"] == 2


def test_probe_refuses_an_unconverted_model_and_a_batch_of_one():
    from trainer.method.models import build_model

    with pytest.raises(TypeError, match="no low mode"):
        probe(build_model("resnet8"), torch.randn(2, 3, 16, 16), torch.zeros(2, dtype=torch.long), ratio=2)
    model, _ = build_dual_mode_model("resnet8")
    with pytest.raises(ValueError, match="two halves"):
        probe(model, torch.randn(1, 3, 16, 16), torch.zeros(1, dtype=torch.long), ratio=2)


def test_script_probes_every_checkpoint_of_a_baseline_run(tmp_path):
    data = make_dataset(tmp_path / "data")
    run = tmp_path / "run"
    result = run_train(run, tiny_overrides(data, schedule__policy='"none"', model__dual_mode="false",
                                           train__epochs="2", optim__lr_milestones_epochs="[1]"))
    assert result.returncode == 0, result.stderr[-2000:]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"ratio": 0.3, "keep_ratio": 0.25}))
    done = subprocess.run([sys.executable, "scripts/low_step_value.py", str(run), "--batches", "2", "--batch-size",
                           "8", "--step-costs", str(bench), "--json", str(tmp_path / "rows.json")],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]  # the checkpoints at both epoch ends
    for row in rows:
        assert row["batches"] == 2 and row["cost_ratio"] == 0.25  # keep: a baseline probed with kept kernels
        assert row["rho"] == row["rho"] and row["low_steps_pay"] == (row["rho"] > 0.25)


def test_probes_during_training_change_nothing_and_count_as_training(tmp_path):
    from tests.trainer.train_helpers import comparable_metrics

    data = make_dataset(tmp_path / "data")
    runs = {}
    for name, extra in (("plain", {}), ("probed", {"logging__low_step_value_every": "5"})):
        run = tmp_path / name
        result = run_train(run, tiny_overrides(data, train__epochs="2", optim__lr_milestones_epochs="[1]", **extra))
        assert result.returncode == 0, result.stderr[-2000:]
        runs[name] = run
    probed = [json.loads(x) for x in (runs["probed"] / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in probed if r["kind"] == "probe"]
    assert [r["step"] for r in probes] == [5, 10, 15, 20]  # 24 steps
    for r in probes:
        assert r["rho"] == pytest.approx(r["low_full_dot"] / r["full_full_dot"])
        assert -1 <= r["cos_low_full"] <= 1 and r["probe_s"] > 0 and r["loss_low"] > 0
    # the same training, step for step (the probe restores model, gradients and RNG)
    without_probes = [r for r in comparable_metrics(runs["probed"]) if r["kind"] != "probe"]
    assert without_probes == comparable_metrics(runs["plain"])
    # the probes' time is training wall-clock
    steps = [r for r in probed if r["kind"] == "step"]
    epoch0 = next(r for r in probed if r["kind"] == "epoch" and r["epoch"] == 0)
    spent = sum(r["step_s"] for r in steps if r["epoch"] == 0) + sum(r["probe_s"] for r in probes if r["epoch"] == 0)
    assert epoch0["train_wall_s"] == pytest.approx(spent + epoch0.get("bn_recalibrate_s", 0.0), rel=1e-9)


def test_probing_a_model_without_low_mode_is_a_config_error():
    from trainer.run.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"logging\.low_step_value_every: needs model\.dual_mode"):
        load_config(None, ["data.dir='d'", "model.dual_mode=false", "schedule.policy='none'",
                           "logging.low_step_value_every=10"])
