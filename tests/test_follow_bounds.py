"""Follow TCP Stream's memory bounds: a million conversations, and floods of
segments held back behind holes that are never filled.

Memory is the peak RSS (VmHWM) of a fresh interpreter that follows the
capture, less its VmHWM before: C allocations are invisible to tracemalloc.
Under the sanitized build (make test-sanitized) the runs and their counters
are still checked, but RSS is not compared: ASan's redzones, shadow memory
and quarantine make it say nothing about pcapflow's own memory. Numbers are
printed (pytest -s shows them)."""
import json
import struct
import subprocess
import sys

import pytest

import pcapflow

from _hardening import SANITIZED, fast_capture, python_env
from capture_tools import ACK, ETHERNET, PSH, SYN, ethernet, ipv4, pcap_header, tcp

MB = 1 << 20

# What one batch of the reader holds whatever the capture's size (65536
# frames: their streams' events as Python tuples, the C arrays behind them)
# and the interpreter's own noise: a constant, not a cost per conversation.
FIXED_BYTES = 96 * MB

FOLLOWER = """
import json, sys, time
import pcapflow

def high_water():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

path, mode, limits = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
before = high_water()
started = time.process_time()
summary = {"items": 0, "records": 0, "nodes_ok": True}
if mode == "records":
    run = pcapflow.follow_records(path, **limits)
    for record in run:
        summary["items"] += 1
else:
    run = pcapflow.follow(path, **limits)
    for conversation in run:
        summary["items"] += 1
        summary["records"] += len(conversation.records)
        if conversation.stream % 99991 == 0:  # a sample: node 0 is the SYN's sender
            i = conversation.stream
            expected = ((f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 1024 + i % 60000), ("192.0.2.1", 80))
            summary["nodes_ok"] &= conversation.nodes == expected
summary.update(before=before, after=high_water(), cpu=time.process_time() - started, stats=run.stats)
print(json.dumps(summary))
"""


