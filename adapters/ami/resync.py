"""Resync after a reconnect: what exists now (CoreShowChannels, QueueStatus) vs what we knew.

Events are lost while the link is down, so the channel table is rebuilt from the list
Asterisk gives, tracked calls that are gone end, and calls we never saw start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from adapters.ami.events import CallQueued, DomainEvent, IvrEntered
from adapters.ami.framing import AmiMessage
from adapters.ami.state import Channel, device_of, to_int

if TYPE_CHECKING:
    from adapters.ami.calls import CallTracker

Item = AmiMessage | Mapping[str, str]


def _split(item: Item) -> tuple[Mapping[str, str], Mapping[str, str]]:
    if isinstance(item, AmiMessage):
        return item.headers, item.chan_vars
    return item, {}


def resync(
    tracker: CallTracker,
    channels: Iterable[Item],
    queue_entries: Iterable[Item],
    now: float,
    out: list[DomainEvent],
) -> None:
    """Bring `tracker` in line with the channels and queue entries that exist now."""
    config = tracker.config
    old = tracker._channels
    fresh: dict[str, Channel] = {}
    tagged: set[str] = set()
    for item in channels:
        headers, chan_vars = _split(item)
        uid = headers.get("Uniqueid")
        if not uid:
            tracker.report["resync_item_without_uniqueid"] += 1
            continue
        previous = old.get(uid)
        channel = Channel(uid, headers.get("Channel", ""), headers.get("Linkedid") or uid)
        if previous is not None:
            channel.call_id, channel.agent_for = previous.call_id, previous.agent_for
        channel.update(headers)
        channel.bridge = headers.get("BridgeId") or headers.get("BridgeID") or None
        fresh[uid] = channel
        if chan_vars.get(config.tag_variable):
            tagged.add(uid)
    queued: dict[str, tuple[str, int | None]] = {}
    for item in queue_entries:
        headers, _vars = _split(item)
        if headers.get("Event", "QueueEntry") == "QueueEntry" and headers.get("Uniqueid"):
            position = to_int(headers.get("Position"))
            queued[headers["Uniqueid"]] = (headers.get("Queue", ""), position)

    # Calls whose caller channel is gone ended while we were away.
    for gone in list(tracker._calls.values()):
        if gone.uniqueid not in fresh:
            tracker._end(gone, None, "gone after reconnect", now, out, resynced=True)

    tracker._channels = fresh
    # OriginateResponses of the old connection will never come.
    tracker._originates.clear()
    tracker._bridges = {}
    for channel in fresh.values():
        if channel.bridge:
            tracker._bridges.setdefault(channel.bridge, set()).add(channel.uniqueid)

    for uid, channel in fresh.items():
        call = tracker._calls.get(channel.call_id or "")
        if call is None and channel.linkedid in tracker._calls:
            channel.call_id = channel.linkedid
            continue
        is_caller = (
            uid in tagged or uid in queued or channel.context in config.inbound_contexts
        ) and channel.agent_for is None
        if call is None and is_caller:
            call = tracker._start(channel, now, out, resynced=True)
            if channel.app in config.ivr_applications:
                call.in_ivr, call.stage = True, "ivr"
                out.append(
                    IvrEntered(
                        call_id=call.call_id,
                        at=now,
                        application=channel.app,
                        script=channel.app_data,
                    )
                )
        if call is None or call.uniqueid != uid:
            continue
        if uid in queued and call.stage not in ("queued", "ringing"):
            call.queue, call.stage = queued[uid][0] or None, "queued"
            out.append(
                CallQueued(
                    call_id=call.call_id,
                    at=now,
                    queue=queued[uid][0],
                    position=queued[uid][1],
                    resynced=True,
                )
            )
    # Legs that rang while we were away are unknowable now: forget them.
    for call in tracker._calls.values():
        call.ringing = {leg: v for leg, v in call.ringing.items() if leg in fresh}
    _answered_meanwhile(tracker, now, out)


def _answered_meanwhile(tracker: CallTracker, now: float, out: list[DomainEvent]) -> None:
    for members in tracker._bridges.values():
        for uid in sorted(members):
            call = tracker._primary_call(tracker._channels.get(uid))
            others = sorted(m for m in members if m != uid)
            if call is None or not others or call.answered_leg in others:
                continue
            other = tracker._channels[others[0]]
            other.call_id = call.call_id
            tracker._answered(
                call,
                other.uniqueid,
                device_of(other.name),
                other.name,
                None,
                call.queue,
                now,
                out,
                resynced=True,
            )
