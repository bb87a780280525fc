"""Trace the TCP flows of a capture: pcapkit reads the frames, pcapflow traces them.

Usage: python examples/trace_with_pcapkit.py CAPTURE OUTPUT_DIR [FORMAT]
"""
import os
import sys
import time
import warnings

import pcapkit

import pcapflow


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__.strip())
    capture, output = argv[1], argv[2]
    fmt = argv[3] if len(argv) == 4 else "pcap"
    pcapflow.use_in_pcapkit()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pcapkit warns about every unknown pcapng option
        extraction = pcapkit.extract(fin=capture, nofile=True, trace=True, tcp=True,
                                     trace_fout=output, trace_format=fmt, store=False)
    flows = extraction.trace.tcp
    for flow in flows:
        print(f"{len(flow.index):6d} frames  {flow.label}")
    print(f"{len(flows)} flows from {capture} in {time.perf_counter() - started:.2f}s; "
          f"files in {os.path.abspath(output)}/")


if __name__ == "__main__":
    main(sys.argv)
