"""`contact-center db`: the schema (upgrade) and the demo data (seed-demo)."""

from __future__ import annotations

import argparse

from contact_center.cli.config_file import load
from contact_center.cli.store import run_db
from crm_store import migrate
from crm_store.database import describe_database, make_engine, make_sessionmaker
from crm_store.demo import DemoUser, seed_demo, working_demo_logins


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    config = load(args)

    async def go() -> tuple[str | None, str | None]:
        before = await migrate.current_revision(config.database.url)
        await migrate.upgrade(config.database.url)
        return before, await migrate.current_revision(config.database.url)

    before, after = run_db(config, go())
    where = describe_database(config.database.url)
    if before == after:
        print(f"{where}: already at {after}")
    else:
        print(f"{where}: upgraded from {before or 'empty'} to {after}")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Create demo users and customers when the store has no users yet; show working logins."""
    config = load(args)

    async def go() -> tuple[bool, list[DemoUser]]:
        await migrate.upgrade(config.database.url)
        engine = make_engine(config.database.url)
        sessions = make_sessionmaker(engine)
        try:
            async with sessions.begin() as session:
                created = await seed_demo(session, region=config.database.default_region)
            async with sessions.begin() as session:
                return created, await working_demo_logins(session)
        finally:
            await engine.dispose()

    created, working = run_db(config, go())
    print("demo users and customers created" if created else "users exist: no demo data added")
    if working:
        print("demo logins (change these passwords before real use):")
        for user in working:
            print(f"  {user.role:<10} {user.username} / {user.password}")
    return 0
