"""Configuration: `config.yaml` validated into frozen typed models.

Unknown keys, wrong types and missing values are errors that name the key path
(`queues[2].sla_seconds: expected a positive integer, got "abc"`). Secrets are
written as `${ENV_VAR}` references and held as `SecretStr`, so they never print.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from adapters.asterisk.settings import PbxConfig
from adapters.channels import CHANNEL_NAMES
from adapters.simasterisk.settings import SimulatorConfig
from contact_center.errors import ConfigError
from ivr_flows import safe_yaml
from routing.settings import (
    Name,
    PositiveInt,
    QueueConfig,
    RoutingConfig,
)

PositiveFloat = Annotated[float, Field(gt=0)]


ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "CC_WEB_PORT": ("web", "port"),
    "CC_DATABASE_URL": ("database", "url"),
    "CC_PBX": ("pbx", "mode"),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    # Where people reach the daemon; printed at start and used for links in emails.
    public_url: str | None = None
    shutdown_timeout_seconds: PositiveFloat = 10.0
    # Per browser tab: a tab that stops reading is dropped (close 4008) once this many
    # bytes wait for it; each user keeps this many sockets of each kind (the oldest closes).
    websocket_queue_bytes: Annotated[int, Field(ge=16_384)] = 1_048_576
    websocket_sockets_per_user: PositiveInt = 5
    # Where login sessions live: `store` (the CRM database: every daemon on it accepts the
    # same cookies, a restart logs nobody out) or `memory` (this process only).
    sessions: Literal["memory", "store"] = "store"


class DatabaseConfig(_Model):
    url: str = "sqlite+aiosqlite:///./data/contact_center.db"
    # Region used to read national phone numbers such as "020 7946 0018".
    default_region: Annotated[str, Field(min_length=2, max_length=2)] = "GB"
    echo: bool = False
    # Writes waiting for the store (new contacts, IVR paths, routing's updates) before
    # callers wait for room: the daemon slows down rather than failing calls.
    write_queue_limit: Annotated[int, Field(ge=10)] = 5000

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not (
            value.startswith("sqlite+aiosqlite://") or value.startswith("postgresql+asyncpg://")
        ):
            raise ValueError("expected a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL")
        return value

    @field_validator("default_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class ImapConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 993
    ssl: bool = True
    username: str = ""
    password: SecretStr = SecretStr("")
    mailbox: str = "INBOX"
    poll_seconds: PositiveFloat = 30.0


class SmtpConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    # TLS from the first byte (port 465, "SMTPS"); excludes starttls.
    ssl: bool = False
    username: str = ""
    password: SecretStr = SecretStr("")
    from_address: str = "support@example.com"


class EmailChannelConfig(_Model):
    enabled: bool = False
    queue: Name = "email"
    max_body_bytes: PositiveInt = 1_000_000
    # Attachments over this are listed on the message but not kept.
    max_attachment_bytes: PositiveInt = 10 * 1024 * 1024
    # Where kept attachments are written (one folder per message).
    attachments_dir: str = "./data/attachments"
    # The name replies are signed with when the agent's own is not used.
    from_name: str | None = None
    imap: ImapConfig = ImapConfig()
    smtp: SmtpConfig = SmtpConfig()


class SmsChannelConfig(_Model):
    enabled: bool = False
    queue: Name = "sms"
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    from_number: str = ""
    # Base URL of the Twilio REST API; a loopback fake in tests.
    api_base_url: str = "https://api.twilio.com"
    max_body_chars: PositiveInt = 1600
    # Texted to the customer when an agent closes the conversation (none: not asked); a
    # reply of just 1-5 within the window is the contact's CSAT.
    csat_question: Annotated[str, Field(min_length=1, max_length=320)] | None = None
    csat_window_hours: PositiveFloat = 24.0


class ChatChannelConfig(_Model):
    enabled: bool = False
    queue: Name = "chat"
    max_message_chars: PositiveInt = 4000
    # Sites (scheme://host[:port]) that may embed the widget; the daemon's own pages may.
    allowed_origins: list[str] = []
    # The pre-chat form's topics, each with the skills it asks of the agent.
    topics: dict[Name, dict[Name, Annotated[int, Field(ge=1, le=10)]]] = {}
    messages_per_minute: PositiveInt = 20
    chats_per_address: PositiveInt = 3
    # A visitor who closed every tab this long ago has left: the chat ends.
    resume_minutes: PositiveInt = 30

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # Imported here: the CLI's --help must not load the web chat (nor aiohttp).
        from adapters.webchat.visitors import allowed_origins

        return sorted(allowed_origins(value))


class CannedReply(_Model):
    title: Annotated[str, Field(min_length=1, max_length=80)]
    body: Annotated[str, Field(min_length=1, max_length=4000)]


class ChannelsConfig(_Model):
    email: EmailChannelConfig = EmailChannelConfig()
    sms: SmsChannelConfig = SmsChannelConfig()
    chat: ChatChannelConfig = ChatChannelConfig()
    # Ready-made answers agents insert in a chat, SMS or email (and then edit).
    canned_replies: list[CannedReply] = []


class SkillConfig(_Model):
    name: Name
    description: str = ""


class IvrConfig(_Model):
    flows_dir: str = "ivr_flows"
    default_flow: Name = "main"


class AuthConfig(_Model):
    session_hours: PositiveInt = 12
    # A session unused this long ends too (None: only `session_hours` ends it).
    session_idle_minutes: PositiveInt | None = None
    login_attempts_per_minute: PositiveInt = 5


class GcConfig(_Model):
    # Freeze the objects that survive into the collector's old generation right away, so
    # a full collection walks a few thousand objects, not every socket's (contact_center/
    # heap.py). false: only the start-up objects are frozen, once.
    freeze_survivors: bool = True
    # Frozen objects that became cyclic garbage (asyncio leaves a 5-object cycle per closed
    # connection) are reclaimed by one full collection over everything this often (0: never).
    compact_interval_hours: Annotated[float, Field(ge=0)] = 6.0


class PbxSection(PbxConfig):
    # simulated: a simulated Asterisk on loopback, driven over AMI and FastAGI like a real
    # one (the demo, tests, benchmarks); asterisk: a real one; off: no telephony.
    mode: Literal["simulated", "asterisk", "off"] = "simulated"
    simulator: SimulatorConfig = SimulatorConfig()


class Config(_Model):
    web: WebConfig = WebConfig()
    database: DatabaseConfig = DatabaseConfig()
    logging: LoggingConfig = LoggingConfig()
    pbx: PbxSection = PbxSection()
    channels: ChannelsConfig = ChannelsConfig()
    skills: list[SkillConfig] = []
    queues: list[QueueConfig] = []
    routing: RoutingConfig = RoutingConfig()
    ivr: IvrConfig = IvrConfig()
    auth: AuthConfig = AuthConfig()
    gc: GcConfig = GcConfig()

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        skill_names = {s.name for s in self.skills}
        queue_names = [q.name for q in self.queues]
        problems: list[str] = []
        seen: set[str] = set()
        for i, name in enumerate(queue_names):
            if name in seen:
                problems.append(f"queues[{i}].name: duplicate queue name {name!r}")
            seen.add(name)
        known = set(CHANNEL_NAMES)
        listed = ", ".join(CHANNEL_NAMES)
        for i, queue in enumerate(self.queues):
            for j, channel in enumerate(queue.channels):
                if channel not in known:
                    problems.append(
                        f"queues[{i}].channels[{j}]: unknown channel {channel!r} (one of {listed})"
                    )
            for skill in queue.skills:
                if skill not in skill_names:
                    problems.append(f"queues[{i}].skills.{skill}: unknown skill {skill!r}")
            for j, step in enumerate(queue.relaxation):
                for skill in [*step.lower_levels, *step.drop_skills]:
                    if skill not in queue.skills:
                        problems.append(
                            f"queues[{i}].relaxation[{j}]: skill {skill!r} is not "
                            f"required by queue {queue.name!r}"
                        )
                for target in step.widen_to:
                    if target not in seen:
                        problems.append(
                            f"queues[{i}].relaxation[{j}].widen_to: unknown queue {target!r}"
                        )
            overflow_to = queue.on_max_wait.target
            if queue.on_max_wait.action == "overflow" and overflow_to not in seen:
                problems.append(f"queues[{i}].on_max_wait.target: unknown queue {overflow_to!r}")
        for channel in self.routing.capacity:
            if channel not in known:
                problems.append(
                    f"routing.capacity.{channel}: unknown channel {channel!r} (one of {listed})"
                )
        for key, blocked in (self.routing.blocks or {}).items():
            for channel in (key, *blocked):
                if channel not in known:
                    problems.append(
                        f"routing.blocks.{key}: unknown channel {channel!r} (one of {listed})"
                    )
        channels = self.channels
        by_key = (("email", channels.email), ("sms", channels.sms), ("chat", channels.chat))
        for key, chan in by_key:
            if chan.enabled and chan.queue not in seen:
                problems.append(f"channels.{key}.queue: unknown queue {chan.queue!r}")
        for topic, wanted in channels.chat.topics.items():
            for skill in wanted:
                if skill not in skill_names:
                    problems.append(
                        f"channels.chat.topics.{topic}.{skill}: unknown skill {skill!r}"
                    )
        email = channels.email
        if email.enabled:
            for field_name, value in (
                ("imap.username", email.imap.username),
                ("smtp.from_address", email.smtp.from_address),
            ):
                if not value:
                    problems.append(f"channels.email.{field_name}: required when email is enabled")
            if email.smtp.ssl and email.smtp.starttls:
                problems.append("channels.email.smtp: ssl and starttls exclude each other")
            if "@" not in email.smtp.from_address:
                problems.append("channels.email.smtp.from_address: not an email address")
        sms = channels.sms
        if sms.enabled:
            # Without these nothing can be sent, and an empty token would accept any
            # webhook signature: refused at start, not at the first message.
            for field_name, value in (
                ("account_sid", sms.account_sid),
                ("auth_token", sms.auth_token.get_secret_value()),
                ("from_number", sms.from_number),
            ):
                if not value:
                    problems.append(f"channels.sms.{field_name}: required when sms is enabled")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with secrets masked, for display."""
        return self.model_dump(mode="json")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, path: str, env: Mapping[str, str], errors: list[str]) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; a missing variable is an error."""
    if isinstance(node, dict):
        return {k: _expand_env(v, _join(path, str(k)), env, errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", env, errors) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            errors.append(f"{path}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(substitute, node)
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _apply_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, keys in ENV_OVERRIDES.items():
        if var not in env:
            continue
        node = raw
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[keys[-1]] = env[var]


_EXPECTED = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "required value is missing",
    "extra_forbidden": "unknown key",
}


def _format_location(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or "-" in part or part.startswith("function-"):
            # pydantic adds tags such as "function-after[...]" for validators: not a key.
            continue
        else:
            out = _join(out, part)
    return out or "(top level)"


def _field_bounds(loc: tuple[str | int, ...]) -> tuple[Any, Any]:
    """The `gt`/`ge` bounds declared on the field at `loc`, to say "positive integer"."""
    model: Any = Config
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None, None
        field = fields[part]
        model = field.annotation
        for _ in range(3):  # unwrap list[X], X | None, dict[str, X]
            args = [a for a in get_args(model) if a is not type(None)]
            if not args or (isinstance(model, type) and issubclass(model, BaseModel)):
                break
            model = args[-1]
            if get_origin(model) is Annotated:
                field_meta = get_args(model)[1:]
                return _bounds(field_meta)
    if field is None:
        return None, None
    return _bounds(field.metadata)


def _bounds(metadata: Any) -> tuple[Any, Any]:
    gt = ge = None
    for item in metadata:
        gt = getattr(item, "gt", gt)
        ge = getattr(item, "ge", ge)
        for inner in getattr(item, "metadata", ()):
            gt = getattr(inner, "gt", gt)
            ge = getattr(inner, "ge", ge)
    return gt, ge


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in ("int_parsing", "int_type", "int_from_float"):
        gt, ge = _field_bounds(tuple(error["loc"]))
        if gt == 0:
            kind, ctx = "greater_than", {"gt": 0}
        elif ge == 0:
            kind, ctx = "greater_than_equal", {"ge": 0}
    if kind == "greater_than" and ctx.get("gt") == 0:
        expected = "expected a positive number"
        if not isinstance(error.get("input"), float):
            expected = "expected a positive integer"
    elif kind == "greater_than":
        expected = f"expected a number greater than {ctx.get('gt')}"
    elif kind == "greater_than_equal" and ctx.get("ge") == 0:
        expected = "expected a non-negative integer"
    elif kind == "greater_than_equal":
        expected = f"expected a number >= {ctx.get('ge')}"
    elif kind == "less_than_equal":
        expected = f"expected a number <= {ctx.get('le')}"
    elif kind == "literal_error":
        expected = f"expected one of {ctx.get('expected')}"
    elif kind == "string_pattern_mismatch":
        expected = "expected letters, digits, '_', '.' or '-'"
    elif kind in ("too_short", "string_too_short"):
        expected = "expected a non-empty value"
    elif kind == "string_too_long":
        expected = f"expected at most {ctx.get('max_length')} characters"
    elif kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    else:
        expected = _EXPECTED.get(kind, error["msg"])
    if kind == "missing":
        return expected
    shown = error.get("input")
    if kind == "extra_forbidden":
        return expected
    if isinstance(shown, str):
        return f'{expected}, got "{shown}"'
    if isinstance(shown, dict | list):
        return f"{expected}, got a {type(shown).__name__}"
    return f"{expected}, got {shown!r}"


def format_validation_error(exc: ValidationError) -> list[str]:
    """Turn pydantic's errors into `key.path: expected X, got Y` lines."""
    lines = []
    for error in exc.errors(include_url=False):
        where = _format_location(tuple(error["loc"]))
        message = _describe(error)
        if error["type"] == "value_error" and where == "(top level)":
            lines.extend(message.split("; "))
        else:
            lines.append(f"{where}: {message}")
    return lines


