"""pcapflow split --payload: one file per direction, the bytes of Follow TCP
Stream without its gap texts, an index of what is missing; against
pcapflow.follow and against tcpflow (Debian's) on captures without gaps."""
import errno
import ipaddress
import json
import os
import shutil
import subprocess
import sys

import pytest

import pcapflow
from pcapflow.payload import split_payload

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
ESPN = os.path.join(HERE, "..", "examples", "data", "http_espn.pcapng")
# tcpflow writes the same bytes for these; on dns_tcp.pcap and whois.pcap it takes the Ethernet padding of
# 60-byte frames (6 zero bytes after a FIN) for data, which tshark and pcapflow leave out
CLEAN = ["ssh.pcap", "http_ip4and6.pcapng", "dns_tcp.pcapng"]
ALL = [os.path.join(DATA, name) for name in CLEAN + ["dns_tcp.pcap", "whois.pcap", "tcp_retransmissions.pcapng",
                                                      "tcp_teardown.pcapng", "tcp-handshake-nano.pcap"]] + [ESPN]


def read(directory, name):
    with open(os.path.join(directory, name), "rb") as file:
        return file.read()


@pytest.mark.parametrize("capture", ALL, ids=os.path.basename)
def test_files_hold_what_follow_gives(capture, tmp_path):
    out = tmp_path / "out"
    entries = split_payload(capture, out, index=tmp_path / "index.jsonl")
    conversations = list(pcapflow.follow(capture))
    assert len(entries) == len(conversations)
    with open(tmp_path / "index.jsonl", encoding="utf-8") as file:
        assert [json.loads(line) for line in file] == entries
    files = set()
    for entry, conversation in zip(entries, conversations):
        assert entry["stream"] == conversation.stream
        assert entry["frames"] == len(conversation.frames)
        if conversation.records:
            assert [tuple(node) for node in entry["nodes"]] == list(conversation.nodes)
        for node, direction in enumerate(entry["directions"]):
            expected = conversation.data(node, markers=False)
            if direction["file"] is None:
                assert expected == b"" and direction["bytes"] == 0
                continue
            files.add(direction["file"])
            assert read(out, direction["file"]) == expected
            assert direction["bytes"] == len(expected)
            assert [(g["offset"], g["length"], g["frame"]) for g in direction["gaps"]] == \
                [(g.offset, g.length, g.frame) for g in conversation.gaps if g.node == node]
            src, dst = direction["src"], direction["dst"]
            assert direction["file"] == f"{entry['stream']}-{src[0]}.{src[1]}-{dst[0]}.{dst[1]}"
    assert sorted(os.listdir(out)) == sorted(files)


def test_a_gap_is_left_out_and_indexed(tmp_path):
    entries = split_payload(ESPN, tmp_path / "out")
    gaps = [(e["stream"], d["node"], g) for e in entries for d in e["directions"] for g in d["gaps"]]
    # stream 3: the server's 3,038 bytes the capture lacks, found missing at frame 895 (tshark agrees)
    assert gaps == [(3, 1, {"offset": 166808, "length": 3038, "frame": 895})]
    direction = entries[3]["directions"][1]
    data = read(tmp_path / "out", direction["file"])
    assert len(data) == direction["bytes"]
    assert b"bytes missing in capture file" not in data


def tcpflow_name(address, port):
    address = ipaddress.ip_address(address)
    if address.version == 4:
        return ".".join(f"{int(part):03d}" for part in str(address).split(".")) + f".{port:05d}"
    return f"{address}.{port:05d}"


@pytest.mark.skipif(not shutil.which("tcpflow"), reason="tcpflow is installed by make deps")
@pytest.mark.parametrize("name", CLEAN)
def test_same_bytes_as_tcpflow(name, tmp_path):
    capture = os.path.join(DATA, name)
    subprocess.run(["tcpflow", "-r", capture, "-o", str(tmp_path / "tcpflow")], check=True, capture_output=True)
    theirs = {f: read(tmp_path / "tcpflow", f) for f in os.listdir(tmp_path / "tcpflow")
              if not f.endswith(".xml")}
    entries = split_payload(capture, tmp_path / "ours")
    ours = {}
    for entry in entries:
        for direction in entry["directions"]:
            if direction["file"]:
                key = tcpflow_name(*direction["src"]) + "-" + tcpflow_name(*direction["dst"])
                ours[key] = ours.get(key, b"") + read(tmp_path / "ours", direction["file"])
    assert theirs, "tcpflow wrote nothing"
    assert ours == theirs


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pcapflow", "split", *map(str, args)], capture_output=True, text=True)


