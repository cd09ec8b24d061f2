"""What a contact asks of routing beyond its queue: a priority and extra skills.

The IVR says it once, when it queues the call. It is kept on the interaction (under
`routing["requested"]`, beside the last offer's explanation) so that a contact queued
again (transferred to a queue, adopted after a restart) is routed as it first was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEY = "requested"
MAX_SKILLS = 64  # what is read back is stored data: bounded, never trusted blindly


def as_routing(priority: int, skills: Mapping[str, int]) -> dict[str, Any]:
    """The request as it is kept in an interaction's `routing` field."""
    return {KEY: {"priority": int(priority), "skills": dict(skills)}}


def from_routing(routing: Mapping[str, Any] | None) -> tuple[int, dict[str, int]]:
    """(priority, extra skills) kept in an interaction's `routing`; (0, {}) when none
    or when what is there is not a request (older rows, hand edits)."""
    request = (routing or {}).get(KEY)
    if not isinstance(request, Mapping):
        return 0, {}
    priority = request.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool):
        priority = 0
    skills: dict[str, int] = {}
    raw = request.get("skills")
    if isinstance(raw, Mapping):
        for name, level in list(raw.items())[:MAX_SKILLS]:
            if isinstance(name, str) and isinstance(level, int) and not isinstance(level, bool):
                skills[name] = level
    return priority, skills
