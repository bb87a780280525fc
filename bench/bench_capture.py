#!/usr/bin/env python
"""The whole capture pipeline: pcapflow against the floor, dpkt and pcapkit.

    python bench/bench_capture.py [--real PATH] [--many PATH] [--repeat 3]
                                  [--out-dir /dev/shm] [options]

Two captures:
  real  at least 1,000,000 packets recorded by ../shared/tools/make-real-capture.sh
        (nginx + wrk over loopback); recorded into bench/.cache/ unless --real
        is given, and reused from there next time (needs root the first time)
  many  100,000 flows open at once, written by bench/make_many_flows.py into
        bench/.cache/ unless --many is given

For each capture, wall-clock time (median of --repeat runs; the runs of all
tools interleaved, each run into a fresh output directory that is deleted
outside the timed region) of
  floor             bench/floor.c: libpcap reads every packet, writes all to one pcap file
  create files      bench/floor.c --create N: only create N small files, N = flow files
                    pcapflow writes (not a floor of the job, the part of it no splitter avoids)
  pcapflow          pcapflow.trace_file(capture, dir, 'pcap') in this process
  pcapflow CLI      `pcapflow CAPTURE -o DIR` in a child process
  dpkt              bench/dpkt_split.py in a child process
  pcapkit           pcapkit.extract(trace=True, tcp=True, trace_format='pcap') on the
                    first --pcapkit-packets packets, once, in a child process
then packets/s, the ratios the issue sets targets for, and on the many-flow capture
the cost per flow and the peak memory of a child process running trace_file.
Tables are printed plain and as reStructuredText. See bench/CAPTURE.md.
"""
import argparse
import gc
import hashlib
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_packets  # noqa: E402  pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
RECORDER = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "tools", "make-real-capture.sh"))
TARGETS = {  # on the real capture: (ratio name, target, higher is better)
    "floor": 1.5,     # pcapflow time / floor time <= 1.5
    "pcapkit": 500.0,  # pcapflow rate / pcapkit rate >= 500
    "dpkt": 8.0,      # pcapflow rate / dpkt rate >= 8
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# VmHWM, not getrusage(): a child's ru_maxrss starts at its parent's RSS (Linux carries the
# high-water mark of the forked address space across execve), this process's included.
MEMORY_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[3])  # the pcapflow the benchmark itself imported, not one in the working directory
def hwm_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
import pcapflow
before = hwm_kb()
start = time.perf_counter()
budget = {"buffer_bytes": int(sys.argv[4]) << 20} if len(sys.argv) > 4 else {}
flows = pcapflow.trace_file(sys.argv[1], sys.argv[2], "pcap", **budget)
seconds = time.perf_counter() - start
print(json.dumps({"baseline_kb": before, "flows": len(flows), "seconds": seconds, "peak_kb": hwm_kb()}))
"""

PCAPKIT_CHILD = """
import json, logging, sys, time, warnings
warnings.simplefilter("ignore")
import pcapkit
logging.getLogger("pcapkit").setLevel(logging.CRITICAL)
start, cpu = time.perf_counter(), time.process_time()
extractor = pcapkit.extract(fin=sys.argv[1], nofile=True, trace=True, tcp=True, trace_fout=sys.argv[2],
                            trace_format="pcap", store=False)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "flows": len(extractor.trace.tcp)}))
