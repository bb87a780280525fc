"""A fixed trace() workload for counting instructions with callgrind.

30,000 pcapflow Packets over 2,000 interleaved flows (every fifth round of a
flow ends in FIN), IPv4, IPv6 or mixed, traced twice with no output files.
Wall-clock figures on a shared machine move by 20%; instruction counts do
not, so decisions about the per-packet path are made with this:

    PY=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
    valgrind --tool=callgrind --toggle-collect=tcp_trace $PY bench/trace_instructions.py ipv6

(the real interpreter, not a pyenv shim; the summary line of the
callgrind.out file is the total). PYTHONPATH=other/checkout measures another
build the same way.
"""
import ipaddress
import logging
import sys
import tempfile
import warnings

import pcapflow

PACKETS, FLOWS = 30_000, 2_000


def packets(family):
    frame = {"packet": b"x" * 60, "frame_info": {"ts_sec": 1, "ts_usec": 0, "incl_len": 60, "orig_len": 60}}
    clients4 = [ipaddress.ip_address(f"10.0.{i // 250}.{i % 250 + 1}") for i in range(FLOWS)]
    clients6 = [ipaddress.ip_address(f"2001:db8::{i + 1:x}") for i in range(FLOWS)]
    server4, server6 = ipaddress.ip_address("10.9.9.9"), ipaddress.ip_address("2001:db8::ffff")
    made = []
    for number in range(PACKETS):
        flow = number % FLOWS
        six = family == "ipv6" or (family == "mixed" and flow % 2)
        made.append(pcapflow.Packet(protocol=1, index=number + 1, frame=frame, syn=False,
                                    fin=(number // FLOWS) % 5 == 4, src=(clients6 if six else clients4)[flow],
                                    dst=server6 if six else server4, srcport=1024 + flow, dstport=80,
                                    timestamp=1_600_000_000.0 + number / 1000))
    return made


def main():
    family = sys.argv[1] if len(sys.argv) > 1 else "ipv4"
    if family not in ("ipv4", "ipv6", "mixed"):
        raise SystemExit("usage: trace_instructions.py ipv4|ipv6|mixed")
    logging.disable(logging.WARNING)
    made = packets(family)
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracer = pcapflow.TCP(tempfile.mkdtemp(), "none")
        trace = tracer.trace
        for packet in made:
            trace(packet)
        tracer.submit()


if __name__ == "__main__":
    main()
