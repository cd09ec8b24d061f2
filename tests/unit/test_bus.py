"""The event bus delivers in publication order and survives failing handlers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from contact_center.bus import EventBus


@dataclass(frozen=True)
class Thing:
    n: int


@dataclass(frozen=True)
class SpecialThing(Thing):
    pass


async def test_delivery_is_in_publication_order_even_with_slow_handlers() -> None:
    bus = EventBus()
    seen: list[int] = []

    async def slow(event: Thing) -> None:
        # A handler that yields must not let later events overtake earlier ones.
        await asyncio.sleep(0.001 * (5 - event.n % 5))
        seen.append(event.n)

    bus.subscribe(Thing, slow)
    bus.start()
    for i in range(20):
        bus.publish(Thing(i))
    await bus.stop()
    assert seen == list(range(20))


async def test_failing_handler_does_not_stop_others() -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: Thing) -> None:
        raise RuntimeError("boom")

    bus.subscribe(Thing, broken)
    bus.subscribe(Thing, lambda e: seen.append(f"sync{e.n}"))
    bus.start()
    bus.publish(Thing(1))
    bus.publish(Thing(2))
    await bus.drain()
    assert seen == ["sync1", "sync2"]
    assert bus.handler_errors == 2
    await bus.stop()


async def test_subclass_events_reach_base_subscribers() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(Thing, lambda e: seen.append(type(e).__name__))
    bus.subscribe(SpecialThing, lambda e: seen.append("special"))
    bus.start()
    bus.publish(SpecialThing(1))
    bus.publish(Thing(2))
    await bus.stop()
    assert seen == ["special", "SpecialThing", "Thing"]


async def test_stop_delivers_everything_already_published() -> None:
    bus = EventBus()
    seen: list[int] = []
    bus.subscribe(Thing, lambda e: seen.append(e.n))
    bus.start()
    for i in range(100):
        bus.publish(Thing(i))
    await bus.stop()
    assert len(seen) == 100
    assert bus.published == 100
