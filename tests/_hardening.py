"""Helpers for the hardening tests (test_fault_injection, test_hostile_output,
test_resource_bounds, test_properties).

Real things only: tmpfs mounts, FIFOs, subprocesses with real rlimits, files
read back with this suite's pcap reader (capture_tools.read_capture, strict:
a truncated record is an error) and with libpcap itself (tcpdump -r)."""
import contextlib
import gc
import ipaddress
import os
import struct
import subprocess
import sys
import textwrap

import pytest

from capture_tools import (ACK, ETHERNET, FIN, HERE, TCPDUMP, Record, TCPPacket, ethernet, ipv4, pcap_header,
                           pcap_record, read_capture, tcp)

SANITIZED = bool(os.environ.get("PCAPFLOW_EXPECT_SANITIZED"))


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_python(code, *args, timeout, what="the subprocess"):
    """Run code in a fresh interpreter (tests/ on its path); a hang fails the test instead of hanging pytest."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env=python_env(), check=False)
    except subprocess.TimeoutExpired as expired:
        hung = expired
    pytest.fail(f"{what} did not finish within {timeout} s (a hang); it was killed.\n"
                f"stdout: {(hung.stdout or b'')[-3000:]!r}\nstderr: {(hung.stderr or b'')[-3000:]!r}")


LAUNCHER = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:]).returncode
print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)
"""


def run_measured(argv, *, timeout, stdout_path, stderr_path):
    """Run argv; return (exit status, its peak RSS in bytes: getrusage(RUSAGE_CHILDREN).ru_maxrss).

    A small launcher process runs argv as its only child and reads RUSAGE_CHILDREN. Not pytest itself: a
    process started by fork()+exec() keeps in its ru_maxrss the RSS its parent had at the fork (Linux
    carries the high-water mark over exec), so a child of the big pytest process would report pytest's
    RSS; the launcher is small (~10 MB), and pytest's other children do not count either."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        try:
            done = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], stdout=out, stderr=err, timeout=timeout,
                                  env=python_env(), check=False)
        except subprocess.TimeoutExpired:
            done = None
    if done is None:
        pytest.fail(f"{argv[:3]}... did not finish within {timeout} s and was killed")
    with open(stderr_path, encoding="utf-8", errors="replace") as err:
        *messages, last = err.read().rstrip("\n").split("\n")
    status, peak = map(int, last.split())
    with open(stderr_path, "w", encoding="utf-8") as err:
        err.write("\n".join(messages))
    return status, peak


# ---------------------------------------------------------------------------
# tmpfs mounts
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(path, size="256k", readonly=False):
    """A real tmpfs mounted at path (created), unmounted afterwards. Needs root (CI runs as root)."""
    os.makedirs(path, exist_ok=True)
    options = f"{'ro,' if readonly else ''}size={size}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs on {path} (these tests need root, as CI has): {done.stderr.strip()}")
    gc.collect()
    try:
        yield path
    finally:
        gc.collect()  # tracers still holding descriptors on the mount
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


# ---------------------------------------------------------------------------
# Frames and captures with known contents
# ---------------------------------------------------------------------------

def payload(number, size):
    """size bytes that say which frame they belong to."""
    head = b"frame %d;" % number
    return (head * (size // len(head) + 1))[:size]


def flow_frame(flow, number, size, flags=ACK):
    """An Ethernet/IPv4/TCP frame of flow number `flow` (10.0.x.y:port -> 192.0.2.1:80) carrying `size` payload bytes."""
    src = f"10.0.{flow >> 8 & 255}.{flow & 255}"
    return ethernet(ipv4(src, "192.0.2.1", tcp(20000 + flow % 40000, 80, flags, payload(number, size))))


def generated_capture(flows, frames, size=200, *, fin_every=0, start=1_600_000_000):
    """(records, TCPPacket list): `frames` frames spread round-robin over `flows` flows; with fin_every,
    every fin_every-th frame of a flow carries FIN (the flow closes and its next frame reopens it)."""
    records, packets = [], []
    per_flow = [0] * flows
    for i in range(frames):
        flow = i % flows
        per_flow[flow] += 1
        fin = bool(fin_every) and per_flow[flow] % fin_every == 0
        data = flow_frame(flow, i + 1, size, (FIN | ACK) if fin else ACK)
        record = Record(start + i // 1000, (i % 1000) * 1_000_000, data)
        records.append(record)
        src = ipaddress.IPv4Address(f"10.0.{flow >> 8 & 255}.{flow & 255}")
        packets.append(TCPPacket(i + 1, src, 20000 + flow % 40000, ipaddress.IPv4Address("192.0.2.1"), 80, fin,
                                 record.time_epoch))
    return records, packets


def capture_bytes(records, linktype=ETHERNET):
    return pcap_header(linktype) + b"".join(pcap_record(r.ts_sec, r.ts_nsec // 1000, r.data, r.orig_len)
                                            for r in records)


def record_boundaries(records):
    """Byte offset where each record starts in capture_bytes(records), and the end."""
    offsets, offset = [], 24
    for r in records:
        offsets.append(offset)
        offset += 16 + len(r.data)
    return offsets + [offset]


def fast_capture(path, count, template, patch):
    """Writes a microsecond pcap of `count` copies of the frame `template`, record i patched by
    patch(buffer, offset_of_frame_i, i) (struct.pack_into on one bytearray), with one write call."""
    record = struct.pack("<IIII", 1_600_000_000, 0, len(template), len(template)) + template
    size = len(record)
    buffer = bytearray(record * count)
    for i in range(count):
        struct.pack_into("<II", buffer, i * size, 1_600_000_000 + i // 1_000_000, i % 1_000_000)
        patch(buffer, i * size + 16, i)
    with open(path, "wb") as out:
        out.write(pcap_header(ETHERNET) + buffer)
    return size


# ---------------------------------------------------------------------------
# Checking files
# ---------------------------------------------------------------------------

def libpcap_reads(path):
    """(ok, message): whether libpcap (tcpdump -r) reads the whole file without an error."""
    done = subprocess.run([TCPDUMP, "-r", str(path), "-w", os.devnull], capture_output=True, text=True, check=False)
    return done.returncode == 0, done.stderr.strip()


def assert_valid_prefix(path, frames):
    """path is a complete pcap file (this suite's reader and libpcap both read it to the end without error)
    whose records are the first n of `frames` (bytes), in order, for some n. Returns n."""
    try:
        records = read_capture(path).records
    except ValueError as error:
        ok, message = libpcap_reads(path)
        raise AssertionError(f"{path} ({os.path.getsize(path)} bytes) is not a readable pcap file: {error}; "
                             f"libpcap: {message}") from None
    ok, message = libpcap_reads(path)
    assert ok, f"{path}: libpcap cannot read it to the end: {message}"
    got = [r.data for r in records]
    assert got == list(frames[:len(got)]), (
        f"{path}: its {len(got)} records are not the first {len(got)} of the {len(frames)} frames given to its flow")
    return len(got)


def assert_exact(path, frames):
    n = assert_valid_prefix(path, frames)
    assert n == len(frames), f"{path}: {n} records, {len(frames)} frames were given to its flow"
