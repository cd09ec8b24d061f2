"""panoramisk's AMI protocol with our framing, wire-order events and no replays.

Four defects of panoramisk 1.4 are fixed here, keeping its connection and action
bookkeeping: (1) it decodes every TCP chunk on its own with errors="ignore", losing a
UTF-8 character split between reads; (2) it runs async event callbacks as tasks, so
handlers can see events out of wire order; (3) on a lost connection it queues unanswered
actions and sends them again after the reconnect, which would ring a phone twice or
transfer a call that already moved. Here unanswered actions fail with a clear error;
(4) it writes `str(action)`, so a CR/LF in a value injects headers or whole actions: every
action goes through `encode_action`, which refuses them.
"""

from __future__ import annotations

import logging
from typing import Any

from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from adapters.ami.framing import AmiMessage, AmiParser, encode_action

log = logging.getLogger(__name__)


class AmiConnectionLost(ConnectionError):
    """The connection to Asterisk dropped before the action was answered; not re-sent."""


class CtiAmiProtocol(AMIProtocol):  # type: ignore[misc]
    """AMIProtocol fed by `AmiParser`; events go to `factory.on_ami_event` synchronously."""

    parser: AmiParser | None = None
    version: str | None
    closed: bool

    def __init__(self, *args: Any, wanted_events: frozenset[str] | None = None) -> None:
        super().__init__(*args)
        # Given at creation, not read from `factory`: panoramisk attaches the factory in
        # a callback that can run after the banner was read, and a parser made then would
        # decode every event unfiltered for the whole connection (half the speed).
        self.wanted_events = wanted_events

    def send(self, data: Any, as_list: bool | None = False) -> Any:
        """Send an action through our encoder; UnsafeAmiAction before anything is written.

        panoramisk writes `str(action)`, which passes CR/LF in a value straight to the
        socket: a transfer target could then carry a second action of its own.
        """
        if not isinstance(data, actions.Action):
            klass = actions.Command if "Command" in data else actions.Action
            data = klass(data, as_list=as_list)
        wire = encode_action(data)  # raises before the action is registered or sent
        data.as_list = as_list
        self.responses[data.id] = data
        if data.action_id:
            self.responses[data.action_id] = data
        self.transport.write(wire)
        return data.future

    def data_received(self, data: bytes) -> None:
        """Frame the bytes and handle each complete message in wire order."""
        if self.parser is None:
            self.parser = AmiParser(self.wanted_events)
        for message in self.parser.feed(data):
            if self.version is None and self.parser.banner:
                self.version = self.parser.banner.partition("/")[2]
            self._handle(message)

    def _handle(self, message: AmiMessage) -> None:
        action_id = message.action_id
        if action_id is not None and action_id in self.responses:
            headers: dict[str, Any] = dict(message.headers)
            if message.chan_vars:
                headers["ChanVariable"] = [f"{k}={v}" for k, v in message.chan_vars.items()]
            self.handle_message(Message(headers, "\n".join(message.output)))
            return
        if message.event is not None:
            if message.event == "Shutdown":
                log.warning("Asterisk is shutting down")
            on_event = getattr(self.factory, "on_ami_event", None)
            if on_event is not None:
                on_event(message)

    def close(self) -> None:
        """Close, failing every unanswered action instead of queueing it for later."""
        pending = list(self.responses.values())
        self.responses.clear()
        failed: set[int] = set()
        for action in pending:
            if id(action) in failed or action.future.done():
                continue
            failed.add(id(action))
            action.future.set_exception(
                AmiConnectionLost(
                    f"connection to Asterisk lost before {action.get('action', 'the action')} "
                    "was answered; it was not sent again"
                )
            )
        if not self.closed:
            try:
                self.transport.close()
            finally:
                self.closed = True
