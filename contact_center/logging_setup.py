"""Structured logging: human text or one JSON object per line, chosen in config."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from contact_center.config import LoggingConfig

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any `extra=` fields kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def setup_logging(config: LoggingConfig) -> None:
    """Configure the root logger once, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    # aiohttp's access log is one line per request: useful in DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(
        logging.INFO if config.level == "DEBUG" else logging.WARNING
    )
    # The twilio library logs every API request and response (with headers) at INFO.
    logging.getLogger("twilio").setLevel(
        logging.INFO if config.level == "DEBUG" else logging.WARNING
    )