def follow_measured(path, mode, timeout=300, **limits):
    """Follows path in a fresh interpreter: its summary (peak memory growth in 'grew')."""
    done = subprocess.run([sys.executable, "-c", FOLLOWER, str(path), mode, json.dumps(limits)], capture_output=True,
                          text=True, timeout=timeout, env=python_env(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    summary["grew"] = summary["after"] - summary["before"]
    return summary


# ---------------------------------------------------------------------------
# A million conversations: a SYN flood
# ---------------------------------------------------------------------------

CONVERSATIONS = 1_000_000
# A conversation costs the engine stats["conversation_bytes"] (its record and
# its share of the table); the array of them and the table grow by doubling:
# at most this factor more.
GROWTH_FACTOR = 1.25
# follow() also keeps each stream's frame numbers and first and last times
# (the binding's frame list, a few dozen bytes for one frame): allowed on top.
FRAME_LIST_BYTES = 96


@pytest.fixture(scope="module")
def syn_flood(tmp_path_factory):
    """1,000,000 SYNs from distinct sources (10.x.y.z, ports 1024..) to 192.0.2.1:80: 70 MB, written once."""
    path = tmp_path_factory.mktemp("flood") / "flood.pcap"
    template = ethernet(ipv4("10.0.0.0", "192.0.2.1", tcp(1024, 80, SYN)))

    def patch(buffer, frame, i):
        struct.pack_into(">I", buffer, frame + 14 + 12, 0x0A000000 | i)
        struct.pack_into(">H", buffer, frame + 14 + 20, 1024 + i % 60000)

    fast_capture(path, CONVERSATIONS, template, patch)
    yield path
    path.unlink()


def test_million_conversations_follow_records(syn_flood):
    """follow_records() keeps nothing per conversation beyond the engine's record: peak memory growth is
    at most CONVERSATIONS x conversation_bytes x GROWTH_FACTOR + FIXED_BYTES."""
    summary = follow_measured(syn_flood, "records")
    stats = summary["stats"]
    assert stats["streams"] == CONVERSATIONS and stats["frames"] == CONVERSATIONS
    assert summary["items"] == 0 and stats["records"] == 0 and stats["peak_held_bytes"] == 0
    per_conversation = stats["conversation_bytes"]
    print(f"\nfollow_records, {CONVERSATIONS} conversations: peak grew {summary['grew'] / MB:.1f} MB "
          f"({summary['grew'] / CONVERSATIONS:.0f} bytes each, engine {per_conversation}), "
          f"{summary['cpu']:.1f} s CPU")
    if not SANITIZED:
        assert summary["grew"] <= CONVERSATIONS * per_conversation * GROWTH_FACTOR + FIXED_BYTES


def test_million_conversations_follow(syn_flood):
    """follow() yields every conversation (nodes right) and keeps, besides the engine's record, only the
    frame list of each until the end."""
    summary = follow_measured(syn_flood, "follow")
    stats = summary["stats"]
    assert summary["items"] == CONVERSATIONS and summary["records"] == 0 and summary["nodes_ok"]
    per_conversation = stats["conversation_bytes"] * GROWTH_FACTOR + FRAME_LIST_BYTES
    print(f"\nfollow, {CONVERSATIONS} conversations: peak grew {summary['grew'] / MB:.1f} MB "
          f"({summary['grew'] / CONVERSATIONS:.0f} bytes each), {summary['cpu']:.1f} s CPU")
    if not SANITIZED:
        assert summary["grew"] <= CONVERSATIONS * per_conversation + FIXED_BYTES


# ---------------------------------------------------------------------------
# Out-of-order floods: segments far ahead of a hole that is never filled
# ---------------------------------------------------------------------------

HOLE = 1000  # bytes after each connection's first segment that never come


def hole_flood(path, connections, sizes):
    """Each connection (10.1.x.y:40000 -> 192.0.2.1:80): a SYN, one data segment (emitted), then
    segments of the given sizes (cycled, one connection after another) starting HOLE bytes further on,
    back to back. Nothing is acknowledged. Returns the held segments' sizes in capture order, with
    their connection: [(connection, size), ...]."""
    frames, offered = [], []
    offsets = [0] * connections
    src = [f"10.1.{c >> 8}.{c & 255}" for c in range(connections)]
    for c in range(connections):
        frames.append(ethernet(ipv4(src[c], "192.0.2.1", tcp(40000, 80, SYN, seq=1000))))
        frames.append(ethernet(ipv4(src[c], "192.0.2.1", tcp(40000, 80, ACK | PSH, b"x" * 10, seq=1001))))
    for k, size in enumerate(sizes):
        c = k % connections
        seq = 1001 + 10 + HOLE + offsets[c]
        frames.append(ethernet(ipv4(src[c], "192.0.2.1", tcp(40000, 80, ACK | PSH, b"h" * size, seq=seq))))
        offsets[c] += size
        offered.append((c, size))
    with open(path, "wb") as out:
        out.write(pcap_header(ETHERNET))
        for i, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 1_700_000_000, i % 1_000_000, len(frame), len(frame)) + frame)
    return offered


def held_model(offered, per_stream, total, cost):
    """What the engine holds and refuses: a segment is held if its conversation's held bytes and all held
    bytes stay within their bounds with it (each segment counting its payload and `cost`), else dropped."""
    held, all_held, peak, dropped, dropped_bytes = {}, 0, 0, 0, 0
    for c, size in offered:
        charge = size + cost
        if held.get(c, 0) + charge > per_stream or all_held + charge > total:
            dropped += 1
            dropped_bytes += size
            continue
        held[c] = held.get(c, 0) + charge
        all_held += charge
        peak = max(peak, all_held)
    assert all(h <= per_stream for h in held.values())
    return {"held_bytes": all_held, "peak_held_bytes": peak, "dropped_segments": dropped,
            "dropped_bytes": dropped_bytes}


