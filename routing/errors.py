"""Routing's refusals: one exception, each raise with its own stable id."""

from __future__ import annotations

from crm_store.errors import ContactCenterError


class RoutingError(ContactCenterError):
    """A request the router cannot honour (unknown agent, contact or queue; bad state).

    Each raise names its own id from `crm_store.error_ids` (hence the id comes first).
    """

    error_id = "routing.error"

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
