"""IVR flow language: a flow is a start step and a mapping of step id to typed step.

The models are frozen and reject unknown keys. Checks that need the whole flow
(targets exist, reachability, loops, queue names) live in `ivr_flows.loader`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Tier = Literal["bronze", "silver", "gold", "platinum"]
StepId = Annotated[str, Field(min_length=1)]
SkillLevel = Annotated[int, Field(ge=1, le=10)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]

DTMF = frozenset("0123456789*#")
_TIME_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def parse_time_range(text: str) -> tuple[int, int]:
    """Minutes since midnight of an "HH:MM-HH:MM" range; the end may be 24:00."""
    match = _TIME_RANGE.match(text.strip())
    if match is None:
        raise ValueError(f'invalid time range "{text}" (expected HH:MM-HH:MM)')
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    # 24:00 is allowed as an end so a day can be open until midnight.
    if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
        raise ValueError(f'invalid time range "{text}" (no such time of day)')
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if end <= start:
        raise ValueError(f'invalid time range "{text}" (end must be after start)')
    return start, end


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f'invalid regular expression "{value}": {exc}') from None
    return value


def _scalars_to_str(value: Any) -> Any:
    """YAML reads `1: billing` or `equals: 42` as ints; the flow language means strings."""
    if isinstance(value, bool):
        return value  # leave for pydantic to reject: `yes`/`no` are surely a mistake
    if isinstance(value, int | float):
        return str(value)
    return value


def _keys_to_str(value: Any) -> Any:
    if isinstance(value, dict):
        return {_scalars_to_str(k): v for k, v in value.items()}
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(_Model):
    def targets(self) -> list[tuple[str, str]]:
        """(label, step id) of every step this one can go to; the label is for messages."""
        return []


class PlayStep(_Step):
    """Play a prompt, then go on."""

    type: Literal["play"]
    prompt: str
    next: StepId

    def targets(self) -> list[tuple[str, str]]:
        """(label, step id) of every step this one can go to."""
        return [("next", self.next)]


class MenuStep(_Step):
    """Offer keypad choices; wrong keys and silence are retried, then routed."""

    type: Literal["menu"]
    prompt: str
    choices: dict[str, StepId] = Field(min_length=1)
    timeout_seconds: PositiveFloat = 5
    retries: NonNegativeInt = 2
    invalid: StepId
    timeout: StepId
    invalid_prompt: str | None = None

    @field_validator("choices", mode="before")
    @classmethod
    def _str_keys(cls, value: Any) -> Any:
        return _keys_to_str(value)

    @field_validator("choices")
    @classmethod
    def _dtmf_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or not set(key) <= DTMF:
                raise ValueError(f'choice "{key}" is not a keypad key (0-9, * or #)')
        return value

    @property
    def max_digits(self) -> int:
        """Longest choice, so multi-key choices like "10" can be collected."""
        return max(len(key) for key in self.choices)

    def targets(self) -> list[tuple[str, str]]:
        """(label, step id) of every step this one can go to."""
        choices = [(f'choice "{key}"', target) for key, target in self.choices.items()]
        return [*choices, ("invalid", self.invalid), ("timeout", self.timeout)]


class CollectStep(_Step):
    """Collect digits into a variable; after the retries, go to `invalid`."""

    type: Literal["collect"]
    prompt: str
    variable: Annotated[str, Field(min_length=1)]
    min_digits: Annotated[int, Field(ge=1)] = 1
    max_digits: Annotated[int, Field(ge=1)]
    terminator: Literal["#", "*"] | None = "#"
    pattern: str | None = None
    timeout_seconds: PositiveFloat = 10
    retries: NonNegativeInt = 2
    next: StepId
    invalid: StepId
    invalid_prompt: str | None = None

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @model_validator(mode="after")
    def _digit_bounds(self) -> CollectStep:
        if self.min_digits > self.max_digits:
            raise ValueError(
                f"min_digits ({self.min_digits}) is more than max_digits ({self.max_digits})"
            )
        return self

    def targets(self) -> list[tuple[str, str]]:
        """(label, step id) of every step this one can go to."""
        return [("next", self.next), ("invalid", self.invalid)]


_LOOKUP_BY = re.compile(r"^(caller|variable:.+)$")


class LookupStep(_Step):
    """Look the customer up by caller number or by a collected variable."""

    type: Literal["lookup"]
    by: str
    found: StepId
    not_found: StepId

    @field_validator("by")
    @classmethod
    def _known_key(cls, value: str) -> str:
        if not _LOOKUP_BY.match(value):
            raise ValueError(f'"{value}" is neither "caller" nor "variable:<name>"')
        return value

    @property
    def variable(self) -> str | None:
        """The variable looked up, or None when looking up the caller's number."""
        return self.by.removeprefix("variable:") if self.by != "caller" else None

    def targets(self) -> list[tuple[str, str]]:
        """(label, step id) of every step this one can go to."""
        return [("found", self.found), ("not_found", self.not_found)]


