"""Keeping the garbage collector's full collections short with thousands of sockets open.

A full (generation 2) collection walks every object the collector tracks that is not
frozen, holding the GIL throughout. Start-up leaves ~125,000 long-lived objects
(modules, config, flows, routing state); each open agent socket adds ~100 more (aiohttp's
request, protocol, reader and writer, the handler's task and frames, the hub's client and
queue). With 2,000 sockets a full collection took 160-220 ms, seven times a minute
(bench/gc_pauses.py). What helps, measured there:

- freezing the start-up objects once (`gc.freeze()`) is not enough: the sockets' objects
  arrive later and every full collection walks them again;
- raising the thresholds makes full collections rarer, not shorter (and young ones longer);
- freezing the survivors every few seconds leaves the connection storm of a shift start
  or a restart (2,000 browsers at once) to full collections of 70-240 ms;
- freezing right after each collection of generation 1 or 2 (they leave their survivors
  in the old generation; a `gc.callbacks` hook) keeps the old generation close to empty:
  full collections walk a few thousand objects, a few milliseconds.

What freezing costs: a frozen object freed by reference counting goes as usual, but
frozen cyclic garbage is only found once unfrozen. The ~30-object cycle a closed WebSocket
left (aiohttp keeps its heartbeat callback) is broken where the socket ends
(contact_center/web/ws.py); asyncio still leaves 5 objects in a cycle per closed
connection (the transport's bound read callback); at the bench's churn (a page reload
and two calls a second) ~1,600 objects a minute end so, most of them the simulated
Asterisk's timers. That and any other cyclic garbage that survived two young collections is
reclaimed every `gc.compact_interval_hours`: everything is unfrozen and collected once
(one full pause over the whole heap, ~300 ms with 2,000 sockets, logged), then frozen
again.

The hook runs inside the collector, after a young collection has finished: moving the
generations' lists to the permanent one there is safe, takes no lock and allocates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from contact_center.config import GcConfig

log = logging.getLogger(__name__)


@dataclass
class HeapKeeper:
    """Freezes the survivors of each older collection; compacts now and then."""

    settings: GcConfig
    freezes: int = 0
    compactions: int = 0
    _hooked: bool = False

    def start_up(self) -> None:
        """Everything start-up made: collected once, then out of the collector's way."""
        gc.collect()
        gc.freeze()
        if self.settings.freeze_survivors and not self._hooked:
            gc.callbacks.append(self._after_collection)
            self._hooked = True

    def stop(self) -> None:
        """Unhook and give every object back to the collector."""
        if self._hooked:
            gc.callbacks.remove(self._after_collection)
            self._hooked = False
        gc.unfreeze()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Generation 0 survivors stay young; a generation 1 or 2 collection has just put
        # its survivors in the old generation, which is what a full collection walks.
        if phase == "stop" and info["generation"] >= 1:
            gc.freeze()
            self.freezes += 1

    def compact(self) -> int:
        """Unfreeze and collect everything (one long pause), then freeze; objects freed."""
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self.compactions += 1
        log.info(
            "gc compaction: %d objects freed in %.0f ms; %d frozen",
            freed,
            (time.perf_counter() - started) * 1000,
            gc.get_freeze_count(),
        )
        return freed

    async def run(self) -> None:
        """Compact every `compact_interval_hours` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.compact_interval_hours * 3600)
            self.compact()


def component(settings: GcConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    """Last to start: freeze what start-up made, then keep the old generation small."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        keeper = HeapKeeper(settings)
        keeper.start_up()
        task = None
        if settings.freeze_survivors and settings.compact_interval_hours > 0:
            task = asyncio.create_task(keeper.run(), name="gc-compaction")
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        keeper.stop()

    return ctx
