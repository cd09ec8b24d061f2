"""Twilio's webhooks: an inbound message, and the delivery status of one we sent.

They are public routes (Twilio logs in to nothing), so each request must carry Twilio's
`X-Twilio-Signature` over the URL Twilio called and the form it posted, computed with
our auth token; anything else is refused (403) before a field is read. Behind a TLS
proxy the URL we see is not the one Twilio called: the signature is checked against
`web.public_url` + the path and query, and against our own URL only when there is no
public URL. Answers are an empty TwiML `<Response/>`, so Twilio sends no reply of its own.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from adapters.messaging.model import MessageSink
from adapters.sms import CHANNEL, SmsSettings
from adapters.sms.inbound import StatusSink, WebhookFormError, parse_inbound, parse_status
from adapters.sms.opt_out import OptOutSink

log = logging.getLogger(__name__)

INBOUND_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
# A 1,600-character body, percent-encoded at up to 12 bytes a character, with ten media
# URLs and Twilio's other fields, is well under this.
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 200
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
_LOG_EVERY = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class WebhookStats:
    """What the webhooks did, for metrics and tests."""

    inbound: int = 0
    duplicates: int = 0
    statuses: int = 0
    bad_signature: int = 0
    bad_form: int = 0


@dataclass(frozen=True)
class _Signed:
    """Checks that a request came from Twilio."""

    validator: RequestValidator
    public_url: str | None

    def url(self, request: web.Request) -> str:
        """The URL Twilio called: the public URL's origin (and prefix) with our path."""
        base = self.public_url or f"{request.scheme}://{request.host}"
        # raw_path is the request target as sent, query string included: re-quoting it
        # could change a byte the signature covers.
        return base.rstrip("/") + request.raw_path

    async def form(self, request: web.Request) -> MultiDict[str]:
        """The request's form when Twilio signed it; _RefusedError otherwise (403, 400, 413)."""
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise _RefusedError(403, "webhook.signature", f"missing {SIGNATURE_HEADER}")
        form = await _read_form(request)
        # The form, not its text: the body-hash variant (a `bodySHA256` query with a JSON
        # body) is for JSON webhooks, which these are not.
        if not self.validator.validate(self.url(request), form, signature):
            raise _RefusedError(403, "webhook.signature", f"invalid {SIGNATURE_HEADER}")
        return form


def sms_routes(
    sink: MessageSink,
    status_sink: StatusSink,
    opt_outs: OptOutSink,
    config: SmsSettings,
    public_url: str | None,
    *,
    stats: WebhookStats | None = None,
    clock: Callable[[], float] = time.time,
) -> list[web.RouteDef]:
    """The two Twilio webhook routes; register them as public (the signature is the auth)."""
    token = config.auth_token.get_secret_value()
    if not token:
        # An empty key signs anything anyone likes: never serve the webhooks without one.
        raise ValueError("channels.sms.auth_token is empty: Twilio webhooks cannot be checked")
    signed = _Signed(RequestValidator(token), public_url)
    counts = stats if stats is not None else WebhookStats()

    async def inbound_message(request: web.Request) -> web.StreamResponse:
        """Twilio's incoming SMS/MMS webhook: store the message, record STOP/START."""
        form = await signed.form(request)
        sms = parse_inbound(
            form, max_body_chars=config.max_body_chars, now=clock(), queue=config.queue
        )
        message = sms.message
        keyword = sms.keyword
        if keyword is not None and keyword.opted_out is not None:
            # Before the message: an opt-out must hold even if storing the message fails
            # (Twilio's retry then records it again, which changes nothing).
            await opt_outs.set_opted_out(
                CHANNEL, message.sender, keyword.opted_out, message.received_at, keyword.word
            )
            state = "out" if keyword.opted_out else "back in"
            log.info("%s opted %s by SMS (%s)", message.sender, state, keyword.word)
        received = await sink.receive(message)
        counts.inbound += 1
        counts.duplicates += received.duplicate
        return _twiml()

    async def message_status(request: web.Request) -> web.StreamResponse:
        """Twilio's status callback for a message we sent: record its delivery status."""
        form = await signed.form(request)
        update = parse_status(form)
        await status_sink.message_status(update.provider_id, update.status, update.error, clock())
        counts.statuses += 1
        return _twiml()

    return [
        web.post(INBOUND_PATH, _answering(counts, inbound_message)),
        web.post(STATUS_PATH, _answering(counts, message_status)),
    ]


class _RefusedError(Exception):
    """A request answered with an error before any of it is used."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


def _answering(counts: WebhookStats, handler: Handler) -> Handler:
    """`handler`, with refusals and bad forms answered as JSON errors and counted."""

    @functools.wraps(handler)
    async def answering(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _RefusedError as exc:
            if exc.status == 403:
                counts.bad_signature += 1
                _log_refusal(counts.bad_signature, request, exc.message)
            else:
                counts.bad_form += 1
                _log_refusal(counts.bad_form, request, exc.message)
            return _error(exc.status, exc.error_id, exc.message)
        except WebhookFormError as exc:
            counts.bad_form += 1
            _log_refusal(counts.bad_form, request, str(exc))
            return _error(400, "request.invalid", str(exc))

    return answering


def _log_refusal(count: int, request: web.Request, problem: str) -> None:
    # Refusals come in floods when they come: the first is logged, then every 100th.
    if count % _LOG_EVERY == 1:
        log.warning(
            "refused a Twilio webhook from %s on %s: %s (%d so far)",
            request.remote,
            request.path,
            problem,
            count,
        )


async def _read_form(request: web.Request) -> MultiDict[str]:
    """The posted form, bounded; _RefusedError (400, 413) when it is not one."""
    if request.content_type != FORM_TYPE:
        raise _RefusedError(400, "request.invalid", f"send the body as {FORM_TYPE}")
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise _too_large()
    # Read up to the limit, no further, whatever the Content-Length said (or chunked).
    body = bytearray()
    async for chunk in request.content.iter_chunked(16_384):
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _too_large()
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        # Also a percent-escape that is not UTF-8 (errors="strict").
        raise _RefusedError(400, "request.invalid", "the form is not UTF-8 text") from None
    except ValueError:
        raise _RefusedError(400, "request.invalid", f"over {MAX_FORM_FIELDS} form fields") from None
    return MultiDict(pairs)


def _too_large() -> _RefusedError:
    return _RefusedError(413, "request.too_large", f"the body is over {MAX_FORM_BYTES} bytes")


def _twiml() -> web.Response:
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


def _error(status: int, error_id: str, message: str) -> web.Response:
    # The body every API error of the daemon has (contact_center/web/errors.py).
    return web.json_response({"error": {"id": error_id, "message": message}}, status=status)
