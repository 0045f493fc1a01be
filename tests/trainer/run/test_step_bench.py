"""The per-step cost benchmark CLI on a tiny model."""

from __future__ import annotations

import json

import pytest

from trainer.run.step_bench import BenchConfig, main

KEYS = {"model", "device", "batch_size", "full_ms", "low_ms", "ratio", "flops_ratio",
        "peak_mem_full_mb", "peak_mem_low_mb"}
KEEP_KEYS = {"keep_low_ms", "keep_ratio", "keep_flops_ratio", "keep_low_cpu_ms", "keep_cpu_ratio",
             "keep_low_gflops", "peak_mem_keep_low_mb"}


def test_bench_cli_prints_sane_json(capsys):
    assert main(["--model", "resnet8", "--batch-size", "4", "--warmup", "1", "--iters", "2",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert KEYS <= set(result)
    assert (result["model"], result["device"], result["batch_size"]) == ("resnet8", "cpu", 4)
    assert result["full_ms"] > 0 and result["low_ms"] > 0
    assert result["keep_freed_memory"] is True  # the allocator setting of a training run (glibc here)
    assert result["ratio"] == pytest.approx(result["low_ms"] / result["full_ms"], rel=1e-2)
    # resnet8 at r=2: converted convs cost 1/9 at the same map sizes, the stem 1/4 → well below 1/2
    assert 0.05 < result["flops_ratio"] < 0.5
    assert result["peak_mem_full_mb"] > result["peak_mem_low_mb"] > 0
    # low_kernels="keep": the 3×3 convs on the 16×16 input, max-pool kept (layer1 at 8×8)
    assert KEEP_KEYS <= set(result)
    assert all(not isinstance(v, (dict, list)) for v in result.values())  # flat
    assert result["keep_low_ms"] > 0 and result["keep_low_cpu_ms"] > 0 and result["keep_ratio"] > 0
    assert result["keep_ratio"] == pytest.approx(result["keep_low_ms"] / result["full_ms"], rel=1e-2)
    assert result["keep_cpu_ratio"] == pytest.approx(result["keep_low_cpu_ms"] / result["full_cpu_ms"], rel=1e-2)
    # every conv and the fc keep their FLOPs per pixel; the convs see a quarter of the pixels
    assert result["flops_ratio"] < result["keep_flops_ratio"] < 0.3
    assert result["keep_low_gflops"] > result["low_gflops"]
    assert result["peak_mem_full_mb"] > result["peak_mem_keep_low_mb"] > 0


@pytest.mark.parametrize(
    "kwargs, field",
    [({"model": "vgg"}, "model"), ({"batch_size": 0}, "batch_size"), ({"device": "tpu"}, "device"),
     ({"ratio": 3}, "divisible")],
)
def test_bench_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BenchConfig(**kwargs)


def test_bench_can_leave_the_allocator_defaults():
    from trainer.run.step_bench import parse_args

    assert parse_args([])[0].keep_freed_memory is True
    assert parse_args(["--no-keep-freed-memory"])[0].keep_freed_memory is False


def test_bench_fashion_mnist_shape(capsys):
    """--size 28 --in-channels 1 benches the Fashion-MNIST configuration (28x28x1 full, 14x14x1 low)."""
    assert main(["--model", "resnet8", "--batch-size", "2", "--warmup", "0", "--iters", "1",
                 "--size", "28", "--in-channels", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["full_size"], result["in_channels"]) == (28, 1)
    assert 0.05 < result["flops_ratio"] < 0.5
    assert 0.2 < result["keep_flops_ratio"] < 0.3 and result["keep_low_ms"] > 0
    with pytest.raises(ValueError, match="in_channels"):
        BenchConfig(in_channels=0)


def test_bench_photo_model_options_and_conv_share(capsys):
    # the Imagenette shape in miniature: ImageNet stem, a narrow ResNet-18, a profiled full step
    assert main(["--model", "resnet18", "--stem", "imagenet", "--width", "8", "--size", "64", "--batch-size", "2",
                 "--warmup", "1", "--iters", "1", "--threads", "1", "--profile", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["stem"], result["width"], result["full_size"]) == ("imagenet", 8, 64)
    assert 0.2 < result["conv_share_full"] < 1.0  # convolutions dominate even this tiny step
    # pool: the stem max-pool skipped, layer convs at the full step's map sizes with 1x1 kernels (1/9);
    # keep: the same 3x3 kernels on a quarter of the pixels (1/4); the stem costs 1/4 in both
    assert 0.08 < result["flops_ratio"] < result["keep_flops_ratio"] < 0.3
    assert main(["--model", "resnet8", "--batch-size", "2", "--warmup", "1", "--iters", "1", "--json"]) == 0
    assert "conv_share_full" not in json.loads(capsys.readouterr().out)  # only with --profile


def test_bench_rejects_bad_stem_and_width():
    with pytest.raises(ValueError, match="stem"):
        BenchConfig(stem="vit")
    with pytest.raises(ValueError, match="width"):
        BenchConfig(width=-1)
