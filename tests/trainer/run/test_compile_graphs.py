"""model.compile: one static graph per (mode, batch shape, train/eval), none recompiled after its first step.

The graphs are dynamo's (counted by ``torch._dynamo.utils.counters``); the backend here is "eager" so
that no C++ is compiled on the 2 shared cores: recompiles and graph counts are a dynamo matter and
come out the same with inductor.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

torch_dynamo = pytest.importorskip("torch._dynamo")


@pytest.fixture
def compile_spy(monkeypatch):
    """torch.compile with the caller's options but backend="eager"; records the options."""
    real = torch.compile
    seen: list[dict] = []

    def spy(model, **kwargs):
        seen.append(dict(kwargs))
        return real(model, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", spy)
    torch_dynamo.reset()
    torch_dynamo.utils.counters.clear()
    yield seen
    torch_dynamo.reset()


def test_one_graph_per_mode_and_shape_no_recompiles(compile_spy):
    from trainer.method.dualmode import set_mode
    from trainer.method.models import build_dual_mode_model
    from trainer.run.build import wrap_model
    from trainer.run.config import ModelConfig
    from trainer.run.evaluate import evaluate

    counters = torch_dynamo.utils.counters
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model, _ = build_dual_mode_model("resnet8", ratio=2, in_channels=3, num_classes=4)
    train_model, eval_model = wrap_model(model, ModelConfig(name="resnet8", compile=True), cpu)
    assert compile_spy == [{"dynamic": False}]  # static graphs: no dynamic-shape recompile
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)

    def batch(n: int, size: int):
        return types.SimpleNamespace(images=torch.randn(n, 3, size, size, generator=gen),
                                     labels=torch.randint(0, 4, (n,), generator=gen))

    def train_step(mode: str, n: int, size: int) -> None:  # as trainer.run.loop.Trainer._step
        b = batch(n, size)
        set_mode(train_model, mode)
        loss = F.cross_entropy(train_model(b.images).float(), b.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def one_round(order: tuple[str, ...]) -> None:
        steps = {"full": ("full", 4, 8), "low": ("low", 4, 4), "low2x": ("low", 8, 4)}  # low_batch_scale 2
        for name in order:
            train_step(*steps[name])
        evaluate(eval_model, [batch(4, 8), batch(3, 8)], cpu)  # full mode, no grad, a short last batch

    one_round(("full", "low", "low2x"))
    graphs, frames = counters["stats"]["unique_graphs"], counters["frames"]["total"]
    # full B, low B, low 2B (train), eval B, eval short: one graph each, no graph breaks
    assert graphs == 5 and frames == 5, dict(counters["stats"])
    assert graphs <= torch_dynamo.config.recompile_limit - 3  # well under the limit (8): room to spare
    assert torch_dynamo.config.cache_size_limit == torch_dynamo.config.recompile_limit

    for order in (("full", "low", "low2x"), ("low2x", "full", "low", "low")):
        one_round(order)
    assert counters["stats"]["unique_graphs"] == graphs, "a second round of the same modes and shapes recompiled"
    assert counters["frames"]["total"] == frames


def test_a_resolution_ladder_compiles_one_graph_per_rung(compile_spy, monkeypatch):
    """Kept kernels at full 16 px and low rungs 8 and 12 px (a ladder's sizes, one a non-integer ratio):
    one static graph per size, none recompiled when the sizes come again in another order."""
    from trainer.method.dualmode import set_mode
    from trainer.method.models import build_dual_mode_model
    from trainer.run.build import COMPILE_GRAPHS_BESIDE_TRAINING, wrap_model
    from trainer.run.config import ModelConfig
    from trainer.run.evaluate import evaluate

    counters = torch_dynamo.utils.counters
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model, _ = build_dual_mode_model("resnet8", ratio=16 / 12, low_kernels="keep", in_channels=3, num_classes=4)
    mc = ModelConfig(name="resnet8", compile=True, low_kernels="keep")
    train_model, eval_model = wrap_model(model, mc, cpu, train_shapes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)

    def step(size: int) -> None:
        set_mode(train_model, "full" if size == 16 else "low")
        loss = F.cross_entropy(train_model(torch.randn(4, 3, size, size, generator=gen)).float(),
                               torch.randint(0, 4, (4,), generator=gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for size in (8, 12, 16):
        step(size)
    evaluate(eval_model, [types.SimpleNamespace(images=torch.randn(4, 3, 16, 16), labels=torch.zeros(4, dtype=torch.long)),
                          types.SimpleNamespace(images=torch.randn(3, 3, 16, 16), labels=torch.zeros(3, dtype=torch.long))],
             cpu)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs == 5, dict(counters["stats"])  # 3 training sizes + evaluation's two batch shapes
    for size in (16, 12, 8, 12):
        step(size)
    assert counters["stats"]["unique_graphs"] == graphs, "a ladder size seen before recompiled"

    # a long ladder raises dynamo's limit to fit (past it, dynamo would silently run the frame eagerly)
    monkeypatch.setattr(torch_dynamo.config, "recompile_limit", 8)
    monkeypatch.setattr(torch_dynamo.config, "cache_size_limit", 8)
    wrap_model(model, mc, cpu, train_shapes=9)
    assert torch_dynamo.config.recompile_limit == 9 + COMPILE_GRAPHS_BESIDE_TRAINING
    assert torch_dynamo.config.cache_size_limit == torch_dynamo.config.recompile_limit
