"""The demo users, customers and contact history, and how an empty store is seeded with them.

Demo data is store content: it goes in through the repository functions like any other
data, so `contact-center db seed-demo` and anything else that wants a demo store (scripts/run
goes through that command) share one definition of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_store.actors import SYSTEM
from crm_store.customers import create_customer
from crm_store.interactions import record_interaction, update_interaction
from crm_store.service_requests import create_service_request
from crm_store.users import authenticate, count_users, create_user


@dataclass(frozen=True)
class DemoUser:
    """A demo login, with the password that `seed-demo` prints."""

    username: str
    display_name: str
    role: str
    password: str
    skills: dict[str, int]
    device: str | None


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "Ada Admin", "admin", "admin-demo-pass", skills={}, device=None),
    DemoUser(
        "supervisor",
        "Sam Supervisor",
        "supervisor",
        "supervisor-demo-pass",
        skills={},
        device="PJSIP/1900",
    ),
    DemoUser(
        "agent",
        "Alex Agent",
        "agent",
        "agent-demo-pass",
        skills={"billing": 7, "support": 5},
        device="PJSIP/1001",
    ),
)

# Keyword arguments of `create_customer` (less the region, which the configuration gives).
DEMO_CUSTOMERS: tuple[dict[str, Any], ...] = (
    {
        "name": "Zoë Martin",
        "company": "Northwind Ltd",
        "tier": "gold",
        "language": "en",
        "phones": ["+44 20 7946 0018"],
        "emails": ["zoe.martin@example.com"],
    },
    {
        "name": "Raj Patel",
        "company": "Contoso",
        "tier": "platinum",
        "language": "en",
        "phones": ["07700 900123"],
        "emails": ["raj@contoso.example"],
    },
    {
        "name": "Lucía Gómez",
        "tier": "silver",
        "language": "es",
        "phones": ["+34 912 345 678"],
        "emails": [],
    },
)

# Past contacts so the first screen pop of the demo has a history: (days ago, channel,
# queue, disposition, notes), per demo customer.
DEMO_HISTORY: dict[str, tuple[tuple[int, str, str, str, str], ...]] = {
    "Zoë Martin": (
        (9, "email", "email", "resolved", "Asked for a copy of invoice 2291; sent."),
        (2, "voice", "billing", "follow-up", "Disputes a late fee; promised a call back."),
    ),
    "Raj Patel": ((5, "chat", "chat", "resolved", "Password reset."),),
}


async def seed_demo(session: AsyncSession, *, region: str) -> bool:
    """Add the demo users, customers and history if the store has no users; True if added."""
    # A store with any user is someone's real store: demo data is never mixed into it.
    if await count_users(session) > 0:
        return False
    for user in DEMO_USERS:
        await create_user(
            session,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            password=user.password,
            skills=user.skills,
            device=user.device,
        )
    for customer in DEMO_CUSTOMERS:
        made = await create_customer(session, region=region, **customer)
        await _seed_history(session, made.id, made.name)
    return True


async def working_demo_logins(session: AsyncSession) -> list[DemoUser]:
    """The demo users whose demo password still logs them in."""
    # Only these may be advertised: a changed password or a disabled user is never shown.
    return [
        user
        for user in DEMO_USERS
        if await authenticate(session, user.username, user.password) is not None
    ]


async def _seed_history(session: AsyncSession, customer_id: int, name: str) -> None:
    now = datetime.now(UTC)
    for days, channel, queue, disposition, notes in DEMO_HISTORY.get(name, ()):
        started = now - timedelta(days=days)
        ix = await record_interaction(
            session, channel=channel, customer_id=customer_id, started_at=started, queue=queue
        )
        await update_interaction(
            session,
            ix.id,
            answered_at=started + timedelta(seconds=25),
            ended_at=started + timedelta(minutes=6),
            disposition=disposition,
            notes=notes,
        )
        if disposition == "follow-up":
            await create_service_request(
                session,
                customer_id=customer_id,
                title="Late fee dispute",
                description=notes,
                interaction_id=ix.id,
                actor=SYSTEM,
            )
