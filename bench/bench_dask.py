"""pcapflow.dask against pcapflow.trace_files on one machine, over a rotated series.

Records (or reuses) a real capture of 1,000,000 packets (../shared/tools/make-real-capture.sh,
root; cached in bench/.cache/), cuts it with editcap into 8 files and times, each several times
(medians): pcapflow.trace_files on one machine, then pcapflow.dask.trace_files on a LocalCluster
of 1 and of 2 worker processes (one thread each), after one untimed run on each new cluster
(the workers' imports). Every dask result is checked against one machine's (Index equal, file
names equal). One cluster runs at a time (a second one idle in the same process took a tenth
of a core from the client's process and slowed the 2-worker runs by 10-20%): each worker
count's runs go in rounds of at most 3, on a fresh cluster each round, the two counts' rounds
alternating. Prints the ratios, the stitch step's cost (time on the client from the last
task's result to the end, the flows stitched and the bytes they copied) and the per-file and
per-stitched-flow costs that README.rst's estimate for a large cluster uses.

    python3 bench/bench_dask.py [--packets 1000000] [--files 8] [--runs 5] [--capture PATH] [--no-index]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import distributed  # noqa: E402  pylint: disable=wrong-import-position

import pcapflow  # noqa: E402  pylint: disable=wrong-import-position
import pcapflow.dask  # noqa: E402  pylint: disable=wrong-import-position

# a fresh cluster for every this many runs of a worker count
RUNS_PER_CLUSTER = 3
MAKE_CAPTURE = HERE.parents[1] / "shared" / "tools" / "make-real-capture.sh"


def capture_of(packets, given):
    if given:
        return Path(given)
    path = HERE / ".cache" / f"real-{packets}.pcap"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        subprocess.run([str(MAKE_CAPTURE), str(path), str(packets)], check=True)
    return path


def cut(capture, files, directory):
    frames = int(subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(capture)], check=True, capture_output=True,
                                text=True).stdout.split()[-1])
    per_file = -(-frames // files)
    subprocess.run(["editcap", "-c", str(per_file), str(capture), str(directory / "part.pcap")], check=True)
    return frames, sorted(str(p) for p in directory.glob("part_*"))


def timed(function, out):
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = function(out)
    return time.perf_counter() - started, result


def relative(index, out):
    return [(os.path.relpath(flow.fpout, out), flow.index, flow.label) for flow in index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--capture", help="a capture to use instead of recording one")
    parser.add_argument("--no-index", dest="index", action="store_false",
                        help="index=False (the CLI without --index): no Index is made on the client")
    parser.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the series and the flow files go (a tmpfs by default: the disk is not measured)")
    args = parser.parse_args()
    capture = capture_of(args.packets, args.capture)
    work = Path(tempfile.mkdtemp(prefix="bench-dask-", dir=args.workdir))
    try:
        frames, series = cut(capture, args.files, work)
        size = sum(os.path.getsize(p) for p in series)
        print(f"{capture}: {frames} frames, {size / 1e6:.1f} MB, cut into {len(series)} files; "
              f"{args.runs} runs each, medians")
        one_times = []
        for _ in range(args.runs):
            seconds, one = timed(lambda out: pcapflow.trace_files(series, out), work / "one")
            one_times.append(seconds)
        want = relative(one, work / "one")
        one_median = statistics.median(one_times)
        print(f"one machine, pcapflow.trace_files: {one_median:.3f} s ({len(one)} flows)")
        timer = StitchTimer()
        runs = {workers: ([], [], []) for workers in (1, 2)}
        while len(runs[2][0]) < args.runs:
            for workers, (times, stitches, stitch_times) in runs.items():
                with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                              dashboard_address=":0", silence_logs=40) as cluster, \
                        distributed.Client(cluster) as client:
                    # a first run untimed: the workers import pcapflow and its dependencies
                    pcapflow.dask.trace_files(series, work / "warm", client=client)
                    shutil.rmtree(work / "warm")
                    for _ in range(min(RUNS_PER_CLUSTER, args.runs - len(times))):
                        stats = {}
                        shutil.rmtree(work / "many", ignore_errors=True)
                        started = time.perf_counter()
                        tail, many = timer.run(lambda stats=stats, client=client: pcapflow.dask.trace_files(
                            series, work / "many", client=client, stats=stats, index=args.index))
                        times.append(time.perf_counter() - started)
                        if args.index:
                            assert relative(many, work / "many") == want, "the cluster's flows differ"
                        else:
                            assert sorted(os.listdir(work / "many")) == sorted(flow for flow, _frames, _label in want)
                        del many
                        stitches.append(stats)
                        stitch_times.append(tail)
        results = {}
        for workers, (times, stitches, stitch_times) in runs.items():
            results[workers] = (statistics.median(times), statistics.median(stitch_times), stitches[-1])
            print(f"  {workers} worker process{'es' if workers > 1 else ''}, each run: "
                  + " ".join(f"{t:.2f}" for t in times))
        for workers, (seconds, stitch, stats) in results.items():
            print(f"dask, {workers} worker process{'es' if workers > 1 else ''}: {seconds:.3f} s, "
                  f"{one_median / seconds:.2f}x one machine; after the last task's result {stitch:.3f} s "
                  f"({stats['stitched_flows']} flows stitched, {stats['stitched_bytes'] / 1e6:.1f} MB appended)")
        two_vs_one = results[1][0] / results[2][0]
        print(f"2 worker processes / 1 worker process: {two_vs_one:.2f}x")
        stitched = results[2][2]["stitched_flows"]
        per_flow = results[2][1] / max(stitched, 1)
        per_file = results[1][0] / len(series)
        print(f"per file (1 worker, {size / len(series) / 1e6:.1f} MB): {per_file:.3f} s; "
              f"stitch: {results[2][1] / len(one) * 1e6:.1f} us a flow ({len(one)} flows, 2 workers), "
              f"{per_flow * 1e3:.2f} ms a stitched flow if all of it were theirs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


class StitchTimer:
    """Times the stitch's tail: from the moment the client has the last task's result to
    the end of trace_files (the appends still running, the naming of contested labels,
    the Index). The walk over earlier results overlaps the tasks still running."""

    def __init__(self):
        self.last_result = None
        self._take = pcapflow.dask._Stitch._take  # pylint: disable=protected-access
        timer = self

        def take(stitch, *args):
            timer.last_result = time.perf_counter()
            return timer._take(stitch, *args)
        pcapflow.dask._Stitch._take = take  # pylint: disable=protected-access

    def run(self, function):
        ended = function()
        return time.perf_counter() - self.last_result, ended


if __name__ == "__main__":
    main()
