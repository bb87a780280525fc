#!/usr/bin/env python
"""pcapng read by pcapflow's own block reader against pcap read by libpcap.

    python bench/bench_pcapng.py CAPTURE.pcap [--repeat 5] [--out-dir /dev/shm]

Converts CAPTURE.pcap to pcapng with editcap (tshark's package), then times
pcapflow.trace_file on each (median of --repeat runs, interleaved, each into a
fresh directory deleted outside the timed region), once writing no files
(reading and tracing only) and once writing pcap files. Run it with the
PYTHONPATH of two builds to compare them on the pcap path."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pcapflow


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("capture")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out-dir", default="/dev/shm")
    args = parser.parse_args()
    work = tempfile.mkdtemp(dir=args.out_dir)
    pcapng = os.path.join(work, "capture.pcapng")
    subprocess.run(["editcap", "-F", "pcapng", args.capture, pcapng], check=True)
    cases = [(name, path, fmt) for name, path in (("pcap", args.capture), ("pcapng", pcapng))
             for fmt in ("index", "pcap")]
    times = {case: [] for case in cases}
    frames = {}
    try:
        for _ in range(args.repeat):
            for case in cases:
                _, path, fmt = case
                out = os.path.join(work, "out")
                stats = {}
                start = time.perf_counter()
                pcapflow.trace_file(path, out, fmt, stats=stats)
                times[case].append(time.perf_counter() - start)
                frames[case] = stats["frames"]
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"pcapflow {pcapflow.__file__}  python {sys.version.split()[0]}  runs {args.repeat}")
    for (name, _, fmt), samples in times.items():
        median = statistics.median(samples)
        print(f"{name:7} {'no files' if fmt == 'index' else 'pcap files':10} {median:8.3f} s  "
              f"{frames[(name, _, fmt)] / median / 1e6:6.2f} Mframes/s")


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")
    main()
