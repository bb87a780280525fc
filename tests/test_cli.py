"""The pcapflow command line (pcapflow.cli), run as a real process.

    pcapflow CAPTURE... -o DIR [-f pcap|cap] [--filter BPF] [--byteorder little|big]
             [--nanosecond] [--index FILE.jsonl]

Exit status 0 done, 1 a capture or an output failed, 2 bad usage; one
summary line on stderr; a progress bar on stderr only when it is a terminal."""
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import pcapflow
from capture_tools import (ACK, DATA, ETHERNET, FIN, Record, check_flow_files, ethernet, ipv4,
                           read_capture, tcp, udp, write_pcap, record_offsets)

SCRIPT = Path(sysconfig.get_path("scripts")) / "pcapflow"
MODULE = [sys.executable, "-m", "pcapflow"]
SUMMARY = re.compile(r"^pcapflow: (\d+) packets, (\d+) TCP packets, (\d+) flows, (\d+) files in (.+), "
                     r"(\d+) frames skipped, (?:(\d+\.\d) MiB output buffer, )?(\d+(?:\.\d+)?) seconds$")


def run(*args, command=None, **kwargs):
    return subprocess.run((command or MODULE) + [str(a) for a in args], capture_output=True, text=True,
                          timeout=120, check=False, **kwargs)


def summary(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    match = SUMMARY.match(lines[-1])
    assert match, f"not a summary line: {lines[-1]!r}"
    packets, tcp_packets, flows, files, directory, skipped, budget, _seconds = match.groups()
    return {"packets": int(packets), "tcp_packets": int(tcp_packets), "flows": int(flows), "files": int(files),
            "directory": directory, "skipped": int(skipped)}


def budget_mib(stderr):
    """The output budget the summary line reports (MiB), or None."""
    budget = SUMMARY.match(stderr.splitlines()[-1]).group(7)
    return budget and float(budget)


def read_index(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def as_records(index):
    return [{"label": flow.label, "fpout": flow.fpout, "index": list(flow.index)} for flow in index]


# ---------------------------------------------------------------------------
# Success
# ---------------------------------------------------------------------------

def test_trace_a_capture(tmp_path):
    out = tmp_path / "flows"
    done = run(DATA / "ssh.pcap", "-o", out, "--index", tmp_path / "index.jsonl")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert summary(done.stderr) == {"packets": 54, "tcp_packets": 54, "flows": 5, "files": 5, "directory": str(out),
                                    "skipped": 0}
    assert len(done.stderr.strip().splitlines()) == 1, "more than the summary on a pipe"
    expected = pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "api"))
    assert read_index(tmp_path / "index.jsonl") == [
        {"label": flow.label, "fpout": f"{out}/{os.path.basename(flow.fpout)}", "index": list(flow.index)}
        for flow in expected]
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "api"))
    for name in os.listdir(out):
        assert (out / name).read_bytes() == (tmp_path / "api" / name).read_bytes()


