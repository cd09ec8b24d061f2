"""The kinds of contact point a customer has (no database code: configuration reads it)."""

from __future__ import annotations

from typing import Literal

# Each channel says which kind its addresses are (routing.channels.ChannelSpec).
ContactKind = Literal["phone", "email", "chat"]
