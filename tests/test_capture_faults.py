"""pcapflow.trace_file on damaged, hostile and extreme input.

Everything must end in a result or in the documented exception
(CaptureError, FilterError, FileNotFoundError, OSError), never in a crash;
flows read before damage are reported and their files are complete. Runs that
could crash the interpreter (mutated captures, the descriptor limit) run in a
subprocess so a crash fails the test instead of killing pytest."""
import errno
import io
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

import pcapflow
from capture_tools import (ACK, DATA, ETHERNET, FIN, HERE, PSH, SHARED_CAPTURES, SYN, TCPDUMP, Record, TCPPacket,
                           as_tuples, authentication, check_flow_files, destination_options, ethernet,
                           expected_flows, fragment, hop_by_hop, ipv4, ipv6, pcap_header, pcap_record,
                           read_capture, routing, tcp, write_pcap, record_offsets)

SHARED = sorted(p for p in SHARED_CAPTURES.glob("*/*") if p.is_file() and p.suffix in (".pcap", ".pcapng")) \
    if SHARED_CAPTURES.is_dir() else []


def run_python(code, *args, timeout):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


# ---------------------------------------------------------------------------
# Every shared capture goes through without a crash
# ---------------------------------------------------------------------------

ALL_CAPTURES = """
import json, os, sys, warnings
import pcapflow
out, results, *paths = sys.argv[1:]
with open(results, "w") as log:
    for k, path in enumerate(paths):
        log.write(json.dumps({"path": path, "started": True}) + "\\n")
        log.flush()
        fout = os.path.join(out, str(k))
        stats = {}
        try:
            index = pcapflow.trace_file(path, fout, stats=stats)
            entry = {"path": path, "fout": fout, "ok": True, "stats": stats}
        except pcapflow.CaptureError as error:
            index = error.index
            entry = {"path": path, "fout": fout, "ok": False, "error": str(error), "frame": error.frame,
                     "offset": error.offset, "stats": error.stats}
        except BaseException as error:
            index = ()
            entry = {"path": path, "ok": False, "unexpected": f"{type(error).__name__}: {error}"}
        entry["index"] = [[flow.fpout, list(flow.index), flow.label] for flow in index]
        log.write(json.dumps(entry) + "\\n")
        log.flush()
"""


@pytest.fixture(scope="module")
def shared_results(tmp_path_factory):
    """All shared captures traced by one subprocess; path -> its result (missing when the process died on it)."""
    tmp = tmp_path_factory.mktemp("shared")
    results = tmp / "results.jsonl"
    done = run_python(ALL_CAPTURES, tmp / "out", results, *SHARED, timeout=300)
    entries = {}
    for line in results.read_text().splitlines():
        entry = json.loads(line)
        if "started" in entry:
            entries.setdefault(entry["path"], None)
        else:
            entries[entry["path"]] = entry
    return done, entries


@pytest.mark.skipif(not SHARED, reason="../shared/captures is not there")
@pytest.mark.parametrize("path", SHARED, ids=[f"{p.parent.name}/{p.name}" for p in SHARED])
def test_every_shared_capture_traces_without_crashing(path, shared_results):
    done, entries = shared_results
    entry = entries.get(str(path))
    assert entry is not None, (f"the process died on {path}: exit status {done.returncode}\n{done.stderr[-3000:]}")
    assert "unexpected" not in entry, entry["unexpected"]
    index = [SimpleNamespace(fpout=fpout, index=tuple(frames), label=label) for fpout, frames, label in entry["index"]]
    if not entry["ok"]:
        assert isinstance(entry["frame"], int) and entry["frame"] >= 1, entry
        assert isinstance(entry["offset"], int), entry
    # the files hold the frames of their flows (libpcap's view of the capture where this reader has one)
    try:
        capture = read_capture(path)
    except ValueError:
        capture = None
    if capture is not None and index:
        check_flow_files(index, capture)
    assert len(os.listdir(entry["fout"])) == len(index) if os.path.isdir(entry["fout"]) else not index


# ---------------------------------------------------------------------------
# Damaged captures
# ---------------------------------------------------------------------------

