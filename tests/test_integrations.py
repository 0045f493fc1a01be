"""The integrations CI requires are present and work (fails, never skips, under LOWMODE_REQUIRE)."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.integrations import FMNIST_DIR, FMNIST_FILES, need, required

IDX_MAGIC = {"images": 2051, "labels": 2049}


def test_dali_runs_a_cpu_pipeline():
    need("dali")
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def constant():
        return fn.constant(idata=[1, 2, 3], dtype=types.INT32)

    pipe = constant()
    pipe.build()
    (out,) = pipe.run()
    assert np.array_equal(out.as_array(), [[1, 2, 3], [1, 2, 3]])


def test_fashion_mnist_files_are_idx_with_the_official_counts():
    need("fmnist")
    counts = {"train": 60000, "t10k": 10000}
    for name in FMNIST_FILES:
        with gzip.open(FMNIST_DIR / name, "rb") as f:
            header = f.read(8)
        kind = "images" if "images" in name else "labels"
        assert int.from_bytes(header[:4], "big") == IDX_MAGIC[kind], name
        assert int.from_bytes(header[4:8], "big") == counts[name.split("-")[0]], name


def test_gloo_all_reduce_in_a_one_process_group(tmp_path):
    need("ddp")
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        value = torch.tensor([2.0, 3.0])
        dist.all_reduce(value)
        assert value.tolist() == [2.0, 3.0] and dist.get_backend() == "gloo"
    finally:
        dist.destroy_process_group()


def test_slurm_controller_answers():
    need("slurm")
    result = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(), "sinfo lists no node"


def test_wandb_disabled_run_logs_without_an_account():
    need("wandb")
    import wandb

    run = wandb.init(mode="disabled", project="lowmode-test")
    run.log({"x": 1.0})
    run.finish()
    assert wandb.__version__


def test_timm_is_the_pinned_version_and_builds_a_model_offline():
    need("timm")
    import timm

    from trainer.method.zoo import TIMM_REQUIREMENT

    assert timm.__version__ == TIMM_REQUIREMENT.split("==")[1]
    model = timm.create_model("resnet10t", pretrained=False, num_classes=3)  # no download: definitions only
    assert model.get_classifier().out_features == 3


def test_required_parses_env(monkeypatch):
    monkeypatch.setenv("LOWMODE_REQUIRE", "dali, fmnist,,slurm")
    assert required() == {"dali", "fmnist", "slurm"}
    monkeypatch.delenv("LOWMODE_REQUIRE")
    assert required() == set()


def _fake_slurm(tmp_path: Path, sinfo_body: str) -> str:
    """A PATH whose sbatch exists and whose sinfo runs ``sinfo_body`` (a shell snippet)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", "exit 0"), ("sinfo", sinfo_body)):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def test_slurm_installed_but_down_skips_or_fails_when_required(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path, "echo 'slurm_load_partitions: Unable to contact slurm "
                                                     "controller (connect failure)' >&2; exit 1"))
    monkeypatch.setenv("LOWMODE_REQUIRE", "")
    with pytest.raises(pytest.skip.Exception, match="controller does not answer.*connect failure.*slurm-up"):
        need("slurm")
    monkeypatch.setenv("LOWMODE_REQUIRE", "slurm")
    with pytest.raises(pytest.fail.Exception, match="required.*controller does not answer"):
        need("slurm")


def test_slurm_answering_controller_is_available(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path, "echo idle"))
    monkeypatch.setenv("LOWMODE_REQUIRE", "")
    need("slurm")  # no skip
