"""Operational truth (issue 11): the daemon's queue figures against Asterisk's own CDR.

The daemon routes calls itself (Asterisk's queues are not used), so the independent
record of what happened is the Call Detail Records Asterisk writes. One run on the real
Asterisk 22 test bed makes four calls into the `support` queue: a caller who hangs up
while waiting (no agent), one who hangs up while the agent's phone rings, one answered
(the phone rings TB_LATE_SECONDS before it answers, then talks TB_TALK_SECONDS) and one
the agent transfers to an extension. The daemon's offered / answered / abandoned counts
for the queue and each agent's talk time must equal those computed from the CDR.

The backend: cdr_csv, the only CDR/CEL backend of this build that writes anything down
(cdr_manager and cel_manager only send AMI events; there is no cdr_custom, cel_custom or
cdr_sqlite). The test bed's cdr.conf enables it (unanswered calls included, the channel's
uniqueid logged); it appends to WORK_DIR/log/cdr-csv/Master.csv but does not create that
folder (without it each record fails with "Unable to open file"), so this test creates it
and the other live tests keep writing no CDR.

How the CDR gives the figures. The caller's `;1` half is the inbound call (it runs the
contact center's dialplan: IVR, [cc-holding], the Dial of [cc-agents]); its rows are
grouped by channel name. Asterisk's CDR engine keeps one row for a channel until it dials
again, and fields such as dcontext are the channel's place at the row's end (the
transferred call's first row says cc-transfer), so the rows are read by what cannot
change: lastapp, lastdata (the dialled device), dstchannel, disposition, billsec.

- offered: a caller channel that reached the queue: it waited in [cc-holding]
  (MusicOnHold) or was dialled to an agent's device;
- answered: one of its Dials to an agent's device has disposition ANSWERED (the Dial's
  own outcome: a ring the caller hung up on is NO ANSWER, though the caller's channel was
  answered by [cc-inbound]); the transferred call is answered, then dials the extension;
- abandoned: offered and never answered (the queue's other exits, voicemail at its
  600 s maximum wait or a callback, cannot happen within the test);
- talk: the billsec of the agent's phone, the `;2` half of the Dial's dstchannel: it is
  answered when the agent picks up and ends when the agent hangs up or the transfer takes
  the caller away. The caller's own rows cannot give it: their billsec counts from the
  Answer() of [cc-inbound], IVR and wait included.

Tolerance on talk: cdr_csv writes whole seconds and billsec is the answered time
truncated (Asterisk's cdr.c divides milliseconds by 1000), so the true talk t of a call
is billsec <= t < billsec + 1. The daemon stamps the answer and the end as it reads the
AMI events Asterisk sends for the same changes (or, for the transfer, as its Redirect is
accepted): milliseconds apart on loopback, 0.25 s allowed for a loaded machine. So per
call billsec - 0.25 <= daemon talk < billsec + 1.25; the ring before the answer (2 s) or
a wait counted as talk would fall outside it.
"""

from __future__ import annotations

import asyncio
import csv
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from crm_store.actors import Actor
from tests.component.api_fixtures import SHIPPED_CONFIG
from tests.integration import test_live_asterisk as live
from tests.integration.live_asterisk import LiveAsterisk

# The live test bed's fixtures (pytest finds them by name in this module).
asterisk_build = live.asterisk_build
bed = live.bed

# cdr_csv's columns, with `loguniqueid = yes` (the test bed's cdr.conf).
CDR_COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
)
# The caller's `;1` half: the inbound call (LiveAsterisk.call originates it).
CALLER_LEG = re.compile(r"^Local/\d+@tb-caller-[0-9a-f]+;1$")
TALK_SLACK = 0.25  # seconds between Asterisk's change and the daemon's reading of it
TRANSFER_TO = "3000"
DEVICES = {
    "ringer": "Local/2201@tb-noanswer",
    "answerer": "Local/2202@tb-answer-late",
    "transferer": "Local/2203@tb-answer-stay",
}


