"""A loopback fake of Twilio: its Messages API, and Twilio's signed webhooks.

The fake speaks what the twilio library's client sends (`POST
/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP Basic auth) and
answers as Twilio does (201 with the message resource; errors as `{"code", "message",
"more_info", "status"}`). It keeps every message it accepted, can fail the next requests,
and plays Twilio's side of the webhooks: forms signed with the twilio library's own
`RequestValidator.compute_signature`, so tests exercise the real signing.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from typing import Any

from aiohttp import BasicAuth, ClientSession, web
from twilio.request_validator import RequestValidator
from yarl import URL

API_VERSION = "2010-04-01"
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True)
class SentSms:
    """One message the fake accepted."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    media_urls: tuple[str, ...] = ()


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str
    delay_seconds: float = 0.0
    raw_text: str | None = None  # answered as it is instead of Twilio's error JSON


@dataclass
class FakeTwilio:
    """Twilio on 127.0.0.1: `async with FakeTwilio(sid, token) as twilio: twilio.base_url`."""

    account_sid: str
    auth_token: str
    sent: list[SentSms] = field(default_factory=list)
    requests: int = 0  # every API request, refused ones included
    # Numbers that texted STOP at Twilio: sending to them is error 21610, as on Twilio.
    unsubscribed: set[str] = field(default_factory=set)
    _failures: list[_Failure] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None
    _port: int = 0

    async def __aenter__(self) -> FakeTwilio:
        app = web.Application()
        app.router.add_post(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._create_message
        )
        # A short shutdown: a request told to hang must not hold up the test's end.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]
        self._session = ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """What `channels.sms.api_base_url` is set to in tests."""
        return f"http://127.0.0.1:{self._port}"

    def fail_next(
        self,
        count: int,
        status: int,
        code: int | None = None,
        message: str = "Service unavailable",
        *,
        delay_seconds: float = 0.0,
    ) -> None:
        """Answer the next `count` API requests with this error (after `delay_seconds`)."""
        self._failures.extend(_Failure(status, code, message, delay_seconds) for _ in range(count))

    def garble_next(self, status: int = 201) -> None:
        """Answer the next API request with `status` and a body that is not JSON."""
        self._failures.append(_Failure(status, None, "", raw_text="<html>proxy page</html>"))

    def hang_next(self, count: int, seconds: float) -> None:
        """Answer the next `count` API requests only after `seconds` (a 503 then)."""
        self.fail_next(count, 503, None, "late", delay_seconds=seconds)

    # Twilio's side of the webhooks.

    def sign(self, url: str, fields: Mapping[str, str]) -> str:
        """The X-Twilio-Signature Twilio would send for posting `fields` to `url`."""
        return str(RequestValidator(self.auth_token).compute_signature(url, dict(fields)))

    async def post_webhook(
        self,
        url: str,
        fields: Mapping[str, str],
        *,
        signed_url: str | None = None,
        signature: str | None = None,
    ) -> tuple[int, str, str]:
        """POST `fields` to `url` as Twilio does, signed over `signed_url` (default `url`);
        an explicit `signature` ("" for none) replaces the computed one. Returns the
        answer's status, content type and text."""
        assert self._session is not None, "use FakeTwilio as an async context manager"
        if signature is None:
            signature = self.sign(signed_url or url, fields)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        # Sent exactly as written (encoded=True), as Twilio requests the URL it was given.
        target = URL(url, encoded=True)
        async with self._session.post(target, data=dict(fields), headers=headers) as response:
            return response.status, response.content_type, await response.text()

    async def send_status_callback(
        self, url: str, sid: str, status: str, error_code: str | None = None
    ) -> int:
        """Tell `url` (a message's StatusCallback) that message `sid` is now `status`."""
        fields = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
        }
        if error_code is not None:
            fields["ErrorCode"] = error_code
        answer, _, _ = await self.post_webhook(url, fields)
        return answer

    # The Messages API.

    async def _create_message(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self._authorised(request):
            return _twilio_error(401, 20003, "Authenticate")
        if self._failures:
            failure = self._failures.pop(0)
            if failure.delay_seconds:
                await asyncio.sleep(failure.delay_seconds)
            if failure.raw_text is not None:
                return web.Response(status=failure.status, text=failure.raw_text)
            return _twilio_error(failure.status, failure.code, failure.message)
        form = await request.post()
        to = str(form.get("To", ""))
        from_ = str(form.get("From", ""))
        body = str(form.get("Body", ""))
        media = tuple(str(url) for url in form.getall("MediaUrl", []))
        if not _E164.fullmatch(to):
            return _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not media:
            return _twilio_error(400, 21602, "Message body is required.")
        if to in self.unsubscribed:
            return _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        callback = form.get("StatusCallback")
        sms = SentSms(
            sid="SM" + secrets.token_hex(16),
            account_sid=request.match_info["account_sid"],
            to=to,
            from_=from_,
            body=body,
            status_callback=str(callback) if callback is not None else None,
            media_urls=media,
        )
        self.sent.append(sms)
        return web.json_response(self._resource(sms), status=201)

    def _authorised(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        return (
            auth.login == self.account_sid
            and auth.password == self.auth_token
            and request.match_info["account_sid"] == self.account_sid
        )

    def _resource(self, sms: SentSms) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{sms.account_sid}/Messages/{sms.sid}"
        return {
            "account_sid": sms.account_sid,
            "api_version": API_VERSION,
            "body": sms.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sms.from_,
            "messaging_service_sid": None,
            "num_media": str(len(sms.media_urls)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sms.sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": sms.to,
            "uri": f"{uri}.json",
        }


def _twilio_error(status: int, code: int | None, message: str) -> web.Response:
    body: dict[str, Any] = {"message": message, "status": status}
    if code is not None:
        body["code"] = code
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    return web.json_response(body, status=status)
