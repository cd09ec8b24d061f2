"""The project's error hierarchy starts here, in the lowest layer; then the store's errors.

Every error the daemon raises on purpose is a `ContactCenterError` with a stable
`error_id` that logs and API responses carry; raising a store error inside a transaction
rolls it back.
"""

from __future__ import annotations


class ContactCenterError(Exception):
    """Base of the daemon's errors; `error_id` is stable across releases."""

    error_id = "contact_center.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreError(ContactCenterError):
    """Base of the CRM store's errors."""

    error_id = "store.error"


class NotFound(StoreError):
    """The customer, user or request named does not exist."""

    error_id = "store.not_found"


class InvalidData(StoreError):
    """A value is malformed: an unparseable phone number, an unknown tier, ..."""

    error_id = "store.invalid_data"


class Conflict(StoreError):
    """The change would break a uniqueness rule (duplicate contact point, username)."""

    error_id = "store.conflict"


class IllegalTransition(StoreError):
    """A service request cannot move from its current status to the one asked."""

    error_id = "store.illegal_transition"


class PermissionDenied(StoreError):
    """The acting user's role may not make this change."""

    error_id = "store.permission_denied"