"""


# --------------------------------------------------------------------------- environment

def busy_seconds():
    """CPU-seconds every process on the machine has spent busy so far (from /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as file:
            fields = [int(x) for x in file.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def wait_for_quiet(max_seconds, threshold=0.3):
    """Waits (up to max_seconds) for a second in which the rest of the machine keeps fewer than
    threshold CPUs busy; returns the load seen last (CPUs), or None if /proc/stat is unreadable."""
    deadline = time.monotonic() + max_seconds
    load = None
    while True:
        before, started = busy_seconds(), time.monotonic()
        if before is None:
            return None
        time.sleep(1.0)
        load = (busy_seconds() - before) / (time.monotonic() - started)
        if load < threshold or time.monotonic() >= deadline:
            return load


def core_module():
    """The path of the pcapflow C extension in use, and whether it was built with a sanitizer."""
    from pcapflow import _core  # pylint: disable=import-outside-toplevel
    with open(_core.__file__, "rb") as file:
        data = file.read()
    sanitized = b"__asan_init" in data or b"__ubsan_handle" in data
    return _core.__file__, sanitized


def filesystem(path):
    try:
        out = subprocess.run(["df", "--output=fstype", path], capture_output=True, text=True, check=True).stdout
        return out.split()[-1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def git_revision():
    try:
        return subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True).stdout.strip() or "?"
    except (OSError, subprocess.CalledProcessError):
        return "?"


def libpcap_version():
    try:
        import ctypes  # pylint: disable=import-outside-toplevel
        lib = ctypes.CDLL("libpcap.so.0.8")
        lib.pcap_lib_version.restype = ctypes.c_char_p
        return lib.pcap_lib_version().decode()
    except (OSError, AttributeError):
        return "?"


# --------------------------------------------------------------------------- inputs

def build_floor():
    """Compiles bench/floor.c into bench/.cache/ (once per version of the source); returns the binary."""
    source = os.path.join(HERE, "floor.c")
    with open(source, "rb") as file:
        digest = hashlib.sha1(file.read()).hexdigest()[:12]
    binary = os.path.join(CACHE, f"floor-{digest}")
    if not os.path.exists(binary):
        os.makedirs(CACHE, exist_ok=True)
        flags = ["-lpcap"]
        if shutil.which("pcap-config"):
            try:
                flags = subprocess.run(["pcap-config", "--cflags", "--libs"], capture_output=True, text=True,
                                       check=True).stdout.split()
            except subprocess.CalledProcessError:
                pass
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", binary + ".tmp", source] + flags, check=True)
        os.replace(binary + ".tmp", binary)
    return binary


def real_capture(args):
    if args.real:
        return args.real
    path = os.path.join(CACHE, f"real-{args.real_packets}.pcap")
    if os.path.exists(path):
        return path
    if os.geteuid() != 0:
        sys.exit(f"bench_capture: recording {path} needs root (network namespace, tcpdump); "
                 f"run as root once or pass --real CAPTURE")
    if not os.path.exists(RECORDER):
        sys.exit(f"bench_capture: {RECORDER} not found; pass --real CAPTURE")
    os.makedirs(CACHE, exist_ok=True)
    print(f"recording {args.real_packets} packets into {path} with {RECORDER} ...", flush=True)
    partial = path + ".partial"
    subprocess.run([RECORDER, partial, str(args.real_packets)], check=True)
    os.replace(partial, path)
    return path


def many_capture(args):
    if args.many:
        return args.many
    path = os.path.join(CACHE, f"many-{args.flows}-r{args.rounds}.pcap")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        print(f"writing {path} ...", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, "make_many_flows.py"), path + ".partial",
                        "--flows", str(args.flows), "--rounds", str(args.rounds)], check=True, stdout=subprocess.DEVNULL)
        os.replace(path + ".partial", path)
    return path


