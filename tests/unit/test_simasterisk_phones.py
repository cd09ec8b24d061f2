"""Simulated phones: a device the agent context dials is an agent's phone, unless a
policy of its own says otherwise (the simulated Asterisk learns it from its own Dial,
not from the daemon)."""

from __future__ import annotations

from urllib.parse import unquote

from adapters.asterisk.attached import attached_request
from adapters.simasterisk.controls import AGENT_PHONE, queue_script
from adapters.simasterisk.phones import BUSY, EXTERNAL, Phones


def test_agent_phones_take_the_agents_policy_unless_they_have_their_own() -> None:
    phones = Phones(agents=AGENT_PHONE)
    assert phones.rang("PJSIP/1001", agent=True) is AGENT_PHONE
    assert phones.rang("PJSIP/2000") is EXTERNAL  # a transfer target
    phones.set("PJSIP/1002", BUSY)
    assert phones.rang("pjsip/1002", agent=True) is BUSY
    assert phones.rings == {"pjsip/1001": 1, "pjsip/2000": 1, "pjsip/1002": 1}


def test_without_an_agents_policy_agent_phones_use_the_default() -> None:
    assert Phones().rang("PJSIP/1001", agent=True) is EXTERNAL


def test_queue_scripts_carry_what_the_call_asks_url_encoded() -> None:
    assert queue_script("support") == "queue/support"
    assert queue_script(
        "billing",
        priority=3,
        skills={"billing": 5},
        ivr_path=["welcome"],
        ivr_inputs={"account": "1 2&3"},
    ) == ("queue/billing?priority=3&skill=billing%3A5&step=welcome&input.account=1+2%263")


def test_what_the_simulator_attaches_is_what_the_daemon_reads() -> None:
    script = queue_script(
        "sales desk",
        priority=9,
        skills={"spanish": 4, "sales": 1},
        ivr_path=["welcome", "menu"],
        ivr_inputs={"account": "12 345&x=y", "note": "é"},
    )
    path, _, query = script.partition("?")
    request = attached_request(unquote(path.removeprefix("queue/")), query)
    assert request.problems == []
    assert request.outcome.command is not None
    assert request.outcome.priority == 9 and request.outcome.skills == {"spanish": 4, "sales": 1}
    assert request.path == ["welcome", "menu"]
    assert request.inputs == {"account": "12 345&x=y", "note": "é"}
