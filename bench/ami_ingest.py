"""AMI ingest: our framing (+ filtering, + call tracker) against stock panoramisk, same run.

Run from the repository root:

    .venv/bin/python bench/ami_ingest.py [--quick]

The input is the bytes a real Asterisk 22 sent (tests/fixtures/asterisk-traces/*.ami.txt,
banners removed) repeated into one long stream, fed in 16 KiB reads as a socket would
deliver them. Every contender parses the same bytes; rounds are interleaved so machine
noise hits them alike; figures are medians of the rounds. Events/s counts every message
on the wire, including the ones a filter skips (they were ingested, cheaply).

  stock panoramisk  AMIProtocol.data_received: chunk decode, split, Message.from_line,
                    handle_message, dispatch (to a counting factory, no callbacks)
  bare split        the practical limit: split on CRLF CRLF, decode, dict of lines
  ours, all         AmiParser(): every message framed and decoded
  ours, filtered    AmiParser(TRACKED_EVENTS): VarSet, CEL, Cdr, ... skipped undecoded
  ours + tracker    filtered framing then CallTracker.feed_message (domain events)

Ends with one line holding a JSON object of the figures and ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from panoramisk.ami_protocol import AMIProtocol  # noqa: E402

from adapters.ami.calls import TRACKED_EVENTS, CallTracker  # noqa: E402
from adapters.ami.framing import AmiParser  # noqa: E402

TRACES = ROOT / "tests" / "fixtures" / "asterisk-traces"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
READ_SIZE = 16 * 1024


def build_stream(repeats: int) -> bytes:
    """Every recorded AMI session without its banner, repeated, after one banner."""
    bodies = [p.read_bytes().split(b"\r\n", 1)[1] for p in sorted(TRACES.glob("*.ami.txt"))]
    session = b"".join(bodies)
    # Each copy gets its own Uniqueids/Linkedids (same length), so the tracker sees new
    # calls rather than stragglers of calls that already ended.
    return BANNER + b"".join(
        session.replace(b"1795327", b"%07d" % (2000000 + copy)) for copy in range(repeats)
    )


class _CountingFactory:
    """Stands in for panoramisk's Manager: dispatch only counts."""

    def __init__(self) -> None:
        self.dispatched = 0

    def dispatch(self, message: Any) -> None:
        self.dispatched += 1


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def run_stock(chunks: list[bytes]) -> int:
    """Stock panoramisk parsing path; returns the events it dispatched."""
    protocol = AMIProtocol()
    protocol.connection_made(_NullTransport())
    factory = _CountingFactory()
    protocol.factory = factory
    for chunk in chunks:
        protocol.data_received(chunk)
    return factory.dispatched


def run_bare(chunks: list[bytes]) -> int:
    """Minimal bytes-split parser; returns the messages it built."""
    rest = b""
    count = 0
    for chunk in chunks:
        blocks = (rest + chunk).split(b"\r\n\r\n")
        rest = blocks.pop()
        for block in blocks:
            dict(
                line.partition(": ")[::2] for line in block.decode("utf-8", "replace").split("\r\n")
            )
            count += 1
    return count


def run_ours(chunks: list[bytes], wanted: frozenset[str] | None = None) -> int:
    """Our parser; returns the messages it delivered."""
    parser = AmiParser(wanted)
    count = 0
    for chunk in chunks:
        count += len(parser.feed(chunk))
    return count


def run_tracker(chunks: list[bytes]) -> int:
    """Filtered framing then the call tracker; returns the domain events produced."""
    parser = AmiParser(TRACKED_EVENTS)
    tracker = CallTracker()
    produced = 0
    now = 0.0
    for chunk in chunks:
        for message in parser.feed(chunk):
            if message.event is not None:
                produced += len(tracker.feed_message(message, now))
        now += 0.001
    return produced


def measure(
    contenders: dict[str, Callable[[], int]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per round for each contender, rounds interleaved; and their outputs."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, int] = {}
    for _ in range(rounds):
        for name, run in contenders.items():
            gc.collect()
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
    return times, outputs


def main() -> None:
    """Run the benchmark and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small stream, few rounds (<1 min)")
    args = parser.parse_args()
    repeats, rounds = (20, 5) if args.quick else (100, 9)

    stream = build_stream(repeats)
    chunks = [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]
    messages = stream.count(b"\r\n\r\n")
    events = stream.count(b"\r\n\r\nEvent: ") + int(stream[len(BANNER) :].startswith(b"Event: "))

    contenders: dict[str, Callable[[], int]] = {
        "stock panoramisk": lambda: run_stock(chunks),
        "bare split": lambda: run_bare(chunks),
        "ours, all": lambda: run_ours(chunks),
        "ours, filtered": lambda: run_ours(chunks, TRACKED_EVENTS),
        "ours + tracker": lambda: run_tracker(chunks),
    }
    times, outputs = measure(contenders, rounds)
    if outputs["ours, all"] != messages or outputs["bare split"] != messages:
        sys.exit(f"message counts differ: {outputs} vs {messages} on the wire")

    rate = {name: messages / statistics.median(t) for name, t in times.items()}
    stock, bare = rate["stock panoramisk"], rate["bare split"]
    print(
        f"AMI ingest: {messages:,} messages ({events:,} events), {len(stream) / 1e6:.1f} MB "
        f"in {READ_SIZE // 1024} KiB reads, median of {rounds} interleaved rounds"
    )
    print(f"{'contender':<18} {'messages/s':>12} {'median ms':>10} {'vs stock':>9} {'vs bare':>8}")
    for name in contenders:
        median_ms = statistics.median(times[name]) * 1000
        print(
            f"{name:<18} {rate[name]:>12,.0f} {median_ms:>10.1f}"
            f" {rate[name] / stock:>8.2f}x {rate[name] / bare:>7.2f}x"
        )
    print(
        f"stock dispatched {outputs['stock panoramisk']:,} events; "
        f"filtered framing delivered {outputs['ours, filtered']:,} messages; "
        f"tracker produced {outputs['ours + tracker']:,} domain events"
    )
    figures = {
        "bench": "ami_ingest",
        "quick": args.quick,
        "messages": messages,
        "bytes": len(stream),
        "read_size": READ_SIZE,
        "rounds": rounds,
        "msgs_per_s": {name: round(value) for name, value in rate.items()},
        "ratio_vs_stock": {name: round(value / stock, 2) for name, value in rate.items()},
        "ratio_vs_bare": {name: round(value / bare, 2) for name, value in rate.items()},
        "domain_events": outputs["ours + tracker"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
