"""The adaptive schedule (issue "An adaptive schedule"): the controller's rule, the schedule's climbs, bad
settings, and training on a tiny 16-px dataset with rungs 8 and 12 px — climbs mid-epoch, records, summary,
plots, and a bitwise-exact resume before and after a climb."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.index import open_split
from pipeline.plan import Planner
from pipeline.schedule import Ladder, ModeSchedule, ScheduleConfig
from tests.trainer.train_helpers import TIMING_KEYS, tiny_overrides
from trainer.__main__ import main
from trainer.method.dualmode import convert_to_dual_mode, get_mode, set_mode
from trainer.method.models import build_model
from trainer.run.adaptive import AdaptiveController, probe_losses
from trainer.run.checkpoint import CheckpointManager

LADDER = Ladder(full_height=32, rungs=(("low", 16), ("low24", 24)))
# every 3 steps a measurement; with 12 steps per epoch the first climb comes mid-epoch 1 (step 18)
ADAPTIVE_RUN = dict(schedule__policy='"adaptive"', model__low_kernels='"keep"', schedule__adapt_every_steps="3",
                    schedule__adapt_margin="0.05", train__epochs="4", optim__lr_milestones_epochs="[]",
                    checkpoint__every_steps="3", checkpoint__keep="100")


def _schedule(**config) -> ModeSchedule:
    return ModeSchedule(ScheduleConfig(policy="adaptive", **config), 0, total_epochs=10, ladder=LADDER)


def test_the_schedule_reads_the_climbs_and_ends_full():
    s = _schedule(adapt_full_from=0.7)
    assert [s.resolution(e, 0) for e in (0, 3, 6, 7, 9)] == ["low", "low", "low", "full", "full"]
    climbed = s.with_climbs([(1, 3, "low24"), (4, 0, "full")])
    assert [climbed.resolution(1, k) for k in (2, 3, 4)] == ["low", "low24", "low24"]
    assert [climbed.resolution(e, 0) for e in (2, 3, 4, 5)] == ["low24", "low24", "full", "full"]
    assert climbed.with_ladder(LADDER).climbs == ((1, 3, "low24"), (4, 0, "full"))  # binding keeps them
    assert [climbed.p_for_epoch(e) for e in (0, 3, 4)] == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("climbs", [
    [(1, 3, "low24"), (1, 2, "full")],   # not by increasing (epoch, step)
    [(1, 3, "low24"), (2, 0, "low")],    # down the ladder
    [(1, 3, "low40")],                   # no such rung
    [(-1, 0, "low24")],
])
def test_climbs_must_go_up_the_ladder_in_order(climbs):
    with pytest.raises(ValueError, match="schedule: "):
        _schedule().with_climbs(climbs)


def test_only_the_adaptive_policy_has_climbs():
    s = ModeSchedule(ScheduleConfig(policy="progressive"), 0, total_epochs=4, ladder=LADDER)
    with pytest.raises(ValueError, match="climbs are the adaptive policy's decisions"):
        s.with_climbs([(1, 0, "low24")])


@pytest.mark.parametrize("fields, message", [
    ({"adapt_every_steps": 0}, "schedule.adapt_every_steps: expected an integer >= 1"),
    ({"adapt_margin": -0.1}, "schedule.adapt_margin: expected a number >= 0, got -0.1"),
    ({"adapt_probe_batches": 0}, "schedule.adapt_probe_batches: expected an integer >= 1"),
    ({"adapt_full_from": 0.0}, "schedule.adapt_full_from: expected a number in (0, 1]"),
    ({"policy": "adaptive", "constant_pixels": True}, "schedule.constant_pixels: expected false when policy is 'adaptive'"),
    ({"policy": "adaptive", "low_batch_scale": 2}, "schedule.low_batch_scale: expected 1 when policy is 'adaptive'"),
])
def test_bad_controller_settings_name_the_key(fields, message):
    with pytest.raises(ValueError) as err:
        ScheduleConfig(**fields)
    assert str(err.value).startswith(message)


def test_the_controller_climbs_when_the_smoothed_loss_stops_falling():
    s = _schedule(adapt_margin=0.05)
    controller = AdaptiveController(s)
    decisions = []
    for i, loss in enumerate([2.0, 1.6, 1.5, 1.45, 1.0, 0.97]):
        resolution = s.adaptive_resolution(0, 3 * i + 3)
        record = controller.observe(loss, epoch=0, next_step=3 * i + 3, schedule=s, resolution=resolution)
        decisions.append((record["decision"], record["smoothed"]))
        s = s.with_climbs(controller.climbs())
    # smoothed = mean of the last two at the rung: 2.0 (best), 1.8 (< 2.0 x 0.95: stay), 1.55 (stay),
    # 1.475 > 1.55 x 0.95 = 1.4725: climb to 24 px; a new rung starts afresh: 1.0 (best), 0.985 > 0.95 x 1.0: climb
    assert decisions == [("stay", 2.0), ("stay", 1.8), ("stay", 1.55), ("climb", pytest.approx(1.475)),
                         ("stay", 1.0), ("climb", pytest.approx(0.985))]
    assert controller.climbs() == ((0, 12, "low24"), (0, 18, "full"))
    restored = AdaptiveController(_schedule())
    restored.load_state_dict(json.loads(json.dumps(controller.state_dict())))
    assert restored.state == controller.state


def test_a_bad_controller_state_is_refused():
    with pytest.raises(ValueError, match="adaptive: controller state"):
        AdaptiveController(_schedule()).load_state_dict({"climbs": [[1]], "best": None, "last": None, "measurements": 0})


def test_probe_losses_leave_the_model_as_it_was():
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=4, in_channels=3, stem="cifar")
    convert_to_dual_mode(model, low_kernels="keep", bn_policy="frozen")
    model.eval()
    set_mode(model, "full")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,))
    sums, counts = probe_losses(model, [(images, labels)], (8, 12), "gaussian")
    assert counts == [8.0, 8.0, 8.0] and all(s > 0 for s in sums)
    assert not model.training and get_mode(model) == "full"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_rebinding_a_planner_drops_its_layouts(ladder_data):
    index = open_split(ladder_data, "train")
    schedule = ModeSchedule(ScheduleConfig(policy="adaptive"), 0, total_epochs=4)
    planner = Planner(index, batch_size_per_rank=16, seed=0, schedule=schedule)
    assert {p.resolution for p in planner.plans(1)} == {"low"}
    planner.rebind(planner.schedule.with_climbs([(1, 5, "low12")]))  # the schedule bound to the dataset's rungs
    assert [p.resolution for p in planner.plans(1)] == ["low"] * 5 + ["low12"] * 7
    val = Planner(open_split(ladder_data, "val"), batch_size_per_rank=16, seed=0)
    with pytest.raises(ValueError, match="rebind: val has no mode schedule"):
        val.rebind(schedule)


def _lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _strip(run):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS and k != "adapt_s"} for r in _lines(run)]


@pytest.fixture(scope="module")
def adaptive_run(ladder_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("adaptive_run") / "full"
    assert main(["--run-dir", str(run), *tiny_overrides(ladder_data, **ADAPTIVE_RUN)]) == 0
    return run


def test_an_adaptive_run_climbs_mid_epoch_and_records_why(adaptive_run):
    records = _lines(adaptive_run)
    adapts = [r for r in records if r["kind"] == "adapt"]
    climbs = [(r["step"], r["size"], r["to_size"]) for r in adapts if r["decision"] == "climb"]
    assert [c[1:] for c in climbs] == [(8, 12), (12, 16)]
    steps = {r["step"]: r["size"] for r in records if r["kind"] == "step"}
    first, second = climbs[0][0], climbs[1][0]
    assert first % 12 != 0  # mid-epoch: the rest of the epoch read the new size
    assert {steps[s] for s in range(1, first + 1)} == {8}
    assert {steps[s] for s in range(first + 1, second + 1)} == {12}
    assert {steps[s] for s in steps if s > second} == {16}
    # measured every 3 steps while low, never once at full resolution
    assert [r["step"] for r in adapts] == list(range(3, second + 1, 3))
    for r in adapts:
        assert r["loss_full"] > 0 and r["loss_low"] > 0 and r["adapt_s"] >= 0
    summary = json.loads((adaptive_run / "summary.json").read_text())
    assert summary["adapt_measurements"] == len(adapts)
    assert [(c["step"], c["from_size"], c["to_size"]) for c in summary["adapt_climbs"]] == climbs
    assert 0 < summary["adapt_overhead"] < 1
    assert summary["low_steps_by_size"] == {"8": first, "12": second - first}


@pytest.mark.parametrize("where", ["before", "after"])
def test_resume_before_or_after_a_climb_is_exact(adaptive_run, ladder_data, tmp_path, where):
    climb = next(r["step"] for r in _lines(adaptive_run) if r["kind"] == "adapt" and r["decision"] == "climb")
    keep_through = climb - 3 if where == "before" else climb + 3
    run = tmp_path / where
    args = tiny_overrides(ladder_data, **ADAPTIVE_RUN)
    assert main(["--run-dir", str(run), *args]) == 0
    for path in CheckpointManager(run / "checkpoints").existing():
        if int(path.stem.split("-")[1]) > keep_through:
            path.unlink()
    assert main(["--run-dir", str(run), *args]) == 0
    assert _strip(run) == _strip(adaptive_run)


def test_compare_plots_the_controllers_signal(adaptive_run, tmp_path):
    from trainer.report.compare import compare

    out = tmp_path / "cmp"
    compare([str(adaptive_run)], out=str(out))
    assert (out / "adapt.png").stat().st_size > 0


@pytest.mark.parametrize("extra, message", [
    (dict(schedule__policy='"adaptive"', schedule__adapt_every_steps="0"),
     "schedule.adapt_every_steps: expected an integer >= 1"),
    (dict(schedule__policy='"adaptive"', schedule__adapt_margin="-0.5"), "schedule.adapt_margin: expected a number >= 0"),
    (dict(schedule__policy='"adaptive"', model__dual_mode="false"), "model.dual_mode: must be true when schedule.policy is 'adaptive'"),
    (dict(schedule__policy='"adaptive"', schedule__low_size="10"), "schedule.low_size: 10 is not one of the dataset's low sizes"),
])
def test_bad_adaptive_settings_exit_2_with_one_line(ladder_data, tmp_path, capsys, extra, message):
    assert main(["--run-dir", str(tmp_path / "r"), *tiny_overrides(ladder_data, model__low_kernels='"keep"', **extra)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
