#!/usr/bin/env python
"""pcapflow against pcapkit's TCP flow tracer, side by side in one process.

    python bench/bench_trace.py [capture.pcap] [options]

Decodes (once, untimed) the first 100,000 TCP packets of a real capture with
dpkt, builds pcapflow.Packet and pcapkit Packet objects from the same data,
then times, for each of
    trace() with no file output   (format 'null': both libraries write nothing)
    dump() to pcap
    dump() to json
the three combinations pcapkit + pcapkit Packets, pcapflow + pcapkit Packets,
pcapflow + pcapflow Packets, and prints packets/s and the rate ratios. Then it
measures the memory held per open flow in fresh child processes.

Each timed region is: construct the tracer, feed every packet, submit(), and
(pcapflow only) close(); so every frame is on disk when the clock stops.
See bench/README.md for what is measured and the caveats.
"""
import argparse
import gc
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_packets  # noqa: E402  pylint: disable=wrong-import-position

ROWS = (  # (row label, format, method)
    ("trace, no output", "null", "trace"),
    ("dump to pcap", "pcap", "dump"),
    ("dump to json", "json", "dump"),
)
TARGETS = {  # row format -> (target with pcapkit Packets, target with pcapflow Packets); None: no target
    "null": (15.0, 30.0),
    "pcap": (100.0, 100.0),
    "json": (None, None),
}


def quiet():
    """Both libraries warn (pcapkit also logs) on the 'null' format: silence that."""
    warnings.simplefilter("ignore")
    logging.getLogger("pcapkit").setLevel(logging.ERROR)


def load_libraries():
    quiet()
    import pcapflow  # pylint: disable=import-outside-toplevel
    from pcapkit.foundation.traceflow.data.tcp import Packet as KitPacket  # pylint: disable=import-outside-toplevel
    from pcapkit.foundation.traceflow.tcp import TCP as KitTCP  # pylint: disable=import-outside-toplevel
    return pcapflow, KitTCP, KitPacket


def rss_bytes():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def git_revision():
    try:
        out = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, check=True).stdout.strip()
        return out or "?"
    except (OSError, subprocess.CalledProcessError):
        return "?"


# --------------------------------------------------------------------------- throughput

class Runner:
    """Times one tracer over a packet list; each run in a fresh output directory."""

    def __init__(self, outroot):
        self.outroot = outroot
        self.count = 0

    def fresh_dir(self):
        self.count += 1
        return os.path.join(self.outroot, f"run-{self.count}")

    def run(self, tracer_class, packets, fmt, method, keep=False):
        """Seconds for: construct, feed all packets, submit(), close(). Returns
        (seconds, summary, output directory or None). The output directory is
        removed (untimed) unless keep is true."""
        fout = self.fresh_dir()
        gc.collect()
        start = time.perf_counter()
        tracer = tracer_class(fout=fout, format=fmt)
        feed = getattr(tracer, method)
        for packet in packets:
            feed(packet)
        flows = tracer.submit()
        close = getattr(tracer, "close", None)  # pcapkit's tracer has none
        if close is not None:
            close()
        seconds = time.perf_counter() - start
        summary = (len(flows), sum(len(flow.index) for flow in flows))
        if summary[1] != len(packets):
            raise RuntimeError(f"{tracer_class.__module__}: {summary[1]} frames in submit(), fed {len(packets)}")
        labels = [(flow.label, tuple(flow.index)) for flow in flows]
        del tracer, flows, feed
        if keep:
            return seconds, summary, labels, fout
        shutil.rmtree(fout, ignore_errors=True)
        return seconds, summary, labels, None


def tree_digest(path):
    """name -> sha1 of every file under path (None for a missing directory)."""
    if path is None or not os.path.isdir(path):
        return {}
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as file:
            out[name] = hashlib.sha1(file.read()).hexdigest()
    return out


