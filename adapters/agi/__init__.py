"""FastAGI: the wire codec, a channel of high-level commands, and the server."""

from adapters.agi.channel import (
    AgiChannel,
    AgiChannelClosed,
    AgiCommandError,
    AgiError,
    AgiTimeout,
    CallerHungUp,
    PromptMissing,
)
from adapters.agi.codec import AgiEnvironment, AgiProtocolError, AgiResponse
from adapters.agi.server import AgiHandler, AgiServerStats, FastAgiServer

__all__ = [
    "AgiChannel",
    "AgiChannelClosed",
    "AgiCommandError",
    "AgiEnvironment",
    "AgiError",
    "AgiHandler",
    "AgiProtocolError",
    "AgiResponse",
    "AgiServerStats",
    "AgiTimeout",
    "CallerHungUp",
    "FastAgiServer",
    "PromptMissing",
]