def parse_config(raw: Any, env: Mapping[str, str] | None = None) -> Config:
    """Validate already-loaded YAML data (with env expansion and overrides)."""
    env = os.environ if env is None else env
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): expected a mapping of sections"])
    errors: list[str] = []
    expanded = _expand_env(raw, "", env, errors)
    if errors:
        raise ConfigError(errors)
    _apply_overrides(expanded, env)
    try:
        return Config.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(_mark_overrides(format_validation_error(exc), env)) from None


def _mark_overrides(lines: list[str], env: Mapping[str, str]) -> list[str]:
    """Say when a bad value came from an environment override, not from the file."""
    marked = []
    for line in lines:
        for var, keys in ENV_OVERRIDES.items():
            if var in env and line.startswith(".".join(keys) + ":"):
                line = f"{line} (set by {var})"
        marked.append(line)
    return marked


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a configuration file (bounded: see ivr_flows.safe_yaml)."""
    path = Path(path)
    try:
        text = safe_yaml.read_text(path)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except safe_yaml.YamlTooLarge as exc:
        raise ConfigError([f"{path}: refused: the file is {exc}"]) from None
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1]
        raise ConfigError([f"{path}: not UTF-8 text: byte {exc.start + 1} is {bad!r}"]) from None
    try:
        raw = safe_yaml.loads(text)
    except yaml.YAMLError as exc:
        where, problem = safe_yaml.describe(exc)
        raise ConfigError([f"{path}:{where}: invalid YAML: {problem}"]) from None
    return parse_config(raw, env)
