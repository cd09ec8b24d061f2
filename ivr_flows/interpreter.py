"""A pure IVR interpreter: commands out, results in, no I/O and no clock of its own.

`start` opens a session and returns the first command; the telephony side carries
it out and feeds the outcome back through `advance`, which returns the next
command, until a terminal command (queue, transfer, voicemail, callback, hang-up)
finishes the session. Caller input never raises: unexpected results are read as
"no input" so a confused driver or caller still reaches an ending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from ivr_flows.model import (
    WEEKDAYS,
    BusinessHours,
    CallbackStep,
    CollectStep,
    ConditionStep,
    Flow,
    HangupStep,
    LookupStep,
    MenuStep,
    PlayStep,
    QueueStep,
    SetStep,
    TransferStep,
    VariableTest,
    VoicemailStep,
    parse_time_range,
)

# --- commands: what the telephony side should do next -------------------------------


@dataclass(frozen=True)
class Play:
    """Play a prompt, then report Played()."""

    prompt: str


@dataclass(frozen=True)
class Collect:
    """Play a prompt and collect keypad digits (menus too); report Digits or Timeout."""

    prompt: str
    max_digits: int
    timeout: float
    terminator: str | None


@dataclass(frozen=True)
class Lookup:
    """Look up a customer by caller number or by a collected value; report LookupResult."""

    by: Literal["caller", "variable"]
    key: str


@dataclass(frozen=True)
class Queue:
    """Put the call in a queue (terminal)."""

    queue: str
    skills: dict[str, int]
    priority: int
    variables: dict[str, str]
    language: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class Transfer:
    """Transfer the call to an extension (terminal)."""

    extension: str


@dataclass(frozen=True)
class Voicemail:
    """Send the caller to a voicemail box (terminal)."""

    mailbox: str


@dataclass(frozen=True)
class Callback:
    """Record a callback request to the caller's number and end the call (terminal)."""


@dataclass(frozen=True)
class Hangup:
    """Hang up, after playing the prompt if there is one (terminal)."""

    prompt: str | None = None


Command = Play | Collect | Lookup | Queue | Transfer | Voicemail | Callback | Hangup

# --- results: what happened --------------------------------------------------------


@dataclass(frozen=True)
class Played:
    """The prompt finished (or the caller talked over it)."""


@dataclass(frozen=True)
class Digits:
    """The keys the caller pressed."""

    text: str


@dataclass(frozen=True)
class Timeout:
    """The caller pressed nothing in time."""


@dataclass(frozen=True)
class LookupResult:
    """The customer found by a Lookup, or None for both when nobody matched."""

    customer_id: str | None = None
    tier: str | None = None


@dataclass(frozen=True)
class CallerHungUp:
    """The caller hung up; the session ends where it was."""


Result = Played | Digits | Timeout | LookupResult | CallerHungUp

Outcome = Literal[
    "queued",
    "transferred",
    "voicemail",
    "callback",
    "hangup",
    "caller_hangup",
    "too_many_steps",
]
_Waiting = Literal["played", "digits", "reprompt", "lookup"]


class SessionFinishedError(RuntimeError):
    """`advance` was called on a session that already ended."""


@dataclass
class Session:
    """One caller's progress through a flow; `advance` updates it in place."""

    flow: str
    caller: str
    path: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    skills: dict[str, int] = field(default_factory=dict)
    priority: int = 0
    language: str | None = None
    customer_id: str | None = None
    tier: str | None = None
    retries: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    outcome: Outcome | None = None
    # The step waiting for a result, or where the call ended.
    current: str | None = None
    waiting: _Waiting | None = None


def start(flow: Flow, caller: str, now: datetime) -> tuple[Session, Command]:
    """Open a session for a caller and return it with the first command."""
    _require_aware(now)
    session = Session(flow=flow.name, caller=caller)
    return session, _run(flow, session, flow.start, now)


def advance(flow: Flow, session: Session, result: Result, now: datetime) -> Command:
    """Feed the result of the last command; returns the next command."""
    if session.finished:
        raise SessionFinishedError(
            f"session of flow {session.flow} already finished ({session.outcome}); "
            "start a new session"
        )
    if session.flow != flow.name:
        raise ValueError(f"session belongs to flow {session.flow}, not {flow.name}")
    if session.current not in flow.steps or session.waiting is None:
        raise ValueError(f"session is not waiting at a step of flow {flow.name}")
    _require_aware(now)

    if isinstance(result, CallerHungUp):
        # The path and `current` stay as they are: they record how far the caller got.
        return _finish(session, "caller_hangup", Hangup(None))

    step = flow.steps[session.current]
    waiting, session.waiting = session.waiting, None
    if waiting == "reprompt" and isinstance(step, MenuStep | CollectStep):
        return _ask(session, step)
    if waiting == "played" and isinstance(step, PlayStep):
        # Anything other than Played means the prompt was interrupted; carry on all the same.
        return _run(flow, session, step.next, now)
    if waiting == "lookup" and isinstance(step, LookupStep):
        if isinstance(result, LookupResult) and result.customer_id is not None:
            session.customer_id = result.customer_id
            session.tier = result.tier
            return _run(flow, session, step.found, now)
        # A failed lookup (or a result of the wrong kind) is "not found", never a dead call.
        return _run(flow, session, step.not_found, now)
    if waiting == "digits" and isinstance(step, MenuStep):
        return _menu_result(flow, session, step, result, now)
    if waiting == "digits" and isinstance(step, CollectStep):
        return _collect_result(flow, session, step, result, now)
    raise ValueError(f"session state {waiting!r} does not fit step {session.current}")


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _finish(session: Session, outcome: Outcome, command: Command) -> Command:
    session.finished = True
    session.outcome = outcome
    session.waiting = None
    return command


