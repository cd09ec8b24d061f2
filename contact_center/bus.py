"""An ordered in-process event bus.

Events are published without awaiting the handlers; one dispatcher task delivers
them in publication order, each handler in subscription order. A failing handler
is logged and does not stop delivery to the others. `drain()` waits until every
published event has been handled, so shutdown finishes in-flight work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routing.ports import Bus

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]


class EventBus:
    """Ordered delivery of frozen-dataclass events to subscribed handlers."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.handler_errors = 0

    def subscribe(self, event_type: type, handler: Handler) -> None:
        """Call `handler` for every event of `event_type` (or a subclass)."""
        self._handlers[event_type].append(handler)

    def subscriptions(self) -> list[tuple[str, str]]:
        """(event type, handler) names, for the start-up log and tests."""
        return [
            (etype.__name__, getattr(h, "__qualname__", repr(h)))
            for etype, handlers in self._handlers.items()
            for h in handlers
        ]

    def publish(self, event: Any) -> None:
        """Queue `event` for delivery; never blocks the publisher."""
        self.published += 1
        self._queue.put_nowait(event)

    def start(self) -> None:
        """Start the dispatcher task."""
        if self._task is None:
            self._task = asyncio.create_task(self._dispatch(), name="event-bus")

    async def drain(self) -> None:
        """Wait until every event published so far has been handled."""
        await self._queue.join()

    async def stop(self) -> None:
        """Deliver what is queued, then stop the dispatcher."""
        if self._task is None:
            return
        await self.drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def _handlers_for(self, event: Any) -> list[Handler]:
        found: list[Handler] = []
        for etype in type(event).__mro__:
            found.extend(self._handlers.get(etype, ()))
        return found

    async def _dispatch(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                for handler in self._handlers_for(event):
                    try:
                        result = handler(event)
                        if result is not None:
                            await result
                    except Exception:
                        self.handler_errors += 1
                        log.exception(
                            "event handler %s failed on %s",
                            getattr(handler, "__qualname__", handler),
                            type(event).__name__,
                        )
            finally:
                self._queue.task_done()


if TYPE_CHECKING:
    # mypy checks that the in-memory bus satisfies routing's port.
    _IN_MEMORY_IS_A_BUS: type[Bus] = EventBus
