"""Who is making a change: written into audit entries and service-request transitions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The user behind a change; `user_id` is None for the daemon itself."""

    user_id: int | None
    username: str
    role: str


# The daemon acting on its own (imports, channel ingestion, start-up seeding).
SYSTEM = Actor(None, "system", "admin")