def test_cli_writes_files_and_index(tmp_path):
    done = run_cli(ESPN, "-o", tmp_path / "out", "--payload")
    assert done.returncode == 0, done.stderr
    assert "25 conversations, 50 files" in done.stderr
    with open(tmp_path / "out" / "index.jsonl", encoding="utf-8") as file:
        assert len(file.readlines()) == 25
    assert len(os.listdir(tmp_path / "out")) == 51


def test_cli_without_payload_is_the_pcap_split(tmp_path):
    done = run_cli(ESPN, "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert all(name.endswith(".pcap") for name in os.listdir(tmp_path / "out"))
    index = pcapflow.trace_file(ESPN, str(tmp_path / "again"))
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(flow.fpout) for flow in index)


def test_cli_usage_and_errors(tmp_path):
    assert run_cli(ESPN).returncode == 2
    missing = run_cli(tmp_path / "nothing.pcap", "-o", tmp_path / "out", "--payload")
    assert missing.returncode == 1 and "nothing.pcap" in missing.stderr and "Traceback" not in missing.stderr
    bad = run_cli(ESPN, "-o", tmp_path / "out", "--payload", "--filter", "tcp port")
    assert bad.returncode == 2 and "filter" in bad.stderr and "Traceback" not in bad.stderr


def test_damaged_capture_keeps_what_was_read(tmp_path):
    with open(ESPN, "rb") as file:
        head = file.read(200_000)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(head)
    with pytest.raises(pcapflow.CaptureError) as caught:
        split_payload(cut, tmp_path / "out", index=tmp_path / "index.jsonl")
    entries = caught.value.conversations
    assert entries and len((tmp_path / "index.jsonl").read_text().splitlines()) == len(entries)
    # every byte followed before the damage is in the files
    whole = {(e["stream"], d["node"]): d["bytes"] for e in split_payload(ESPN, tmp_path / "whole")
             for d in e["directions"]}
    for entry in entries:
        for direction in entry["directions"]:
            assert direction["bytes"] <= whole[(entry["stream"], direction["node"])]
            if direction["file"]:
                assert os.path.getsize(tmp_path / "out" / direction["file"]) == direction["bytes"]
    done = run_cli(cut, "-o", tmp_path / "cli", "--payload")
    assert done.returncode == 1 and "cut.pcapng" in done.stderr
    assert (tmp_path / "cli" / "index.jsonl").exists()


def test_unwritable_directory_names_the_path(tmp_path):
    from _hardening import tmpfs  # pylint: disable=import-outside-toplevel
    with tmpfs(tmp_path / "ro", readonly=True):
        with pytest.raises(OSError) as caught:
            split_payload(ESPN, tmp_path / "ro")
        assert str(tmp_path / "ro") in str(caught.value)


def test_a_planted_link_is_not_followed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    os.symlink(victim, out / "0-172.16.0.122.52166-199.181.132.250.80")
    with pytest.raises(OSError) as caught:
        split_payload(ESPN, out)
    assert "0-172.16.0.122.52166-199.181.132.250.80" in str(caught.value)
    assert victim.read_bytes() == b"keep"


def test_full_disk_is_reported_with_the_path(tmp_path):
    from _hardening import tmpfs  # pylint: disable=import-outside-toplevel
    with tmpfs(tmp_path / "small", size="64k"):
        with pytest.raises(OSError) as caught:
            split_payload(ESPN, tmp_path / "small" / "out")
        assert caught.value.errno == errno.ENOSPC
        assert str(tmp_path / "small" / "out") in str(caught.value)