def flows_of_the_first(n, name, out):
    """trace_file over a capture of only the first n records of `name`: what survives damage at record n + 1."""
    blob = (DATA / name).read_bytes()
    offsets = record_offsets(blob) + [len(blob)]
    return pcapflow.trace_file(io.BytesIO(blob[:offsets[n]]), str(out))


@pytest.mark.parametrize("where", ["record-data", "record-header"])
@pytest.mark.parametrize("source", ["path", "bytesio"])
def test_capture_truncated_mid_record(where, source, tmp_path):
    name = "ssh.pcap"
    blob = (DATA / name).read_bytes()
    offsets = record_offsets(blob)
    damaged_frame = 30
    start = offsets[damaged_frame - 1]
    cut = start + (16 + 5 if where == "record-data" else 8)
    path = tmp_path / "cut.pcap"
    path.write_bytes(blob[:cut])
    fin = str(path) if source == "path" else io.BytesIO(blob[:cut])
    stats = {}
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(fin, str(tmp_path / "out"), stats=stats)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.frame == damaged_frame
    assert isinstance(error.offset, int) and start <= error.offset <= cut, error.offset
    if source == "path":
        assert error.filename == str(path)
        assert str(path) in str(error)
    assert error.stats["frames"] == damaged_frame - 1
    assert stats["frames"] == damaged_frame - 1 and stats["last_frame"] == damaged_frame - 1
    # the flows before the damage, their files complete
    before = flows_of_the_first(damaged_frame - 1, name, tmp_path / "before")
    assert as_tuples(error.index, tmp_path / "out") == as_tuples(before, tmp_path / "before")
    assert error.index, "no flows before the damage: not a useful test"
    check_flow_files(error.index, read_capture(DATA / name))
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(f.fpout) for f in error.index)


def test_capture_cut_at_a_record_boundary_is_complete(tmp_path):
    blob = (DATA / "ssh.pcap").read_bytes()
    offsets = record_offsets(blob)
    path = tmp_path / "cut.pcap"
    path.write_bytes(blob[:offsets[30]])
    stats = {}
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), stats=stats)
    assert stats["frames"] == 30
    check_flow_files(index, read_capture(path))


def test_pcapng_truncated_mid_block(tmp_path):
    blob = (DATA / "http_ip4and6.pcapng").read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(blob[:len(blob) * 2 // 3])
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    error = caught.value
    assert error.filename == str(path)
    assert isinstance(error.frame, int) and error.frame > 1
    assert isinstance(error.offset, int) and 0 < error.offset <= len(blob) * 2 // 3
    full = read_capture(DATA / "http_ip4and6.pcapng")
    assert all(n < error.frame for flow in error.index for n in flow.index)
    check_flow_files(error.index, full)


def test_trace_files_damage_in_the_second_capture(tmp_path):
    """The flows of the first capture and of the second up to the damage are written and reported."""
    blob = (DATA / "ssh.pcap").read_bytes()
    offsets = record_offsets(blob)
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(blob[:offsets[10] + 20])
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_files([str(DATA / "dns_tcp.pcap"), str(damaged)], str(tmp_path / "out"))
    error = caught.value
    assert error.filename == str(damaged)
    assert error.frame == 11 + 11
    frames = sorted(n for flow in error.index for n in flow.index)
    assert frames == list(range(1, 11 + 10 + 1))
    series = [read_capture(DATA / "dns_tcp.pcap"), read_capture(DATA / "ssh.pcap")]
    check_flow_files(error.index, series)


@pytest.mark.parametrize("content", [b"hello, this is not a packet capture at all\n" * 3, bytes(range(256)),
                                     b"\xd4\xc3\xb2\xa1\x02\x00"], ids=["text", "binary", "short-header"])
def test_not_a_capture(content, tmp_path):
    path = tmp_path / "not-a-capture"
    path.write_bytes(content)
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert caught.value.filename == str(path)
    assert caught.value.index == ()
    with pytest.raises(pcapflow.CaptureError):
        pcapflow.trace_file(io.BytesIO(content), str(tmp_path / "out2"))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert caught.value.filename == str(path)
    assert caught.value.index == ()


def test_empty_bytesio(tmp_path):
    """An empty binary file object holds an empty (damaged) capture, like an empty file."""
    with pytest.raises(pcapflow.CaptureError):
        pcapflow.trace_file(io.BytesIO(b""), str(tmp_path / "out"))


def test_header_only_capture(tmp_path):
    path = tmp_path / "header-only.pcap"
    path.write_bytes(pcap_header(ETHERNET))
    stats = {}
    assert pcapflow.trace_file(str(path), str(tmp_path / "out"), stats=stats) == ()
    assert stats["frames"] == 0 and stats["last_frame"] == 0


def test_missing_file(tmp_path):
    path = tmp_path / "no-such-capture.pcap"
    with pytest.raises(FileNotFoundError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert caught.value.filename == str(path)
    with pytest.raises(FileNotFoundError) as caught:
        pcapflow.trace_files([str(DATA / "dns_tcp.pcap"), str(path)], str(tmp_path / "out2"))
    assert caught.value.filename == str(path)


def test_caplen_above_the_snapshot_length_is_cut_as_libpcap_cuts_it(tmp_path):
    """Records longer than the file's snapshot length: libpcap keeps the first snaplen bytes (tcpdump -w
    shows libpcap's view); the flow files hold exactly that."""
    frame = ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80, ACK | PSH, b"x" * 100)))
    records = [Record(1_600_000_000, i * 1000, frame) for i in range(3)]
    path = write_pcap(tmp_path / "long.pcap", records, ETHERNET, snaplen=100)
    libpcap_view = tmp_path / "libpcap.pcap"
    subprocess.run([TCPDUMP, "-r", str(path), "-w", str(libpcap_view)], check=True, capture_output=True)
    view = read_capture(libpcap_view)
    assert [r.caplen for r in view.records] == [100] * 3 and [r.orig_len for r in view.records] == [len(frame)] * 3
    (flow,) = pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert flow.index == (1, 2, 3)
    check_flow_files([flow], view)


