"""Resource bounds: memory per flow under a SYN flood, and constant memory over a 10 GB stream.

Both run trace_file() in a child process and read its peak RSS with
getrusage(RUSAGE_CHILDREN) in a small launcher whose only child it is (see
_hardening.run_measured). Numbers are printed (pytest -s shows them); no time is asserted.

Under the sanitized build (make test-sanitized) these are skipped: ASan's
redzones, shadow memory and quarantine make RSS say nothing about pcapflow's
own memory, and the other tests of this file's kind run there anyway."""
import json
import os
import struct
import subprocess
import sys
import time

import pytest

from _hardening import SANITIZED, fast_capture, python_env, run_measured
from capture_tools import ACK, SYN, ethernet, ipv4, tcp

pytestmark = pytest.mark.skipif(SANITIZED, reason="RSS under AddressSanitizer does not measure pcapflow's memory")

MB = 1 << 20

# ---------------------------------------------------------------------------
# A SYN flood: 1,000,000 one-packet flows
# ---------------------------------------------------------------------------

SYN_FLOWS = 1_000_000
# Measured 684 bytes per flow: about 330 in the C tracer (the 144-byte flow record, its hash-table and
# label-set slots, the label, a 4-entry frame list) and about 340 in the result trace_file returns (an
# Index, its label str, fpout None and a 1-tuple per flow). The bound leaves room for allocator noise.
BYTES_PER_FLOW_BOUND = 800

FLOOD_READER = """
import json, resource, sys, warnings
import pcapflow
capture, fout = sys.argv[1:3]
warnings.simplefilter("ignore", pcapflow.FormatWarning)

def high_water():
    # this process' own peak RSS (VmHWM starts afresh at exec, unlike ru_maxrss)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

before = high_water()
stats = {}
index = pcapflow.trace_file(capture, fout, "no-files", stats=stats)
one_frame = all(len(flow.index) == 1 and flow.fpout is None for flow in index)
print(json.dumps({"before": before, "after": high_water(), "flows": len(index), "one_frame_each": one_frame,
                  "stats": stats, "distinct_labels": len({flow.label for flow in index})}))
"""


def syn_flood(path, count):
    """count SYNs from distinct sources (10.x.y.z, ports 1024..) to 192.0.2.1:80, one microsecond apart."""
    template = ethernet(ipv4("10.0.0.0", "192.0.2.1", tcp(1024, 80, SYN)))

    def patch(buffer, frame, i):
        struct.pack_into(">I", buffer, frame + 14 + 12, 0x0A000000 | i)  # source address
        struct.pack_into(">H", buffer, frame + 14 + 20, 1024 + i % 60000)  # source port

    return fast_capture(path, count, template, patch)


def test_syn_flood_memory_per_flow(tmp_path):
    """1,000,000 one-packet flows, no output files: peak RSS of the tracing process less its RSS before
    tracing, divided by the flows, stays under BYTES_PER_FLOW_BOUND. This counts everything a flow costs,
    the C tracer's (flow record, hash table, label, frame list) and the result's (one Index each)."""
    capture = tmp_path / "flood.pcap"
    record_size = syn_flood(capture, SYN_FLOWS)
    assert os.path.getsize(capture) == 24 + SYN_FLOWS * record_size
    fout = tmp_path / "none"
    status, peak = run_measured([sys.executable, "-c", FLOOD_READER, str(capture), str(fout)], timeout=120,
                                stdout_path=tmp_path / "out.json", stderr_path=tmp_path / "err.txt")
    capture.unlink()
    assert status == 0, (tmp_path / "err.txt").read_text()[-3000:]
    report = json.loads((tmp_path / "out.json").read_text().splitlines()[-1])
    assert report["flows"] == SYN_FLOWS and report["distinct_labels"] == SYN_FLOWS
    assert report["one_frame_each"]
    assert report["stats"]["frames"] == report["stats"]["tcp_frames"] == report["stats"]["flows_opened"] == SYN_FLOWS
    assert not fout.exists() or os.listdir(fout) == []
    assert abs(peak - report["after"]) < 16 * MB, f"RUSAGE_CHILDREN says {peak}, the process' VmHWM {report['after']}"
    per_flow = (peak - report["before"]) / SYN_FLOWS
    print(f"\nSYN flood: {SYN_FLOWS:,} flows, peak RSS {peak / MB:.0f} MiB ({report['before'] / MB:.0f} MiB before "
          f"tracing): {per_flow:.0f} bytes per flow (bound {BYTES_PER_FLOW_BOUND})")
    assert per_flow < BYTES_PER_FLOW_BOUND, (
        f"{per_flow:.0f} bytes per flow (peak RSS {peak / MB:.0f} MiB, {report['before'] / MB:.0f} MiB before "
        f"tracing {SYN_FLOWS:,} flows); bound {BYTES_PER_FLOW_BOUND}")