def write_slice(capture, out, count):
    """The first count packets of a capture into out: copied record by record for pcap,
    through tcpdump for anything else (pcapng)."""
    with open(capture, "rb") as src:
        header = src.read(24)
        magic = header[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            order = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            order = ">"
        else:
            subprocess.run(["tcpdump", "-r", capture, "-c", str(count), "-w", out], check=True,
                           stderr=subprocess.DEVNULL)
            return
        with open(out, "wb") as dst:
            dst.write(header)
            for _ in range(count):
                record = src.read(16)
                if len(record) < 16:
                    break
                length = struct.unpack(order + "IIII", record)[2]
                dst.write(record + src.read(length))


# --------------------------------------------------------------------------- running

class Run:
    """One timed run: wall and CPU seconds, peak RSS (KiB), CPU the rest of the machine used meanwhile."""

    def __init__(self, wall, cpu, maxrss_kb=None, other=None, stdout="", stderr=""):
        self.wall, self.cpu, self.maxrss_kb, self.other = wall, cpu, maxrss_kb, other
        self.stdout, self.stderr = stdout, stderr


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_child(cmd, env=None):
    """Runs cmd with stdout and stderr captured: wall time, CPU time (wait4) and peak RSS.

    The peak RSS comes from GNU time (/usr/bin/time -f %M), which forks cmd from its own small
    address space: the ru_maxrss that wait4() gives this process for its child starts at this
    process's RSS, because Linux keeps the high-water mark of the (v)forked address space
    across execve."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file.name] + cmd if GNU_TIME else cmd
        busy = busy_seconds()
        start = time.perf_counter()
        process = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env)  # pylint: disable=consider-using-with
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        busy_after = busy_seconds()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        try:
            maxrss_kb = int(rss_file.read().split()[-1]) if GNU_TIME else None
        except (ValueError, IndexError):
            maxrss_kb = None
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {process.returncode}:\n{stderr}")
    cpu = usage.ru_utime + usage.ru_stime
    other = (busy_after - busy - cpu) / wall if busy is not None else None
    return Run(wall, cpu, maxrss_kb, other, stdout, stderr)


def run_in_process(function):
    gc.collect()
    busy = busy_seconds()
    before = os.times()
    start = time.perf_counter()
    result = function()
    wall = time.perf_counter() - start
    after = os.times()
    busy_after = busy_seconds()
    cpu = (after.user - before.user) + (after.system - before.system)
    other = (busy_after - busy - cpu) / wall if busy is not None else None
    return Run(wall, cpu, None, other), result


def package_root():
    """The directory holding the pcapflow package this process imports."""
    import pcapflow  # pylint: disable=import-outside-toplevel
    return os.path.dirname(os.path.dirname(os.path.abspath(pcapflow.__file__)))


def output_summary(stats):
    """trace_file's output budget and how often it wrote and reopened files, from its stats."""
    if "buffer_bytes" not in stats:
        return "pcapflow reports no output budget (a version before the adaptive budget)"
    created = max(stats["files_created"], 1)
    return (f"pcapflow output budget {stats['buffer_bytes'] / 2**20:,.1f} MiB: {stats['files_created']:,} files "
            f"created, {stats['file_writes'] / created:.2f} writes per file, {stats['file_reopens']:,} reopenings, "
            f"budget filled {stats['budget_flushes']:,} times")


def tree_summary(path):
    """(files, bytes, digest of every file's name and contents) of a flow directory."""
    if not os.path.isdir(path):
        return 0, 0, None
    digests = file_digests(path)
    digest = hashlib.sha1("\n".join(f"{name} {sha1}" for name, (_, sha1) in sorted(digests.items())).encode())
    return len(digests), sum(size for size, _ in digests.values()), digest.hexdigest()[:12]


def file_digests(path):
    """name -> (size, sha1) of every file in a directory."""
    out = {}
    if os.path.isdir(path):
        for entry in os.scandir(path):
            with open(entry.path, "rb") as file:
                data = file.read()
            out[entry.name] = (len(data), hashlib.sha1(data).hexdigest())
    return out


class Bench:
    def __init__(self, args, floor):
        self.args = args
        self.floor = floor
        self.root = tempfile.mkdtemp(prefix="pcapflow-bench-", dir=args.out_dir)
        self.count = 0
        self.pcapflow_cli = shutil.which("pcapflow")
        self.budget = {"buffer_bytes": args.buffer_mb << 20} if args.buffer_mb else {}
        # children (the CLI, the memory child) import the pcapflow this process imported
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))

    def fresh(self, name):
        self.count += 1
        return os.path.join(self.root, f"{self.count}-{name}")

    def discard(self, path):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)

    def tools(self, capture, packets, flow_files):
        """name -> function(out path) -> (Run, packets processed, output summary or None)."""
        import pcapflow  # pylint: disable=import-outside-toplevel
        dpkt_cmd = [sys.executable, os.path.join(HERE, "dpkt_split.py"), capture, "-o"]
        dpkt_packets = packets
        if self.args.dpkt_packets and self.args.dpkt_packets < packets:
            dpkt_packets = self.args.dpkt_packets
        cli = [self.pcapflow_cli] if self.pcapflow_cli else [sys.executable, "-m", "pcapflow"]

        def floor(out):
            run = run_child([self.floor, capture, out])
            copied = int(run.stdout.split()[0])
            if copied != packets:
                raise RuntimeError(f"floor copied {copied} packets of {packets}")
            return run, packets, None

        def create(out):
            os.mkdir(out)
            return run_child([self.floor, "--create", str(flow_files), out]), packets, None

        def trace_file(out):
            stats = {}
            run, flows = run_in_process(lambda: pcapflow.trace_file(capture, out, "pcap", stats=stats, **self.budget))
            if stats.get("frames") != packets:
                raise RuntimeError(f"trace_file read {stats.get('frames')} packets of {packets}")
            del flows
            return run, packets, tree_summary(out)

        def pcapflow_cli(out):
            budget = ["--buffer-mb", str(self.args.buffer_mb)] if self.args.buffer_mb else []
            return run_child(cli + [capture, "-o", out] + budget, env=self.env), packets, tree_summary(out)

        def dpkt(out):
            extra = ["--count", str(dpkt_packets)] if dpkt_packets < packets else []
            run = run_child(dpkt_cmd + [out] + extra)
            return run, dpkt_packets, tree_summary(out) if dpkt_packets == packets else None

        return {"floor": floor, "create files": create, "pcapflow": trace_file,
                "pcapflow CLI": pcapflow_cli, "dpkt": dpkt}

    def measure(self, name, capture):
        args = self.args
        print(f"\n== {name}: {capture}", flush=True)
        with open(capture, "rb") as file:  # warm the page cache: every tool reads from memory
            while file.read(1 << 24):
                pass
        # a first, untimed pcapflow pass: packets, flows, files
        out = self.fresh("probe")
        stats = {}
        import pcapflow  # pylint: disable=import-outside-toplevel
        flows = pcapflow.trace_file(capture, out, "pcap", stats=stats, **self.budget)
        packets, flow_count = stats["frames"], len(flows)
        files, _, _ = tree_summary(out)
        del flows
        self.discard(out)
        size = os.path.getsize(capture)
        print(f"   {packets:,} packets, {size / 1e6:,.1f} MB, {flow_count:,} flows, {files:,} flow files", flush=True)
        output = output_summary(stats)
        print(f"   {output}", flush=True)

        tools = self.tools(capture, packets, files)
        repeats = {tool: args.repeat for tool in tools}
        repeats["dpkt"] = args.dpkt_repeat or args.repeat
        runs = {tool: [] for tool in tools}
        done = {tool: None for tool in tools}
        outputs = {}
        for round_ in range(max(repeats.values())):
            for tool, function in tools.items():
                if round_ >= repeats[tool]:
                    continue
                out = self.fresh(tool.replace(" ", "-"))
                if args.settle:
                    wait_for_quiet(args.settle)
                run, done[tool], summary = function(out)
                self.discard(out)
                runs[tool].append(run)
                if summary is not None:
                    outputs.setdefault(tool, set()).add(summary)
                print(f"   run {round_ + 1}  {tool:13s} {run.wall:8.3f} s wall {run.cpu:8.3f} s CPU"
                      + (f"  (other load {run.other:.2f} CPUs)" if run.other is not None else ""), flush=True)

        # pcapkit: once, on a slice
        slice_path = self.fresh("slice.pcap")
        write_slice(capture, slice_path, args.pcapkit_packets)
        kit_packets = min(args.pcapkit_packets, packets)
        out = self.fresh("pcapkit")
        if args.settle:
            wait_for_quiet(args.settle)
        run = run_child([sys.executable, "-c", PCAPKIT_CHILD, slice_path, out])
        result = json.loads(run.stdout.strip().splitlines()[-1])
        kit_run = Run(result["seconds"], result["cpu"], run.maxrss_kb, run.other)
        kit_summary = file_digests(out)
        self.discard(out)
        out = self.fresh("pcapflow-slice")
        pcapflow.trace_file(slice_path, out, "pcap")
        flow_slice_summary = file_digests(out)
        self.discard(out)
        self.discard(slice_path)
        print(f"   once   {'pcapkit':13s} {kit_run.wall:8.3f} s wall {kit_run.cpu:8.3f} s CPU "
              f"({kit_packets} packets, {result['flows']} flows)", flush=True)
        runs["pcapkit"] = [kit_run]
        done["pcapkit"] = kit_packets

        # peak memory of a child running trace_file
        out = self.fresh("memory")
        budget = [str(args.buffer_mb)] if args.buffer_mb else []
        run = run_child([sys.executable, "-c", MEMORY_CHILD, capture, out, package_root()] + budget, env=self.env)
        self.discard(out)
        memory = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"   memory child: peak {memory['peak_kb'] / 1024:.1f} MiB, {memory['baseline_kb'] / 1024:.1f} MiB "
              f"after import", flush=True)

        # every splitter must have written the same files
        checks = [output]
        if name == "real" and size / packets < 24 + 16 + 200:
            checks.append(f"the capture averages {size / packets - 16:.0f} bytes per packet: a recording of "
                          f"make-real-capture.sh's 403 responses? (see bench/CAPTURE.md, caveats)")
        reference = outputs.get("pcapflow", set())
        for tool in ("pcapflow", "pcapflow CLI", "dpkt"):
            seen = outputs.get(tool)
            if seen is None:
                continue
            if len(seen) != 1 or seen != reference:
                checks.append(f"{tool} output differs from pcapflow's: {sorted(seen)} vs {sorted(reference)}")
        common = set(kit_summary) & set(flow_slice_summary)
        sizes = [name for name in sorted(common) if kit_summary[name][0] != flow_slice_summary[name][0]]
        same_bytes = sum(kit_summary[name] == flow_slice_summary[name] for name in common)
        checks.append(f"pcapkit and pcapflow on the {kit_packets}-packet slice: {len(kit_summary)} and "
                      f"{len(flow_slice_summary)} files, {len(common)} names in common, "
                      f"{len(common) - len(sizes)} of the same size, {same_bytes} byte for byte the same"
                      + ("; sizes differ: " + ", ".join(f"{name} ({kit_summary[name][0]} vs "
                                                         f"{flow_slice_summary[name][0]} bytes)" for name in sizes[:3])
                         if sizes else ""))
        if reference:
            files_, bytes_, _ = next(iter(reference))
            same = [t for t in ("pcapflow CLI", "dpkt") if outputs.get(t) == reference]
            checks.append(f"pcapflow wrote {files_:,} files, {bytes_ / 1e6:,.1f} MB; the same files byte for byte: "
                          f"{', '.join(same) or 'none'}")
        return {
            "name": name, "capture": capture, "packets": packets, "bytes": size, "flows": flow_count,
            "files": files, "runs": runs, "done": done, "memory": memory, "memory_kb": memory["peak_kb"],
            "checks": checks,
        }

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- report