class BusinessHours(_Model):
    """Opening hours per weekday in a time zone, with closed holidays."""

    timezone: str
    open: dict[Weekday, str]
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'unknown time zone "{value}"') from None
        return value

    @field_validator("open")
    @classmethod
    def _valid_ranges(cls, value: dict[Weekday, str]) -> dict[Weekday, str]:
        for text in value.values():
            parse_time_range(text)
        return value


class VariableTest(_Model):
    """A collected or set variable equals a value or fully matches a regex."""

    name: Annotated[str, Field(min_length=1)]
    equals: str | None = None
    matches: str | None = None

    @field_validator("equals", mode="before")
    @classmethod
    def _to_str(cls, value: Any) -> Any:
        return _scalars_to_str(value)

    @field_validator("matches")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @model_validator(mode="after")
    def _one_test(self) -> VariableTest:
        if (self.equals is None) == (self.matches is None):
            raise ValueError("needs exactly one of equals or matches")
        return self


class ConditionStep(_Step):
    """Branch on business hours, the customer's tier, or a variable."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    type: Literal["condition"]
    business_hours: BusinessHours | None = None
    tier_in: list[Tier] | None = None
    variable: VariableTest | None = None
    then: StepId
    else_: StepId = Field(alias="else")

    @model_validator(mode="after")
    def _one_test(self) -> ConditionStep:
        tests = (self.business_hours, self.tier_in, self.variable)
        if sum(test is not None for test in tests) != 1:
            raise ValueError("needs exactly one of business_hours, tier_in or variable")
        return self

    def targets(self) -> list[tuple[str, str]]:
        """(label, step id) of every step this one can go to."""
        return [("then", self.then), ("else", self.else_)]


class SetStep(_Step):
    """Set skills, language and variables, and raise the priority."""

    type: Literal["set"]
    skills: dict[str, SkillLevel] = {}
    # Added to the call's priority, so "priority: 2" reads as "two places ahead".
    priority: int = 0
    language: Annotated[str, Field(min_length=1)] | None = None
    variables: dict[str, str] = {}
    next: StepId

    @field_validator("variables", mode="before")
    @classmethod
    def _values_to_str(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _scalars_to_str(v) for k, v in value.items()}
        return value

    def targets(self) -> list[tuple[str, str]]:
        """(label, step id) of every step this one can go to."""
        return [("next", self.next)]


class QueueStep(_Step):
    """Queue the call (terminal)."""

    type: Literal["queue"]
    queue: Annotated[str, Field(min_length=1)]
    skills: dict[str, SkillLevel] = {}
    priority: int = 0


class TransferStep(_Step):
    """Transfer the call to an extension (terminal)."""

    type: Literal["transfer"]
    extension: Annotated[str, Field(min_length=1)]

    @field_validator("extension", mode="before")
    @classmethod
    def _to_str(cls, value: Any) -> Any:
        return _scalars_to_str(value)


class VoicemailStep(_Step):
    """Send the caller to a voicemail box (terminal)."""

    type: Literal["voicemail"]
    mailbox: Annotated[str, Field(min_length=1)]

    @field_validator("mailbox", mode="before")
    @classmethod
    def _to_str(cls, value: Any) -> Any:
        return _scalars_to_str(value)


class CallbackStep(_Step):
    """Record a callback request and end the call (terminal)."""

    type: Literal["callback"]


class HangupStep(_Step):
    """Hang up, after an optional prompt (terminal)."""

    type: Literal["hangup"]
    prompt: str | None = None


Step = Annotated[
    PlayStep
    | MenuStep
    | CollectStep
    | LookupStep
    | ConditionStep
    | SetStep
    | QueueStep
    | TransferStep
    | VoicemailStep
    | CallbackStep
    | HangupStep,
    Field(discriminator="type"),
]

STEP_TYPES: dict[str, type[_Step]] = {
    "play": PlayStep,
    "menu": MenuStep,
    "collect": CollectStep,
    "lookup": LookupStep,
    "condition": ConditionStep,
    "set": SetStep,
    "queue": QueueStep,
    "transfer": TransferStep,
    "voicemail": VoicemailStep,
    "callback": CallbackStep,
    "hangup": HangupStep,
}
TERMINAL_TYPES = frozenset({"queue", "transfer", "voicemail", "callback", "hangup"})


class Flow(_Model):
    """A named flow: where it starts and its steps by id."""

    name: Annotated[str, Field(min_length=1)]
    start: StepId
    steps: dict[str, Step] = Field(min_length=1)
    # A caller could otherwise loop through "press 9 to hear the menu again" forever.
    max_steps: Annotated[int, Field(ge=1)] = 50
