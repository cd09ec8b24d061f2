"""Our own exceptions, each with a stable id that logs and API responses carry."""

from __future__ import annotations


class ContactCenterError(Exception):
    """Base of the daemon's errors; `error_id` is stable across releases."""

    error_id = "contact_center.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ContactCenterError):
    """The configuration is invalid; `problems` lists one line per key path."""

    error_id = "config.invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


class CommandError(ContactCenterError):
    """A CLI command cannot proceed (bad argument value, unreadable file)."""

    error_id = "cli.error"


class ListenError(ContactCenterError):
    """A listening socket other than the web server's cannot be opened (FastAGI)."""

    error_id = "listen.failed"
