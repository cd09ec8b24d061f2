"""Routing's settings: the `queues` and `routing` sections of config.yaml.

Owned here, beside the code that uses them, so routing never imports the daemon's
configuration module (which composes every section into one `Config`). `RoutingSource`
is what routing reads of that whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
SkillLevel = Annotated[int, Field(ge=1, le=10)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]

# A channel's name: which ones exist is the channels' own declaration (the daemon's
# configuration checks every name against them), never routing's.
Channel = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]
Tier = Literal["bronze", "silver", "gold", "platinum"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RelaxationStep(_Model):
    after_seconds: PositiveInt
    lower_levels: dict[str, SkillLevel] = {}
    drop_skills: list[str] = []
    widen_to: list[Name] = []


class MaxWaitAction(_Model):
    action: Literal["voicemail", "callback", "overflow", "disconnect"] = "voicemail"
    target: str | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _overflow_needs_target(self) -> MaxWaitAction:
        if self.action == "overflow" and not self.target:
            raise ValueError("overflow needs a target queue")
        return self


class QueueConfig(_Model):
    name: Name
    channels: list[Channel] = Field(min_length=1)
    skills: dict[str, SkillLevel] = {}
    sla_seconds: PositiveInt = 20
    offer_timeout_seconds: PositiveInt = 20
    max_wait_seconds: PositiveInt | None = None
    on_max_wait: MaxWaitAction = MaxWaitAction()
    priority: NonNegativeInt = 0
    strategy: Literal["longest_idle", "most_skilled"] = "longest_idle"
    relaxation: list[RelaxationStep] = []


class RoutingConfig(_Model):
    timezone: str = "Europe/London"
    # Contacts an agent holds at once per channel; a channel left out keeps its default.
    capacity: dict[Channel, NonNegativeInt] = {}
    # While an agent handles a contact on a key channel, no new contacts on the listed ones;
    # left out: each exclusive channel (a call) blocks all the others.
    blocks: dict[Channel, list[Channel]] | None = None
    wrap_up_seconds: NonNegativeInt = 30
    not_ready_after_missed: NonNegativeInt = 1
    short_abandon_seconds: NonNegativeInt = 5
    stats_windows_minutes: list[PositiveInt] = [15, 60]
    tier_priority: dict[Tier, int] = {"bronze": 0, "silver": 1, "gold": 2, "platinum": 3}
    reason_codes: list[Name] = ["break", "lunch", "training", "meeting", "missed-offer"]
    dispositions: list[str] = ["resolved", "follow-up", "escalated", "wrong-number"]
    # After a restart, an agent restored "ready" gets no offers until a desktop of theirs
    # connects, and goes offline if none does within this many seconds (0: trust it).
    restore_grace_seconds: Annotated[float, Field(ge=0)] = 60

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class RegionSource(Protocol):
    """Where national phone numbers are read (`database.default_region`)."""

    @property
    def default_region(self) -> str:
        """ISO country code, e.g. GB."""


class RoutingSource(Protocol):
    """The parts of the daemon's configuration that routing reads."""

    @property
    def queues(self) -> Sequence[QueueConfig]:
        """The configured queues."""

    @property
    def routing(self) -> RoutingConfig:
        """The floor policy."""

    @property
    def database(self) -> RegionSource:
        """For the default region of phone numbers."""
