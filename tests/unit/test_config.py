"""Configuration validation: error messages name the key path and the expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contact_center.config import Config, load_config, parse_config
from contact_center.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems(raw: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, env or {})
    return info.value.problems


def voice_queue(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "channels": ["voice"], **extra}


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config.yaml", env={})
    assert config.database.url.startswith("sqlite+aiosqlite:///")
    assert config.pbx.mode == "simulated"
    assert {q.name for q in config.queues} >= {"support", "billing"}


def test_empty_file_gives_working_defaults() -> None:
    config = parse_config(None, {})
    assert config.web.port == 8080
    assert config.database.default_region == "GB"


def test_issue_example_message() -> None:
    raw = {"queues": [voice_queue("a"), voice_queue("b"), voice_queue("c", sla_seconds="abc")]}
    assert problems(raw) == ['queues[2].sla_seconds: expected a positive integer, got "abc"']


def test_unknown_key_is_named_with_its_path() -> None:
    assert problems({"web": {"prot": 80}}) == ["web.prot: unknown key"]
    assert problems({"colour": "blue"}) == ["colour: unknown key"]


def test_several_errors_reported_together() -> None:
    found = problems(
        {
            "web": {"port": 70000},
            "pbx": {"mode": "freeswitch"},
            "routing": {"timezone": "Mars/Olympus"},
        }
    )
    assert "web.port: expected a number <= 65535, got 70000" in found
    assert (
        "pbx.mode: expected one of 'simulated', 'asterisk' or 'off', got \"freeswitch\""
    ) in found
    assert "routing.timezone: unknown time zone 'Mars/Olympus'" in found


def test_missing_required_value() -> None:
    expected = ["queues[0].channels: required value is missing"]
    assert problems({"queues": [{"name": "a"}]}) == expected


def test_wrong_container_type() -> None:
    assert problems({"queues": {"name": "a"}}) == ["queues: expected a list, got a dict"]
    assert problems(["web"]) == ["(top level): expected a mapping of sections"]


def test_skill_level_bounds() -> None:
    found = problems({"skills": [{"name": "x"}], "queues": [voice_queue("q", skills={"x": 11})]})
    assert found == ["queues[0].skills.x: expected a number <= 10, got 11"]


def test_cross_references_are_checked() -> None:
    found = problems(
        {
            "queues": [
                voice_queue("a", skills={"ghost": 2}),
                voice_queue("a"),
                voice_queue("b", on_max_wait={"action": "overflow", "target": "nowhere"}),
            ]
        }
    )
    assert "queues[0].skills.ghost: unknown skill 'ghost'" in found
    assert "queues[1].name: duplicate queue name 'a'" in found
    assert "queues[2].on_max_wait.target: unknown queue 'nowhere'" in found


def test_enabled_channel_needs_its_queue() -> None:
    found = problems({"channels": {"chat": {"enabled": True, "queue": "web"}}})
    assert found == ["channels.chat.queue: unknown queue 'web'"]


def test_text_channels_settings_are_checked() -> None:
    queue = [{"name": "sms", "channels": ["sms"]}]
    found = problems({"queues": queue, "channels": {"sms": {"enabled": True, "queue": "sms"}}})
    assert found == [
        "channels.sms.account_sid: required when sms is enabled",
        "channels.sms.auth_token: required when sms is enabled",
        "channels.sms.from_number: required when sms is enabled",
    ]
    chat = {"topics": {"bills": {"billing": 3}}, "allowed_origins": ["https://shop.example"]}
    found = problems({"channels": {"chat": chat}})
    assert found == ["channels.chat.topics.bills.billing: unknown skill 'billing'"]
    email = {"enabled": True, "imap": {"username": "u"}, "smtp": {"ssl": True, "starttls": True}}
    queue = [{"name": "email", "channels": ["email"]}]
    found = problems({"queues": queue, "channels": {"email": email}})
    assert found == ["channels.email.smtp: ssl and starttls exclude each other"]
    found = problems({"channels": {"chat": {"allowed_origins": ["shop.example/path"]}}})
    assert len(found) == 1 and "channels.chat.allowed_origins" in found[0]
    assert "is not an origin" in found[0]


def test_env_reference_is_expanded_and_secret_hidden() -> None:
    config = parse_config({"pbx": {"ami": {"secret": "${AMI_SECRET}"}}}, {"AMI_SECRET": "s3cr3t"})
    assert config.pbx.ami.secret.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(config)
    assert "s3cr3t" not in str(config.redacted())


def test_missing_env_reference_is_an_error_naming_the_key() -> None:
    assert problems({"pbx": {"ami": {"secret": "${NOPE}"}}}) == [
        "pbx.ami.secret: environment variable NOPE is not set"
    ]


def test_env_reference_default() -> None:
    config = parse_config({"channels": {"sms": {"auth_token": "${TOK:-fallback}"}}}, {})
    assert config.channels.sms.auth_token.get_secret_value() == "fallback"


def test_environment_overrides() -> None:
    env = {
        "CC_WEB_PORT": "9090",
        "CC_DATABASE_URL": "postgresql+asyncpg://u@h/db",
        "CC_PBX": "off",
    }
    config = parse_config({"web": {"port": 8080}}, env)
    assert config.web.port == 9090
    assert config.database.url == "postgresql+asyncpg://u@h/db"
    assert config.pbx.mode == "off"


def test_bad_override_says_where_it_came_from() -> None:
    found = problems({}, {"CC_WEB_PORT": "eighty"})
    assert found == ['web.port: expected a non-negative integer, got "eighty" (set by CC_WEB_PORT)']


def test_unsupported_database_driver() -> None:
    found = problems({"database": {"url": "mysql://x"}})
    assert found == ["database.url: expected a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL"]


def test_models_are_frozen() -> None:
    config = parse_config({}, {})
    with pytest.raises(Exception, match="frozen"):
        config.web.port = 1  # type: ignore[misc]


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("web:\n  port: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


def test_round_trip_of_shipped_config_keys(tmp_path: Path) -> None:
    # Every key in the shipped file is a real setting: dumping and re-reading gives the same.
    config = load_config(REPO / "config.yaml", env={})
    copy = tmp_path / "copy.yaml"
    data = Config.model_validate(config.model_dump()).model_dump(mode="python")
    for section in ("pbx", "channels"):
        del data[section]  # secrets are SecretStr objects; covered elsewhere
    copy.write_text(yaml.safe_dump(data))
    assert load_config(copy, env={}).queues == config.queues
