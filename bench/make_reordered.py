#!/usr/bin/env python
"""Write a pcap capture of TCP connections with heavy reordering and retransmission.

    python bench/make_reordered.py OUT.pcap [--packets 1000000] [--connections 2000] [--seed 1]

Each connection: a handshake, then both sides send a random byte stream in
segments of 1 to 1460 bytes. On the wire, a sender's segments are shuffled
within a window of 8, about 10% are retransmitted later (the same bytes,
sometimes re-cut so the copy overlaps two originals), about 5% are sent twice
in a row, and about 1% are missing from the capture (the peer acknowledges
each window, past them, so Follow TCP Stream reports a gap). Connections are interleaved
segment by segment, up to 64 at once. Ends with FINs. Ethernet / IPv4 / TCP,
deterministic for a seed. Prints "PACKETS CONNECTIONS BYTES" on stdout."""
import argparse
import random
import struct

START = 1704067200
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10


def ip_checksum(header):
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Writer:
    def __init__(self, out):
        self.out = out
        self.packets = 0
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

    def segment(self, src, dst, sport, dport, seq, ack, flags, payload=b""):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self.packets & 0xFFFF, 0x4000,
                             64, 6, 0, src, dst)
        header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
        frame = (MAC_B + MAC_A if src < dst else MAC_A + MAC_B) + b"\x08\x00" + header + tcp + payload
        ts = START * 1000000 + self.packets
        self.out.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(frame), len(frame)) + frame)
        self.packets += 1


def connection_segments(rng, n, size):
    """The wire order of one connection's segments: (side, seq offset, payload, ack mode)."""
    a, b = 0x0A000000 + 2 * n + 2, 0x0A000000 + 2 * n + 3
    src = [a.to_bytes(4, "big"), b.to_bytes(4, "big")]
    ports = [20000 + n % 40000, 80]
    isn = [rng.getrandbits(32), rng.getrandbits(32)]
    streams = [rng.randbytes(size), rng.randbytes(size // 4)]
    yield ("syn", src, ports, isn, 0, b"")
    for side in (0, 1):
        data = streams[side]
        cuts, at = [], 0
        while at < len(data):
            step = rng.randint(1, 1460)
            cuts.append((at, data[at:at + step]))
            at += step
        for start in range(0, len(cuts), 8):  # shuffled within a window of 8
            window = cuts[start:start + 8]
            end = window[-1][0] + len(window[-1][1])
            rng.shuffle(window)
            late = []
            for offset, payload in window:
                roll = rng.random()
                if roll < 0.01:
                    continue  # lost: never captured, though the peer got it
                yield ("data", src, ports, isn, side, (offset, payload))
                if roll < 0.06:
                    yield ("data", src, ports, isn, side, (offset, payload))  # duplicated at once
                elif roll < 0.16:
                    cut = rng.randint(0, len(payload) - 1)  # retransmitted later, re-cut to overlap
                    late.append((offset + cut, data[offset + cut:offset + cut + 1460]))
            for item in late:
                yield ("data", src, ports, isn, side, item)
            yield ("ack", src, ports, isn, side, end)  # the peer acknowledges the window
    yield ("fin", src, ports, isn, 0, [len(s) for s in streams])


def emit(writer, item):
    kind, src, ports, isn, side, extra = item
    if kind == "syn":
        writer.segment(src[0], src[1], ports[0], ports[1], isn[0], 0, SYN)
        writer.segment(src[1], src[0], ports[1], ports[0], isn[1], isn[0] + 1, SYN | ACK)
        writer.segment(src[0], src[1], ports[0], ports[1], isn[0] + 1, isn[1] + 1, ACK)
    elif kind == "data":
        offset, payload = extra
        other = 1 - side
        writer.segment(src[side], src[other], ports[side], ports[other], isn[side] + 1 + offset, isn[other] + 1,
                       PSH | ACK, payload)
    elif kind == "ack":
        other = 1 - side
        writer.segment(src[other], src[side], ports[other], ports[side], isn[other] + 1, isn[side] + 1 + extra, ACK)
    else:
        lengths = extra
        writer.segment(src[0], src[1], ports[0], ports[1], isn[0] + 1 + lengths[0], isn[1] + 1 + lengths[1],
                       FIN | ACK)
        writer.segment(src[1], src[0], ports[1], ports[0], isn[1] + 1 + lengths[1], isn[0] + 2 + lengths[0],
                       FIN | ACK)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--packets", type=int, default=1000000)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    # about 1.3 packets per segment of ~730 bytes, both directions (the server sends a quarter)
    size = max(2000, int(args.packets / args.connections / 1.3 * 730 / 1.25))
    total = 0
    with open(args.out, "wb") as out:
        writer = Writer(out)
        live, started = [], 0
        while (live or started < args.connections) and writer.packets < args.packets:
            while len(live) < 64 and started < args.connections:
                live.append(connection_segments(rng, started, size))
                total += size + size // 4
                started += 1
            gen = live[rng.randrange(len(live))]
            try:
                emit(writer, next(gen))
            except StopIteration:
                live.remove(gen)
    print(writer.packets, started, total)


if __name__ == "__main__":
    main()
