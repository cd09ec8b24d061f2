"""What an agent may dial or transfer to: checked before anything reaches the PBX.

A transfer target or a click-to-dial number ends up in a dialplan `Dial(PJSIP/${EXTEN})`
or an `Exten:` header; a `&` there adds a second destination, a `,` adds Dial options, a
CR/LF adds AMI headers. So a target is either a queue name the configuration declares
or a dial string of phone keys only (digits, `*`, `#`, one leading `+`), which is what a
phone's keypad can send. Visual separators people type (spaces, dashes, dots,
parentheses) are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Container

from crm_store.users import DEVICE_PATTERN
from routing.router import RoutingError

MAX_DIAL_LENGTH = 32  # E.164 is at most 15 digits; room for prefixes and feature codes
_SEPARATORS = str.maketrans("", "", " -.()\u00a0")
_DIAL_STRING = re.compile(r"\+?[0-9*#]+")


def dial_string(text: str) -> str:
    """`text` as phone keys only (separators dropped); RoutingError otherwise."""
    cleaned = text.strip().translate(_SEPARATORS)
    if not cleaned or len(cleaned) > MAX_DIAL_LENGTH or not _DIAL_STRING.fullmatch(cleaned):
        shown = text[:40] + ("..." if len(text) > 40 else "")
        raise RoutingError(
            "routing.bad_dial_string",
            f"{shown!r} is not a number to dial: use digits, * and # "
            f"(a leading + is allowed), at most {MAX_DIAL_LENGTH}",
        )
    return cleaned


def transfer_target(text: str, queues: Container[str]) -> tuple[str, bool]:
    """(target, is_queue): a configured queue's name as is, else a checked dial string."""
    if text in queues:
        return text, True
    return dial_string(text), False


def device_name(text: str) -> str:
    """A phone device (`TECH/resource`) safe for Dial and AMI; RoutingError otherwise."""
    # The store refuses any other device when it is saved; this guards older rows too.
    if not DEVICE_PATTERN.fullmatch(text):
        raise RoutingError(
            "routing.bad_device",
            f"{text[:40]!r} is not a phone device: expected TECH/resource such as PJSIP/1001",
        )
    return text


def same_device(mine: str | None, device: str, leg: str) -> bool:
    """Is this leg the agent's phone? `PJSIP/1001` rings as `PJSIP/1001-0000002a`;
    Asterisk keeps the technology's case, people may not."""
    if not mine:
        return False
    wanted = mine.lower()
    return device.lower() == wanted or leg.lower().startswith(wanted + "-")
