#!/usr/bin/env python
"""Follow TCP Stream: pcapflow against tcpflow, tshark and its own pcap split, in one run.

    python bench/bench_follow.py [--real CAPTURE] [--reordered CAPTURE] [--repeat 3] [--tshark-samples 3]

Inputs: a real capture (default: 1,000,000 packets recorded by
../shared/tools/make-real-capture.sh into bench/.cache/, as bench_capture.py
does) and a generated one with heavy reordering, retransmission and loss
(bench/make_reordered.py, 1,000,000 packets). On each, repeated alternately
(medians of --repeat runs), each in its own process:

  floor               bench/floor.c: libpcap copies every packet to one file
  split --payload     pcapflow split CAPTURE -o DIR --payload (one file per direction)
  tcpflow             tcpflow -r CAPTURE -o DIR (Debian's, one file per direction)
  pcap split          pcapflow CAPTURE -o DIR (one pcap file per flow)
  follow all          pcapflow.follow(): every conversation's records, in one process
  tshark, per stream  tshark -q -z follow,tcp,raw,N for --tshark-samples streams, one
                      process each (tshark's way to follow each stream), the median
                      times the number of streams: what following all streams costs

Prints a table (wall seconds, CPU seconds, peak RSS) and the ratios the issue
asks for, with the held-back peak that bounds follow's memory. pcapkit's
follow_tcp_stream is measured on a slice by bench/bench_follow_pcapkit.py."""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_capture import CACHE, Run, build_floor, plain_table, run_child, wait_for_quiet  # noqa: E402  pylint: disable=wrong-import-position


def recorded_capture(packets):
    path = os.path.join(CACHE, f"real-{packets}.pcap")
    if not os.path.exists(path):
        recorder = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "tools", "make-real-capture.sh"))
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([recorder, path + ".partial", str(packets)], check=True)
        os.replace(path + ".partial", path)
    return path


def reordered_capture(packets):
    path = os.path.join(CACHE, f"reordered-{packets}.pcap")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(HERE, "make_reordered.py"), path + ".partial", "--packets",
                        str(packets)], check=True, stdout=subprocess.DEVNULL)
        os.replace(path + ".partial", path)
    return path


FOLLOW_ALL = """
import sys, pcapflow
run = pcapflow.follow(sys.argv[1])
records = sum(len(c.records) for c in run)
print(run.stats["streams"], records, run.stats["peak_held_bytes"], run.stats["dropped_segments"])
"""


def commands(capture, out, floor):
    python = sys.executable
    return {
        "floor": [floor, capture, os.path.join(out, "floor.pcap")],
        "split --payload": [python, "-m", "pcapflow", "split", capture, "-o", os.path.join(out, "payload"),
                            "--payload"],
        "tcpflow": ["tcpflow", "-r", capture, "-o", os.path.join(out, "tcpflow")],
        "pcap split": [python, "-m", "pcapflow", capture, "-o", os.path.join(out, "pcap")],
        "follow all": [python, "-c", FOLLOW_ALL, capture],
    }


def clear(directory):
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def measure(capture, args, floor):
    runs = {}
    follow_line = None
    with tempfile.TemporaryDirectory(dir=args.workdir) as out:
        for _ in range(args.repeat):
            for name, cmd in commands(capture, out, floor).items():
                wait_for_quiet(10)
                run = run_child(cmd)
                clear(out)  # each tool starts with an empty output directory and memory to spare
                runs.setdefault(name, []).append(run)
                if name == "follow all":
                    follow_line = run.stdout.split()
    streams, records, peak_held, dropped = (int(x) for x in follow_line)
    rng = random.Random(1)
    samples = sorted(rng.sample(range(streams), min(args.tshark_samples, streams)))
    tshark = [run_child(["tshark", "-q", "-r", capture, "-z", f"follow,tcp,raw,{n}"]) for n in samples]
    per_stream = statistics.median(r.wall for r in tshark)
    runs["tshark, all streams (estimate)"] = [Run(per_stream * streams, statistics.median(r.cpu for r in tshark) * streams,
                                                  max(r.maxrss_kb or 0 for r in tshark))]
    return runs, {"streams": streams, "records": records, "peak_held": peak_held, "dropped": dropped,
                  "tshark_per_stream": per_stream, "samples": samples}


def report(name, capture, runs, info):
    wall = {k: statistics.median(r.wall for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r.cpu for r in v) for k, v in runs.items()}
    rss = {k: max((r.maxrss_kb or 0) for r in v) for k, v in runs.items()}
    size = os.path.getsize(capture)
    print(f"\n{name}: {capture} ({size / 2**20:,.0f} MiB, {info['streams']:,} streams, {info['records']:,} records)")
    rows = [[k, f"{wall[k]:.2f}", f"{cpu[k]:.2f}", f"{rss[k] / 1024:,.0f}", str(len(runs[k]))] for k in runs]
    print(plain_table(["tool", "wall s (median)", "CPU s", "peak RSS MiB", "runs"], rows))
    def ratio(a, b):
        return wall[a] / wall[b]
    print(f"tcpflow / split --payload:         {ratio('tcpflow', 'split --payload'):.2f}x  (target >= 2x)")
    print(f"split --payload / pcap split:      {ratio('split --payload', 'pcap split'):.2f}x  (target <= 2x)")
    print(f"split --payload / floor:           {ratio('split --payload', 'floor'):.2f}x")
    print(f"tshark all streams / follow all:   {ratio('tshark, all streams (estimate)', 'follow all'):,.0f}x  "
          f"(target >= 100x; tshark {info['tshark_per_stream']:.2f} s per stream, streams {info['samples']} timed)")
    print(f"held back at most: {info['peak_held'] / 2**10:,.0f} KiB over all conversations "
          f"({info['dropped']} segments dropped at a bound)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", help="a pcap capture (default: record 1,000,000 packets)")
    parser.add_argument("--reordered", help="a capture with reordering (default: bench/make_reordered.py)")
    parser.add_argument("--packets", type=int, default=1000000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tshark-samples", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where outputs go (default: the temporary directory; "
                                                        "/dev/shm keeps the disk out of the measurement)")
    parser.add_argument("--only", choices=("real", "reordered"), help="one input only")
    args = parser.parse_args(argv)
    floor = build_floor()
    inputs = [("real", args.real or (None if args.only == "reordered" else recorded_capture(args.packets))),
              ("reordered", args.reordered or (None if args.only == "real" else reordered_capture(args.packets)))]
    for name, capture in inputs:
        if args.only and name != args.only:
            continue
        runs, info = measure(capture, args, floor)
        report(name, capture, runs, info)


if __name__ == "__main__":
    main()
