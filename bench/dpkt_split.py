#!/usr/bin/env python
"""Split a capture into one pcap file per TCP flow with dpkt: the same job as
`pcapflow CAPTURE -o DIR`, written the way a competent dpkt user would.

    python bench/dpkt_split.py CAPTURE -o DIR [--count N] [--max-buffer-mb MB]

Rules (pcapkit's, which pcapflow follows): a flow is one direction of a TCP
connection, keyed (src, sport, dst, dport); the first packet of a key opens a
flow labelled "{src}_{sport}-{dst}_{dport}-{timestamp}"; every TCP packet is
appended to its flow; a packet with FIN set is appended and then closes the
flow (the next packet with that key opens a new one). IPv4 fragments are
skipped. Link types: Ethernet (VLAN tags included), Linux SLL, raw IP.
Each file is a microsecond pcap file in this machine's byte order with the
capture's link type and snaplen 262144, as pcapflow (and pcapkit) write them,
so the output is pcapflow's byte for byte.

Output strategy: each flow's packets are kept in memory and written in one go,
through dpkt.pcap.Writer, when the flow closes (FIN) or at the end of the
capture -- one open/write/close per flow, no descriptor juggling. Memory is
bounded by --max-buffer-mb: when the buffered packets pass it, every flow's
buffer is written out (the first write creates the file, later ones append),
so an endless capture with long-lived flows cannot exhaust memory. Prints a
summary line on stderr.
"""
import argparse
import io
import os
import socket
import sys

import dpkt

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (12, 14, 101)  # DLT_RAW on the various platforms, LINKTYPE_RAW
LINKTYPE_LINUX_SLL = 113
SNAPLEN = 262144  # what pcapkit (and so pcapflow) writes in every flow file's header, whatever the input's


class AppendWriter(dpkt.pcap.Writer):
    """dpkt's Writer for a file that already has its pcap header: writes only records."""

    def __init__(self, fileobj, snaplen, linktype):
        dpkt.pcap.Writer.__init__(self, io.BytesIO(), snaplen=snaplen, linktype=linktype)  # header goes nowhere
        self._Writer__f = fileobj  # pylint: disable=attribute-defined-outside-init


class Splitter:
    def __init__(self, outdir, snaplen, linktype, max_buffer):
        self.outdir = outdir
        self.snaplen = snaplen
        self.linktype = linktype
        self.max_buffer = max_buffer
        self.open = {}  # key -> [path, packets [(ts, frame)], file exists]
        self.buffered = 0
        self.flows = 0
        self.files = 0

    def add(self, key, ts, frame, fin, src, sport, dst, dport, ipv6):
        flow = self.open.get(key)
        if flow is None:
            src_text = socket.inet_ntop(socket.AF_INET6 if ipv6 else socket.AF_INET, src)
            dst_text = socket.inet_ntop(socket.AF_INET6 if ipv6 else socket.AF_INET, dst)
            label = f"{src_text}_{sport}-{dst_text}_{dport}-{ts}"
            if ipv6:
                label = label.replace(":", ".")
            flow = self.open[key] = [os.path.join(self.outdir, label + ".pcap"), [], False]
            self.flows += 1
        flow[1].append((ts, frame))
        self.buffered += len(frame) + 16
        if fin:
            del self.open[key]
            self.write(flow)
        elif self.buffered > self.max_buffer:
            self.write_all()

    def write(self, flow):
        path, packets, exists = flow
        if exists:
            with open(path, "ab") as file:
                AppendWriter(file, self.snaplen, self.linktype).writepkts(packets)
        else:
            with open(path, "wb") as file:
                dpkt.pcap.Writer(file, snaplen=self.snaplen, linktype=self.linktype).writepkts(packets)
            flow[2] = True
            self.files += 1
        self.buffered -= sum(len(frame) + 16 for _, frame in packets)
        flow[1] = []

    def write_all(self):
        for flow in self.open.values():
            if flow[1] or not flow[2]:
                self.write(flow)


def ip_layer(linktype):
    """A function frame bytes -> the dpkt IP/IP6 object (or None) for this link type."""
    if linktype == LINKTYPE_ETHERNET:
        return lambda frame: dpkt.ethernet.Ethernet(frame).data
    if linktype == LINKTYPE_LINUX_SLL:
        return lambda frame: dpkt.sll.SLL(frame).data
    if linktype in LINKTYPE_RAW:
        def raw(frame):
            version = frame[0] >> 4 if frame else 0
            return dpkt.ip.IP(frame) if version == 4 else dpkt.ip6.IP6(frame) if version == 6 else None
        return raw
    sys.exit(f"dpkt_split: link type {linktype} not supported")


def split(path, outdir, count=None, max_buffer=256 << 20):
    os.makedirs(outdir, exist_ok=True)
    frames = tcp_frames = 0
    with open(path, "rb") as capture:
        reader = dpkt.pcap.UniversalReader(capture)
        linktype = reader.datalink()
        decode = ip_layer(linktype)
        splitter = Splitter(outdir, SNAPLEN, linktype, max_buffer)
        IP, IP6, TCP = dpkt.ip.IP, dpkt.ip6.IP6, dpkt.tcp.TCP  # pylint: disable=invalid-name
        FRAGMENT = dpkt.ip.IP_MF | dpkt.ip.IP_OFFMASK  # pylint: disable=invalid-name
        TH_FIN = dpkt.tcp.TH_FIN  # pylint: disable=invalid-name
        for ts, frame in reader:
            frames += 1
            if count is not None and frames > count:
                frames -= 1
                break
            try:
                ip = decode(frame)
            except (dpkt.UnpackError, IndexError, ValueError):  # truncated or malformed frame
                continue
            if isinstance(ip, IP):
                if ip._flags_offset & FRAGMENT:  # pylint: disable=protected-access
                    continue
                ipv6 = False
            elif isinstance(ip, IP6):
                ipv6 = True
            else:
                continue
            tcp = ip.data
            if not isinstance(tcp, TCP):
                continue
            tcp_frames += 1
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            splitter.add(key, ts, frame, tcp.flags & TH_FIN, ip.src, tcp.sport, ip.dst, tcp.dport, ipv6)
        splitter.write_all()
    return {"frames": frames, "tcp_frames": tcp_frames, "flows": splitter.flows, "files": splitter.files}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", help="pcap or pcapng file")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the flow files")
    parser.add_argument("--count", type=int, help="stop after this many frames (a prefix of the capture)")
    parser.add_argument("--max-buffer-mb", type=float, default=256,
                        help="write every flow's buffered packets out when they pass this many MiB (256)")
    args = parser.parse_args(argv)
    result = split(args.capture, args.output, args.count, int(args.max_buffer_mb * (1 << 20)))
    print(f"dpkt_split: {result['frames']} packets, {result['tcp_frames']} TCP packets, "
          f"{result['flows']} flows, {result['files']} files in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