def _ask(session: Session, step: MenuStep | CollectStep) -> Command:
    session.waiting = "digits"
    if isinstance(step, MenuStep):
        # Menus take a fixed number of keys, so there is nothing to terminate.
        return Collect(step.prompt, step.max_digits, step.timeout_seconds, None)
    return Collect(step.prompt, step.max_digits, step.timeout_seconds, step.terminator)


def _retry(
    flow: Flow, session: Session, step: MenuStep | CollectStep, give_up: str, now: datetime
) -> Command:
    """Ask again while retries remain, else go on to `give_up`."""
    assert session.current is not None
    used = session.retries.get(session.current, 0) + 1
    session.retries[session.current] = used
    if used > step.retries:
        return _run(flow, session, give_up, now)
    if step.invalid_prompt is not None:
        session.waiting = "reprompt"
        return Play(step.invalid_prompt)
    return _ask(session, step)


def _menu_result(
    flow: Flow, session: Session, step: MenuStep, result: Result, now: datetime
) -> Command:
    text = result.text if isinstance(result, Digits) else ""
    if not text:
        return _retry(flow, session, step, step.timeout, now)
    if text in step.choices:
        assert session.current is not None
        session.inputs[session.current] = text
        return _run(flow, session, step.choices[text], now)
    return _retry(flow, session, step, step.invalid, now)


def _collect_result(
    flow: Flow, session: Session, step: CollectStep, result: Result, now: datetime
) -> Command:
    text = result.text if isinstance(result, Digits) else ""
    if step.terminator is not None and step.terminator in text:
        text = text[: text.index(step.terminator)]
    if not text:
        return _retry(flow, session, step, step.invalid, now)
    valid = (
        step.min_digits <= len(text) <= step.max_digits
        and text.isascii()
        and text.isdigit()
        and (step.pattern is None or re.fullmatch(step.pattern, text) is not None)
    )
    if not valid:
        return _retry(flow, session, step, step.invalid, now)
    session.inputs[step.variable] = text
    return _run(flow, session, step.next, now)


def _run(flow: Flow, session: Session, step_id: str, now: datetime) -> Command:
    """Enter steps until one needs the telephony side; steps without input chain on."""
    while True:
        if len(session.path) >= flow.max_steps:
            return _finish(session, "too_many_steps", Hangup(None))
        session.path.append(step_id)
        session.current = step_id
        # Each visit gets the full number of retries: coming back to a menu is a fresh try.
        session.retries.pop(step_id, None)
        step = flow.steps[step_id]
        if isinstance(step, PlayStep):
            session.waiting = "played"
            return Play(step.prompt)
        if isinstance(step, MenuStep | CollectStep):
            return _ask(session, step)
        if isinstance(step, LookupStep):
            key = session.caller if step.variable is None else session.inputs.get(step.variable)
            if not key:
                # Nothing to look up (withheld number, variable never collected).
                step_id = step.not_found
                continue
            session.waiting = "lookup"
            return Lookup("caller" if step.variable is None else "variable", key)
        if isinstance(step, ConditionStep):
            step_id = step.then if _holds(step, session, now) else step.else_
            continue
        if isinstance(step, SetStep):
            session.skills.update(step.skills)
            session.priority += step.priority
            session.inputs.update(step.variables)
            if step.language is not None:
                session.language = step.language
            step_id = step.next
            continue
        if isinstance(step, QueueStep):
            queue = Queue(
                queue=step.queue,
                skills={**session.skills, **step.skills},
                priority=session.priority + step.priority,
                variables=dict(session.inputs),
                language=session.language,
                customer_id=session.customer_id,
            )
            return _finish(session, "queued", queue)
        if isinstance(step, TransferStep):
            return _finish(session, "transferred", Transfer(step.extension))
        if isinstance(step, VoicemailStep):
            return _finish(session, "voicemail", Voicemail(step.mailbox))
        if isinstance(step, CallbackStep):
            return _finish(session, "callback", Callback())
        assert isinstance(step, HangupStep)
        return _finish(session, "hangup", Hangup(step.prompt))


def _holds(step: ConditionStep, session: Session, now: datetime) -> bool:
    if step.business_hours is not None:
        return is_open(step.business_hours, now)
    if step.tier_in is not None:
        return session.tier in step.tier_in
    assert step.variable is not None
    return _variable_matches(step.variable, session.inputs.get(step.variable.name))


def _variable_matches(test: VariableTest, value: str | None) -> bool:
    if value is None:
        return False
    if test.equals is not None:
        return value == test.equals
    assert test.matches is not None
    return re.fullmatch(test.matches, value) is not None


def is_open(hours: BusinessHours, now: datetime) -> bool:
    """Whether `now` (any time zone) falls in the opening hours, holidays excluded."""
    _require_aware(now)
    local = now.astimezone(ZoneInfo(hours.timezone))
    if local.date() in hours.holidays:
        return False
    text = hours.open.get(WEEKDAYS[local.weekday()])
    if text is None:
        return False
    opens, closes = parse_time_range(text)
    minute = local.hour * 60 + local.minute
    return opens <= minute < closes
