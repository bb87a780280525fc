"""Live capture: the highest packet rate pcapflow -i sustains without a kernel drop,
next to tcpdump -w capturing the same traffic in the same run.

Two network namespaces joined by a veth pair (MTU 1500, offloads off, so frames are
wire-sized): nginx in one, wrk in the other making short HTTP connections
(Connection: close, about 25 frames each: many flows, each a file for pcapflow).
Both capturers run at once on the server's end of the pair, so they see the same
frames; the load grows step by step (wrk connections), and each step reports the
frames each received and dropped (libpcap's counters). Needs root, nginx, wrk,
ethtool, tcpdump (make bench-live installs them).

    python bench/bench_live.py [--repeat 3] [--seconds 3] [--workdir /dev/shm]
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SERVER, CLIENT, PORT = "10.232.0.1", "10.232.0.2", 18080
LEVELS = (1, 2, 4, 8, 16, 32, 64)


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check)


class Network:
    def __init__(self, workdir):
        tag = f"pfb{os.getpid()}"
        self.server, self.client = tag + "s", tag + "c"
        self.www = tempfile.mkdtemp(dir=workdir)
        sh("ip", "netns", "add", self.server)
        sh("ip", "netns", "add", self.client)
        sh("ip", "-n", self.server, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
           self.client)
        for ns, dev, address in ((self.server, "veth0", SERVER), (self.client, "veth1", CLIENT)):
            sh("ip", "-n", ns, "addr", "add", address + "/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up", "mtu", "1500")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", check=False)
        # short connections by the hundred thousand: ports come back at once
        for ns in (self.server, self.client):
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1",
               "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_max_tw_buckets=4096", check=False)
        os.chmod(self.www, 0o755)
        with open(os.path.join(self.www, "page.txt"), "w", encoding="ascii") as page:
            page.write("0123456789abcdef" * 1700)  # about 27 KB: ~20 data frames
        conf = os.path.join(self.www, "nginx.conf")
        with open(conf, "w", encoding="ascii") as out:
            out.write(f"""worker_processes 1; pid {self.www}/nginx.pid; error_log {self.www}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen {SERVER}:{PORT}; root {self.www}; }} }}
