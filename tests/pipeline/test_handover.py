"""The handover thread: same batches in the same order, errors where they belong, and a clean early stop."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from pipeline.handover import ahead
from pipeline.loader_base import Loader
from tests.integrations import need
from tests.pipeline.test_loaders import KINDS, _assert_batches_equal, _loader


def _handover_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lowmode-handover")]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_items_in_order_on_the_producer_thread(depth):
    seen_threads = []

    def make():
        for i in range(10):
            seen_threads.append(threading.get_ident())
            yield i

    assert list(ahead(make, depth)) == list(range(10))
    on_caller = set(seen_threads) == {threading.get_ident()}
    assert on_caller == (depth == 0)
    assert not _handover_threads()


def test_the_producer_stays_at_most_depth_ahead():
    produced = []

    def make():
        for i in range(100):
            produced.append(i)
            yield i

    items = ahead(make, 2)
    assert next(items) == 0
    time.sleep(0.2)
    # item 0 taken, 2 waiting in the queue, 1 more made and blocked on the full queue
    assert produced == [0, 1, 2, 3]
    items.close()


def test_an_error_arrives_after_the_items_before_it():
    def make():
        yield 1
        yield 2
        raise ValueError("bad sample in shard-000003.tar")

    items = ahead(make, 1)
    assert next(items) == 1 and next(items) == 2
    with pytest.raises(ValueError, match="shard-000003"):
        next(items)
    assert not _handover_threads()


def test_an_error_creating_the_iterator_arrives_on_first_next():
    def make():
        raise OSError("cannot open the split")

    with pytest.raises(OSError, match="cannot open"):
        next(ahead(make, 1))


def test_closing_early_stops_the_thread_and_closes_the_inner_generator_on_it():
    closed_on = []

    def make():
        try:
            for i in range(1000):
                yield i
        finally:
            closed_on.append(threading.current_thread().name)

    items = ahead(make, 2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed_on == ["lowmode-handover"]  # joined before close() returned
    assert not _handover_threads()


def test_negative_depth_is_refused():
    with pytest.raises(ValueError, match="depth must be >= 0"):
        list(ahead(lambda: iter(()), -1))


@pytest.mark.parametrize("kind", KINDS)
def test_loader_batches_are_bitwise_equal_with_and_without_the_thread(data_dir, kind):
    inline = list(_loader(data_dir, kind, batches_ahead=0).epoch(2))
    threaded = list(_loader(data_dir, kind, batches_ahead=2).epoch(2))
    assert {b.mode for b in inline} == {"full", "low"}
    _assert_batches_equal(inline, threaded)
    _assert_batches_equal(inline[5:], list(_loader(data_dir, kind, batches_ahead=1).epoch(2, start_step=5)))
    assert not _handover_threads()


@pytest.mark.parametrize("kind", KINDS)
def test_the_handover_thread_uses_the_callers_thread_count(data_dir, kind, monkeypatch):
    counts = []
    original = Loader._check_labels

    def spy(self, plan, labels):
        counts.append(torch.get_num_threads())
        return original(self, plan, labels)

    monkeypatch.setattr(Loader, "_check_labels", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        list(_loader(data_dir, kind, batches_ahead=1).epoch(0))
    finally:
        torch.set_num_threads(before)
    assert counts and set(counts) == {1}


def test_batches_ahead_must_not_be_negative(data_dir):
    with pytest.raises(ValueError, match="batches_ahead must be >= 0, got -1"):
        _loader(data_dir, "torch", batches_ahead=-1)


def test_breaking_out_of_a_dali_epoch_releases_the_thread(data_dir):
    need("dali")
    loader = _loader(data_dir, "dali", batches_ahead=1)
    for i, _ in enumerate(loader.epoch(1)):
        if i == 2:
            break
    assert not _handover_threads()  # the for loop's generator is collected, and close() joins
    assert len(list(loader.epoch(1, start_step=3))) == loader.steps_per_epoch - 3