@pytest.mark.parametrize("per_stream, total", [(20_000, 1_000_000), (200_000, 300_000), (5_000, 10_000_000)])
def test_hole_flood_bounds_are_exact(tmp_path, per_stream, total):
    """300 connections, 20,000 segments of 1 to 1400 bytes past holes: held bytes never exceed
    max_held_per_stream per conversation nor max_held in all; dropped_segments and dropped_bytes count
    exactly the segments refused (a model of the rule gives the same counters and the same peak)."""
    sizes = [1 + (k * 7919) % 1400 for k in range(20_000)]
    offered = hole_flood(tmp_path / "holes.pcap", 300, sizes)
    run = pcapflow.follow_records(str(tmp_path / "holes.pcap"), max_held_per_stream=per_stream, max_held=total)
    records = list(run)
    stats = run.stats
    assert len(records) == 300 and all(r.data == b"x" * 10 for r in records)  # only the first segments
    expected = held_model(offered, per_stream, total, stats.get("held_segment_cost", 0))
    assert {k: stats[k] for k in expected} == expected
    assert stats["peak_held_bytes"] <= total
    assert stats["dropped_segments"] > 0
    print(f"\nper stream {per_stream}, total {total}: peak held {stats['peak_held_bytes']}, "
          f"dropped {stats['dropped_segments']} segments ({stats['dropped_bytes']} bytes)")


TINY_STREAMS, TINY_SEGMENTS = 40, 1_000_000
TINY_MAX_HELD = 2 * MB


@pytest.fixture(scope="module")
def tiny_flood(tmp_path_factory):
    """40 connections, 1,000,000 one-byte segments: each connection's first one is emitted, every later
    one lies past a 1000-byte hole that never fills. 71 MB, written once."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.pcap"
    template = ethernet(ipv4("10.2.0.0", "192.0.2.1", tcp(40000, 80, ACK | PSH, b"t", seq=0)))

    def patch(buffer, frame, i):
        stream, j = i % TINY_STREAMS, i // TINY_STREAMS
        struct.pack_into(">I", buffer, frame + 14 + 12, 0x0A020000 | stream)
        struct.pack_into(">I", buffer, frame + 14 + 20 + 4, 5000 + (0 if j == 0 else HOLE + j))

    fast_capture(path, TINY_SEGMENTS, template, patch)
    yield path
    path.unlink()


def test_tiny_segment_flood_memory(tiny_flood):
    """One-byte segments cost far more memory than their byte: max_held bounds the memory they take, not
    only their payload. Peak memory with max_held=2 MiB exceeds that of a run that holds nothing by at
    most max_held (and 2 MiB of allocator slack)."""
    held = follow_measured(tiny_flood, "records", max_held=TINY_MAX_HELD)
    baseline = follow_measured(tiny_flood, "records", max_held=1)
    for summary in (held, baseline):
        assert summary["items"] == TINY_STREAMS and summary["stats"]["streams"] == TINY_STREAMS
    stats = held["stats"]
    assert stats["peak_held_bytes"] <= TINY_MAX_HELD
    held_segments = TINY_SEGMENTS - TINY_STREAMS - stats["dropped_segments"]
    assert stats["dropped_bytes"] == stats["dropped_segments"]
    extra = held["grew"] - baseline["grew"]
    print(f"\n1-byte flood, max_held {TINY_MAX_HELD}: {held_segments} segments held "
          f"(peak_held_bytes {stats['peak_held_bytes']}), {stats['dropped_segments']} dropped; "
          f"memory over a run holding nothing: {extra / MB:.1f} MB; {held['cpu']:.1f} s CPU")
    if not SANITIZED:
        assert extra <= TINY_MAX_HELD + 2 * MB
    assert baseline["stats"]["peak_held_bytes"] == 0
    assert baseline["stats"]["dropped_segments"] == TINY_SEGMENTS - TINY_STREAMS