ROW_ORDER = ("floor", "create files", "pcapflow", "pcapflow CLI", "dpkt", "pcapkit")
ROW_LABEL = {
    "floor": "floor (C: libpcap to one file)",
    "create files": "create files only (C)",
    "pcapflow": "pcapflow.trace_file",
    "pcapflow CLI": "pcapflow CLI",
    "dpkt": "dpkt_split.py",
    "pcapkit": "pcapkit (slice)",
}


def median(values):
    return statistics.median(values)


def summarize(result):
    rows = {}
    for tool, runs in result["runs"].items():
        wall = median([r.wall for r in runs])
        cpu = median([r.cpu for r in runs])
        rss = [r.maxrss_kb for r in runs if r.maxrss_kb is not None]
        other = [r.other for r in runs if r.other is not None]
        rows[tool] = {"wall": wall, "cpu": cpu, "packets": result["done"][tool], "runs": len(runs),
                      "rate": result["done"][tool] / wall, "cpu_rate": result["done"][tool] / cpu,
                      "rss_kb": max(rss) if rss else None, "other": median(other) if other else None,
                      "spread": (min(r.wall for r in runs), max(r.wall for r in runs))}
    rows["pcapflow"]["rss_kb"] = result["memory_kb"]
    return rows


def fmt_ratio(value, target=None, at_most=False):
    text = f"{value:,.2f}x" if value < 100 else f"{value:,.0f}x"
    if target is not None:
        met = value <= target if at_most else value >= target
        text += f" ({'met' if met else 'MISSED'}: {'<=' if at_most else '>='} {target:g}x)"
    return text