# Without Index objects (index=False, as the CLI without --index), a flow costs what the C tracer keeps:
# the 144-byte flow record, its hash-table word, the label and its set entry, the closed-flow record.
# Measured 277 bytes a flow on 2,000,000 flows (575 with an Index each).
BARE_BYTES_PER_FLOW_BOUND = 350

BARE_READER = """
import json, sys, warnings
import pcapflow
capture, fout = sys.argv[1:3]
warnings.simplefilter("ignore", pcapflow.FormatWarning)

def high_water():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

before = high_water()
stats = {}
result = pcapflow.trace_file(capture, fout, "no-files", stats=stats, index=False)
print(json.dumps({"before": before, "result": result, "stats": stats}))
"""


def test_syn_flood_without_index_costs_the_c_record(tmp_path):
    """1,000,000 one-packet flows traced with index=False: no Index is made, and the peak RSS above the
    interpreter's, divided by the flows, stays under BARE_BYTES_PER_FLOW_BOUND."""
    capture = tmp_path / "flood.pcap"
    syn_flood(capture, SYN_FLOWS)
    status, peak = run_measured([sys.executable, "-c", BARE_READER, str(capture), str(tmp_path / "none")],
                                timeout=120, stdout_path=tmp_path / "out.json", stderr_path=tmp_path / "err.txt")
    capture.unlink()
    assert status == 0, (tmp_path / "err.txt").read_text()[-3000:]
    report = json.loads((tmp_path / "out.json").read_text().splitlines()[-1])
    assert report["result"] is None and report["stats"]["flows_opened"] == SYN_FLOWS
    per_flow = (peak - report["before"]) / SYN_FLOWS
    print(f"\nSYN flood, index=False: {SYN_FLOWS:,} flows, {per_flow:.0f} bytes per flow "
          f"(bound {BARE_BYTES_PER_FLOW_BOUND})")
    assert per_flow < BARE_BYTES_PER_FLOW_BOUND, f"{per_flow:.0f} bytes per flow"


# ---------------------------------------------------------------------------
# Many idle open flows with files: their buffers count against the output budget
# ---------------------------------------------------------------------------

IDLE_FLOWS = 150_000
IDLE_BUDGET = 16 * MB
# What a flow with a file may cost beyond one without, besides its Index's fpout str: its 32-byte file
# state in the output sink, and allocator slack. Before buffers were counted by the memory they hold,
# 150,000 such flows took 455 MiB with files against 119 MiB without (each idle flow kept an empty
# 256-byte to 4 KiB buffer, uncounted).
EXTRA_PER_FLOW_BOUND = 64

IDLE_READER = """
import json, sys, warnings
import pcapflow
capture, fout, fmt, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
warnings.simplefilter("ignore", pcapflow.FormatWarning)
stats = {}
index = pcapflow.trace_file(capture, fout, fmt, stats=stats, buffer_bytes=budget)
print(json.dumps({"flows": len(index), "stats": stats}))
"""


