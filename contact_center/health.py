"""What each component is doing now, for `/status` and `/metrics`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

# "saturated": working, but slower than asked (the store writer's queue is over its
# high-water mark: producers are being held back). /status says "degraded" meanwhile.
State = Literal["up", "down", "disabled", "starting", "saturated"]

if TYPE_CHECKING:
    from routing.store_writer import StoreWriter

log = logging.getLogger(__name__)


@dataclass
class ComponentStatus:
    """One component's state, when it last changed, and the last error seen."""

    name: str
    state: State
    detail: str = ""
    last_error: str | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {
            "state": self.state,
            "detail": self.detail,
            "last_error": self.last_error,
            "since": self.since.isoformat(),
        }


class HealthRegistry:
    """Components report here; a change of state is logged once, not on every check."""

    def __init__(self) -> None:
        self._components: dict[str, ComponentStatus] = {}

    def set(self, name: str, state: State, detail: str = "", error: str | None = None) -> None:
        """Record `name`'s state; keeps the last error across recoveries."""
        current = self._components.get(name)
        if current is None:
            self._components[name] = ComponentStatus(name, state, detail, error)
            return
        if current.state != state:
            if state == "down":
                log.warning("%s is down: %s", name, error or detail)
            elif current.state == "down" and state == "up":
                log.info("%s recovered", name)
            # Saturation is logged by whoever saturates (once per change, with figures).
            current.since = datetime.now(UTC)
        current.state = state
        current.detail = detail
        if error is not None:
            current.last_error = error

    def get(self, name: str) -> ComponentStatus | None:
        """The status of `name`, if it registered."""
        return self._components.get(name)

    def all(self) -> list[ComponentStatus]:
        """Every component, in registration order."""
        return list(self._components.values())

    def healthy(self) -> bool:
        """True when no component is down or saturated."""
        return all(c.state not in ("down", "saturated") for c in self._components.values())


STORE_WRITES = "database.writes"


def watch_store_writer(health: HealthRegistry, writer: StoreWriter) -> None:
    """Show the store writer as component `database.writes`: up, or saturated with its
    queue depth while it is over its high-water mark."""

    def report(saturated: bool, detail: str) -> None:
        health.set(STORE_WRITES, "saturated" if saturated else "up", detail)

    writer.watch(report)
    report(writer.saturated, f"{writer.depth} writes queued (high water {writer.high_water})")