def main_rows(results):
    header = ["capture", "tool", "packets", "runs", "wall s", "packets/s", "CPU s", "packets/CPU-s",
              "peak RSS MiB", "wall / floor", "other load"]
    rows = []
    for result in results:
        rows_ = summarize(result)
        floor = rows_["floor"]["wall"]
        for tool in ROW_ORDER:
            r = rows_[tool]
            creation = tool == "create files"
            rows.append([
                result["name"], ROW_LABEL[tool], f"{result['files']:,} files" if creation else f"{r['packets']:,}",
                str(r["runs"]), f"{r['wall']:.3f}",
                "-" if creation else f"{r['rate']:,.0f}", f"{r['cpu']:.3f}", "-" if creation else f"{r['cpu_rate']:,.0f}",
                f"{r['rss_kb'] / 1024:,.1f}" if r["rss_kb"] else "-",
                f"{r['wall'] / floor:,.2f}" if tool != "pcapkit" else f"{r['wall'] / r['packets'] * result['packets'] / floor:,.0f} *",
                f"{r['other']:.2f}" if r["other"] is not None else "-",
            ])
    return header, rows


def ratio_rows(results):
    header = ["capture", "ratio", "wall clock", "CPU time"]
    rows = []
    for result in results:
        r = summarize(result)
        real = result["name"] == "real"
        flow = r["pcapflow"]
        cli = r["pcapflow CLI"]
        rows.append([result["name"], "pcapflow time / floor time",
                     fmt_ratio(flow["wall"] / r["floor"]["wall"], TARGETS["floor"] if real else None, True),
                     fmt_ratio(flow["cpu"] / r["floor"]["cpu"])])
        rows.append([result["name"], "pcapflow time / (floor + create files) time",
                     fmt_ratio(flow["wall"] / (r["floor"]["wall"] + r["create files"]["wall"])),
                     fmt_ratio(flow["cpu"] / (r["floor"]["cpu"] + r["create files"]["cpu"]))])
        rows.append([result["name"], "pcapflow CLI time / floor time",
                     fmt_ratio(cli["wall"] / r["floor"]["wall"], TARGETS["floor"] if real else None, True),
                     fmt_ratio(cli["cpu"] / r["floor"]["cpu"])])
        rows.append([result["name"], "pcapflow rate / pcapkit rate",
                     fmt_ratio(flow["rate"] / r["pcapkit"]["rate"], TARGETS["pcapkit"] if real else None),
                     fmt_ratio(flow["cpu_rate"] / r["pcapkit"]["cpu_rate"])])
        rows.append([result["name"], "pcapflow rate / dpkt rate",
                     fmt_ratio(flow["rate"] / r["dpkt"]["rate"], TARGETS["dpkt"] if real else None),
                     fmt_ratio(flow["cpu_rate"] / r["dpkt"]["cpu_rate"])])
    return header, rows