def test_idle_flow_buffers_count_against_the_budget(tmp_path):
    """150,000 open one-packet flows traced into files with a 16 MiB budget peak at no more than the
    same capture traced without files plus the budget and EXTRA_PER_FLOW_BOUND bytes a flow: a buffer
    that was written is freed, and what every buffer holds is counted against the budget."""
    capture = tmp_path / "idle.pcap"
    syn_flood(capture, IDLE_FLOWS)
    peaks = {}
    for fmt in ("no-files", "pcap"):
        fout = tmp_path / fmt
        status, peaks[fmt] = run_measured(
            [sys.executable, "-c", IDLE_READER, str(capture), str(fout), fmt, str(IDLE_BUDGET)], timeout=300,
            stdout_path=tmp_path / "out.json", stderr_path=tmp_path / "err.txt")
        assert status == 0, (tmp_path / "err.txt").read_text()[-3000:]
        report = json.loads((tmp_path / "out.json").read_text().splitlines()[-1])
        assert report["flows"] == IDLE_FLOWS
    written = os.listdir(tmp_path / "pcap")
    assert len(written) == IDLE_FLOWS
    sample = tmp_path / "pcap" / written[0]
    assert sample.stat().st_size == 24 + 16 + 54  # global header and the flow's one record
    extra = peaks["pcap"] - peaks["no-files"]
    fpout_size = sys.getsizeof(str(sample))  # each Index holds its file's path (None without files)
    bound = IDLE_BUDGET + IDLE_FLOWS * (EXTRA_PER_FLOW_BOUND + fpout_size)
    print(f"\n{IDLE_FLOWS:,} idle open flows: peak RSS {peaks['pcap'] / MB:.0f} MiB with files, "
          f"{peaks['no-files'] / MB:.0f} MiB without (budget {IDLE_BUDGET / MB:.0f} MiB): "
          f"{extra / MB:.0f} MiB more, bound {bound / MB:.0f} MiB")
    assert extra < bound, f"files cost {extra / MB:.0f} MiB more than no files; bound {bound / MB:.0f} MiB"
    assert report["stats"]["budget_flushes"] > 0


# ---------------------------------------------------------------------------
# The CLI on 5,000,000 packets of one flow: memory flat in the packets
# ---------------------------------------------------------------------------

ONE_FLOW_PACKETS = 5_000_000
# Before frame numbers were kept compact, the CLI peaked at 252 MiB here without --index (an int64
# per frame in C, copied at close, then an int object per frame in the returned Index).
CLI_PEAK_BOUND = 100 * MB


@pytest.mark.parametrize("with_index", [False, True], ids=["no-index", "index"])
def test_cli_on_one_long_flow_stays_under_100_mib(tmp_path, with_index):
    """python -m pcapflow on 5,000,000 54-byte frames of one flow peaks under CLI_PEAK_BOUND: without
    --index no frame number is kept; with it they are kept a byte each and written to the index a
    million at a time from that compact form."""
    capture = tmp_path / "one.pcap"
    fast_capture(capture, ONE_FLOW_PACKETS, ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80, ACK))),
                 lambda buffer, frame, i: None)
    index = tmp_path / "index.jsonl"
    argv = [sys.executable, "-m", "pcapflow", str(capture), "-o", str(tmp_path / "out")]
    status, peak = run_measured(argv + (["--index", str(index)] if with_index else []), timeout=300,
                                stdout_path=tmp_path / "out.txt", stderr_path=tmp_path / "err.txt")
    assert status == 0, (tmp_path / "err.txt").read_text()[-3000:]
    (written,) = os.listdir(tmp_path / "out")
    assert os.path.getsize(tmp_path / "out" / written) == os.path.getsize(capture)  # same records, same header size
    capture.unlink()
    if with_index:
        with open(index, encoding="utf-8") as lines:
            (line,) = lines
        assert line.endswith(", 4999999, 5000000]}\n") and '"index": [1, 2, 3, ' in line
        assert len(json.loads(line)["index"]) == ONE_FLOW_PACKETS
    print(f"\nCLI, {ONE_FLOW_PACKETS:,} packets of one flow, {'with' if with_index else 'without'} --index: "
          f"peak RSS {peak / MB:.0f} MiB (bound {CLI_PEAK_BOUND / MB:.0f})")
    assert peak < CLI_PEAK_BOUND, f"peak RSS {peak / MB:.0f} MiB"


# ---------------------------------------------------------------------------
# A 10 GB capture through a pipe, in constant memory
# ---------------------------------------------------------------------------

# Bytes of records streamed. CI streams the full 10 GB: on this project's 2-core machine the pipe and
# pcapflow together move about 2 GB/s, so it takes about 5 s (set PCAPFLOW_PIPE_BYTES to change it).
PIPE_BYTES = int(os.environ.get("PCAPFLOW_PIPE_BYTES", str(10 * 10**9)))
PIPE_FLOWS = 256
PIPE_PAYLOAD = 4000   # frames of 4,054 bytes (GRO-sized): a block of 256 records is ~1 MB
PEAK_RSS_BOUND = 200 * MB

