"""Our own exceptions, each with a stable id that logs and API responses carry."""

from __future__ import annotations

from crm_store.errors import ContactCenterError

__all__ = ["CommandError", "ConfigError", "ContactCenterError"]


class ConfigError(ContactCenterError):
    """The configuration is invalid; `problems` lists one line per key path."""

    error_id = "config.invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


class CommandError(ContactCenterError):
    """A CLI command cannot proceed (bad argument value, unreadable file)."""

    error_id = "cli.error"