def flow_rows(results):
    header = ["capture", "measure", "value"]
    rows = []
    for result in results:
        r = summarize(result)
        flows, files = result["flows"], result["files"]
        flow, floor, create = r["pcapflow"], r["floor"], r["create files"]
        memory = result["memory"]
        peak = result["memory_kb"] * 1024
        baseline = memory["baseline_kb"] * 1024
        n = result["name"]
        rows += [
            [n, "flows (files)", f"{flows:,} ({files:,})"],
            [n, "pcapflow wall per flow", f"{flow['wall'] / flows * 1e6:.2f} us"],
            [n, "pcapflow CPU per flow", f"{flow['cpu'] / flows * 1e6:.2f} us"],
            [n, "(pcapflow - floor) wall per flow", f"{(flow['wall'] - floor['wall']) / flows * 1e6:.2f} us"],
            [n, "file creation alone, wall per file", f"{create['wall'] / max(files, 1) * 1e6:.2f} us"],
            [n, "(pcapflow - floor - creation) wall per flow",
             f"{(flow['wall'] - floor['wall'] - create['wall']) / flows * 1e6:.2f} us"],
            [n, "peak RSS, child running trace_file", f"{peak / 2**20:,.1f} MiB"],
            [n, "peak RSS above the interpreter + import", (f"{(peak - baseline) / 2**20:,.1f} MiB "
                                                             f"({(peak - baseline) / flows:,.0f} bytes per flow)")],
        ]
    return header, rows


def plain_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    numeric = [all(_numeric(row[i]) for row in rows) for i in range(len(header))]
    def line(cells):
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(row) for row in rows])


def _numeric(text):
    return bool(text) and (text[0].isdigit() or text[0] in "-.") and not text.startswith("-x")


