"""optim.lr_schedule cosine / linear: the LR as a pure function of progress, per step, with warm-up."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.trainer.train_helpers import make_dataset, run_train, tiny_overrides
from trainer.run.config import ConfigError, load_config
from trainer.run.lr_schedule import ProgressLR


def _schedule(shape: str, warmup: float = 0.0, epochs: int = 4) -> ProgressLR:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=123.0)
    return ProgressLR(opt, shape=shape, base_lr=0.4, epochs=epochs, warmup_epochs=warmup)


def test_cosine_and_linear_decay_to_zero_after_warmup():
    cos, lin = _schedule("cosine", warmup=1.0), _schedule("linear", warmup=1.0)  # warm-up: the first quarter
    assert cos.lr_at(0.0) == 0.0 and cos.lr_at(0.125) == pytest.approx(0.2)  # half-way up the warm-up
    assert cos.lr_at(0.25) == pytest.approx(0.4) and lin.lr_at(0.25) == pytest.approx(0.4)
    assert cos.lr_at(0.625) == pytest.approx(0.2) and lin.lr_at(0.625) == pytest.approx(0.2)  # mid decay
    assert cos.lr_at(0.25 + 0.75 / 4) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert cos.lr_at(1.0) == pytest.approx(0.0, abs=1e-12) and lin.lr_at(1.0) == 0.0
    assert _schedule("cosine").lr_at(0.0) == 0.4  # no warm-up: starts at the base LR


def test_set_progress_sets_every_group_and_keeps_no_state():
    sched = _schedule("linear")
    assert sched.optimizer.param_groups[0]["lr"] == 0.4  # constructed at step 0
    assert sched.set_progress(2, 5, 10) == pytest.approx(0.4 * (1 - 2.5 / 4))
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.15)
    assert sched.state_dict() == {}


@pytest.mark.parametrize("sets,key", [
    (["optim.lr_schedule='cosine'"], "optim.lr_milestones_epochs"),  # the default milestones are the step schedule's
    (["optim.lr_schedule='cosine'", "optim.lr_milestones_epochs=[]", "optim.warmup_epochs=-1"], "optim.warmup_epochs"),
    (["optim.warmup_epochs=1"], "optim.warmup_epochs"),  # warm-up with the step schedule
    (["optim.lr_schedule='cosine'", "optim.lr_milestones_epochs=[]", "optim.warmup_epochs=200"], "optim.warmup_epochs"),
    (["optim.label_smoothing=1.0"], "optim.label_smoothing"),
    (["optim.lr_schedule='exp'"], "optim.lr_schedule"),
])
def test_bad_lr_settings_name_the_key(sets, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, ["data.dir='d'", *sets])


def test_a_cosine_run_uses_the_schedules_lr_at_every_step(tmp_path):
    data = make_dataset(tmp_path / "data")
    extra = dict(optim__lr_schedule='"cosine"', optim__lr_milestones_epochs="[]", optim__warmup_epochs="0.5",
                 optim__label_smoothing="0.1", schedule__policy='"none"', model__dual_mode="false",
                 train__epochs="2")
    result = run_train(tmp_path / "run", tiny_overrides(data, **extra))
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert len(steps) == 24
    reference = _schedule("cosine", warmup=0.5, epochs=2)
    reference.base_lr = 0.1  # the tiny runs' optim.lr default
    expected = [reference.lr_at((r["epoch"] + i % 12 / 12) / 2) for i, r in enumerate(steps)]
    assert [r["lr"] for r in steps] == pytest.approx(expected)
    assert steps[0]["lr"] == 0.0 and max(r["lr"] for r in steps) == pytest.approx(0.1, rel=0.02)
