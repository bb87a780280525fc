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