def measure(args, pcapflow, kit_tcp, flow_packets, kit_packets):
    """Runs every (row, variant), repeats interleaved so load drift hits all alike.

    Returns {fmt: {variant: dict(n, rates, flows)}} and the same-prefix checks."""
    outroot = tempfile.mkdtemp(prefix="pcapflow-bench-", dir=args.outdir)
    runner = Runner(outroot)
    results = {}
    checks = {}
    try:
        for label, fmt, method in ROWS:
            kit_n = args.pcapkit_trace_packets if fmt == "null" else args.pcapkit_packets
            kit_n = min(kit_n, len(kit_packets))
            kit_repeat, flow_repeat = args.pcapkit_repeat, args.repeat
            if fmt == "null":  # cheap and the noisiest relative to its length: more runs
                kit_repeat, flow_repeat = max(kit_repeat, args.trace_repeat), max(flow_repeat, args.trace_repeat)
            variants = [  # name, tracer class, packets, repeats
                ("pcapkit", kit_tcp, kit_packets[:kit_n], kit_repeat),
                ("pcapflow+kit", pcapflow.TCP, kit_packets, flow_repeat),
                ("pcapflow+flow", pcapflow.TCP, flow_packets, flow_repeat),
            ]
            row = {name: {"n": len(pkts), "seconds": [], "flows": None} for name, _, pkts, _ in variants}
            for name, klass, pkts, _ in variants:  # untimed warm-up: first-use imports, caches
                runner.run(klass, pkts[:args.warmup], fmt, method)
            kit_output = None
            for rep in range(max(v[3] for v in variants)):
                # rotate the order each round so no column always runs right after the same one
                for name, klass, pkts, repeats in variants[rep % 3:] + variants[:rep % 3]:
                    if rep >= repeats:
                        continue
                    # keep pcapkit's last output for the byte-for-byte check below
                    keep = name == "pcapkit" and rep == repeats - 1
                    seconds, summary, labels, kept = runner.run(klass, pkts, fmt, method, keep=keep)
                    row[name]["seconds"].append(seconds)
                    row[name]["flows"] = summary[0]
                    if keep:
                        kit_output = (labels, tree_digest(kept), kept)
                    print(f"  {label:<17} {name:<14} run {rep + 1}: {len(pkts):>7,} packets "
                          f"{seconds:8.3f} s  {len(pkts) / seconds:>12,.0f} pkt/s", file=sys.stderr, flush=True)
            # same prefix through pcapflow (pcapflow Packets): output must equal pcapkit's
            prefix = flow_packets[:kit_n]
            prefix_seconds = []
            prefix_labels = prefix_digest = None
            for rep in range(flow_repeat):
                keep = rep == flow_repeat - 1
                seconds, _, labels, kept = runner.run(pcapflow.TCP, prefix, fmt, method, keep=keep)
                prefix_seconds.append(seconds)
                if keep:
                    prefix_labels, prefix_digest = labels, tree_digest(kept)
                    shutil.rmtree(kept, ignore_errors=True)
            kit_labels, kit_digest, kit_dir = kit_output
            shutil.rmtree(kit_dir, ignore_errors=True)
            same_index = kit_labels == prefix_labels
            same_files = kit_digest == prefix_digest
            checks[fmt] = {
                "n": kit_n,
                "rate": kit_n / statistics.median(prefix_seconds),
                "same_index": same_index,
                "same_files": same_files,
                "files": len(kit_digest),
            }
            for name in row:
                row[name]["rate"] = row[name]["n"] / statistics.median(row[name]["seconds"])
            results[fmt] = row
    finally:
        shutil.rmtree(outroot, ignore_errors=True)
    return results, checks


# --------------------------------------------------------------------------- memory

