"""Which configuration file a command reads, and how its errors are shown."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from contact_center.config import Config, load_config
from contact_center.errors import ConfigError

DEFAULT_CONFIG = "config.yaml"


def config_path(args: argparse.Namespace) -> str:
    """The file named by -c, else $CC_CONFIG, else ./config.yaml."""
    return str(args.config or os.environ.get("CC_CONFIG") or DEFAULT_CONFIG)


def load_path(path: str) -> Config:
    """The validated configuration in `path`; ConfigError if it is not valid."""
    try:
        return load_config(path)
    except UnicodeDecodeError as exc:
        problem = f"{path}: cannot read (not UTF-8 text: {decode_problem(exc)})"
        raise ConfigError([problem]) from None


def load(args: argparse.Namespace) -> Config:
    """The validated configuration that the command line names."""
    return load_path(config_path(args))


def decode_problem(exc: UnicodeDecodeError) -> str:
    """Where a text is not UTF-8, in words."""
    return f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def hide_secrets(message: str, path: str) -> str:
    """Show `${NAME}` where a message quotes a value the file took from the environment.

    Validation errors quote the bad value (`got "..."`); a value that came from a `${NAME}`
    reference is a secret and must not be printed, so it is replaced by the reference.
    """
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return message
    secrets = {
        os.environ[name]: f"${{{name}}}"
        for name in set(_ENV_REFERENCE.findall(source))
        if os.environ.get(name)
    }
    if not secrets:
        return message

    def hide(quoted: re.Match[str]) -> str:
        text = quoted.group(0)
        for value in sorted(secrets, key=len, reverse=True):
            text = text.replace(value, secrets[value])
        return text

    return _QUOTED.sub(hide, message)