""")
        sh("ip", "netns", "exec", self.server, "nginx", "-c", conf)
        self.conf = conf
        time.sleep(0.5)

    def close(self):
        sh("ip", "netns", "exec", self.server, "nginx", "-c", self.conf, "-s", "stop", check=False)
        sh("ip", "netns", "del", self.server, check=False)
        sh("ip", "netns", "del", self.client, check=False)
        shutil.rmtree(self.www, ignore_errors=True)


def start(args, ready):
    process = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    line = process.stderr.readline()
    if ready not in line:
        raise SystemExit(f"{args[0]} did not start: {line}{process.stderr.read()}")
    # what starting cost (Python's, for pcapflow) is not capturing
    process.cpu_at_start = cpu_seconds(process.pid)
    return process, line


def cpu_seconds(pid):
    """User and system CPU time the process has used so far (ip netns exec execs the command
    in its own process, so the pid is the capturer's)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process, first):
    """Stops the capturer; returns what it printed and the CPU time it used until then."""
    used = cpu_seconds(process.pid) - process.cpu_at_start
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    return first + rest, used


def counts(text, tool):
    """(received, dropped) as the capturer reported them."""
    if tool == "pcapflow":
        found = re.search(r"(\d+) packets received by filter, (\d+) dropped by kernel", text)
    else:
        found = re.search(r"(\d+) packets received by filter\n(\d+) packets dropped by kernel", text)
    if not found:
        raise SystemExit(f"{tool} printed no counters:\n{text}")
    return int(found.group(1)), int(found.group(2))


def one_step(net, connections, seconds, workdir, buffer_mb):
    out = tempfile.mkdtemp(dir=workdir)
    try:
        exec_in = ["ip", "netns", "exec", net.server]
        flow_buffer = ["--kernel-buffer-mb", str(buffer_mb)] if buffer_mb else []
        dump_buffer = ["-B", str(buffer_mb * 1024)] if buffer_mb else []
        flow, flow_first = start(exec_in + [sys.executable, "-m", "pcapflow", "-i", "veth0", "-o", out + "/flows",
                                            "--filter", f"tcp port {PORT}", *flow_buffer], "capturing on")
        dump, dump_first = start(exec_in + ["tcpdump", "-i", "veth0", "-w", out + "/all.pcap", "-n", "-Z", "root",
                                            *dump_buffer, f"tcp port {PORT}"], "listening on")
        started = time.monotonic()
        sh("ip", "netns", "exec", net.client, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
           "-H", "Connection: close", f"http://{SERVER}:{PORT}/page.txt")
        elapsed = time.monotonic() - started
        time.sleep(0.3)
        (flow_said, flow_cpu), (dump_said, dump_cpu) = stop(flow, flow_first), stop(dump, dump_first)
        files = len(os.listdir(out + "/flows")) if os.path.isdir(out + "/flows") else 0
        return counts(flow_said, "pcapflow"), counts(dump_said, "tcpdump"), elapsed, files, (flow_cpu, dump_cpu)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--workdir", default="/dev/shm")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="wrk connections per step")
    parser.add_argument("--kernel-buffer-mb", type=int, default=0,
                        help="both capturers' kernel buffer (default: each one's own default)")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "tcpdump", "ethtool", "ip"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench_live needs {tool} (make bench-live installs it)")
    levels = [int(n) for n in args.levels.split(",")]
    net = Network(args.workdir)
    try:
        print(f"{'wrk -c':>6} {'frames/s':>10} {'pcapflow recv':>14} {'dropped':>8} {'cpu s':>6} "
              f"{'tcpdump recv':>13} {'dropped':>8} {'cpu s':>6} {'files':>7}")
        best = {"pcapflow": [], "tcpdump": []}
        cpu = {"pcapflow": [], "tcpdump": []}  # CPU seconds per million frames, each step
        for _ in range(args.repeat):
            clean = {"pcapflow": 0.0, "tcpdump": 0.0}
            for connections in levels:
                (flow_recv, flow_drop), (dump_recv, dump_drop), elapsed, files, (flow_cpu, dump_cpu) = one_step(
                    net, connections, args.seconds, args.workdir, args.kernel_buffer_mb)
                rate = max(flow_recv, dump_recv) / elapsed
                print(f"{connections:>6} {rate:>10.0f} {flow_recv:>14} {flow_drop:>8} {flow_cpu:>6.2f} "
                      f"{dump_recv:>13} {dump_drop:>8} {dump_cpu:>6.2f} {files:>7}", flush=True)
                cpu["pcapflow"].append(flow_cpu / flow_recv * 1e6)
                cpu["tcpdump"].append(dump_cpu / dump_recv * 1e6)
                if flow_drop == 0:
                    clean["pcapflow"] = max(clean["pcapflow"], flow_recv / elapsed)
                if dump_drop == 0:
                    clean["tcpdump"] = max(clean["tcpdump"], dump_recv / elapsed)
            for tool, rate in clean.items():
                best[tool].append(rate)
            print(f"  highest rate without a drop: pcapflow {clean['pcapflow']:.0f}, tcpdump "
                  f"{clean['tcpdump']:.0f} frames/s")
        flow_rate, dump_rate = statistics.median(best["pcapflow"]), statistics.median(best["tcpdump"])
        print(f"median of {args.repeat}: pcapflow -i sustains {flow_rate:.0f} frames/s without a drop (one file "
              f"per flow), tcpdump -w {dump_rate:.0f}: ratio {flow_rate / dump_rate if dump_rate else float('nan'):.2f}")
        flow_cpu, dump_cpu = statistics.median(cpu["pcapflow"]), statistics.median(cpu["tcpdump"])
        print(f"CPU per million frames (median over the steps): pcapflow {flow_cpu:.2f} s, tcpdump {dump_cpu:.2f} s "
              f"(pcapflow/tcpdump {flow_cpu / dump_cpu:.2f}), from ready to stop")
    finally:
        net.close()


if __name__ == "__main__":
    main()
