"""SMS over Twilio: signed webhooks in (`webhooks`), the REST API out (`sender`).

`inbound` and `opt_out` are the pure cores: Twilio's form fields become an
`InboundMessage`, a delivery status or an opt-out keyword. The settings the channel
reads are declared here as a protocol, so this layer needs nothing from
contact_center (its `SmsChannelConfig` has these fields).
"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

CHANNEL = "sms"


class SmsSettings(Protocol):
    """What the SMS channel reads from `channels.sms` in config.yaml."""

    @property
    def queue(self) -> str: ...

    @property
    def account_sid(self) -> str: ...

    @property
    def auth_token(self) -> SecretStr: ...

    @property
    def from_number(self) -> str: ...

    @property
    def api_base_url(self) -> str: ...

    @property
    def max_body_chars(self) -> int: ...
