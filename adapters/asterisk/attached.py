"""A call queued without the daemon's IVR: what the dialplan attaches to it.

Some numbers skip the IVR (a direct line to a queue), and some sites run an IVR of their
own in the dialplan; either hands the call over with
`AGI(agi://daemon:4573/queue/<queue>?<query>)`, the query saying what the call asks of
routing and what was gathered on the way (URL-encoded, `${URIENCODE()}` in a dialplan):

    priority=5            higher first (0-100)
    skill=billing:7       a skill and its minimum level (1-10), repeatable
    step=welcome          the IVR path taken so far, in order, repeatable
    input.account=12345   a value the caller keyed in, as the IVR's inputs

What cannot be read is left out and named in `problems` (the call is still queued: a
caller is never dropped for a typo in a dialplan). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from adapters.asterisk.ivr_runner import IvrOutcome
from ivr_flows import interpreter as ivr

MAX_PRIORITY = 100
MAX_LEVEL = 10
MAX_ITEMS = 50  # skills, steps and inputs each
MAX_VALUE = 200  # characters of one value


@dataclass(frozen=True)
class AttachedRequest:
    """The queue step the query amounts to, and what in it was not understood."""

    outcome: IvrOutcome
    problems: list[str] = field(default_factory=list)

    @property
    def path(self) -> list[str]:
        return self.outcome.path

    @property
    def inputs(self) -> dict[str, str]:
        return self.outcome.inputs


def attached_request(queue: str, query: str) -> AttachedRequest:
    """Read the query of a `queue/<queue>` FastAGI script."""
    priority = 0
    skills: dict[str, int] = {}
    path: list[str] = []
    inputs: dict[str, str] = {}
    problems: list[str] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if len(value) > MAX_VALUE:
            problems.append(f"{key}: longer than {MAX_VALUE} characters")
        elif key == "priority":
            if value.isdigit() and int(value) <= MAX_PRIORITY:
                priority = int(value)
            else:
                problems.append(f"priority: {value!r} is not a number 0-{MAX_PRIORITY}")
        elif key == "skill":
            name, _, level = value.partition(":")
            if not name or not level.isdigit() or not 1 <= int(level) <= MAX_LEVEL:
                problems.append(f"skill: {value!r} is not name:level (1-{MAX_LEVEL})")
            elif len(skills) < MAX_ITEMS:
                skills[name] = int(level)
            else:
                problems.append(f"skill: more than {MAX_ITEMS}")
        elif key == "step":
            if value and len(path) < MAX_ITEMS:
                path.append(value)
            else:
                problems.append(f"step: {value!r} is empty or one too many")
        elif key.startswith("input.") and len(key) > len("input."):
            if len(inputs) < MAX_ITEMS:
                inputs[key.removeprefix("input.")] = value
            else:
                problems.append(f"input: more than {MAX_ITEMS}")
        else:
            problems.append(f"{key}: not a known parameter")
    outcome = IvrOutcome(
        outcome="queued",
        command=ivr.Queue(queue, dict(skills), priority, {}),
        path=path,
        inputs=inputs,
        skills=dict(skills),
        priority=priority,
        language=None,
        customer_id=None,
        tier=None,
    )
    return AttachedRequest(outcome, problems)
