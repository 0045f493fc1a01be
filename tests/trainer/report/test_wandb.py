"""W&B offline: a tiny training run logs project/group/job_type, the config, step and epoch
metrics with train_wall_s as x-axis, and keeps its run id across a resume (read back from the
offline run's .wandb file)."""

from __future__ import annotations

import json
import struct
from pathlib import Path


from tests.integrations import need
from tests.trainer.train_helpers import make_dataset, tiny_overrides

BLOCK = 32768
HEADER = 7  # ":W&B" + magic (2) + version (1)


def read_wandb_records(path: Path) -> list:
    """Protobuf Records of an offline .wandb file (LevelDB-style log: 32 KiB blocks, 7-byte record headers)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # block trailer too small for a header
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            break
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _items(updates) -> dict:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in updates}


def _run_record_values(records):
    out = {"run": None, "config": {}, "history": [], "summary": {}, "metrics": {}}
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
            out["config"].update(_items(r.run.config.update))
        elif kind == "config":
            out["config"].update(_items(r.config.update))
        elif kind == "history":
            out["history"].append(_items(r.history.item))
        elif kind == "summary":
            out["summary"].update(_items(r.summary.update))
        elif kind == "metric":
            out["metrics"][r.metric.name] = r.metric.step_metric
    return out


def test_offline_run_records_config_metrics_and_keeps_id_on_resume(tmp_path, monkeypatch):
    need("wandb")
    import wandb

    from trainer.__main__ import main
    from trainer.run.checkpoint import CheckpointManager, load_checkpoint

    monkeypatch.delenv("WANDB_MODE", raising=False)  # conftest disables W&B for every other test
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    data = make_dataset(tmp_path / "data", num_train=64, num_val=16)
    run = tmp_path / "run"
    args = ["--run-dir", str(run), *tiny_overrides(data, train__epochs="2", optim__lr_milestones_epochs="[1]",
                                                  logging__wandb='"offline"', logging__experiment='"exp"',
                                                  train__deterministic="false")]
    assert main(args) == 0
    wandb.teardown()  # the W&B service flushes the offline file when it shuts down (at exit normally)
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    got = _run_record_values(read_wandb_records(files[0]))
    run_id = got["run"].run_id
    assert (got["run"].project, got["run"].run_group, got["run"].job_type) == ("lowmode", "exp", "lowmode")
    assert got["config"]["optim"]["lr"] == 0.1 and got["config"]["train"]["global_batch_size"] == 16
    assert got["metrics"]["val_acc"] == "train_wall_s"
    steps = [h for h in got["history"] if "loss" in h]
    assert [h["_step"] for h in steps] == list(range(1, 9))  # 64 samples / 16 per step, 2 epochs
    epoch_rows = [h for h in got["history"] if "val_acc" in h]
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["val_acc"] for h in epoch_rows] == [m["val_acc"] for m in metrics if m["kind"] == "epoch"]
    assert got["summary"]["final_val_acc"] == json.loads((run / "summary.json").read_text())["final_val_acc"]
    assert load_checkpoint(CheckpointManager(run / "checkpoints").existing()[-1])["wandb_run_id"] == run_id

    # resume from the epoch-0 checkpoint (as after a crash in epoch 1): the same W&B run id goes on
    CheckpointManager(run / "checkpoints").existing()[-1].unlink()
    assert main(args) == 0
    wandb.teardown()
    again = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(again) == 2 and {p.name for p in again} == {f"run-{run_id}.wandb"}
    resumed = _run_record_values(read_wandb_records(max(again, key=lambda p: p.stat().st_mtime)))
    assert resumed["run"].run_id == run_id
    assert [h["_step"] for h in resumed["history"] if "loss" in h] == [5, 6, 7, 8]