@dataclass
class CdrFigures:
    """The queue's figures as Asterisk's CDR tells them."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    transferred: int = 0
    abandoned_ringing: int = 0
    talk: dict[str, int] = field(default_factory=dict)  # agent device -> billsec


def read_cdr(path: Path) -> list[dict[str, str]]:
    """Master.csv's rows by column name."""
    with path.open(newline="") as rows:
        return [dict(zip(CDR_COLUMNS, row, strict=True)) for row in csv.reader(rows)]


def cdr_figures(rows: list[dict[str, str]], devices: set[str]) -> CdrFigures:
    """offered / answered / abandoned and each agent's talk (module docstring)."""
    by_channel = {row["channel"]: row for row in rows}
    callers: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if CALLER_LEG.match(row["channel"]):
            callers[row["channel"]].append(row)
    figures = CdrFigures()
    for caller in callers.values():
        dials = [r for r in caller if r["lastapp"] == "Dial"]
        to_agents = [r for r in dials if r["lastdata"].split(",")[0] in devices]
        if not to_agents and not any(r["lastapp"] == "MusicOnHold" for r in caller):
            continue  # never reached the queue
        figures.offered += 1
        answered = [r for r in to_agents if r["disposition"] == "ANSWERED"]
        if not answered:
            figures.abandoned += 1
            figures.abandoned_ringing += bool(to_agents)
            continue
        figures.answered += 1
        figures.transferred += any(r not in to_agents for r in dials)
        for dial in answered:
            phone = by_channel[dial["dstchannel"].removesuffix(";1") + ";2"]
            device = dial["lastdata"].split(",")[0]
            figures.talk[device] = figures.talk.get(device, 0) + int(phone["billsec"])
    return figures


def far_from_midnight() -> str:
    """A time zone whose day does not turn during the test ("today" is local)."""
    for zone in ("UTC", "Asia/Tokyo"):
        if 1 <= datetime.now(ZoneInfo(zone)).hour <= 22:
            return zone
    raise AssertionError("unreachable: 9 hours apart, both cannot be near midnight")


def routing_section(**changes: Any) -> dict[str, Any]:
    """The shipped routing section with `changes`."""
    routing: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())["routing"]
    routing.update(changes)
    return routing


async def transfers_ring_a_phone(asterisk: LiveAsterisk) -> None:
    """The test bed has no SIP: [cc-transfer] dials a phone that answers and talks
    TB_TALK_SECONDS instead (in this run's copy of the shipped dialplan)."""
    shipped = asterisk.conf / "extensions_contact_center.conf"
    dialplan = shipped.read_text()
    assert dialplan.count("Dial(PJSIP/${EXTEN},30)") == 2
    shipped.write_text(
        dialplan.replace("Dial(PJSIP/${EXTEN},30)", "Dial(Local/${EXTEN}@tb-answer,30)")
    )
    await asterisk.cli("dialplan reload")


