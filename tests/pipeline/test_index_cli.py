"""The open check's error messages, and the ``python -m pipeline`` commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pipeline import DatasetFormatError, make_loader
from pipeline.cli import main
from pipeline.index import open_split
from pipeline.schedule import ModeSchedule, ScheduleConfig
from tests.integrations import need
from tests.pipeline.conftest import REPO


def _edit_manifest(data, change):
    path = data / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _damage_missing_manifest(data):
    (data / "manifest.json").unlink()
    return "no manifest"


def _damage_unknown_version(data):
    _edit_manifest(data, lambda m: m.update(version=99))
    return "version 99 is not supported"


def _damage_missing_shard(data):
    (data / "low" / "train-000002.tar").unlink()
    return "low/train-000002.tar: shard missing"


def _damage_size_mismatch(data):
    tar = data / "full" / "train-000001.tar"
    size = tar.stat().st_size
    with open(tar, "ab") as f:
        f.write(b"\0" * 512)
    return f"full/train-000001.tar: size {size + 512} bytes, manifest says {size}"


def _damage_key_mismatch(data):
    idx = data / "low" / "train-000003.idx"
    lines = idx.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]  # two samples listed in another order than full/
    idx.write_text("\n".join(lines) + "\n")
    first_full_key = (data / "full" / "train-000003.idx").read_text().splitlines()[1].split()[3].split(".")[0]
    return f"low/train-000003.tar: key [0-9]+ at sample 0 differs from .*full/train-000003.tar key {first_full_key}"


def _damage_wrong_image_size(data):
    idx = data / "full" / "train-000000.idx"
    lines = idx.read_text().splitlines()
    fields = lines[5].split()
    key = fields[3].split(".")[0]
    fields[6] = "3000"  # the raw image's size: 3072 bytes for 32x32x3
    lines[5] = " ".join(fields)
    idx.write_text("\n".join(lines) + "\n")
    return f"full/train-000000.tar: key {key} image has 3000 bytes, expected 3072"


DAMAGES = [
    _damage_missing_manifest, _damage_unknown_version, _damage_missing_shard, _damage_size_mismatch,
    _damage_key_mismatch, _damage_wrong_image_size,
]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__.removeprefix("_damage_"))
def test_bad_dataset_gives_clear_error_and_exit_2(data_copy, damage, capsys):
    message = damage(data_copy)
    with pytest.raises(DatasetFormatError, match=message):
        open_split(data_copy, "train")
    assert main(["inspect", str(data_copy), "--loader", "torch", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_unknown_split_and_bad_arguments(data_dir, capsys):
    with pytest.raises(DatasetFormatError, match="no split 'test'"):
        open_split(data_dir, "test")
    with pytest.raises(ValueError, match="rank must be in"):
        make_loader(data_dir, "train", batch_size_per_rank=8, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_loader(data_dir, "train", batch_size_per_rank=8, seed=0, kind="ffcv")
    assert main(["inspect", str(data_dir), "--loader", "torch", "--batch-size", "1000"]) == 2
    assert "no full global batch" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["torch", "dali"])
def test_inspect_json_in_another_process_matches_the_loader(data_dir, kind):
    """Modes and keys agree across processes; the JSON has exactly the documented shape."""
    if kind == "dali":
        need("dali")
    cmd = [sys.executable, "-m", "pipeline", "inspect", str(data_dir), "--split", "train", "--loader", kind,
           "--seed", "4", "--epoch", "2", "--rank", "1", "--world-size", "2", "--steps", "3", "--p", "0.5",
           "--batch-size", "16", "--json"]
    out = json.loads(subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout)
    assert set(out) == {"steps_per_epoch", "steps"} and out["steps_per_epoch"] == 8
    loader = make_loader(data_dir, "train", batch_size_per_rank=16, seed=4, rank=1, world_size=2, kind="torch",
                         schedule=ModeSchedule(ScheduleConfig(p=0.5), seed=4), num_workers=0)
    expected = [
        {"step": b.step, "mode": b.mode, "resolution": b.resolution, "batch_size": 16, "shape": list(b.images.shape), "keys": b.keys}
        for b, _ in zip(loader.epoch(2), range(3))
    ]
    assert out["steps"] == expected
    assert all(set(s) == {"step", "mode", "resolution", "batch_size", "shape", "keys"} for s in out["steps"])


def test_cli_exit_code_2_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline", "inspect", str(tmp_path), "--json"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "manifest.json: no manifest" in result.stderr
    assert result.stdout == ""


def test_bench_json(data_dir, capsys):
    need("dali")
    assert main(["bench", str(data_dir), "--loader", "dali", "--mode", "low", "--batch-size", "16",
                 "--seconds", "0.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"loader", "mode", "device", "batch_size", "images_per_s", "ms_per_batch"}
    assert (out["loader"], out["mode"], out["device"], out["batch_size"]) == ("dali", "low", "cpu", 16)
    assert out["images_per_s"] > 0 and out["ms_per_batch"] > 0


def test_bench_cuda_without_a_gpu_is_one_error_line(data_dir, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["bench", str(data_dir), "--loader", "torch", "--device", "cuda", "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: no CUDA device") and err.count("\n") == 1


def test_measure_throughput_skips_the_first_batch_and_spans_epochs():
    from types import SimpleNamespace

    from pipeline.cli import measure_throughput

    class TwoBatchEpochs:  # 2 batches of 3 images per epoch: the clock must keep going across epochs
        epochs_started = 0

        def epoch(self, epoch):
            self.epochs_started += 1
            for _ in range(2):
                yield SimpleNamespace(images=torch.zeros(3, 1, 2, 2))

    loader = TwoBatchEpochs()
    out = measure_throughput(loader, seconds=0.05)
    assert loader.epochs_started >= 2 and out["images_per_s"] > 0 and out["ms_per_batch"] > 0


@pytest.mark.gpu
def test_bench_on_the_gpu(data_dir, capsys):
    need("dali")
    assert main(["bench", str(data_dir), "--loader", "dali", "--mode", "full", "--device", "cuda",
                 "--batch-size", "16", "--seconds", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "cuda" and out["images_per_s"] > 0


def test_inspect_shows_each_steps_batch_size_with_low_batch_scale(data_dir, capsys):
    args = ["inspect", str(data_dir), "--loader", "torch", "--workers", "0", "--seed", "4", "--epoch", "1",
            "--batch-size", "16", "--steps", "100", "--policy", "ramp", "--total-epochs", "4", "--ramp-end", "1",
            "--ramp-shape", "step", "--p", "0.5", "--low-batch-scale", "2"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    schedule = ModeSchedule(ScheduleConfig(policy="ramp", p=0.5, ramp_end=1, ramp_shape="step", low_batch_scale=2),
                            seed=4, total_epochs=4)
    loader = make_loader(data_dir, "train", batch_size_per_rank=16, seed=4, kind="torch", schedule=schedule,
                         num_workers=0)
    layout = loader.planner.layout(1)
    assert out["steps_per_epoch"] == loader.steps_in_epoch(1) == len(out["steps"]) == layout.num_steps
    assert [s["batch_size"] for s in out["steps"]] == layout.sizes.tolist()
    assert [s["mode"] for s in out["steps"]] == ["low" if low else "full" for low in layout.low]
    assert {(s["mode"], s["batch_size"], s["shape"][0]) for s in out["steps"]} == {("full", 16, 16), ("low", 32, 32)}
    assert main(args) == 0
    human = capsys.readouterr().out.splitlines()
    assert human[0] == f"steps in epoch 1: {layout.num_steps}"
    assert all(f"batch {s['batch_size']:4d}" in line for s, line in zip(out["steps"], human[1:]))


@pytest.mark.parametrize("option, message", [
    (["--ramp-end", "1.5"], "error: schedule.ramp_end: expected a number in (0, 1], got 1.5"),
    (["--low-batch-scale", "0"], "error: schedule.low_batch_scale: expected an integer >= 1, got 0"),
    (["--policy", "ramp"], "error: total_epochs: "),
])
def test_inspect_bad_schedule_options_exit_2(data_dir, capsys, option, message):
    assert main(["inspect", str(data_dir), "--loader", "torch", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
