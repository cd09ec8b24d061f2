"""The pure IVR interpreter: every step type, retries, business hours, hang-ups, and a
property test that random results never raise and always reach an ending."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_flows.interpreter import (
    Callback,
    CallerHungUp,
    Collect,
    Command,
    Digits,
    Hangup,
    Lookup,
    LookupResult,
    Play,
    Played,
    Queue,
    Result,
    Session,
    SessionFinishedError,
    Timeout,
    Transfer,
    Voicemail,
    advance,
    start,
)
from ivr_flows.loader import load_flows, validate_flow
from ivr_flows.model import Flow

REPO = Path(__file__).resolve().parents[2]
FLOWS = load_flows(REPO / "ivr_flows", {"support", "billing", "spanish"})
MAIN = FLOWS["main"]
LONDON = ZoneInfo("Europe/London")
# Monday 2 March 2026, 10:00 in London (GMT): open.
OPEN = datetime(2026, 3, 2, 10, 0, tzinfo=LONDON)
MENU = Collect("main-menu.wav", 1, 5.0, None)
ACCOUNT = Collect("enter-account-number.wav", 8, 10.0, "#")


def flow_of(steps: dict[str, Any], start_at: str = "s", **extra: Any) -> Flow:
    return validate_flow({"start": start_at, "steps": steps, **extra}, "t", None)


def run(
    flow: Flow, results: Sequence[Result], now: datetime = OPEN, caller: str = "+441632960001"
) -> tuple[Session, list[Command]]:
    """Start a session and feed results; returns the session and every command issued."""
    session, command = start(flow, caller, now)
    commands = [command]
    for result in results:
        commands.append(advance(flow, session, result, now))
    return session, commands


def to_menu(tier: str | None = None) -> list[Result]:
    """Results that take an open-hours main-flow call to the menu."""
    found = LookupResult("cust-1", tier) if tier else LookupResult(None, None)
    return [Played(), found]


# --- the bundled main flow ------------------------------------------------------------


def test_main_support_choice_queues_support() -> None:
    session, commands = run(MAIN, [*to_menu(), Digits("2")])
    assert commands == [
        Play("welcome.wav"),
        Lookup("caller", "+441632960001"),
        MENU,
        Queue("support", {}, 0, {"main_menu": "2"}),
    ]
    assert session.finished and session.outcome == "queued"
    assert session.path == [
        "welcome",
        "opening_hours",
        "identify_caller",
        "main_menu",
        "support_queue",
    ]
    assert session.inputs == {"main_menu": "2"}


def test_main_billing_collects_and_looks_up_the_account() -> None:
    session, commands = run(
        MAIN, [*to_menu(), Digits("1"), Digits("12345678"), LookupResult("acct-9", "silver")]
    )
    assert commands[3:] == [
        ACCOUNT,
        Lookup("variable", "12345678"),
        Queue(
            "billing",
            {},
            0,
            {"main_menu": "1", "account_number": "12345678"},
            customer_id="acct-9",
        ),
    ]
    assert session.customer_id == "acct-9" and session.tier == "silver"


def test_main_billing_unknown_account_still_queues_billing() -> None:
    session, commands = run(
        MAIN, [*to_menu(), Digits("1"), Digits("55555#"), LookupResult(), Played()]
    )
    assert commands[-3:] == [
        Lookup("variable", "55555"),
        Play("account-not-found.wav"),
        Queue("billing", {}, 0, {"main_menu": "1", "account_number": "55555"}),
    ]
    assert session.path[-2:] == ["account_not_found", "billing_queue"]


def test_main_spanish_sets_language_and_skill() -> None:
    session, commands = run(MAIN, [*to_menu(), Digits("3")])
    assert commands[-1] == Queue("spanish", {"spanish": 4}, 0, {"main_menu": "3"}, language="es")
    assert session.language == "es" and session.skills == {"spanish": 4}


@pytest.mark.parametrize(("tier", "priority"), [("gold", 2), ("platinum", 2), ("silver", 0)])
def test_main_tier_priority(tier: str, priority: int) -> None:
    session, commands = run(MAIN, [*to_menu(tier), Digits("2")])
    last = commands[-1]
    assert isinstance(last, Queue) and last.priority == priority
    assert last.customer_id == "cust-1"
    assert ("vip_priority" in session.path) is (priority == 2)


def test_main_invalid_keys_retry_then_support() -> None:
    session, commands = run(
        MAIN,
        [*to_menu(), Digits("7"), Played(), Digits("*"), Played(), Digits("9")],
    )
    assert commands[2:] == [
        MENU,
        Play("invalid-option.wav"),
        MENU,
        Play("invalid-option.wav"),
        MENU,
        Queue("support", {}, 0, {}),
    ]
    assert session.retries == {"main_menu": 3}


def test_main_silence_retries_then_support() -> None:
    session, commands = run(
        MAIN, [*to_menu(), Timeout(), Played(), Digits(""), Played(), Timeout()]
    )
    assert commands[-1] == Queue("support", {}, 0, {})
    assert session.path[-1] == "support_queue"


def test_main_recovers_after_one_wrong_key() -> None:
    _, commands = run(MAIN, [*to_menu(), Digits("5"), Played(), Digits("3")])
    assert isinstance(commands[-1], Queue) and commands[-1].queue == "spanish"


def test_main_account_number_retries() -> None:
    results: list[Result] = [*to_menu(), Digits("1")]
    results += [Digits("1234#"), Played()]  # too short
    results += [Digits("123456789"), Played()]  # too long
    results += [Digits("12*45678")]  # not digits: retries exhausted
    session, commands = run(MAIN, results)
    assert commands[3:] == [
        ACCOUNT,
        Play("invalid-account-number.wav"),
        ACCOUNT,
        Play("invalid-account-number.wav"),
        ACCOUNT,
        Queue("billing", {}, 0, {"main_menu": "1"}),
    ]
    assert "account_number" not in session.inputs


def test_caller_hangup_mid_flow_records_the_path() -> None:
    session, commands = run(MAIN, [*to_menu(), Digits("1"), CallerHungUp()])
    assert commands[-1] == Hangup(None)
    assert session.finished and session.outcome == "caller_hangup"
    assert session.current == "billing_account"
    assert session.path == [
        "welcome",
        "opening_hours",
        "identify_caller",
        "main_menu",
        "billing_account",
    ]
    assert session.inputs == {"main_menu": "1"}


def test_caller_hangup_during_the_welcome() -> None:
    session, _ = run(MAIN, [CallerHungUp()])
    assert session.path == ["welcome"] and session.outcome == "caller_hangup"


# --- business hours -------------------------------------------------------------------


def opening(now: datetime) -> str:
    session, _ = run(MAIN, [Played()], now=now)
    return "open" if "identify_caller" in session.path else "closed"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 3, 2, 7, 59, tzinfo=LONDON), "closed"),  # Monday before 08:00
        (datetime(2026, 3, 2, 8, 0, tzinfo=LONDON), "open"),
        (datetime(2026, 3, 2, 19, 59, tzinfo=LONDON), "open"),
        (datetime(2026, 3, 2, 20, 0, tzinfo=LONDON), "closed"),
        (datetime(2026, 3, 7, 12, 59, tzinfo=LONDON), "open"),  # Saturday
        (datetime(2026, 3, 7, 13, 0, tzinfo=LONDON), "closed"),
        (datetime(2026, 3, 8, 12, 0, tzinfo=LONDON), "closed"),  # Sunday
        (datetime(2025, 12, 25, 12, 0, tzinfo=LONDON), "closed"),  # Christmas, a Thursday
        (datetime(2026, 4, 3, 12, 0, tzinfo=LONDON), "closed"),  # Good Friday
        # Other zones are converted to London time first.
        (datetime(2026, 3, 2, 14, 30, tzinfo=ZoneInfo("America/New_York")), "open"),  # 19:30
        (datetime(2026, 3, 2, 15, 30, tzinfo=ZoneInfo("America/New_York")), "closed"),  # 20:30
        # 07:30 UTC is 08:30 in London in summer (BST): open, though UTC says 07:30.
        (datetime(2026, 6, 1, 7, 30, tzinfo=UTC), "open"),
        (datetime(2026, 3, 2, 7, 30, tzinfo=UTC), "closed"),  # GMT in winter: 07:30
        # Monday 01:00 in Tokyo is still Sunday in London.
        (datetime(2026, 3, 2, 1, 0, tzinfo=ZoneInfo("Asia/Tokyo")), "closed"),
        # Friday 23:30 in Auckland on Boxing Day is still Christmas Day in London.
        (datetime(2025, 12, 26, 23, 30, tzinfo=ZoneInfo("Pacific/Auckland")), "closed"),
        (datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=-5))), "open"),  # 15:00
    ],
)
def test_business_hours(now: datetime, expected: str) -> None:
    assert opening(now) == expected


def test_closed_goes_to_voicemail() -> None:
    sunday = datetime(2026, 3, 8, 12, 0, tzinfo=LONDON)
    session, commands = run(MAIN, [Played(), Played()], now=sunday)
    assert commands == [Play("welcome.wav"), Play("closed-leave-message.wav"), Voicemail("general")]
    assert session.outcome == "voicemail"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        start(MAIN, "+441632960001", datetime(2026, 3, 2, 10, 0))


# --- every step type on small flows ----------------------------------------------------


def test_terminal_steps() -> None:
    cases: list[tuple[dict[str, Any], Command, str]] = [
        ({"type": "transfer", "extension": 2001}, Transfer("2001"), "transferred"),
        ({"type": "voicemail", "mailbox": "sales"}, Voicemail("sales"), "voicemail"),
        ({"type": "callback"}, Callback(), "callback"),
        ({"type": "hangup"}, Hangup(None), "hangup"),
        ({"type": "hangup", "prompt": "bye.wav"}, Hangup("bye.wav"), "hangup"),
        (
            {"type": "queue", "queue": "q", "skills": {"sales": 3}, "priority": 1},
            Queue("q", {"sales": 3}, 1, {}),
            "queued",
        ),
    ]
    for step, command, outcome in cases:
        session, first = start(flow_of({"s": step}), "+1", OPEN)
        assert first == command
        assert session.finished and session.outcome == outcome and session.path == ["s"]


def test_advance_after_finish_raises() -> None:
    flow = flow_of({"s": {"type": "callback"}})
    session, _ = start(flow, "+1", OPEN)
    with pytest.raises(SessionFinishedError, match=r"already finished \(callback\)"):
        advance(flow, session, Played(), OPEN)


def test_advance_with_another_flow_raises() -> None:
    flow = flow_of({"s": {"type": "play", "prompt": "a.wav", "next": "e"}, "e": {"type": "hangup"}})
    session, _ = start(flow, "+1", OPEN)
    with pytest.raises(ValueError, match="belongs to flow t, not main"):
        advance(MAIN, session, Played(), OPEN)


def test_set_accumulates_and_queue_merges() -> None:
    flow = flow_of(
        {
            "s": {
                "type": "set",
                "skills": {"billing": 3, "support": 2},
                "priority": 1,
                "variables": {"source": "web", "campaign": 42},
                "next": "s2",
            },
            "s2": {"type": "set", "priority": 2, "language": "fr", "next": "q"},
            "q": {"type": "queue", "queue": "billing", "skills": {"billing": 6}, "priority": 1},
        }
    )
    session, command = start(flow, "+1", OPEN)
    assert command == Queue(
        "billing",
        {"billing": 6, "support": 2},
        4,
        {"source": "web", "campaign": "42"},
        language="fr",
    )
    assert session.priority == 3 and session.path == ["s", "s2", "q"]


def collect_flow(**overrides: Any) -> Flow:
    step = {
        "type": "collect",
        "prompt": "pin.wav",
        "variable": "pin",
        "min_digits": 4,
        "max_digits": 4,
        "retries": 1,
        "next": "check",
        "invalid": "fail",
        **overrides,
    }
    return flow_of(
        {
            "s": step,
            "check": {
                "type": "condition",
                "variable": {"name": "pin", "equals": 1234},
                "then": "ok",
                "else": "bad",
            },
            "ok": {"type": "transfer", "extension": "100"},
            "bad": {"type": "hangup", "prompt": "wrong-pin.wav"},
            "fail": {"type": "hangup"},
        }
    )


@pytest.mark.parametrize(
    ("results", "last"),
    [
        ([Digits("1234")], Transfer("100")),
        ([Digits("1234#")], Transfer("100")),
        ([Digits("1234#99")], Transfer("100")),  # keys after the terminator are ignored
        ([Digits("4321")], Hangup("wrong-pin.wav")),
        ([Digits("12"), Digits("1234")], Transfer("100")),  # one retry allowed
        ([Digits("12"), Digits("12")], Hangup(None)),
        ([Timeout(), Timeout()], Hangup(None)),
        ([Digits("#"), Timeout()], Hangup(None)),  # just the terminator: no input
        ([Played(), Digits("1234")], Transfer("100")),  # a stray result counts as no input
    ],
)
def test_collect(results: list[Result], last: Command) -> None:
    _, commands = run(collect_flow(), results)
    assert commands[0] == Collect("pin.wav", 4, 10.0, "#")
    assert commands[-1] == last
    assert all(c == commands[0] for c in commands[1:-1])


def test_collect_pattern_and_no_terminator() -> None:
    flow = collect_flow(terminator=None, pattern="1[0-9]+", min_digits=1, max_digits=6)
    _, commands = run(flow, [Digits("2234"), Digits("1234")])
    assert commands[0] == Collect("pin.wav", 6, 10.0, None)
    assert commands[-1] == Transfer("100")


def test_collect_invalid_prompt_then_asks_again() -> None:
    flow = collect_flow(invalid_prompt="try-again.wav")
    _, commands = run(flow, [Digits("1"), Played(), Digits("1234")])
    assert commands == [
        Collect("pin.wav", 4, 10.0, "#"),
        Play("try-again.wav"),
        Collect("pin.wav", 4, 10.0, "#"),
        Transfer("100"),
    ]


def test_variable_condition_matches_and_missing_variable() -> None:
    steps = {
        "s": {
            "type": "condition",
            "variable": {"name": "code", "matches": "9+"},
            "then": "yes",
            "else": "no",
        },
        "yes": {"type": "transfer", "extension": "9"},
        "no": {"type": "hangup"},
    }
    _, command = start(flow_of(steps), "+1", OPEN)
    assert command == Hangup(None)  # never collected: the test fails
    steps["p"] = {"type": "set", "variables": {"code": "999"}, "next": "s"}
    _, command = start(flow_of(steps, start_at="p"), "+1", OPEN)
    assert command == Transfer("9")


def lookup_flow(by: str) -> Flow:
    return flow_of(
        {
            "s": {"type": "lookup", "by": by, "found": "known", "not_found": "unknown"},
            "known": {"type": "transfer", "extension": "1"},
            "unknown": {"type": "transfer", "extension": "2"},
        }
    )


def test_lookup_by_caller() -> None:
    flow = lookup_flow("caller")
    session, commands = run(flow, [LookupResult("c-7", "bronze")], caller="+15550100")
    assert commands == [Lookup("caller", "+15550100"), Transfer("1")]
    assert (session.customer_id, session.tier) == ("c-7", "bronze")
    session, commands = run(flow, [LookupResult(None, None)], caller="+15550100")
    assert commands[-1] == Transfer("2") and session.customer_id is None
    # A result of the wrong kind is a failed lookup, not an error.
    _, commands = run(flow, [Digits("1")], caller="+15550100")
    assert commands[-1] == Transfer("2")


def test_lookup_without_a_key_skips_to_not_found() -> None:
    _, command = start(lookup_flow("caller"), "", OPEN)  # withheld number
    assert command == Transfer("2")
    session, command = start(lookup_flow("variable:account"), "+1", OPEN)
    assert command == Transfer("2")
    assert session.path == ["s", "unknown"]


def test_tier_condition_without_lookup_is_false() -> None:
    flow = flow_of(
        {
            "s": {"type": "condition", "tier_in": ["gold"], "then": "a", "else": "b"},
            "a": {"type": "transfer", "extension": "1"},
            "b": {"type": "transfer", "extension": "2"},
        }
    )
    assert start(flow, "+1", OPEN)[1] == Transfer("2")


def menu_flow(**extra: Any) -> Flow:
    return flow_of(
        {
            "s": {"type": "play", "prompt": "hi.wav", "next": "m"},
            "m": {
                "type": "menu",
                "prompt": "m.wav",
                "choices": {"1": "one", "9": "m", "0": "s", "10": "ten"},
                "retries": 0,
                "invalid": "bad",
                "timeout": "quiet",
            },
            "one": {"type": "transfer", "extension": "1"},
            "ten": {"type": "transfer", "extension": "10"},
            "bad": {"type": "hangup", "prompt": "bad.wav"},
            "quiet": {"type": "hangup", "prompt": "quiet.wav"},
        },
        **extra,
    )


def test_menu_multi_key_choices_and_no_retries() -> None:
    flow = menu_flow()
    assert run(flow, [Played()])[1][-1] == Collect("m.wav", 2, 5.0, None)
    assert run(flow, [Played(), Digits("10")])[1][-1] == Transfer("10")
    assert run(flow, [Played(), Digits("5")])[1][-1] == Hangup("bad.wav")
    assert run(flow, [Played(), Timeout()])[1][-1] == Hangup("quiet.wav")
    assert run(flow, [Played(), Played()])[1][-1] == Hangup("quiet.wav")


def test_menu_repeat_gets_fresh_retries_and_records_the_last_choice() -> None:
    session, commands = run(menu_flow(), [Played(), Digits("9"), Digits("9"), Digits("1")])
    assert commands[-1] == Transfer("1")
    assert session.path == ["s", "m", "m", "m", "one"]
    assert session.inputs == {"m": "1"}


def test_endless_repeats_end_the_call_at_max_steps() -> None:
    flow = menu_flow(max_steps=6)
    session, commands = run(flow, [Played()] + [Digits("9")] * 5)
    assert commands[-1] == Hangup(None)
    assert session.outcome == "too_many_steps" and len(session.path) == 6
    with pytest.raises(SessionFinishedError):
        advance(flow, session, Digits("1"), OPEN)


def test_sales_flow() -> None:
    sales = FLOWS["sales"]
    assert run(sales, [Digits("1")])[1][-1] == Transfer("2001")
    session, commands = run(sales, [Digits("2"), Played()])
    assert commands[-1] == Callback() and session.outcome == "callback"
    evening = datetime(2026, 3, 2, 18, 0, tzinfo=LONDON)
    assert start(sales, "+1", evening)[1] == Voicemail("sales")


# --- property: any results, always an ending -------------------------------------------

RESULTS = st.one_of(
    st.just(Played()),
    st.just(Timeout()),
    st.builds(Digits, st.text(alphabet="0123456789*#x", max_size=10)),
    st.builds(
        LookupResult,
        st.none() | st.sampled_from(["c1", "c2"]),
        st.none() | st.sampled_from(["bronze", "silver", "gold", "platinum", "tin"]),
    ),
)
LOOPY = menu_flow(max_steps=20)
ALL_FLOWS = [*FLOWS.values(), LOOPY, collect_flow(), lookup_flow("caller")]
MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


def max_results(flow: Flow) -> int:
    """An upper bound on results before the flow must end: each visit of a step may take
    its retries' worth of re-prompts, each one an optional apology and a new attempt."""
    per_step = max(2 * (getattr(step, "retries", 0) + 1) + 1 for step in flow.steps.values())
    return flow.max_steps * per_step


@settings(max_examples=300, deadline=None)
@given(
    flow=st.sampled_from(ALL_FLOWS),
    results=st.lists(RESULTS, max_size=30),
    now=MOMENTS,
    hang_up_at=st.none() | st.integers(min_value=0, max_value=40),
)
def test_random_results_never_raise_and_always_end(
    flow: Flow, results: list[Result], now: datetime, hang_up_at: int | None
) -> None:
    session, command = start(flow, "+441632960001", now)
    bound = max_results(flow)
    fed = 0
    while not session.finished:
        assert fed < bound, f"no ending after {fed} results: {session.path}"
        if hang_up_at is not None and fed == hang_up_at:
            result: Result = CallerHungUp()
        else:
            # Cycle the drawn results (Timeout when none) so the call must end by itself.
            result = results[fed % len(results)] if results else Timeout()
        command = advance(flow, session, result, now)
        fed += 1
    assert isinstance(command, Queue | Transfer | Voicemail | Callback | Hangup)
    assert session.outcome is not None
    assert len(session.path) <= flow.max_steps
    assert all(step_id in flow.steps for step_id in session.path)


def test_session_is_plain_data() -> None:
    session = Session(flow="t", caller="+1")
    assert session.path == [] and not session.finished and session.outcome is None
