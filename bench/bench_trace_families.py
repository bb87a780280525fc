"""trace() by address family: pcapflow against pcapkit on IPv4, IPv6 and mixed flows.

100,000 packets over 2,000 interleaved flows (each flow's packets spread over
the whole run, every fifth round of a flow ends in FIN), built once as
pcapflow Packets and as pcapkit Packets, then traced by both tracers in one
process with no output files (format 'null'). Each flow's two addresses are
shared by its packets, as a decoder's address cache hands them over
(``--fresh-addresses`` gives every packet its own objects instead).

    python bench/bench_trace_families.py [--packets N] [--flows N] [--repeat N]

Prints packets per second (median of the runs) and the ratio to pcapkit.
Timed: tracer construction, every trace(), submit().
"""
import argparse
import ipaddress
import logging
import statistics
import sys
import tempfile
import time
import warnings

from pcapkit.const.reg.linktype import LinkType
from pcapkit.foundation.traceflow.data.tcp import Packet as KitPacket
from pcapkit.foundation.traceflow.tcp import TCP as KitTCP

import pcapflow

FAMILIES = ("ipv4", "ipv6", "mixed")


def addresses(family, flow, fresh):
    """The (src, dst) of a flow; IPv6 for every flow, or for every other one in 'mixed'."""
    six = family == "ipv6" or (family == "mixed" and flow % 2 == 1)
    if six:
        pair = (f"2001:db8:{flow >> 8:x}:{flow & 0xff:x}::1", "2001:db8:ffff::80")
    else:
        pair = (f"10.{flow >> 16}.{(flow >> 8) & 0xff}.{flow & 0xff}", "192.0.2.80")
    if fresh:
        return pair  # made into objects per packet by fields()
    return tuple(ipaddress.ip_address(text) for text in pair)


def fields(family, packets, flows, fresh):
    frame = {"packet": b"\0" * 74,
             "frame_info": {"ts_sec": 1_700_000_000, "ts_usec": 0, "incl_len": 74, "orig_len": 74}}
    pairs = [addresses(family, flow, fresh) for flow in range(flows)]
    out = []
    for number in range(packets):
        flow, round_ = number % flows, number // flows
        src, dst = pairs[flow]
        if fresh:
            src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        out.append(dict(protocol=LinkType.ETHERNET, index=number + 1, frame=frame, syn=round_ == 0,
                        fin=round_ % 5 == 4, src=src, dst=dst, srcport=1024 + flow, dstport=80,
                        timestamp=1_700_000_000 + number / 1_000_000))
    return out


def run(tracer_class, packets, outdir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        tracer = tracer_class(outdir, "null")
        trace = tracer.trace
        for packet in packets:
            trace(packet)
        tracer.submit()
        return time.perf_counter() - start


def median_rate(tracer_class, packets, repeat, outdir):
    run(tracer_class, packets[:1000], outdir)  # first use: imports, caches
    return len(packets) / statistics.median(run(tracer_class, packets, outdir) for _ in range(repeat))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--flows", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=7, help="runs per pcapflow measurement (median)")
    parser.add_argument("--pcapkit-repeat", type=int, default=3, help="runs per pcapkit measurement (median)")
    parser.add_argument("--fresh-addresses", action="store_true", help="new address objects for every packet")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # pcapkit logs its 'null' format warning at every construction
    outdir = tempfile.mkdtemp(prefix="pcapflow-bench-")
    print(f"{args.packets} packets over {args.flows} interleaved flows, "
          f"{'fresh' if args.fresh_addresses else 'shared'} address objects; packets/s, median of "
          f"{args.repeat} (pcapflow) and {args.pcapkit_repeat} (pcapkit) runs")
    print(f"{'family':8} {'pcapkit':>10} {'pcapflow+Packet':>16} {'ratio':>7} {'pcapflow+kit':>13} {'ratio':>7}")
    for family in args.families:
        made = fields(family, args.packets, args.flows, args.fresh_addresses)
        ours = [pcapflow.Packet(**f) for f in made]
        theirs = [KitPacket(**f) for f in made]
        kit = median_rate(KitTCP, theirs, args.pcapkit_repeat, outdir)
        with_ours = median_rate(pcapflow.TCP, ours, args.repeat, outdir)
        with_theirs = median_rate(pcapflow.TCP, theirs, args.repeat, outdir)
        print(f"{family:8} {kit:10.0f} {with_ours:16.0f} {with_ours / kit:6.1f}x {with_theirs:13.0f} "
              f"{with_theirs / kit:6.1f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
