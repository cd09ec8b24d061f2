"""The outbox: the name the rest of the daemon knows the store writer by.

Contacts and their updates used to be written directly and held here only when the store
could not take them. Now every hot-path write goes through one writer per database
(routing.store_writer), which holds what the store cannot take and retries it; this
module keeps the names its callers import.
"""

from __future__ import annotations

from routing.store_state import OpenedContact, StoreUnavailable, find_customer, store_unavailable
from routing.store_writer import StoreWriter

# The composition root builds one per database: `StoreOutbox(sessionmaker, fast=...)`.
StoreOutbox = StoreWriter

__all__ = [
    "OpenedContact",
    "StoreOutbox",
    "StoreUnavailable",
    "StoreWriter",
    "find_customer",
    "store_unavailable",
]