def memory_worker(library, fmt, flows, outdir):
    """In a fresh process: open `flows` distinct flows (no FIN) in one tracer
    with trace(), the tracer made with format `fmt` ('null': no output; 'pcap':
    pcapflow queues the 24-byte file header per flow, pcapkit creates the file
    and keeps a PCAPIO dumper per flow); print JSON with RSS before/after.
    Exits without flushing the tracer (its pending buffers would otherwise
    become `flows` files)."""
    pcapflow, kit_tcp, kit_packet = load_libraries()
    if library == "pcapflow":
        tracer_class, packet_class = pcapflow.TCP, pcapflow.Packet
    else:
        tracer_class, packet_class = kit_tcp, kit_packet
    method = "trace"
    synthetic = make_packets.synthetic_fields
    root = tempfile.mkdtemp(prefix="pcapflow-mem-", dir=outdir)
    # warm up: first use imports modules and fills caches; none of that is per flow
    warm = tracer_class(fout=os.path.join(root, "warm"), format=fmt)
    for i in range(200):
        getattr(warm, method)(packet_class(**synthetic(4_000_000_000 - i)))
    warm.submit()
    del warm
    gc.collect()
    before = rss_bytes()
    tracer = tracer_class(fout=os.path.join(root, "flows"), format=fmt)
    feed = getattr(tracer, method)
    start = time.perf_counter()
    for i in range(flows):
        feed(packet_class(**synthetic(i)))
    seconds = time.perf_counter() - start
    gc.collect()
    after = rss_bytes()
    open_flows = getattr(tracer, "open_flows", None)
    if open_flows is None:
        open_flows = len(tracer._buffer)  # pylint: disable=protected-access
    print(json.dumps({"before": before, "after": after, "flows": flows, "open_flows": open_flows,
                      "seconds": seconds, "root": root}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # pylint: disable=protected-access


def measure_memory(args):
    """Each case in a child process, so the heap starts clean."""
    cases = [
        ("pcapflow", "null", args.mem_flows),
        ("pcapflow", "pcap", args.mem_flows_pcap),
        ("pcapkit", "null", args.pcapkit_mem_flows),
        ("pcapkit", "pcap", args.pcapkit_mem_flows_pcap),
    ]
    out = []
    for library, fmt, flows in cases:
        if flows <= 0:
            continue
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-worker", library, fmt,
                               str(flows), "--outdir", args.outdir], capture_output=True, text=True, check=False)
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or not line.startswith("{"):
            print(f"memory worker {library}/{fmt} failed:\n{proc.stderr}", file=sys.stderr)
            continue
        data = json.loads(line)
        shutil.rmtree(data["root"], ignore_errors=True)
        data.update(library=library, fmt=fmt, per_flow=(data["after"] - data["before"]) / flows)
        print(f"  memory {library:<8} {fmt:<4} {flows:>9,} flows: {data['per_flow']:8.1f} B/flow "
              f"({data['seconds']:.1f} s)", file=sys.stderr, flush=True)
        out.append(data)
    return out


# --------------------------------------------------------------------------- report

def fmt_rate(rate):
    return f"{rate:,.0f}"


def fmt_ratio(ratio, target):
    text = f"{ratio:.1f}x"
    if target is not None:
        text += f" ({'ok' if ratio >= target else 'MISS'} >={target:g}x)"
    return text


def table_rows(results):
    header = ["", "pcapkit pkt/s", "pcapflow+pcapkit Packets pkt/s", "ratio",
              "pcapflow+pcapflow Packets pkt/s", "ratio"]
    rows = []
    for label, fmt, _ in ROWS:
        if fmt not in results:
            continue
        r = results[fmt]
        kit = r["pcapkit"]["rate"]
        t_kit, t_flow = TARGETS[fmt]
        rows.append([
            label,
            fmt_rate(kit),
            fmt_rate(r["pcapflow+kit"]["rate"]),
            fmt_ratio(r["pcapflow+kit"]["rate"] / kit, t_kit),
            fmt_rate(r["pcapflow+flow"]["rate"]),
            fmt_ratio(r["pcapflow+flow"]["rate"] / kit, t_flow),
        ])
    return header, rows


def plain_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def rst_table(header, rows):
    header = ["operation"] + header[1:]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), rule]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    lines.append(rule)
    return "\n".join(lines)


