"""IVR flow loading: every problem names the flow and the step, and bundled flows are valid."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from contact_center.config import load_config
from ivr_flows.loader import FlowError, load_flows, validate_flow
from ivr_flows.model import ConditionStep, MenuStep, QueueStep

REPO = Path(__file__).resolve().parents[2]
QUEUES = {"support", "billing", "spanish"}


def base() -> dict[str, Any]:
    """A small valid flow that each test breaks in one way."""
    return {
        "start": "welcome",
        "steps": {
            "welcome": {"type": "play", "prompt": "welcome.wav", "next": "menu1"},
            "menu1": {
                "type": "menu",
                "prompt": "menu.wav",
                "choices": {1: "support", "2": "account"},
                "invalid": "support",
                "timeout": "support",
            },
            "account": {
                "type": "collect",
                "prompt": "account.wav",
                "variable": "account",
                "max_digits": 8,
                "next": "support",
                "invalid": "support",
            },
            "support": {"type": "queue", "queue": "support"},
        },
    }


def problems(raw: object, name: str = "main", queues: set[str] | None = QUEUES) -> list[str]:
    with pytest.raises(FlowError) as info:
        validate_flow(raw, name, queues)
    return info.value.problems


def with_step(step_id: str, step: object, raw: dict[str, Any] | None = None) -> Any:
    raw = copy.deepcopy(raw or base())
    raw["steps"][step_id] = step
    return raw


def test_base_flow_is_valid_and_coerces_yaml_int_keys() -> None:
    flow = validate_flow(base(), "main", QUEUES)
    menu = flow.steps["menu1"]
    assert isinstance(menu, MenuStep)
    assert menu.choices == {"1": "support", "2": "account"}
    assert flow.name == "main"


def test_missing_choice_target_names_flow_step_and_choice() -> None:
    raw = base()
    raw["steps"]["menu1"]["choices"]["3"] = "billing"
    assert problems(raw) == ['flow main, step menu1: choice "3" goes to unknown step "billing"']


def test_missing_next_target() -> None:
    raw = base()
    raw["steps"]["welcome"]["next"] = "nowhere"
    assert problems(raw) == [
        'flow main, step welcome: next goes to unknown step "nowhere"',
        # menu1 is now unreachable too: both are worth knowing.
        'flow main, step menu1: unreachable from start step "welcome"',
        'flow main, step account: unreachable from start step "welcome"',
        'flow main, step support: unreachable from start step "welcome"',
    ]


def test_unknown_step_type() -> None:
    raw = with_step("x", {"type": "dance", "next": "support"})
    assert problems(raw) == [
        'flow main, step x: unknown step type "dance" (expected one of play, menu, collect, '
        "lookup, condition, set, queue, transfer, voicemail, callback, hangup)"
    ]


def test_missing_type() -> None:
    raw = with_step("x", {"prompt": "a.wav"})
    assert problems(raw) == ['flow main, step x: missing "type"']


def test_unknown_key_is_reworded() -> None:
    raw = base()
    raw["steps"]["welcome"]["promt"] = "typo.wav"
    assert problems(raw) == ['flow main, step welcome: unknown key "promt"']


def test_missing_key_is_reworded() -> None:
    raw = base()
    del raw["steps"]["menu1"]["timeout"]
    assert problems(raw) == ['flow main, step menu1: missing "timeout"']


def test_nested_unknown_key_and_wrong_type() -> None:
    raw = with_step(
        "hours",
        {
            "type": "condition",
            "business_hours": {"timezone": "UTC", "open": {"mon": "09:00-17:00"}, "x": 1},
            "then": "support",
            "else": "support",
        },
    )
    raw["steps"]["menu1"]["retries"] = -1
    assert problems(raw) == [
        "flow main, step menu1: retries: Input should be greater than or equal to 0",
        'flow main, step hours: unknown key "business_hours.x"',
    ]


def test_top_level_problems() -> None:
    assert problems([1, 2]) == ["flow main: expected a mapping with start and steps, got a list"]
    assert problems({"start": "a", "stepz": {}}) == [
        'flow main: unknown key "stepz"',
        'flow main: missing "steps" (a mapping of step id to step)',
    ]
    raw = base()
    raw["name"] = "other"
    del raw["start"]
    assert problems(raw) == [
        'flow main: name "other" does not match the file name "main"',
        'flow main: missing "start" (the id of the first step)',
    ]


def test_step_not_a_mapping_and_bad_id() -> None:
    raw = with_step("x", "play")
    raw["steps"][7] = {"type": "hangup"}
    assert problems(raw) == [
        "flow main, step x: expected a mapping, got text",
        'flow main: step id "7" must be letters, digits, _ . or -',
    ]


def test_start_step_missing() -> None:
    raw = base()
    raw["start"] = "hello"
    found = problems(raw)
    assert found[0] == 'flow main: start step "hello" does not exist'


def test_unreachable_step() -> None:
    raw = with_step("orphan", {"type": "hangup"})
    assert problems(raw) == ['flow main, step orphan: unreachable from start step "welcome"']


def test_loop_without_exit() -> None:
    raw = base()
    raw["steps"]["welcome"]["next"] = "a"
    raw["steps"]["a"] = {"type": "play", "prompt": "a.wav", "next": "b"}
    raw["steps"]["b"] = {"type": "set", "priority": 1, "next": "a"}
    assert problems(raw) == [
        'flow main, step menu1: unreachable from start step "welcome"',
        'flow main, step account: unreachable from start step "welcome"',
        'flow main, step support: unreachable from start step "welcome"',
        "flow main, step a: loop through a, b never reaches an ending step",
    ]


def test_menu_that_only_loops_back_is_a_loop_without_exit() -> None:
    raw = {
        "start": "m",
        "steps": {
            "m": {
                "type": "menu",
                "prompt": "m.wav",
                "choices": {"1": "m"},
                "invalid": "sorry",
                "timeout": "m",
            },
            "sorry": {"type": "play", "prompt": "sorry.wav", "next": "m"},
        },
    }
    assert problems(raw) == [
        "flow main, step m: loop through m, sorry never reaches an ending step"
    ]


def test_step_leading_into_a_loop_reports_the_loop_once() -> None:
    raw = base()
    raw["steps"]["welcome"]["next"] = "lead"
    raw["steps"]["lead"] = {"type": "set", "priority": 1, "next": "spin"}
    raw["steps"]["spin"] = {"type": "play", "prompt": "spin.wav", "next": "spin"}
    raw["steps"]["menu1"]["invalid"] = "welcome"
    raw["steps"]["menu1"]["choices"]["0"] = "welcome"
    found = problems(raw)
    assert found[-1] == "flow main, step spin: loop through spin never reaches an ending step"
    assert not any("step lead:" in p for p in found)


def test_menu_loop_back_with_an_exit_is_fine() -> None:
    raw = base()
    raw["steps"]["menu1"]["choices"]["9"] = "menu1"  # "press 9 to hear this again"
    raw["steps"]["menu1"]["invalid"] = "welcome"
    validate_flow(raw, "main", QUEUES)


def test_empty_prompts() -> None:
    raw = base()
    raw["steps"]["welcome"]["prompt"] = "  "
    raw["steps"]["menu1"]["invalid_prompt"] = ""
    raw["steps"]["hang"] = {"type": "hangup", "prompt": ""}
    raw["steps"]["menu1"]["choices"]["0"] = "hang"
    assert problems(raw) == [
        "flow main, step welcome: prompt is empty",
        "flow main, step menu1: invalid_prompt is empty (leave it out to repeat the prompt)",
        "flow main, step hang: prompt is empty (leave it out to hang up silently)",
    ]


def test_unknown_queue() -> None:
    raw = base()
    raw["steps"]["support"]["queue"] = "suport"
    assert problems(raw) == [
        'flow main, step support: queue "suport" is not configured '
        "(known: billing, spanish, support)"
    ]
    # Without known queues the name is not checked.
    assert isinstance(validate_flow(raw, "main", None).steps["support"], QueueStep)


def test_bad_regex() -> None:
    raw = base()
    raw["steps"]["account"]["pattern"] = "[0-9"
    assert problems(raw) == [
        'flow main, step account: pattern: invalid regular expression "[0-9": '
        "unterminated character set at position 0"
    ]


def test_bad_regex_in_variable_condition() -> None:
    raw = with_step(
        "check",
        {
            "type": "condition",
            "variable": {"name": "account", "matches": "(1"},
            "then": "support",
            "else": "support",
        },
    )
    raw["steps"]["welcome"]["next"] = "check"
    raw["steps"]["check"]["else"] = "menu1"
    assert problems(raw) == [
        'flow main, step check: variable.matches: invalid regular expression "(1": '
        "missing ), unterminated subpattern at position 0"
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("8-20", "expected HH:MM-HH:MM"),
        ("25:00-26:00", "no such time of day"),
        ("09:60-10:00", "no such time of day"),
        ("20:00-08:00", "end must be after start"),
        ("09:00-09:00", "end must be after start"),
    ],
)
def test_bad_time_ranges(text: str, why: str) -> None:
    raw = with_step(
        "hours",
        {
            "type": "condition",
            "business_hours": {"timezone": "Europe/London", "open": {"mon": text}},
            "then": "support",
            "else": "support",
        },
    )
    raw["steps"]["welcome"]["next"] = "hours"
    raw["steps"]["hours"]["else"] = "menu1"
    assert problems(raw) == [
        f'flow main, step hours: business_hours.open: invalid time range "{text}" ({why})'
    ]


def test_open_until_midnight_is_allowed() -> None:
    raw = with_step(
        "hours",
        {
            "type": "condition",
            "business_hours": {"timezone": "UTC", "open": {"sun": "18:00-24:00"}},
            "then": "support",
            "else": "menu1",
        },
    )
    raw["steps"]["welcome"]["next"] = "hours"
    step = validate_flow(raw, "main", QUEUES).steps["hours"]
    assert isinstance(step, ConditionStep)


def test_unknown_timezone_and_day() -> None:
    raw = with_step(
        "hours",
        {
            "type": "condition",
            "business_hours": {"timezone": "Mars/Olympus", "open": {"funday": "09:00-17:00"}},
            "then": "support",
            "else": "menu1",
        },
    )
    raw["steps"]["welcome"]["next"] = "hours"
    found = problems(raw)
    assert found[0] == (
        'flow main, step hours: business_hours.timezone: unknown time zone "Mars/Olympus"'
    )
    assert found[1].startswith("flow main, step hours: business_hours.open.funday.[key]: ")


def test_condition_needs_exactly_one_test() -> None:
    raw = with_step(
        "c", {"type": "condition", "tier_in": ["gold"], "variable": {"name": "x", "equals": 1}}
    )
    raw["steps"]["c"].update({"then": "support", "else": "support"})
    assert problems(raw) == [
        "flow main, step c: needs exactly one of business_hours, tier_in or variable"
    ]


def test_collect_bounds_and_lookup_by() -> None:
    raw = base()
    raw["steps"]["account"]["min_digits"] = 9
    raw["steps"]["l"] = {"type": "lookup", "by": "phone", "found": "support", "not_found": "x"}
    assert problems(raw) == [
        "flow main, step account: min_digits (9) is more than max_digits (8)",
        'flow main, step l: by: "phone" is neither "caller" nor "variable:<name>"',
    ]


def test_menu_choice_must_be_a_keypad_key() -> None:
    raw = base()
    raw["steps"]["menu1"]["choices"]["a"] = "support"
    assert problems(raw) == [
        'flow main, step menu1: choices: choice "a" is not a keypad key (0-9, * or #)'
    ]


def test_all_problems_reported_together() -> None:
    raw = base()
    raw["steps"]["menu1"]["choices"]["3"] = "billing"
    raw["steps"]["support"]["queue"] = "nope"
    assert len(problems(raw)) == 2


# --- loading files -------------------------------------------------------------------


def configured_queues() -> set[str]:
    config = load_config(REPO / "config.yaml", {})
    return {queue.name for queue in config.queues}


def test_bundled_flows_validate_against_configured_queues() -> None:
    flows = load_flows(REPO / "ivr_flows", configured_queues())
    assert set(flows) >= {"main", "sales"}
    main = flows["main"]
    queues = {s.queue for s in main.steps.values() if isinstance(s, QueueStep)}
    assert queues == {"support", "billing", "spanish"}
    assert queues <= configured_queues()


def test_default_flow_of_config_exists() -> None:
    config = load_config(REPO / "config.yaml", {})
    flows = load_flows(REPO / config.ivr.flows_dir, configured_queues())
    assert config.ivr.default_flow in flows


def test_load_flows_reports_every_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(
        "start: bye\nsteps:\n  bye: {type: hangup, prompt: bye.wav}\n", encoding="utf-8"
    )
    (tmp_path / "bad.yaml").write_text("start: a\nsteps: [\n", encoding="utf-8")
    (tmp_path / "worse.yaml").write_text(
        "start: a\nsteps:\n  a: {type: queue, queue: nowhere}\n", encoding="utf-8"
    )
    with pytest.raises(FlowError) as info:
        load_flows(tmp_path, QUEUES)
    assert info.value.problems == [
        "flow bad: invalid YAML at line 3, column 1: "
        "expected the node content, but found '<stream end>'",
        'flow worse, step a: queue "nowhere" is not configured (known: billing, spanish, support)',
    ]
    assert "invalid IVR flow:" in str(info.value)


def test_load_flows_names_flows_by_file(tmp_path: Path) -> None:
    (tmp_path / "night.yaml").write_text(
        "start: bye\nsteps:\n  bye: {type: hangup}\n", encoding="utf-8"
    )
    flows = load_flows(tmp_path)
    assert list(flows) == ["night"]
    assert flows["night"].name == "night"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as info:
        load_flows(tmp_path / "absent")
    assert info.value.problems == [f"{tmp_path / 'absent'}: flows directory not found"]
