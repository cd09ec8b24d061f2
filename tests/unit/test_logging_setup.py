"""Logging as JSON keeps extra fields; text mode is plain."""

from __future__ import annotations

import json
import logging

import pytest

from contact_center.config import LoggingConfig
from contact_center.logging_setup import JsonFormatter, setup_logging


def test_json_formatter_includes_extra_fields() -> None:
    record = logging.LogRecord("cc.test", logging.WARNING, __file__, 1, "lost %s", ("ami",), None)
    record.component = "ami"
    line = JsonFormatter().format(record)
    payload = json.loads(line)
    assert payload["message"] == "lost ami"
    assert payload["level"] == "WARNING"
    assert payload["logger"] == "cc.test"
    assert payload["component"] == "ami"
    assert payload["time"].endswith("+00:00")


def test_json_formatter_keeps_exceptions() -> None:
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    payload = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: kaput" in payload["exception"]


def test_setup_logging_json_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(LoggingConfig(level="INFO", format="json"))
        logging.getLogger("cc.demo").info("hello", extra={"queue": "support"})
        logging.getLogger("cc.demo").debug("hidden")
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert json.loads(err[0])["queue"] == "support"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