def test_caplen_above_the_maximum_is_damage(tmp_path):
    frame = ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80)))
    blob = (pcap_header(ETHERNET) + pcap_record(1_600_000_000, 0, frame)
            + pcap_record(1_600_000_000, 1, frame, caplen=0x7FFFFFF0) + pcap_record(1_600_000_000, 2, frame))
    path = tmp_path / "huge.pcap"
    path.write_bytes(blob)
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    error = caught.value
    assert error.frame == 2
    assert [flow.index for flow in error.index] == [(1,)]
    check_flow_files(error.index, read_capture(pcap_header(ETHERNET) + pcap_record(1_600_000_000, 0, frame)))


@pytest.mark.parametrize("expression", ["tcp port", "host 999.1.2.3", "not a filter (", "ether[ == 1"])
def test_bpf_that_does_not_compile(expression, tmp_path):
    with pytest.raises(pcapflow.FilterError) as caught:
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "out"), filter=expression)
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, pcapflow.CaptureError)
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_bpf_for_the_wrong_link_type(tmp_path):
    """'ether host' does not compile for a raw IP capture."""
    with pytest.raises(pcapflow.FilterError):
        pcapflow.trace_file(str(DATA / "bgp-addpath.pcap"), str(tmp_path / "out"), filter="ether host 1:2:3:4:5:6")


def test_output_directory_blocked_by_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("in the way")
    with pytest.raises(OSError) as caught:
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(blocker))
    assert caught.value.filename == str(blocker), caught.value
    with pytest.raises(OSError) as caught:
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(blocker / "sub"))
    assert caught.value.filename == str(blocker / "sub"), caught.value
    assert blocker.read_text() == "in the way"


def test_output_directory_not_writable(tmp_path):
    # Root writes into any directory whatever its mode, so as root the
    # directory is a read-only tmpfs mount instead (EROFS rather than EACCES).
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)], capture_output=True).returncode == 0
    try:
        with pytest.raises(OSError) as caught:
            pcapflow.trace_file(str(DATA / "ssh.pcap"), str(locked / "out"))
        assert caught.value.filename == str(locked / "out")
        assert isinstance(caught.value, PermissionError) or caught.value.errno == errno.EROFS, caught.value
    finally:
        if mounted:
            subprocess.run(["umount", str(locked)], check=True)


# ---------------------------------------------------------------------------
# Mutated captures
# ---------------------------------------------------------------------------

