"""A frame is queued for its flow's file whole or not at all.

The C core buffers each flow's pcap records (a 16-byte record header, then
the frame's bytes) before writing them. If memory runs out while a frame is
queued, neither its header nor its data may stay in the buffer: a header
without its data would make the rest of the file unreadable.

The failure is provoked for real in a child process: glibc is told to serve
every allocation above 64 KiB with mmap, and RLIMIT_AS is lowered to just
above the address space in use, only around one dump() of a large frame
(256 KiB, the largest snapshot length) whose buffer then cannot grow. The
limit is lifted again; later frames go through and the file must read back
(with a strict reader, with libpcap through pcapflow.packets, and with tshark
when it is installed) holding every frame but the one that failed."""
import json
import shutil
import subprocess
import sys

import pytest

import pcapflow
from _hardening import SANITIZED, python_env
from capture_tools import MAXIMUM_SNAPLEN, read_capture

pytestmark = [
    pytest.mark.skipif(SANITIZED, reason="the sanitizers' allocator aborts on a failed allocation instead of failing"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and glibc's mallopt"),
]

CHILD = r"""
import ctypes, ipaddress, json, os, resource, sys
import pcapflow
from capture_tools import ACK, FIN, PSH, ethernet, ipv4, tcp

out, big_size = sys.argv[1], int(sys.argv[2])
libc = ctypes.CDLL(None)
M_MMAP_THRESHOLD = -3
mmap_fixed = libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024) == 1

def packet(number, payload_size, flags=ACK, frame_size=0):
    frame = ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(40000, 80, flags, bytes([number]) * payload_size)))
    frame += bytes(max(frame_size - len(frame), 0))  # an Ethernet trailer past the IP packet
    return pcapflow.Packet(protocol=1, index=number, syn=False, fin=bool(flags & FIN),
                           src=ipaddress.ip_address("10.0.0.1"), dst=ipaddress.ip_address("10.0.0.2"),
                           srcport=40000, dstport=80, timestamp=1_600_000_000 + number,
                           frame={"packet": frame, "frame_info": {"ts_sec": 1_600_000_000 + number, "ts_usec": 0,
                                                                  "incl_len": len(frame), "orig_len": len(frame)}})

def address_space():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGESIZE")

tracer = pcapflow.TCP(out, "pcap")
tracer.dump(packet(1, 10))
tracer.dump(packet(2, 20, PSH | ACK))
big = packet(3, 1000, frame_size=big_size)
outcome = "no error"
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (address_space() + 64 * 1024, hard))
try:
    tracer.dump(big)
except MemoryError:
    outcome = "MemoryError"
except OSError as error:
    outcome = "OSError"
finally:
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
tracer.dump(packet(4, 30, PSH | ACK))
tracer.dump(packet(5, 0, FIN | ACK))
index = tracer.submit()
tracer.close()
print(json.dumps({"outcome": outcome, "mmap_fixed": mmap_fixed,
                  "flows": [[flow.fpout, list(flow.index)] for flow in index]}))
"""


def run_child(out):
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(MAXIMUM_SNAPLEN)], capture_output=True,
                          text=True, timeout=60, env=python_env(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_frame_that_cannot_be_queued_leaves_the_file_readable(tmp_path):
    report = run_child(tmp_path / "out")
    assert report["mmap_fixed"], "glibc's mallopt(M_MMAP_THRESHOLD) is needed to provoke the failure"
    assert report["outcome"] in ("MemoryError", "OSError"), \
        f"dumping a {MAXIMUM_SNAPLEN}-byte frame under a lowered RLIMIT_AS did not fail: {report['outcome']}"
    # the index lists exactly the frames the file holds: not the one that failed
    [(fpout, frames)] = report["flows"]
    assert frames == [1, 2, 4, 5]

    # the strict reader: every record whole, nothing after the last one
    capture = read_capture(fpout)
    payload_bytes = [record.data[54:] for record in capture.records]
    assert [(b[:1], len(b)) for b in payload_bytes] == [(b"\x01", 10), (b"\x02", 20), (b"\x04", 30), (b"", 0)]
    assert [record.ts_sec for record in capture.records] == [1_600_000_001, 1_600_000_002, 1_600_000_004,
                                                            1_600_000_005]

    # libpcap
    with pcapflow.packets(fpout) as frames:
        assert [len(p.frame["packet"]) for p in frames] == [64, 74, 84, 54]

    if shutil.which("tshark"):
        done = subprocess.run(["tshark", "-r", fpout, "-T", "fields", "-e", "frame.len"], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["64", "74", "84", "54"]
