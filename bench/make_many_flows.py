#!/usr/bin/env python
"""Write a pcap capture in which many TCP flows are open at the same time.

    python bench/make_many_flows.py OUT.pcap [--flows 100000] [--rounds 2]

A flow is one direction of a TCP connection (pcapkit's and pcapflow's unit),
so --flows F gives F/2 connections, client 10.x.y.z:port -> server
10.0.0.1:80 (every client address distinct). The packets go phase by phase,
each phase across every connection before the next phase starts:

    SYN, SYN-ACK, ACK                     handshake (every flow opens here)
    --rounds times: request (200 bytes)   client -> server, data
                    response (1000 bytes) server -> client, data
                    ACK                   client -> server
    FIN-ACK (client), FIN-ACK (server)

so after the SYN-ACK phase all F flows are open at once, and they close only
in the last two phases: the tracer ends with exactly F flows (F files), all
closed by FIN. (The client's last ACK is left out on purpose: under pcapkit's
rules it would open a new one-packet flow on the 4-tuple the client's FIN had
closed.) Packets: F/2 * (4 + 3 * rounds).

Ethernet / IPv4 (header checksum computed) / TCP (checksum left zero),
timestamps 1 microsecond apart
from 2024-01-01 00:00:00 UTC. Deterministic: the same arguments give the same
bytes. Prints "PACKETS FLOWS" on stdout.
"""
import argparse
import struct
import sys

START = 1704067200  # 2024-01-01T00:00:00Z
SERVER = bytes((10, 0, 0, 1))
SERVER_PORT = 80
SERVER_MAC = bytes.fromhex("020000000001")
CLIENT_MAC = bytes.fromhex("020000000002")
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
REQUEST = (b"GET /object HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n" * 5)[:200]
RESPONSE = bytes(range(256)) * 3 + bytes(232)  # 1000 bytes


def ip_checksum(header):
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(src_mac, dst_mac, src, dst, sport, dport, seq, ack, flags, payload, ident):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp + payload


def client(i):
    """Connection i's client address and port: addresses 10.1.0.0 upwards, distinct for every i."""
    n = 0x0A010000 + i
    return struct.pack("!I", n), 1024 + i % 64000


def generate(out, flows, rounds):
    connections = flows // 2
    packets = 0
    ts = START * 1_000_000
    record = struct.Struct("<IIII").pack
    # initial sequence numbers: client 1000 + i, server 5000 + i
    with open(out, "wb") as file:
        file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # microsecond pcap, Ethernet

        def emit(data):
            nonlocal packets, ts
            file.write(record(ts // 1_000_000, ts % 1_000_000, len(data), len(data)) + data)
            packets += 1
            ts += 1

        def phase(to_server, flags, payload, seq_of, ack_of):
            for i in range(connections):
                addr, port = client(i)
                c_isn, s_isn = 1000 + i, 5000 + i
                if to_server:
                    emit(frame(CLIENT_MAC, SERVER_MAC, addr, SERVER, port, SERVER_PORT,
                               seq_of(c_isn), ack_of(s_isn), flags, payload, i))
                else:
                    emit(frame(SERVER_MAC, CLIENT_MAC, SERVER, addr, SERVER_PORT, port,
                               seq_of(s_isn), ack_of(c_isn), flags, payload, i))

        req, resp = len(REQUEST), len(RESPONSE)
        phase(True, SYN, b"", lambda c: c, lambda s: 0)
        phase(False, SYN | ACK, b"", lambda s: s, lambda c: c + 1)
        phase(True, ACK, b"", lambda c: c + 1, lambda s: s + 1)
        for r in range(rounds):
            phase(True, PSH | ACK, REQUEST, lambda c, r=r: c + 1 + r * req, lambda s, r=r: s + 1 + r * resp)
            phase(False, PSH | ACK, RESPONSE, lambda s, r=r: s + 1 + r * resp, lambda c, r=r: c + 1 + (r + 1) * req)
            phase(True, ACK, b"", lambda c, r=r: c + 1 + (r + 1) * req, lambda s, r=r: s + 1 + (r + 1) * resp)
        c_end, s_end = 1 + rounds * req, 1 + rounds * resp
        phase(True, FIN | ACK, b"", lambda c: c + c_end, lambda s: s + s_end)
        phase(False, FIN | ACK, b"", lambda s: s + s_end, lambda c: c + c_end + 1)
    return packets, 2 * connections


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the pcap file to write")
    parser.add_argument("--flows", type=int, default=100_000, help="flows open at once (even; default 100000)")
    parser.add_argument("--rounds", type=int, default=2, help="request/response rounds per connection (2)")
    args = parser.parse_args(argv)
    if args.flows < 2 or args.flows % 2 or args.flows // 2 > 0xFFFFFF:
        parser.error("--flows must be even, between 2 and 33554430")
    packets, flows = generate(args.out, args.flows, args.rounds)
    print(packets, flows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
