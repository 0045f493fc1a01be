"""Training on a resolution ladder (issue "A resolution ladder"): a tiny 16-px dataset with low rungs 8 and
12 px (12 a non-integer ratio), the progressive policy with kept kernels and constant_pixels batches."""

from __future__ import annotations

import json

import pytest

from preprocess.build import build_dataset
from preprocess.config import BuildConfig
from tests.trainer.train_helpers import TIMING_KEYS, tiny_overrides
from trainer.__main__ import main
from trainer.run.checkpoint import CheckpointManager

# t = e / 3, linear over [0, 0.6): epoch 0 at 8 px, epoch 1 at target 8 + 8 x 0.556 = 12.4 -> 12 px, epoch 2 full
LADDER_RUN = dict(schedule__policy='"progressive"', schedule__ramp_end="0.6", schedule__constant_pixels="true",
                  model__low_kernels='"keep"')


def _lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_progressive_run_records_its_sizes_and_resumes_exactly(ladder_data, tmp_path):
    args = tiny_overrides(ladder_data, **LADDER_RUN)
    full_run = tmp_path / "full"
    assert main(["--run-dir", str(full_run), *args, "--set", "checkpoint.keep=10"]) == 0
    steps = [r for r in _lines(full_run) if r["kind"] == "step"]
    # constant_pixels: 16 x (16/8)^2 = 64 images per 8-px step (192 / 64 = 3 steps), 16 x (16/12)^2 = 28.4 -> 28
    # per 12-px step (192 // 28 = 6 steps), 16 per full step (12 steps)
    assert [(s["epoch"], s["mode"], s["size"]) for s in steps] == (
        [(0, "low", 8)] * 3 + [(1, "low", 12)] * 6 + [(2, "full", 16)] * 12)
    lr = {e: {s["lr"] for s in steps if s["epoch"] == e} for e in range(2)}
    # linear LR scaling with the batch: 64 / 16 = 4 and 28 / 16 = 1.75 times the schedule's LR (milestone at 2)
    assert len(lr[0]) == len(lr[1]) == 1 and lr[0].pop() / lr[1].pop() == pytest.approx(4 / 1.75)
    summary = json.loads((full_run / "summary.json").read_text())
    assert summary["low_steps_by_size"] == {"8": 3, "12": 6} and summary["steps_full"] == 12
    assert summary["low_batch_scale_by_size"] == {"8": 4.0, "12": 1.75} and summary["full_size"] == 16

    stopped = tmp_path / "stopped"
    assert main(["--run-dir", str(stopped), *args, "--set", "checkpoint.keep=10"]) == 0
    for path in CheckpointManager(stopped / "checkpoints").existing()[1:]:
        path.unlink()  # keep only the end of epoch 0: the resume starts on the 12-px rung
    assert main(["--run-dir", str(stopped), *args]) == 0
    strip = lambda run: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in _lines(run)]  # noqa: E731
    assert strip(stopped) == strip(full_run)


def test_compare_counts_a_ladder_in_full_step_equivalents(ladder_data, tmp_path):
    from trainer.report.compare import CompareError, load_run, run_cost

    run = tmp_path / "run"
    assert main(["--run-dir", str(run), *tiny_overrides(ladder_data, **LADDER_RUN)]) == 0
    loaded = load_run(run)
    assert loaded.sizes == [(0, 8.0), (1, 12.0), (2, 16.0)]
    costs = {"ratio": 0.3, "keep_ratio": 0.3, "low_size": 8, "keep_ratio_by_size": {"8": 0.3, "12": 0.6}}
    # 12 full + 3 steps x 4 x 0.3 + 6 steps x 1.75 x 0.6 (+ BN re-estimation batches before evaluations)
    recal = sum(e.get("bn_recalibrated_batches", 0) for e in loaded.epochs)
    assert run_cost(loaded, costs) == pytest.approx(12 + 3 * 4 * 0.3 + 6 * 1.75 * 0.6 + recal)
    with pytest.raises(CompareError, match=r"no step cost for the low steps at 12 px \(the step costs time 8 px\); .*--low-sizes 8,12"):
        run_cost(loaded, {"ratio": 0.3, "keep_ratio": 0.3, "low_size": 8, "keep_ratio_by_size": {"8": 0.3}})


@pytest.mark.parametrize("extra, message", [
    # the paper's pooled kernels need one integer ratio: the ladder's 12-px rung has 16/12
    (dict(schedule__policy='"progressive"'), "model.low_kernels: 'pool' (the paper's pooled kernels) needs one "
                                            "integer ratio full/low, but schedule.policy / schedule.low_size read the "
                                            "low sizes 8 (2x), 12 (1.33333x)"),
    (dict(schedule__low_size="12"), "model.low_kernels: 'pool'"),
    (dict(schedule__low_size="10"), "schedule.low_size: 10 is not one of the dataset's low sizes (8, 12; full 16)"),
    (dict(schedule__ramp_start="0.7"), "schedule.ramp_start: expected a number in [0, ramp_end = 0.6)"),
])
def test_bad_ladder_settings_exit_2_naming_the_key(ladder_data, tmp_path, capsys, extra, message):
    assert main(["--run-dir", str(tmp_path / "r"), *tiny_overrides(ladder_data, **extra)]) == 2
    assert message in capsys.readouterr().err


def test_two_level_pool_on_a_ladder_dataset_reads_low(ladder_data, tmp_path):
    """A ladder dataset serves the paper's two-level schedule unchanged: "low" (8 px, ratio 2), pooled kernels."""
    run = tmp_path / "r"
    assert main(["--run-dir", str(run), *tiny_overrides(ladder_data, train__epochs="1", optim__lr_milestones_epochs="[]")]) == 0
    sizes = {(r["mode"], r["size"]) for r in _lines(run) if r["kind"] == "step"}
    assert sizes == {("full", 16), ("low", 8)}


def test_a_rung_the_model_cannot_run_is_refused_naming_it(tmp_path, capsys):
    """The low-mode dry run covers the smallest rung the schedule reads: squeezenet's ceil-mode max-pools fail
    on 16-px images, so a ladder starting at 16 px is refused, one starting at 24 px runs."""
    data = tmp_path / "data32"
    build_dataset(BuildConfig(source="synthetic", out=str(data), size=32, low_sizes=(24, 16), channels=3,
                              num_classes=4, num_train=64, num_val=16, samples_per_shard=64, seed=0))
    zoo = dict(model__name='"torchvision:squeezenet1_1"', model__stem='"imagenet"', model__low_kernels='"keep"',
               schedule__policy='"progressive"', train__epochs="1", optim__lr_milestones_epochs="[]")
    assert main(["--run-dir", str(tmp_path / "r16"), *tiny_overrides(data, schedule__low_size="16", **zoo)]) == 2
    err = capsys.readouterr().err
    assert "model.low_kernels / model.name: 'keep' on torchvision:squeezenet1_1 cannot run the 16x16 " \
           "low-resolution images" in err and err.count("\n") == 1
    assert main(["--run-dir", str(tmp_path / "r24"), *tiny_overrides(data, **zoo)]) == 0
