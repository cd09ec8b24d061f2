"""Store errors with stable ids; raising one inside a transaction rolls it back."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the CRM store's errors."""

    error_id = "store.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
