"""pcapkit.interface.misc.follow_tcp_stream against pcapflow.follow_tcp_stream and pcapflow.follow.

    python bench/bench_follow_pcapkit.py [CAPTURE] [--packets 2000] [--pcapkit-repeat 3] [--repeat 21]

Both run, in one process, on the same slice of a capture: its first --packets
frames (cut with editcap when the capture has more; default capture
../shared/captures/real/http_espn.pcapng, else examples/data/http_espn.pcapng).
Each run writes its flow files (format pcap) to a fresh directory under a
temporary directory (--tmpdir) and is timed from the call to the return, wall clock;
an untimed warm-up run of each comes first (imports). The report gives the
median (and minimum) of the runs and the ratio of the medians; pcapflow.follow
(every conversation followed as Wireshark does, no flow files) is timed on the
same slice next to them; then where
pcapflow's time goes: the same pipeline timed in stages (reading the frames as
Packets; + the tracer writing the flow files; + reading the TCP fields from
the frame bytes; + reassembly), medians of --repeat runs each.
"""
import argparse
import gc
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pcapflow  # noqa: E402  pylint: disable=wrong-import-position
from pcapflow._segment_fields import tcp_fields  # noqa: E402  pylint: disable=wrong-import-position
from pcapflow.reassembly import tcp_conversations  # noqa: E402  pylint: disable=wrong-import-position

DEFAULTS = [os.path.join(HERE, "..", "..", "shared", "captures", "real", "http_espn.pcapng"),
            os.path.join(HERE, "..", "examples", "data", "http_espn.pcapng")]


def slice_capture(path, packets, workdir):
    """The first `packets` frames of the capture (the capture itself when it has no more)."""
    if packets <= 0 or not shutil.which("editcap"):
        return path
    out = os.path.join(workdir, f"slice-{packets}" + os.path.splitext(path)[1])
    subprocess.run(["editcap", "-r", path, out, f"1-{packets}"], check=True)
    return out


def timed(function, repeat, workdir, tag):
    times = []
    result = None
    for run in range(repeat + 1):  # the first run warms up and is not counted
        out = os.path.join(workdir, f"{tag}-{run}")
        gc.collect()
        start = time.perf_counter()
        result = function(out)
        elapsed = time.perf_counter() - start
        if run:
            times.append(elapsed)
        shutil.rmtree(out, ignore_errors=True)
    return times, result


def stages(capture, workdir, repeat):
    """pcapflow.follow_tcp_stream's pipeline cut in stages, each timed to its end."""
    def read(out):  # pylint: disable=unused-argument
        return list(pcapflow.packets(capture))

    def trace(out):
        tracer = pcapflow.TCP(out, "pcap")
        frames = []
        for packet in pcapflow.packets(capture):
            tracer.dump(packet)
            frames.append(packet)
        flows = tracer.submit()
        tracer.close()
        return frames, flows

    def decode(out):
        frames, flows = trace(out)
        return {p.index: tcp_fields(p.protocol, p.frame["packet"]) for p in frames}, flows

    def everything(out):
        fields, flows = decode(out)
        return [tcp_conversations([(None, f[0], f[1], n, f[2], f[3], f[4]) for n in flow.index
                                   for f in (fields[n],) if f is not None]) for flow in flows]

    rows = []
    for name, function in (("read frames as Packets (pcapflow.packets)", read),
                           ("+ trace and write flow files (TCP.dump, submit, close)", trace),
                           ("+ TCP fields from frame bytes (Python)", decode),
                           ("+ reassembly (Python)", everything)):
        times, _ = timed(function, repeat, workdir, "stage")
        rows.append((name, statistics.median(times)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", nargs="?")
    parser.add_argument("--packets", type=int, default=2000, help="first N frames of the capture (0: all)")
    parser.add_argument("--pcapkit-repeat", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=21, help="pcapflow runs")
    parser.add_argument("--tmpdir", help="where the flow files go (default: the system's temporary directory; "
                                         "/dev/shm takes the disk out of the measurement)")
    args = parser.parse_args()
    capture = args.capture or next((p for p in DEFAULTS if os.path.exists(p)), None)
    if capture is None:
        parser.error("no capture given and none of the default ones found")
    logging.disable(logging.CRITICAL)  # pcapkit logs every frame it cannot parse to the end
    warnings.simplefilter("ignore")
    from pcapkit.interface.misc import follow_tcp_stream as pcapkit_follow  # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory(prefix="bench-follow-", dir=args.tmpdir) as workdir:
        sliced = slice_capture(os.path.abspath(capture), args.packets, workdir)
        frames = len(list(pcapflow.packets(sliced)))
        pk_times, pk_streams = timed(lambda out: pcapkit_follow(sliced, fout=out), args.pcapkit_repeat, workdir, "pk")
        pf_times, pf_streams = timed(lambda out: pcapflow.follow_tcp_stream(sliced, fout=out), args.repeat, workdir,
                                     "pf")
        ws_times, _ = timed(lambda out: list(pcapflow.follow(sliced)), args.repeat, workdir, "ws")
        pk, pf, ws = statistics.median(pk_times), statistics.median(pf_times), statistics.median(ws_times)
        conversations = sum(len(s.conversations) for s in pf_streams)
        same = sum(a.conversations == b.conversations for a, b in zip(pk_streams, pf_streams))
        print(f"capture: {capture}" + (f" (first {args.packets} frames)" if sliced != os.path.abspath(capture) else ""))
        print(f"TCP frames: {frames}, streams: {len(pf_streams)} (pcapkit {len(pk_streams)}), conversations: "
              f"{conversations}; streams with identical conversations: {same}/{len(pf_streams)}")
        print(f"pcapkit  follow_tcp_stream: median {pk * 1e3:10.2f} ms  min {min(pk_times) * 1e3:10.2f} ms  "
              f"({len(pk_times)} runs, {frames / pk:,.0f} TCP frames/s)")
        print(f"pcapflow follow_tcp_stream: median {pf * 1e3:10.2f} ms  min {min(pf_times) * 1e3:10.2f} ms  "
              f"({len(pf_times)} runs, {frames / pf:,.0f} TCP frames/s)")
        print(f"ratio (medians): {pk / pf:,.0f}x   (minimums: {min(pk_times) / min(pf_times):,.0f}x)")
        print(f"pcapflow follow (all streams): median {ws * 1e3:7.2f} ms  min {min(ws_times) * 1e3:7.2f} ms  "
              f"({len(ws_times)} runs): {pk / ws:,.0f}x pcapkit's follow_tcp_stream (medians)")
        print("where pcapflow's time goes (medians, cumulative):")
        previous = 0.0
        for name, elapsed in stages(sliced, workdir, args.repeat):
            print(f"  {name:58s} {elapsed * 1e3:8.2f} ms  (+{(elapsed - previous) * 1e3:.2f})")
            previous = elapsed


if __name__ == "__main__":
    main()