MUTATE = """
import io, json, os, random, shutil, sys, warnings
import pcapflow
from capture_tools import read_capture
seed, runs, work, *paths = sys.argv[1:]
rng = random.Random(int(seed))
blobs = [open(p, "rb").read() for p in paths]
current = os.path.join(work, "current.bin")
problems, outcomes = [], {"ok": 0, "CaptureError": 0, "FilterError": 0}
for run in range(int(runs)):
    original = blobs[run % len(blobs)]
    data = bytearray(original)
    for _ in range(rng.randint(1, 8)):
        # half of the flips fall in the first 96 bytes: file, section, interface and first record headers
        position = rng.randrange(min(len(data), 96)) if rng.random() < 0.5 else rng.randrange(len(data))
        data[position] ^= rng.randrange(1, 256)
    if rng.random() < 0.15:
        data = data[:rng.randrange(1, len(data))]
    data = bytes(data)
    with open(current, "wb") as out:  # kept for the report if this input kills the process
        out.write(data)
    fout = os.path.join(work, "out")
    fin = current if run % 2 else io.BytesIO(data)
    nanosecond = run % 3 == 0
    bpf = "tcp or ip6" if run % 5 == 0 else None
    stats = {}
    try:
        index = pcapflow.trace_file(fin, fout, nanosecond=nanosecond, filter=bpf, stats=stats)
        outcomes["ok"] += 1
    except pcapflow.CaptureError as error:
        outcomes["CaptureError"] += 1
        index = error.index
        if not isinstance(error.frame, int) or not isinstance(error.offset, int):
            problems.append({"run": run, "problem": f"CaptureError without frame/offset: {error!r}"})
    except pcapflow.FilterError:
        outcomes["FilterError"] += 1  # a mutated link type may have no BPF support
        index = ()
    except BaseException as error:
        problems.append({"run": run, "source": paths[run % len(paths)],
                         "problem": f"{type(error).__name__}: {error}", "input": data.hex()})
        index = ()
    for flow in index:  # every reported flow's file is complete: one record per frame
        try:
            records = read_capture(flow.fpout).records
            if len(records) != len(flow.index):
                raise ValueError(f"{len(records)} records for {len(flow.index)} frames")
        except Exception as error:
            problems.append({"run": run, "source": paths[run % len(paths)], "problem": f"{flow.fpout}: {error}",
                             "input": data.hex()})
    if os.path.isdir(fout):
        shutil.rmtree(fout)
print(json.dumps({"problems": problems[:20], "count": len(problems), "outcomes": outcomes}))
"""

MUTATION_SOURCES = ["dns_tcp.pcap", "ssh.pcap", "tcp-handshake-nano.pcap", "http_ip4and6.pcapng", "dns_axfr.pcapng",
                    "bgp-role.pcapng", "pptp.pcap", "bgp-addpath.pcap", "tcp_rst_diag_payload.pcap", "kday3.pcap"]


def decoder_exercise_capture(path):
    """A generated capture of the headers the decoder walks: VLAN tags, IPv4 options, IPv6 extension chains."""
    a4, b4, a6, b6 = "10.1.1.1", "10.2.2.2", "2001:db8::1", "2001:db8::2"
    frames = [
        ethernet(ipv4(a4, b4, tcp(1, 2, SYN), options=b"\x94\x04\0\0"), vlans=[(0x88A8, 1), (0x8100, 2)]),
        ethernet(ipv6(a6, b6, tcp(3, 4, ACK), extensions=[(0, hop_by_hop), (60, destination_options), (43, routing),
                                                           (44, fragment(0, True)), (51, authentication)])),
        ethernet(ipv6(a6, b6, tcp(3, 4, FIN | ACK), extensions=[(44, fragment(0, False))]), vlans=[(0x8100, 3)]),
        ethernet(ipv4(b4, a4, tcp(2, 1, FIN | ACK), more_fragments=True)),
    ]
    return write_pcap(path, [Record(1_600_000_000, i, f) for i, f in enumerate(frames)], ETHERNET)