def memory_lines(memory, struct_bytes):
    lines = []
    what = {
        ("pcapflow", "null"): "pcapflow, trace() no output",
        ("pcapflow", "pcap"): "pcapflow, trace(), pcap out",
        ("pcapkit", "null"): "pcapkit,  trace() no output",
        ("pcapkit", "pcap"): "pcapkit,  trace(), pcap out",
    }
    for data in memory:
        note = ""
        if data["open_flows"] != data["flows"]:
            note = f"  (!! {data['open_flows']:,} open)"
        lines.append(f"{what[(data['library'], data['fmt'])]}: {data['per_flow']:,.0f} bytes per open flow "
                     f"({data['flows']:,} flows, RSS +{(data['after'] - data['before']) / 2**20:,.1f} MiB){note}")
    lines.append(f"pcapflow C flow struct: {struct_bytes} bytes (pcapflow._core.flow_struct_bytes())")
    return lines


def print_report(args, info, results, checks, memory, struct_bytes):
    print()
    print("pcapflow vs pcapkit TCP flow tracer")
    print(f"  capture   {info['capture']}: {info['frames']:,} frames read, {info['packets']:,} TCP packets, "
          f"{info['flows']:,} distinct 4-tuples, {info['fins']:,} FIN, {info['v6']:,} IPv6")
    print(f"  machine   {info['cpu']}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"pcapflow {info['pcapflow']} ({info['rev']}), pypcapkit {info['pcapkit']}")
    print(f"  load avg  before {info['load_before'][0]:.2f}  after {info['load_after'][0]:.2f} "
          "(1 min; anything near the CPU count means the numbers are noisy)")
    print(f"  output    {args.outdir} (fresh directory per run, removed untimed); "
          f"gc.freeze() of the input: {'no' if args.no_gc_freeze else 'yes'}")
    if results:
        counts = []
        for label, fmt, _ in ROWS:
            if fmt in results:
                r = results[fmt]
                counts.append(f"{label}: pcapkit {r['pcapkit']['n']:,} packets ({r['pcapkit']['flows']:,} flows) "
                              f"x{len(r['pcapkit']['seconds'])}, pcapflow {r['pcapflow+flow']['n']:,} packets "
                              f"({r['pcapflow+flow']['flows']:,} flows) x{len(r['pcapflow+flow']['seconds'])}")
        print("  counts    " + "\n            ".join(counts))
        print("  timed     tracer construction + every packet + submit() + close(); median of the runs;")
        print("            ratios are rate ratios (packets/s), pcapflow's rate over pcapkit's")
        print()
        header, rows = table_rows(results)
        print(plain_table(header, rows))
        print("run-to-run spread (slowest/fastest run): " + "; ".join(
            f"{label}: " + " ".join(f"{max(results[fmt][v]['seconds']) / min(results[fmt][v]['seconds']):.2f}"
                                    for v in ("pcapkit", "pcapflow+kit", "pcapflow+flow"))
            for label, fmt, _ in ROWS if fmt in results))
        print()
        print("Same prefix through pcapflow (pcapflow Packets), output compared with pcapkit's:")
        for label, fmt, _ in ROWS:
            if fmt in checks:
                c = checks[fmt]
                kit = results[fmt]["pcapkit"]["rate"]
                files = f", {c['files']:,} files byte-identical: {c['same_files']}" if fmt != "null" else ""
                print(f"  {label:<17} first {c['n']:,} packets: {fmt_rate(c['rate'])} pkt/s = "
                      f"{c['rate'] / kit:.1f}x pcapkit; same flows/index: {c['same_index']}{files}")
    if memory or struct_bytes:
        print()
        print("Memory per open flow (RSS growth in a fresh process / flows opened with trace(), no FIN;")
        print("pcap out: the tracer was made with format='pcap', so each flow also has its output pending/open):")
        for line in memory_lines(memory, struct_bytes):
            print("  " + line)
    if results:
        print()
        print("reStructuredText:")
        print()
        print(rst_table(*table_rows(results)))
        if memory:
            print()
            for line in memory_lines(memory, struct_bytes):
                print(f"- {line.strip()}")


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("capture", nargs="?", help="Ethernet pcap file; default: record one into bench/.cache/")
    parser.add_argument("--packets", type=int, default=100_000, help="TCP packets to decode and feed pcapflow")
    parser.add_argument("--pcapkit-packets", type=int, default=20_000,
                        help="prefix fed to pcapkit for dump() (pcapkit is slow)")
    parser.add_argument("--pcapkit-trace-packets", type=int, default=100_000, help="prefix fed to pcapkit for trace()")
    parser.add_argument("--repeat", type=int, default=3, help="runs per pcapflow measurement (median reported)")
    parser.add_argument("--pcapkit-repeat", type=int, default=3, help="runs per pcapkit measurement")
    parser.add_argument("--trace-repeat", type=int, default=7,
                        help="at least this many runs of every column in the (cheap) trace row")
    parser.add_argument("--warmup", type=int, default=1000,
                        help="packets of an untimed warm-up run per variant before each row")
    parser.add_argument("--outdir", default="/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
                        help="where output directories are made (tmpfs by default; ext4 after mass deletion "
                             "is slow to create files in)")
    parser.add_argument("--only", choices=[fmt for _, fmt, _ in ROWS], action="append",
                        help="measure only this row (repeatable)")
    parser.add_argument("--mem-flows", type=int, default=1_000_000, help="flows for pcapflow memory, no output")
    parser.add_argument("--mem-flows-pcap", type=int, default=1_000_000, help="flows for pcapflow memory, pcap")
    parser.add_argument("--pcapkit-mem-flows", type=int, default=100_000, help="flows for pcapkit memory, no output")
    parser.add_argument("--pcapkit-mem-flows-pcap", type=int, default=10_000,
                        help="flows for pcapkit memory, pcap (it creates a file per flow: slow)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput measurement")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the decoded input in the collected generations (gc then traverses it)")
    parser.add_argument("--memory-worker", nargs=3, metavar=("LIB", "FMT", "FLOWS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        library, fmt, flows = args.memory_worker
        memory_worker(library, fmt, int(flows), args.outdir)
        return
    os.makedirs(args.outdir, exist_ok=True)
    pcapflow, kit_tcp, kit_packet = load_libraries()
    import importlib.metadata as metadata  # pylint: disable=import-outside-toplevel
    info = {
        "cpu": make_packets.cpu_model(), "rev": git_revision(),
        "pcapflow": getattr(pcapflow, "__version__", "?"), "pcapkit": metadata.version("pypcapkit"),
        "load_before": load_average(),
    }
    results = checks = None
    if not args.no_throughput:
        capture = make_packets.ensure_capture(args.capture, args.packets)
        print(f"decoding {capture} ...", file=sys.stderr, flush=True)
        fields, frames = make_packets.decode(capture, args.packets)
        if len(fields) < args.packets:
            print(f"warning: only {len(fields):,} TCP packets in {capture}", file=sys.stderr)
        info.update(capture=capture, frames=frames, packets=len(fields),
                    flows=len({(f["src"], f["srcport"], f["dst"], f["dstport"]) for f in fields}),
                    fins=sum(f["fin"] for f in fields), v6=sum(f["src"].version == 6 for f in fields))
        flow_packets = make_packets.build(fields, pcapflow.Packet)
        kit_packets = make_packets.build(fields, kit_packet)
        del fields
        gc.collect()
        if not args.no_gc_freeze:
            gc.freeze()  # the input list is the harness's, not the tracer's: keep gc from re-traversing it
        if args.only:
            global ROWS  # pylint: disable=global-statement
            ROWS = tuple(row for row in ROWS if row[1] in args.only)
        results, checks = measure(args, pcapflow, kit_tcp, flow_packets, kit_packets)
        del flow_packets, kit_packets
        gc.unfreeze()
        gc.collect()
    memory = [] if args.no_memory else measure_memory(args)
    info["load_after"] = load_average()
    info.setdefault("capture", args.capture or "-")
    for key in ("frames", "packets", "flows", "fins", "v6"):
        info.setdefault(key, 0)
    print_report(args, info, results or {}, checks or {}, memory, pcapflow._core.flow_struct_bytes())  # pylint: disable=protected-access


if __name__ == "__main__":
    main()
