"""The heap keeper: survivors of older collections are frozen; compaction frees frozen
cyclic garbage; switched off, only start-up objects are frozen."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator

import pytest

from contact_center.config import GcConfig, parse_config
from contact_center.errors import ConfigError
from contact_center.heap import HeapKeeper


class Node:
    """A cycle: only the collector can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def keeper() -> Iterator[HeapKeeper]:
    made = HeapKeeper(GcConfig())
    yield made
    made.stop()


def _tracked(obj: object) -> bool:
    target = id(obj)
    return any(id(o) == target for o in gc.get_objects())


def test_start_up_freezes_and_survivors_are_frozen_after_an_older_collection(
    keeper: HeapKeeper,
) -> None:
    keeper.start_up()
    assert gc.get_freeze_count() > 0
    node = Node()
    assert _tracked(node)  # young: the collector still sees it
    gc.collect(0)
    assert _tracked(node)  # a generation 0 collection does not freeze
    gc.collect(1)
    assert not _tracked(node)  # promoted to the old generation, then frozen
    assert keeper.freezes >= 1
    # What a full collection walks is now close to nothing.
    assert len(gc.get_objects(2)) < 1000


def test_stop_unhooks_and_unfreezes(keeper: HeapKeeper) -> None:
    keeper.start_up()
    keeper.stop()
    assert gc.get_freeze_count() == 0
    assert keeper._after_collection not in gc.callbacks
    node = Node()
    gc.collect(1)
    assert _tracked(node)


def test_compaction_frees_frozen_cyclic_garbage(
    keeper: HeapKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    keeper.start_up()
    garbage = [Node() for _ in range(100)]
    gc.collect(1)  # survivors: frozen
    del garbage  # the list goes by reference count; the cycles stay, frozen
    assert gc.collect() < 100  # frozen: a full collection cannot see them
    with caplog.at_level(logging.INFO, logger="contact_center.heap"):
        freed = keeper.compact()
    assert freed >= 100
    assert keeper.compactions == 1
    assert gc.get_freeze_count() > 0  # frozen again
    assert "gc compaction:" in caplog.text


def test_switched_off_only_start_up_objects_are_frozen() -> None:
    keeper = HeapKeeper(GcConfig(freeze_survivors=False))
    try:
        keeper.start_up()
        assert gc.get_freeze_count() > 0
        assert keeper._after_collection not in gc.callbacks
        node = Node()
        gc.collect(1)
        assert _tracked(node)
    finally:
        keeper.stop()


def test_config_defaults_and_bounds() -> None:
    config = parse_config({}, {})
    assert config.gc.freeze_survivors is True
    assert config.gc.compact_interval_hours == 6
    changed = parse_config({"gc": {"freeze_survivors": False, "compact_interval_hours": 0}}, {})
    assert changed.gc.freeze_survivors is False and changed.gc.compact_interval_hours == 0
    with pytest.raises(ConfigError) as negative:
        parse_config({"gc": {"compact_interval_hours": -1}}, {})
    assert "gc.compact_interval_hours" in str(negative.value.problems)
    with pytest.raises(ConfigError) as unknown:
        parse_config({"gc": {"freeze_every": 1}}, {})
    assert "gc.freeze_every" in str(unknown.value.problems)


async def test_the_upkeep_compacts_every_interval() -> None:
    every = HeapKeeper(GcConfig(compact_interval_hours=0.02 / 3600))  # 20 ms
    every.start_up()
    task = asyncio.create_task(every.run())
    try:
        for _ in range(100):
            if every.compactions >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        every.stop()
    assert every.compactions >= 2
