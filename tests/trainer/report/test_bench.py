"""The per-step cost benchmark CLI on a tiny model."""

from __future__ import annotations

import json

import pytest

from trainer.report.bench import BenchConfig, main

KEYS = {"model", "device", "batch_size", "full_ms", "low_ms", "ratio", "flops_ratio",
        "peak_mem_full_mb", "peak_mem_low_mb"}


def test_bench_cli_prints_sane_json(capsys):
    assert main(["--model", "resnet8", "--batch-size", "4", "--warmup", "1", "--iters", "2",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert KEYS <= set(result)
    assert (result["model"], result["device"], result["batch_size"]) == ("resnet8", "cpu", 4)
    assert result["full_ms"] > 0 and result["low_ms"] > 0
    assert result["ratio"] == pytest.approx(result["low_ms"] / result["full_ms"], rel=1e-2)
    # resnet8 at r=2: converted convs cost 1/9 at the same map sizes, the stem 1/4 → well below 1/2
    assert 0.05 < result["flops_ratio"] < 0.5
    assert result["peak_mem_full_mb"] > result["peak_mem_low_mb"] > 0


@pytest.mark.parametrize(
    "kwargs, field",
    [({"model": "vgg"}, "model"), ({"batch_size": 0}, "batch_size"), ({"device": "tpu"}, "device"),
     ({"ratio": 3}, "divisible")],
)
def test_bench_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BenchConfig(**kwargs)


def test_bench_fashion_mnist_shape(capsys):
    """--size 28 --in-channels 1 benches the Fashion-MNIST configuration (28x28x1 full, 14x14x1 low)."""
    assert main(["--model", "resnet8", "--batch-size", "2", "--warmup", "0", "--iters", "1",
                 "--size", "28", "--in-channels", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["full_size"], result["in_channels"]) == (28, 1)
    assert 0.05 < result["flops_ratio"] < 0.5
    with pytest.raises(ValueError, match="in_channels"):
        BenchConfig(in_channels=0)