def test_index_equals_trace_file_index(tmp_path):
    out = str(tmp_path / "flows")
    done = run(DATA / "http_espn.pcapng", "-o", out, "--index", tmp_path / "index.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    flows = read_index(tmp_path / "index.jsonl")
    # the same call through the API, into another directory: identical but for the directory
    api = pcapflow.trace_file(str(DATA / "http_espn.pcapng"), str(tmp_path / "api"))
    assert [(f["label"], f["index"], os.path.basename(f["fpout"])) for f in flows] == [
        (flow.label, list(flow.index), os.path.basename(flow.fpout)) for flow in api]
    assert all(os.path.dirname(f["fpout"]) == out for f in flows)
    assert set(flows[0]) == {"label", "fpout", "index"}
    check_flow_files([pcapflow.Index(**f) for f in flows], read_capture(DATA / "http_espn.pcapng"))
    s = summary((run(DATA / "http_espn.pcapng", "-o", tmp_path / "again").stderr))
    assert (s["packets"], s["tcp_packets"], s["flows"], s["files"]) == (956, 928, 50, 50)


def test_relative_output_directory(tmp_path):
    done = run(DATA / "dns_tcp.pcap", "-o", "rel/out", "--index", "idx.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    flows = read_index(tmp_path / "idx.jsonl")
    assert [os.path.dirname(f["fpout"]) for f in flows] == ["rel/out"] * 3
    assert all((tmp_path / f["fpout"]).is_file() for f in flows)
    assert summary(done.stderr)["directory"] == "rel/out"


def test_console_script(tmp_path):
    if not SCRIPT.exists():
        pytest.skip("the pcapflow script is not installed (pip install -e .)")
    done = run(DATA / "whois.pcap", "-o", tmp_path / "out", command=[str(SCRIPT)])
    assert done.returncode == 0, done.stderr
    assert summary(done.stderr)["flows"] == 3


def test_python_dash_m(tmp_path):
    done = run(DATA / "whois.pcap", "-o", tmp_path / "out", command=[sys.executable, "-m", "pcapflow"])
    assert done.returncode == 0, done.stderr
    assert summary(done.stderr)["flows"] == 3
    assert len(os.listdir(tmp_path / "out")) == 3


def test_help_exits_0():
    done = run("--help")
    assert done.returncode == 0
    for option in ("-o", "--filter", "--byteorder", "--nanosecond", "--index", "CAPTURE"):
        assert option in done.stdout


@pytest.mark.parametrize("byteorder", ["big", "little"])
def test_byteorder_and_nanosecond_headers(byteorder, tmp_path):
    for nanosecond in (False, True):
        out = tmp_path / f"out-{nanosecond}"
        args = [DATA / "ssh.pcap", "-o", out, "--byteorder", byteorder, "--index", tmp_path / f"{nanosecond}.jsonl"]
        done = run(*(args + (["--nanosecond"] if nanosecond else [])))
        assert done.returncode == 0, done.stderr
        order = "<" if byteorder == "little" else ">"
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        flows = read_index(tmp_path / f"{nanosecond}.jsonl")
        for flow in flows:
            header = Path(flow["fpout"]).read_bytes()[:24]
            assert header == struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, ETHERNET)
        check_flow_files([pcapflow.Index(**f) for f in flows], read_capture(DATA / "ssh.pcap"),
                         nanosecond=nanosecond, byteorder=byteorder)


def test_format_cap(tmp_path):
    done = run(DATA / "dns_tcp.pcap", "-o", tmp_path / "out", "-f", "cap")
    assert done.returncode == 0, done.stderr
    assert all(name.endswith(".pcap") for name in os.listdir(tmp_path / "out"))


def test_format_json_matches_trace_file(tmp_path):
    """The text formats go through pcapkit's decoder, as trace_file() does them."""
    done = run(DATA / "ssh.pcap", "-o", tmp_path / "out", "-f", "json", "--index", tmp_path / "index.jsonl")
    assert done.returncode == 0, done.stderr
    flows = pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "api"), "json")
    moved = [{**record, "fpout": record["fpout"].replace(str(tmp_path / "api"), str(tmp_path / "out"))}
             for record in as_records(flows)]
    assert read_index(tmp_path / "index.jsonl") == moved
    for flow in flows:
        name = os.path.basename(flow.fpout)
        assert name.endswith(".json")
        assert (tmp_path / "out" / name).read_bytes() == Path(flow.fpout).read_bytes()


