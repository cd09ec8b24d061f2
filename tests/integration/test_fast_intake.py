"""The SQLite intake fast path stores exactly what the ORM path stores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm_store import customers, interactions, migrate
from crm_store.database import make_engine, make_sessionmaker
from crm_store.errors import InvalidData, NotFound
from crm_store.fast_intake import SqliteIntake
from routing.intake import open_contact

pytestmark = pytest.mark.integration


async def test_fast_and_orm_paths_store_the_same(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/crm.db"
    await migrate.upgrade(url)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    fast = await SqliteIntake.open(url)
    try:
        async with sessionmaker.begin() as db:
            zoe = await customers.create_customer(
                db, name="Zoë", tier="gold", phones=["+44 20 7946 0018"], region="GB"
            )
        at = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC).timestamp()
        opened = []
        for path in (None, fast):
            opened.append(
                await open_contact(
                    sessionmaker,
                    channel="voice",
                    address_kind="phone",
                    address="020 7946 0018",
                    region="GB",
                    external_id="1795327460.14",
                    queue="support",
                    at=at,
                    ivr_path=["welcome", "menu"],
                    ivr_inputs={"menu": "2"},
                    fast=path,
                )
            )
        assert [(o.customer_id, o.tier) for o in opened] == [(zoe.id, "gold")] * 2
        async with sessionmaker() as db:
            rows = [await interactions.get_interaction(db, o.interaction_id) for o in opened]
        fields = (
            "customer_id",
            "channel",
            "direction",
            "external_id",
            "address",
            "started_at",
            "queue",
            "ivr_path",
            "ivr_inputs",
        )
        assert {f: getattr(rows[0], f) for f in fields} == {f: getattr(rows[1], f) for f in fields}
        assert rows[1].started_at == datetime.fromtimestamp(at, UTC)
        anonymous = await open_contact(
            sessionmaker,
            channel="voice",
            address="anonymous",
            region="GB",
            address_kind="phone",
            fast=fast,
        )
        assert anonymous.customer_id is None
        async with sessionmaker() as db:
            before = len(await interactions.list_open_interactions(db))
        with pytest.raises(NotFound):
            await open_contact(
                sessionmaker,
                channel="voice",
                address_kind="phone",
                address=None,
                region="GB",
                customer_id=999,
                fast=fast,
            )
        with pytest.raises(InvalidData):
            await open_contact(
                sessionmaker,
                channel="fax",
                address=None,
                region="GB",
                address_kind="chat",
                fast=fast,
            )
        async with sessionmaker() as db:
            assert len(await interactions.list_open_interactions(db)) == before  # nothing stored
    finally:
        await fast.close()
        await engine.dispose()