def test_mutated_captures_succeed_or_raise_capture_error(tmp_path):
    sources = [str(DATA / name) for name in MUTATION_SOURCES] + [str(decoder_exercise_capture(tmp_path / "gen.pcap"))]
    work = tmp_path / "work"
    work.mkdir()
    done = run_python(MUTATE, 20240601, 5000, work, *sources, timeout=170)
    if done.returncode != 0:
        kept = tmp_path / "crashing-input.bin"
        if (work / "current.bin").exists():
            shutil.copy(work / "current.bin", kept)
        pytest.fail(f"the tracing process died (exit status {done.returncode}); its last input is kept in {kept}\n"
                    f"{done.stderr[-3000:]}")
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["count"] == 0, json.dumps(report["problems"][:5], indent=1)[:5000]
    assert report["outcomes"]["ok"] > 0 and report["outcomes"]["CaptureError"] > 0, report["outcomes"]


# ---------------------------------------------------------------------------
# 100,000 flows with 64 file descriptors
# ---------------------------------------------------------------------------

MANY_FLOWS = """
import json, resource, sys
import pcapflow
capture, out, result = sys.argv[1:]
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
index = pcapflow.trace_file(capture, out)
with open(result, "w") as log:
    for flow in index:
        log.write(json.dumps([flow.fpout, list(flow.index), flow.label]) + "\\n")
"""


def many_flows(path, singles=100_000, multi=300, rounds=12):
    """singles one-packet flows (distinct sources), and `multi` flows of `rounds` packets each spread over the
    whole capture; a third of those end with a FIN, and their next packet reopens them."""
    import ipaddress
    eth = ethernet(b"", 0x0800)
    template = ipv4("10.0.0.0", "192.0.2.1", tcp(0, 80, SYN))
    records, packets = [], []
    every = singles // (multi * rounds // 10 + 1) or 1
    m = 0
    for i in range(singles):
        src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
        sport = 1024 + i % 60000
        ip = template[:12] + src + template[16:20] + sport.to_bytes(2, "big") + template[22:]
        records.append(Record(1_700_000_000 + len(records) // 1000, len(records) % 1000 * 1000, eth + ip))
        packets.append((len(records), ipaddress.IPv4Address(src), sport, "192.0.2.1", 80, False))
        if i % every == 0:
            for _ in range(10):
                flow = m % multi
                rnd = m // multi
                if rnd < rounds:
                    fin = flow % 3 == 0 and rnd % 4 == 3
                    frame = ethernet(ipv4(f"172.16.{flow >> 8}.{flow & 255}", "192.0.2.2",
                                          tcp(40000 + flow, 443, (FIN | ACK) if fin else ACK, b"d" * (flow % 40))))
                    records.append(Record(1_700_000_000 + len(records) // 1000, len(records) % 1000 * 1000, frame))
                    packets.append((len(records), ipaddress.IPv4Address(f"172.16.{flow >> 8}.{flow & 255}"),
                                    40000 + flow, "192.0.2.2", 443, fin))
                m += 1
    write_pcap(path, records, ETHERNET)
    tcp_packets = [TCPPacket(n, src, sport, ipaddress.IPv4Address(dst), dport, fin, records[n - 1].time_epoch)
                   for n, src, sport, dst, dport, fin in packets]
    return records, tcp_packets


def test_100000_flows_with_64_file_descriptors(tmp_path):
    capture = tmp_path / "many.pcap"
    records, packets = many_flows(capture)
    out = tmp_path / "out"
    result = tmp_path / "index.jsonl"
    try:
        _check_many_flows(capture, records, packets, out, result)
    finally:
        shutil.rmtree(out, ignore_errors=True)  # 100,000 files: do not leave them to pytest's kept directories


def _check_many_flows(capture, records, packets, out, result):
    done = run_python(MANY_FLOWS, capture, out, result, timeout=170)
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    got = [tuple(json.loads(line)) for line in result.read_text().splitlines()]
    got = [(fpout, tuple(frames), label) for fpout, frames, label in got]
    expected = expected_flows(packets, str(out))
    assert len(expected) > 100_000
    assert len(got) == len(expected)
    assert got == expected
    assert len(os.listdir(out)) == len(expected)
    # a sample of the one-packet flows and every multi-packet flow read back correctly
    rng = random.Random(7)
    flows = [SimpleNamespace(fpout=f, index=i, label=l) for f, i, l in got]
    sample = [f for f in flows if len(f.index) > 1] + rng.sample([f for f in flows if len(f.index) == 1], 500)
    assert len(sample) > 600
    capture_read = SimpleNamespace(records=records, linktype=ETHERNET)
    check_flow_files(sample, capture_read)