async def test_queue_figures_equal_asterisks_cdr(bed: live.BedFactory) -> None:
    """Waiting and ringing abandons, an answer after ringing, a transfer: the daemon's
    offered / answered / abandoned for `support` and its agents' talk equal the CDR's."""
    routing_options = routing_section(
        # Every abandon counts (none is short); wrap-up ends at once, so the handled
        # contact and its talk are counted as the call ends.
        short_abandon_seconds=0,
        wrap_up_seconds=0,
        timezone=far_from_midnight(),
    )
    b = await bed(sections={"routing": routing_options})
    cdr = b.asterisk.work / "log" / "cdr-csv"
    cdr.mkdir()  # cdr_csv writes Master.csv here from now on
    await transfers_ring_a_phone(b.asterisk)
    routing = b.daemon.routing
    events = b.asterisk.events

    async def nobody_on_the_line() -> bool:
        return await b.asterisk.channels() == []

    async def offline(agent_id: int, username: str) -> None:
        await routing.set_status(
            agent_id, "offline", None, actor=Actor(agent_id, username, "agent")
        )

    # 1. Nobody is ready: the caller waits, then hangs up.
    phone = await b.call("5553001", "2")
    await live.wait_queued(b)
    await asyncio.sleep(1.0)
    await b.asterisk.hang_up(phone)
    await b.until(nobody_on_the_line, within=10, what="the waiting caller to leave")

    # 2. The agent's phone rings (and never answers); the caller hangs up meanwhile.
    ringer = await b.agent("ringer", DEVICES["ringer"], {"support": 5})
    since = len(events)
    phone = await b.call("5553002", "2")
    await b.asterisk.wait_event(lambda m: m.get("Event") == "DialBegin", since=since)
    await asyncio.sleep(1.0)
    await b.asterisk.hang_up(phone)
    await b.until(nobody_on_the_line, within=10, what="the ringing call to end")
    await offline(ringer, "ringer")

    # 3. The phone rings TB_LATE_SECONDS, is answered, talks, the agent hangs up.
    answerer = await b.agent("answerer", DEVICES["answerer"], {"support": 5})
    await b.call("5553003", "2")
    await b.until(nobody_on_the_line, within=20, what="the answered call to end")
    await offline(answerer, "answerer")

    # 4. Answered, and after a while the agent transfers the caller to an extension.
    transferer = await b.agent("transferer", DEVICES["transferer"], {"support": 5})
    await b.call("5553004", "2")

    def talking() -> int | None:
        return next((i for i, c in routing.contacts.items() if c.state == "talking"), None)

    async def is_talking() -> bool:
        return talking() is not None

    await b.until(is_talking, what="the call to be answered")
    interaction_id = talking()
    assert interaction_id is not None
    await asyncio.sleep(1.5)
    await routing.call_action(transferer, interaction_id, "transfer", TRANSFER_TO)
    await b.until(nobody_on_the_line, within=10, what="the transferred call to end")

    agents = {"ringer": ringer, "answerer": answerer, "transferer": transferer}

    async def all_counted() -> bool:
        return not routing.contacts and all(
            routing.agent_state(a)["today"]["handled"] for a in (answerer, transferer)
        )

    await b.until(all_counted, within=5, what="the daemon to count every call")

    asterisk = cdr_figures(read_cdr(cdr / "Master.csv"), set(DEVICES.values()))
    # The calls were made as intended (read from Asterisk's record, not the daemon's).
    assert (asterisk.offered, asterisk.transferred, asterisk.abandoned_ringing) == (4, 1, 1)

    support = next(q for q in routing.queue_snapshot(time.time()) if q["name"] == "support")
    daemon = support["windows"]["today"]
    assert (daemon["offered"], daemon["answered"], daemon["abandoned"]) == (
        asterisk.offered,
        asterisk.answered,
        asterisk.abandoned,
    ), (daemon, asterisk)
    assert daemon["short_abandoned"] == 0

    talk = {
        name: float(routing.agent_state(agent_id)["today"]["talk_seconds"])
        for name, agent_id in agents.items()
    }
    billed = {name: asterisk.talk.get(DEVICES[name], 0) for name in agents}
    assert billed["ringer"] == 0 and talk["ringer"] == 0.0
    # The caller left while it rang: their abandon, not the agent's missed offer.
    assert routing.agent_state(ringer)["today"]["offers_missed"] == 0
    for name in ("answerer", "transferer"):
        assert billed[name] - TALK_SLACK <= talk[name] < billed[name] + 1 + TALK_SLACK, (
            name,
            talk,
            billed,
        )
    # The queue's handle time is the same talk (no hold, no wrap-up).
    handled = talk["answerer"] + talk["transferer"]
    assert abs(daemon["aht_seconds"] * asterisk.answered - handled) < 0.01, (daemon, talk)