def rst_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    rule = "  ".join("=" * w for w in widths)
    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([rule, line(header), rule] + [line(row) for row in rows] + [rule])


def report(args, results, started):
    print("\n" + "=" * 100)
    print(f"pcapflow {git_revision()}, Python {platform.python_version()}, {make_packets.cpu_model()}, "
          f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, {libpcap_version()}")
    print(f"extension {core_module()[0]}")
    print(f"output to {args.out_dir} ({filesystem(args.out_dir)}); median of {args.repeat} runs "
          f"(dpkt: {args.dpkt_repeat or args.repeat}); load average at start "
          f"{' '.join(f'{x:.2f}' for x in started['load'])}, at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for result in results:
        print(f"{result['name']}: {result['capture']}: {result['packets']:,} packets, {result['bytes'] / 1e6:,.1f} MB, "
              f"{result['flows']:,} flows")
    tables = [("Throughput", main_rows(results)), ("Ratios", ratio_rows(results)), ("Per flow and memory", flow_rows(results))]
    for title, (header, rows) in tables:
        print(f"\n{title}\n")
        print(plain_table(header, rows))
    print("\n* pcapkit's wall / floor: the time it would take on the whole capture at its rate on the slice.")
    print("  'other load': CPUs the rest of the machine kept busy during the runs (median); "
          "above ~0.2 the wall times are disturbed.")
    print("\nChecks")
    for result in results:
        for check in result["checks"]:
            print(f"  {result['name']}: {check}")
    print("\nreStructuredText\n")
    for title, (header, rows) in tables:
        print(f"{title}\n{'~' * len(title)}\n")
        print(rst_table(header, rows))
        print()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump([{**{k: v for k, v in r.items() if k != "runs"},
                        "runs": {t: [vars(x) | {"stdout": "", "stderr": x.stderr[-500:]} for x in runs]
                                 for t, runs in r["runs"].items()}} for r in results], file, indent=1)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--real", metavar="PATH", help="the real capture; default: record one into bench/.cache/")
    parser.add_argument("--real-packets", type=int, default=1_000_000, help="packets to record when --real is not given")
    parser.add_argument("--many", metavar="PATH", help="the many-flow capture; default: generate one into bench/.cache/")
    parser.add_argument("--flows", type=int, default=100_000, help="flows open at once in the generated capture")
    parser.add_argument("--rounds", type=int, default=2, help="request/response rounds per generated connection")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (median reported)")
    parser.add_argument("--dpkt-repeat", type=int, help="timed runs of dpkt_split.py (default: --repeat)")
    parser.add_argument("--dpkt-packets", type=int, default=0,
                        help="run dpkt_split.py on only this many first packets (0: all); its rate is reported")
    parser.add_argument("--pcapkit-packets", type=int, default=5000, help="packets of the slice pcapkit traces")
    parser.add_argument("--out-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
                        help="where the flow files go (a fresh directory per run, deleted afterwards untimed)")
    parser.add_argument("--only", choices=("real", "many"), action="append", help="run only this capture")
    parser.add_argument("--settle", type=float, default=0, metavar="SECONDS",
                        help="before each timed run, wait up to SECONDS for a second in which other processes "
                             "keep fewer than 0.3 CPUs busy (0: do not wait)")
    parser.add_argument("--buffer-mb", type=int, metavar="MB",
                        help="pcapflow's output budget (trace_file's buffer_bytes, the CLI's --buffer-mb); "
                             "default: its own choice from the memory available and the capture's size")
    parser.add_argument("--json", metavar="FILE", help="also write the raw measurements to FILE")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.repeat < 1:
        sys.exit("bench_capture: --repeat must be at least 1")
    started = {"load": os.getloadavg()}
    core, sanitized = core_module()
    if sanitized:
        print(f"bench_capture: WARNING: {core} was built with a sanitizer; rebuild with `pip install -e .`",
              file=sys.stderr)
    floor = build_floor()
    inputs = []
    if not args.only or "real" in args.only:
        inputs.append(("real", real_capture(args)))
    if not args.only or "many" in args.only:
        inputs.append(("many", many_capture(args)))
    bench = Bench(args, floor)
    try:
        results = [bench.measure(name, path) for name, path in inputs]
    finally:
        bench.close()
    report(args, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
