"""Sending SMS through Twilio's Messages API, with the twilio library's async client.

A send is one POST, never retried here: the delivery loop retries a TemporaryFailure
with back-off, and a second POST after a lost answer could text the customer twice.
Twilio's status callbacks then report delivery to `webhooks.STATUS_PATH`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from adapters.messaging.model import (
    OutboundMessage,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
)
from adapters.sms import CHANNEL, SmsSettings
from adapters.sms.opt_out import OptOutSink
from adapters.sms.webhooks import STATUS_PATH
from crm_store.errors import InvalidData
from crm_store.phones import normalize_phone

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 15.0
_RETRY_STATUSES = frozenset({408, 409, 425, 429})
_CREATE_PREFIX = "Unable to create record: "


@dataclass(frozen=True, slots=True)
class TwilioRefusal:
    """What Twilio's API answered to a send it did not accept."""

    status: int  # HTTP status
    code: int | None  # Twilio's error code (21211, 21610, ...)
    message: str


def failure_for(refusal: TwilioRefusal) -> TemporaryFailure | PermanentFailure:
    """The failure a refused send is: temporary for 5xx, 429 and bad credentials, else
    permanent (21211 invalid number, 21610 unsubscribed, ...)."""
    code = f" {refusal.code}" if refusal.code is not None and refusal.code != refusal.status else ""
    text = f"Twilio{code} (HTTP {refusal.status}): {refusal.message}"
    if refusal.status >= 500 or refusal.status in _RETRY_STATUSES:
        return TemporaryFailure(text)
    if refusal.status == 401:
        # Our credentials, not the message: once the operator fixes them it goes out.
        return TemporaryFailure(f"{text}; check channels.sms.account_sid and auth_token")
    return PermanentFailure(text)


class TwilioSender:
    """The SMS channel's `MessageSender`: one Twilio Messages API call per message."""

    def __init__(
        self,
        config: SmsSettings,
        opt_outs: OptOutSink,
        public_url: str | None,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        for name in ("account_sid", "from_number"):
            if not getattr(config, name):
                raise ValueError(f"channels.sms.{name} is empty: SMS cannot be sent")
        if not config.auth_token.get_secret_value():
            raise ValueError("channels.sms.auth_token is empty: SMS cannot be sent")
        self._config = config
        self._opt_outs = opt_outs
        self._status_callback = public_url.rstrip("/") + STATUS_PATH if public_url else None
        self._timeout = timeout_seconds
        # Made on the first send: aiohttp's session belongs to the running loop.
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Any = None

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one SMS; SendResult with Twilio's MessageSid, or Temporary/PermanentFailure."""
        to = self._checked_recipient(message)
        if await self._opt_outs.is_opted_out(CHANNEL, to):
            raise PermanentFailure(f"{to} has opted out of SMS (texted STOP): not sent")
        fields: dict[str, Any] = {"to": to, "from_": self._config.from_number, "body": message.body}
        if self._status_callback is not None:
            fields["status_callback"] = self._status_callback
        try:
            async with asyncio.timeout(self._timeout):
                created = await self._messages().create_async(**fields)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise failure_for(_refusal(exc)) from None
        except TimeoutError:
            raise TemporaryFailure(f"Twilio did not answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise TemporaryFailure(f"cannot reach Twilio: {exc}") from None
        except json.JSONDecodeError:
            # A 2xx is an accepted message: sending again could text the customer twice.
            log.warning("Twilio accepted message %d with an unreadable answer", message.message_id)
            return SendResult(provider_id=None)
        sid = created.sid if isinstance(created.sid, str) else None
        log.debug("message %d sent to Twilio as %s", message.message_id, sid)
        return SendResult(provider_id=sid)

    async def close(self) -> None:
        """Close the HTTP session (at shutdown); a later send opens a new one."""
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()

    def _checked_recipient(self, message: OutboundMessage) -> str:
        """The E.164 number to text; PermanentFailure for what cannot be sent at all."""
        if message.channel != CHANNEL:
            raise PermanentFailure(f"a {message.channel} message cannot go out by SMS")
        if not message.body.strip():
            raise PermanentFailure("the message is empty")
        limit = self._config.max_body_chars
        if len(message.body) > limit:
            raise PermanentFailure(f"{len(message.body)} characters, over the {limit} allowed")
        try:
            return normalize_phone(message.recipient, "ZZ")
        except InvalidData as exc:
            raise PermanentFailure(f"not a phone number to text: {exc.message}") from None

    def _messages(self) -> Any:
        if self._client is None:
            # No retries in the session: see the module's docstring.
            self._http = AsyncTwilioHttpClient(max_retries=None)
            client = Client(
                self._config.account_sid,
                self._config.auth_token.get_secret_value(),
                http_client=self._http,
                # Not os.environ: TWILIO_EDGE / TWILIO_REGION there would rewrite the host.
                environment={"TWILIO_ACCOUNT_SID": self._config.account_sid},
            )
            # The Api domain's base URL is public: a loopback fake in tests, else Twilio.
            client.api.base_url = self._config.api_base_url.rstrip("/")
            self._client = client
        return self._client.messages


def _refusal(exc: TwilioRestException | TwilioServiceException) -> TwilioRefusal:
    if isinstance(exc, TwilioServiceException):
        detail = f"{exc.title}: {exc.detail}" if exc.detail else str(exc.title)
        return TwilioRefusal(int(exc.status), _int_or_none(exc.code), detail)
    message = str(exc.msg).removeprefix(_CREATE_PREFIX)
    return TwilioRefusal(int(exc.status), _int_or_none(exc.code), message)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
