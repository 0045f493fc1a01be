"""The loop benchmark (python -m trainer.bench --loop): the real Trainer on synthetic shards, tiny."""

from __future__ import annotations

import json

import pytest

from trainer.bench import cli
from trainer.run.step_bench import BenchConfig, run_benchmark
from trainer.run.loop_bench import LoopBenchConfig, main

LOOP_KEYS = {"loop_full_ms", "loop_low_ms", "loop_ratio", "data_wait_share"}


def test_loop_bench_tiny_prints_bench_keys_plus_loop_keys(capsys, monkeypatch):
    bench_keys = set(run_benchmark(BenchConfig(model="resnet8", batch_size=2, warmup=0, iters=1, full_size=8)))
    assert cli(["--loop", "--model", "resnet8", "--batch-size", "8", "--size", "8", "--threads", "1",
                "--steps", "3", "--warmup", "1", "--num-workers", "0", "--sync-every-steps", "2",
                "--bench-warmup", "0", "--bench-iters", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # stdout: the JSON object alone
    assert bench_keys | LOOP_KEYS <= set(result)
    assert (result["model"], result["full_size"], result["batch_size"]) == ("resnet8", 8, 8)
    assert all(result[k] > 0 for k in ("full_ms", "low_ms", "ratio", "loop_full_ms", "loop_low_ms", "loop_ratio"))
    assert result["loop_ratio"] == pytest.approx(result["loop_low_ms"] / result["loop_full_ms"], rel=1e-3)
    assert 0 < result["data_wait_share"] < 1
    assert result["loop_batches_ahead"] == 1  # the trainer's default: the handover thread
    assert result["loop_steps_full"] >= 3 and result["loop_steps_low"] >= 3
    assert result["loop_vs_bench"] == pytest.approx(result["loop_ratio"] / result["ratio"], rel=1e-3)
    assert result["full_vs_baseline"] == pytest.approx(result["full_ms"] / result["baseline_full_ms"], rel=1e-2)


def test_loop_bench_separate_runs_and_baseline(capsys):
    assert main(["--model", "resnet8", "--batch-size", "4", "--size", "8", "--in-channels", "1", "--threads", "1",
                 "--steps", "2", "--warmup", "1", "--num-workers", "0", "--schedule", "separate", "--baseline",
                 "--batches-ahead", "0", "--bench-warmup", "0", "--bench-iters", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["loop_batches_ahead"] == 0
    assert (result["loop_steps_full"], result["loop_steps_low"]) == (2, 2) and result["in_channels"] == 1
    assert result["loop_baseline_full_ms"] > 0
    assert result["loop_full_vs_baseline"] == pytest.approx(result["loop_full_ms"] / result["loop_baseline_full_ms"],
                                                            rel=1e-3)


@pytest.mark.parametrize("argv, word", [(["--steps", "0"], "--steps"), (["--device", "cuda:1"], "--device"),
                                        (["--size", "9"], "--ratio"), (["--bf16"], "--bf16"),
                                        (["--batches-ahead", "-1"], "--batches-ahead")])
def test_loop_bench_bad_options_exit_2(argv, word, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and word in err and "\n" not in err
    with pytest.raises(ValueError):
        LoopBenchConfig(loader="nvjpeg")