def test_several_captures_as_one_series(tmp_path):
    original = read_capture(DATA / "http_espn.pcapng")
    n = len(original.records)
    parts = [write_pcap(tmp_path / f"part{k}.pcap", original.records[k * n // 3:(k + 1) * n // 3], ETHERNET,
                        nanosecond=True) for k in range(3)]
    done = run(*parts, "-o", tmp_path / "out", "--index", tmp_path / "index.jsonl")
    assert done.returncode == 0, done.stderr
    series = pcapflow.trace_files([str(p) for p in parts], str(tmp_path / "out"))
    whole = pcapflow.trace_file(str(DATA / "http_espn.pcapng"), str(tmp_path / "whole"))
    assert read_index(tmp_path / "index.jsonl") == as_records(series)
    assert [(f.label, f.index) for f in series] == [(f.label, f.index) for f in whole]
    s = summary(done.stderr)
    assert (s["packets"], s["tcp_packets"], s["flows"]) == (956, 928, 50)


def test_filter(tmp_path):
    done = run(DATA / "http_espn.pcapng", "-o", tmp_path / "out", "--filter", "src host 172.16.0.122",
               "--index", tmp_path / "index.jsonl")
    assert done.returncode == 0, done.stderr
    api = pcapflow.trace_file(str(DATA / "http_espn.pcapng"), str(tmp_path / "out"), filter="src host 172.16.0.122")
    assert read_index(tmp_path / "index.jsonl") == as_records(api)
    s = summary(done.stderr)
    assert s["packets"] == 956 and s["flows"] == len(api) and 0 < s["tcp_packets"] < 928


def test_frames_skipped_in_the_summary(tmp_path):
    a, b = "10.0.0.1", "10.0.0.2"
    frames = [ethernet(ipv4(a, b, tcp(1, 2))),
              ethernet(ipv4(a, b, b"fragment", frag_offset=10)),       # fragment: skipped
              ethernet(ipv4(a, b, tcp(1, 2)))[:30],                    # truncated: skipped
              ethernet(ipv4(a, b, udp(1, 2), proto=17)),               # not TCP: not "skipped"
              ethernet(ipv4(b, a, tcp(2, 1, FIN | ACK)))]
    path = write_pcap(tmp_path / "mixed.pcap", [Record(1_600_000_000, i, f) for i, f in enumerate(frames)], ETHERNET)
    done = run(path, "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert summary(done.stderr) == {"packets": 5, "tcp_packets": 2, "flows": 2, "files": 2,
                                    "directory": str(tmp_path / "out"), "skipped": 2}


def test_output_budget_in_the_summary(tmp_path):
    """The summary says how much output the run could hold in memory: the
    budget trace_file chose (four times the capture, what its buffers can
    take, when memory allows), or --buffer-mb when that is smaller."""
    capture = DATA / "http_espn.pcapng"
    assert budget_mib(run(capture, "-o", tmp_path / "a").stderr) == round(4 * capture.stat().st_size / 2**20, 1)
    pair = write_pcap(tmp_path / "pair.pcap", [Record(1_600_000_000, 0, ethernet(ipv4("10.0.0.1", "10.0.0.2",
                                                                                          tcp(1, 2))))], ETHERNET)
    assert budget_mib(run(pair, "-o", tmp_path / "b").stderr) == 0.0
    # the same capture twice is 1.3 MiB of input (5.2 MiB of buffers): --buffer-mb caps the budget below that
    assert budget_mib(run(capture, capture, "-o", tmp_path / "c", "--buffer-mb", "1").stderr) == 1.0


def test_unsupported_link_frames_are_skipped(tmp_path):
    done = run(DATA / "ipoib.pcap", "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    s = summary(done.stderr)
    assert (s["packets"], s["tcp_packets"], s["flows"], s["files"], s["skipped"]) == (30, 0, 0, 0, 30)


# ---------------------------------------------------------------------------
# Failures: exit status 1
# ---------------------------------------------------------------------------

def test_damaged_capture_exits_1_and_keeps_the_flows_before_the_damage(tmp_path):
    blob = (DATA / "ssh.pcap").read_bytes()
    cut = record_offsets(blob)[30] + 20  # inside frame 31
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(blob[:cut])
    out = tmp_path / "out"
    done = run(damaged, "-o", out, "--index", tmp_path / "index.jsonl")
    assert done.returncode == 1, done.stderr
    assert str(damaged) in done.stderr
    assert "31" in done.stderr  # the frame
    assert "Traceback" not in done.stderr
    flows = read_index(tmp_path / "index.jsonl")
    assert flows, "no flows reported before the damage"
    assert all(n <= 30 for f in flows for n in f["index"])
    assert sorted(n for f in flows for n in f["index"]) == list(range(1, 31))
    check_flow_files([pcapflow.Index(**f) for f in flows], read_capture(DATA / "ssh.pcap"))
    assert sorted(os.listdir(out)) == sorted(os.path.basename(f["fpout"]) for f in flows)


def test_damage_in_a_later_capture_of_a_series(tmp_path):
    blob = (DATA / "ssh.pcap").read_bytes()
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(blob[:record_offsets(blob)[5] + 3])
    done = run(DATA / "dns_tcp.pcap", damaged, "-o", tmp_path / "out", "--index", tmp_path / "index.jsonl")
    assert done.returncode == 1
    assert str(damaged) in done.stderr
    frames = sorted(n for f in read_index(tmp_path / "index.jsonl") for n in f["index"])
    assert frames == list(range(1, 11 + 5 + 1))


def test_not_a_capture_exits_1(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a capture\n")
    done = run(path, "-o", tmp_path / "out")
    assert done.returncode == 1
    assert str(path) in done.stderr and "Traceback" not in done.stderr


def test_missing_capture_exits_1(tmp_path):
    done = run(tmp_path / "missing.pcap", "-o", tmp_path / "out")
    assert done.returncode == 1
    assert str(tmp_path / "missing.pcap") in done.stderr and "Traceback" not in done.stderr


def test_output_blocked_by_a_file_exits_1(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    done = run(DATA / "ssh.pcap", "-o", blocker)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert str(blocker) in done.stderr, f"the message does not name the output path: {done.stderr!r}"


def test_index_file_that_cannot_be_written_exits_1(tmp_path):
    done = run(DATA / "ssh.pcap", "-o", tmp_path / "out", "--index", tmp_path / "no-such-dir" / "index.jsonl")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# ---------------------------------------------------------------------------
# Bad usage: exit status 2
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [],                                                          # nothing
    ["CAPTURE"],                                                 # no -o
    ["-o", "OUT"],                                               # no capture
    ["CAPTURE", "-o", "OUT", "-f", "pcapng"],                    # no such format
    ["CAPTURE", "-o", "OUT", "--byteorder", "middle"],
    ["CAPTURE", "-o", "OUT", "--no-such-option"],
    ["CAPTURE", "-o", "OUT", "--buffer-mb", "0"],
    ["CAPTURE", "-o", "OUT", "--buffer-mb", "99999999999999"],               # more than a C ssize_t holds
], ids=["nothing", "no-output", "no-capture", "format-pcapng", "byteorder", "unknown-option", "buffer-mb-0",
        "buffer-mb-huge"])
def test_bad_usage_exits_2(args, tmp_path):
    args = [str(DATA / "ssh.pcap") if a == "CAPTURE" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert "usage:" in done.stderr
    assert not (tmp_path / "out").exists()


def test_too_large_a_buffer_says_what_is_allowed(tmp_path):
    done = run(DATA / "ssh.pcap", "-o", tmp_path / "out", "--buffer-mb", "99999999999999")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr, done.stderr
    assert f"argument --buffer-mb: must be at most {sys.maxsize >> 20}, not 99999999999999" in done.stderr


def test_bad_bpf_exits_2(tmp_path):
    done = run(DATA / "ssh.pcap", "-o", tmp_path / "out", "--filter", "tcp port")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "tcp port" in done.stderr
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


# ---------------------------------------------------------------------------
# The progress bar: on a terminal only
# ---------------------------------------------------------------------------

def run_with_stderr_on_a_pty(args):
    """Run the command with stderr on a pseudo-terminal (stdout a pipe); return (exit status, stderr text)."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(MODULE + [str(a) for a in args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=slave, close_fds=True)
    finally:
        os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    status = process.wait(timeout=60)
    process.stdout.close()
    return status, b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal(tmp_path):
    status, stderr = run_with_stderr_on_a_pty([DATA / "http_espn.pcapng", "-o", tmp_path / "out"])
    assert status == 0, stderr
    assert "\r" in stderr
    assert "open flows" in stderr and "MB" in stderr
    lines = [line for line in re.split(r"[\r\n]+", stderr) if line.strip()]
    assert SUMMARY.match(lines[-1]), lines[-1]
    bar = [line for line in lines if "open flows" in line]
    assert bar and "0.7/0.7 MB" in bar[-1] and "100.0%" in bar[-1], bar[-1]


def test_no_progress_bar_when_stderr_is_a_pipe(tmp_path):
    done = run(DATA / "http_espn.pcapng", "-o", tmp_path / "out")
    assert done.returncode == 0
    assert "\r" not in done.stderr
    assert "open flows" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    summary(done.stderr)


def test_no_progress_bar_when_stderr_is_a_file(tmp_path):
    with open(tmp_path / "stderr.txt", "w") as err:
        status = subprocess.run(MODULE + [str(DATA / "ssh.pcap"), "-o", str(tmp_path / "out")], stderr=err,
                                stdout=subprocess.DEVNULL, timeout=120, check=False).returncode
    assert status == 0
    text = (tmp_path / "stderr.txt").read_text()
    assert "\r" not in text and len(text.splitlines()) == 1
    summary(text)