PIPE_WRITER = """
import fcntl, os, struct, sys
fifo, total, flows, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
from capture_tools import ACK, ETHERNET, ethernet, ipv4, pcap_header, tcp
records = []
for i in range(flows):
    frame = ethernet(ipv4(f"10.1.{i >> 8}.{i & 255}", "192.0.2.9", tcp(20000 + i, 443, ACK, bytes([i % 256]) * size)))
    records.append(struct.pack("<IIII", 1_700_000_000, i, len(frame), len(frame)) + frame)
block = memoryview(b"".join(records))
fd = os.open(fifo, os.O_WRONLY)
try:
    fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: fewer, larger writes
except OSError:
    pass
os.write(fd, pcap_header(ETHERNET))
blocks = total // len(block)
for _ in range(blocks):
    done = 0
    while done < len(block):
        done += os.write(fd, block[done:])
os.close(fd)
print(blocks, len(block))
"""

PIPE_READER = """
import json, sys, warnings
import pcapflow
fifo, fout, flows = sys.argv[1], sys.argv[2], int(sys.argv[3])
warnings.simplefilter("ignore", pcapflow.FormatWarning)
stats = {}
index = pcapflow.trace_file(fifo, fout, "no-files", stats=stats)
frames = stats["frames"]
# flow k holds frames k+1, k+1+flows, ... (checked one flow at a time, so the check costs little memory)
ordered = all(flow.index == tuple(range(k + 1, frames + 1, flows)) for k, flow in enumerate(index))
print(json.dumps({"flows": len(index), "stats": stats, "ordered": ordered}))
"""


def test_ten_gigabytes_through_a_pipe_in_constant_memory(tmp_path):
    """A writer process streams a pcap header and then a ~1 MB block of records of 256 long flows, over and over,
    PIPE_BYTES in all, into a FIFO; trace_file() reads the FIFO path with no output files. Peak RSS of the
    reading process stays under PEAK_RSS_BOUND: the capture is never held in memory. (What does grow is the
    result: 8 bytes per frame number in C, ~40 in the returned Index; for 10 GB of 4 KB frames, 2.5 million
    frames, that is ~120 MB of the bound.)"""
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    fout = tmp_path / "none"
    writer = subprocess.Popen([sys.executable, "-c", PIPE_WRITER, str(fifo), str(PIPE_BYTES), str(PIPE_FLOWS),
                               str(PIPE_PAYLOAD)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=python_env())
    started = time.monotonic()
    try:
        status, peak = run_measured([sys.executable, "-c", PIPE_READER, str(fifo), str(fout), str(PIPE_FLOWS)],
                                    timeout=300, stdout_path=tmp_path / "out.json", stderr_path=tmp_path / "err.txt")
        elapsed = time.monotonic() - started
        written, writer_errors = writer.communicate(timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert status == 0, (tmp_path / "err.txt").read_text()[-3000:]
    assert writer.returncode == 0, writer_errors[-3000:]
    blocks, block = map(int, written.split())
    report = json.loads((tmp_path / "out.json").read_text().splitlines()[-1])
    total = 24 + blocks * block
    assert report["stats"]["bytes"] == total, f"read {report['stats']['bytes']} of {total} bytes"
    assert report["stats"]["frames"] == blocks * PIPE_FLOWS
    assert report["flows"] == PIPE_FLOWS and report["ordered"]
    assert not fout.exists() or os.listdir(fout) == []
    print(f"\npipe: {total / 1e9:.2f} GB ({blocks:,} blocks of {block:,} bytes, {report['stats']['frames']:,} frames, "
          f"{PIPE_FLOWS} flows) in {elapsed:.1f} s = {total / elapsed / 1e9:.2f} GB/s; "
          f"peak RSS of the reader {peak / MB:.0f} MiB (bound {PEAK_RSS_BOUND / MB:.0f})")
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak / MB:.0f} MiB reading {total / 1e9:.1f} GB through a pipe"
