"""The catalogue of stable error ids: each with its HTTP status and what it means.

Every error the daemon reports (an exception's `error_id`, an API or WebSocket error
body) carries one of these ids; logs, clients and the browser test for them, so an id is
never renamed once released. It lives in the lowest layer so that every layer can read
it. The web boundary answers an exception with its id's status here; a status of 500
means "not meant for a client" (start-up, CLI, a bug): such an error reaching the web is
logged and answered as `internal`.

`tests/unit/test_error_catalogue.py` scans the source: every id raised anywhere is listed
here, and every id listed here is raised somewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """One stable error id: the HTTP status it is answered with and a one-line meaning."""

    error_id: str
    status: int
    meaning: str


# aiohttp's own HTTP errors (unknown route, wrong method) reach API clients as
# `http.<status>`: a family, not single entries.
HTTP_ERROR_PREFIX = "http."
INTERNAL = "internal"

_ROWS: tuple[tuple[str, int, str], ...] = (
    # Authentication and authorisation (contact_center/web)
    ("auth.required", 401, "not logged in, or the session ended"),
    ("auth.invalid_credentials", 401, "wrong username or password"),
    ("auth.forbidden", 403, "the user's role may not do this"),
    ("auth.csrf", 403, "a changing request without the session's CSRF header"),
    ("auth.origin", 403, "a WebSocket opened from another origin"),
    ("auth.rate_limited", 429, "too many failed logins for this user or address"),
    ("auth.busy", 503, "too many logins in flight at once"),
    # The request itself (contact_center/web)
    ("request.invalid", 400, "the body or a field fails validation"),
    ("request.json", 400, "the body or message is not bounded, valid JSON"),
    ("request.query", 400, "a query parameter is missing or out of range"),
    ("request.unknown_type", 400, "a WebSocket message of a type the server does not know"),
    ("request.not_found", 404, "a path segment names nothing"),
    ("request.too_large", 413, "the body is over the size limit"),
    ("request.content_type", 415, "the body is not application/json"),
    # The CRM store (crm_store)
    ("store.error", 400, "the store refused the change"),
    ("store.invalid_data", 400, "a malformed value: phone number, tier, ..."),
    ("store.csv_header", 400, "a CSV header with missing, unknown or repeated columns"),
    ("store.permission_denied", 403, "the acting user's role may not make this change"),
    ("store.not_found", 404, "the customer, user or request named does not exist"),
    ("store.conflict", 409, "the change breaks a uniqueness rule"),
    ("store.illegal_transition", 409, "a service request cannot move to the status asked"),
    # Text channels (adapters/messaging, adapters/sms, adapters/webchat)
    ("channel.not_running", 409, "the contact's channel is not running on this daemon"),
    ("channel.opted_out", 409, "the customer asked not to be contacted on this channel"),
    ("webhook.signature", 403, "a provider webhook without a valid signature"),
    ("chat.rate_limited", 429, "a chat visitor sent too many messages too fast"),
    ("chat.history_unavailable", 503, "a chat's history cannot be read now; retry"),
    ("frame.invalid", 400, "a chat socket frame that is not valid"),
    ("database.unavailable", 503, "the database is not answering (an outage); retry shortly"),
    # Routing (routing): the request cannot be honoured in the current state
    ("routing.error", 409, "a routing request refused (base of the routing ids)"),
    ("routing.unavailable", 503, "routing is not running"),
    ("routing.unknown_agent", 409, "the user is not set up as an agent"),
    ("routing.unknown_queue", 409, "no queue of that name"),
    ("routing.duplicate_agent", 409, "the agent is already known to the router"),
    ("routing.duplicate_contact", 409, "the contact is already queued"),
    ("routing.wrong_channel", 409, "the queue does not take the contact's channel"),
    ("routing.no_such_contact", 409, "the agent has no such contact in progress"),
    ("routing.no_such_offer", 409, "the contact is not offered to this agent"),
    ("routing.bad_status", 409, "an unknown agent status"),
    ("routing.bad_reason", 409, "a not-ready reason code that is not configured"),
    ("routing.reason_required", 409, "not ready needs a reason code"),
    ("routing.bad_action", 409, "an unknown call action"),
    ("routing.not_supported", 409, "the contact's channel does not do that action"),
    ("routing.unknown_channel", 409, "no channel of that name is set up"),
    ("routing.no_target", 409, "a transfer without a target"),
    ("routing.busy", 409, "the agent must finish the current contact first"),
    ("routing.no_pbx", 409, "no PBX is connected"),
    ("routing.no_device", 409, "the user has no phone device"),
    ("routing.bad_number", 409, "not a phone number to dial"),
    ("routing.bad_dial_string", 409, "not a dial string: digits, * and #, bounded"),
    ("routing.bad_device", 409, "not a phone device (TECH/resource)"),
    ("routing.bad_mode", 409, "a spy mode other than listen, whisper or barge"),
    # The PBX (routing.telephony port, adapters): it refused, or the call is gone
    ("telephony.failed", 409, "the PBX could not do what was asked"),
    ("telephony.no_call", 409, "the PBX has no such call"),
    ("telephony.unavailable", 503, "the PBX is not connected: nothing could be sent"),
    ("telephony.not_connected", 409, "the call is not connected to an agent"),
    ("telephony.held", 409, "the call is already on hold"),
    ("telephony.not_held", 409, "the call is not on hold"),
    ("telephony.unsafe_input", 409, "the PBX refused an action with unsafe input"),
    ("telephony.no_ivr", 409, "the IVR ended without a contact"),
    ("telephony.no_flow", 409, "no IVR flow of that name"),
    ("simulator.off", 409, "a simulator request while the PBX is not simulated"),
    # Not client errors: start-up, CLI, files, bugs
    ("contact_center.error", 500, "an error of the daemon (base of every id)"),
    ("config.invalid", 500, "the configuration is invalid (each problem names its key)"),
    ("cli.error", 500, "a CLI command cannot proceed (bad argument, unreadable file)"),
    ("listen.failed", 500, "a server socket could not be opened"),
    ("ivr.flow_invalid", 500, "an IVR flow file fails validation"),
    ("replay.unreadable", 500, "a recorded AMI session cannot be read"),
    ("bus.bad_event", 500, "a serialised bus event of an unknown type, version or shape"),
    (INTERNAL, 500, "a bug: the daemon log has the details"),
)


def catalogue_of(rows: Iterable[tuple[str, int, str]]) -> Mapping[str, ErrorKind]:
    """The read-only catalogue of `rows`; ValueError when an id is listed twice."""
    kinds: dict[str, ErrorKind] = {}
    for error_id, status, meaning in rows:
        if error_id in kinds:
            raise ValueError(f"{error_id} listed twice in the error catalogue")
        kinds[error_id] = ErrorKind(error_id, status, meaning)
    return MappingProxyType(kinds)


CATALOGUE = catalogue_of(_ROWS)


def status_of(error_id: str) -> int | None:
    """The HTTP status of a catalogued id (`http.<status>` included); None when unknown."""
    kind = CATALOGUE.get(error_id)
    if kind is not None:
        return kind.status
    if error_id.startswith(HTTP_ERROR_PREFIX):
        code = error_id.removeprefix(HTTP_ERROR_PREFIX)
        if code.isascii() and code.isdigit() and 400 <= int(code) <= 599:
            return int(code)
    return None
