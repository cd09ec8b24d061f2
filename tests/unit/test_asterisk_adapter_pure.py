"""Pure parts of the Asterisk adapter: the request a dialplan attaches to a call queued
without the daemon's IVR, the endpoint a remote answer goes to, and the rule that the
adapter holds no simulator code (issue 9: the simulated Asterisk is driven only through
what a real Asterisk offers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.asterisk.attached import MAX_ITEMS, attached_request
from adapters.asterisk.pbx import pjsip_endpoint
from ivr_flows import interpreter as ivr

ADAPTER = Path(__file__).resolve().parents[2] / "adapters" / "asterisk"


def test_a_full_query_becomes_the_queue_step_it_stands_for() -> None:
    request = attached_request(
        "billing",
        "priority=5&skill=billing:7&skill=french:3&step=welcome&step=menu"
        "&input.account=12345&input.note=a%20b%26c",
    )
    assert request.problems == []
    outcome = request.outcome
    assert outcome.outcome == "queued"
    assert outcome.command == ivr.Queue("billing", {"billing": 7, "french": 3}, 5, {})
    assert (outcome.priority, outcome.skills) == (5, {"billing": 7, "french": 3})
    assert request.path == ["welcome", "menu"]
    assert request.inputs == {"account": "12345", "note": "a b&c"}


def test_an_empty_query_queues_with_nothing_asked() -> None:
    request = attached_request("support", "")
    assert request.problems == []
    assert request.outcome.command == ivr.Queue("support", {}, 0, {})
    assert (request.path, request.inputs) == ([], {})


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("priority=high", "priority"),
        ("priority=101", "priority"),
        ("skill=billing", "skill"),
        ("skill=billing:0", "skill"),
        ("skill=billing:11", "skill"),
        ("skill=:5", "skill"),
        ("step=", "step"),
        ("colour=blue", "colour: not a known parameter"),
        ("input.=x", "input.: not a known parameter"),
        (f"input.a={'x' * 201}", "longer than 200"),
    ],
)
def test_what_cannot_be_read_is_named_and_left_out(query: str, problem: str) -> None:
    request = attached_request("support", f"{query}&step=ok")
    assert len(request.problems) == 1 and problem in request.problems[0]
    # The call is still queued, with what could be read.
    assert request.outcome.command == ivr.Queue("support", {}, 0, {})
    assert request.path == ["ok"]


def test_items_are_bounded() -> None:
    query = "&".join(f"input.k{n}=v" for n in range(MAX_ITEMS + 3))
    request = attached_request("support", query)
    assert len(request.inputs) == MAX_ITEMS
    assert len(request.problems) == 3


@pytest.mark.parametrize(
    ("device", "endpoint"),
    [
        ("PJSIP/1001", "1001"),
        ("pjsip/alice", "alice"),
        ("Local/1001@phones", None),
        ("PJSIP/5551234@trunk", None),
        ("SIP/1001", None),
        ("PJSIP/", None),
        ("PJSIP/1001&PJSIP/1002", None),
        ("", None),
    ],
)
def test_remote_answer_goes_to_pjsip_endpoints_only(device: str, endpoint: str | None) -> None:
    assert pjsip_endpoint(device) == endpoint


def test_the_asterisk_adapter_has_no_simulator_code_or_hooks() -> None:
    offenders = []
    for path in sorted(ADAPTER.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"simulat|simasterisk|PhoneControl|CallScript|DirectQueue", line, re.I):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []
