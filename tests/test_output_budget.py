"""trace_file's output budget: chosen from the memory available and the capture's size,
bounded by an explicit buffer_bytes, and reported in the stats with how often files were
created, written and reopened. Whatever the budget, the files and the index are the same.
(No time is asserted.)"""
import io
import json
import os
import subprocess
import sys

import pytest

import pcapflow
from pcapflow import _core
from _hardening import SANITIZED, generated_capture, python_env
from capture_tools import ETHERNET, check_flow_files, read_capture, write_pcap

MB = 1 << 20
# The chooser takes at most four times the capture: buffers are counted by the memory they hold
# (a buffer holds at least half its capacity, or a first record of 70 bytes or more in 256 bytes).
CAPTURE_FACTOR = 4
# what the tracer keeps open at most (a quarter of RLIMIT_NOFILE, at most 256): more flows than this
# open at once, each written more than once, and files get reopened
FLOWS = 600


@pytest.fixture(scope="module")
def many_open(tmp_path_factory):
    """FLOWS flows, all open at once (frames round-robin), 5 frames each, the last with FIN."""
    tmp = tmp_path_factory.mktemp("budget")
    records, _ = generated_capture(FLOWS, FLOWS * 5, 150, fin_every=5)
    return write_pcap(tmp / "many.pcap", records, ETHERNET)


def tree(path):
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path))}


def relative(index, root):
    return [(os.path.relpath(i.fpout, root), i.index, i.label) for i in index]


def test_the_chosen_budget_is_reported_and_each_file_written_once(many_open, tmp_path):
    stats = {}
    index = pcapflow.trace_file(str(many_open), str(tmp_path / "auto"), "pcap", stats=stats)
    size = os.path.getsize(many_open)
    assert 4096 <= stats["buffer_bytes"] <= CAPTURE_FACTOR * size, "no more than the capture's buffers can take"
    available = _core.available_memory()
    assert not available or stats["buffer_bytes"] <= max(available // 8, 4 * MB)
    # the capture fits in the budget: every file is made once, when its flow ends
    assert stats["files_created"] == stats["file_writes"] == len(index) == FLOWS
    assert stats["file_reopens"] == stats["budget_flushes"] == 0
    check_flow_files(index, read_capture(many_open))


@pytest.mark.parametrize("writers", ["0", "2"])
def test_a_small_explicit_budget_bounds_it_and_changes_no_byte(many_open, tmp_path, monkeypatch, writers):
    monkeypatch.setenv("PCAPFLOW_WRITERS", writers)
    auto = pcapflow.trace_file(str(many_open), str(tmp_path / "auto"), "pcap")
    stats = {}
    small = pcapflow.trace_file(str(many_open), str(tmp_path / "small"), "pcap", stats=stats, buffer_bytes=4096)
    assert stats["buffer_bytes"] == 4096
    # the budget filled again and again: files were written several times, most of them reopened
    assert stats["budget_flushes"] > 0
    assert stats["files_created"] == FLOWS
    assert stats["file_writes"] > stats["files_created"]
    assert stats["file_reopens"] > 0
    assert relative(small, tmp_path / "small") == relative(auto, tmp_path / "auto")
    assert tree(tmp_path / "small") == tree(tmp_path / "auto")
    check_flow_files(small, read_capture(many_open))


def test_a_large_explicit_budget_is_still_no_more_than_the_capture(many_open, tmp_path):
    stats = {}
    pcapflow.trace_file(str(many_open), str(tmp_path / "out"), "pcap", stats=stats, buffer_bytes=1 << 40)
    assert stats["buffer_bytes"] <= CAPTURE_FACTOR * os.path.getsize(many_open)


def test_a_capture_of_unknown_size_gets_a_bounded_budget(many_open, tmp_path):
    stats = {}
    with open(many_open, "rb") as file:
        data = file.read()
    index = pcapflow.trace_file(io.BytesIO(data), str(tmp_path / "out"), "pcap", stats=stats)
    assert 4096 <= stats["buffer_bytes"] <= 256 * MB
    assert len(index) == FLOWS


def test_trace_files_bounds_the_budget_by_the_whole_series(many_open, tmp_path):
    stats = {}
    pcapflow.trace_files([str(many_open), str(many_open)], str(tmp_path / "out"), "pcap", stats=stats)
    size = os.path.getsize(many_open)
    assert CAPTURE_FACTOR * size < stats["buffer_bytes"] <= 2 * CAPTURE_FACTOR * size


def test_the_chooser():
    assert _core.output_budget(10) == 4096  # the least a tracer takes
    assert _core.output_budget(10**9, 5000) == 5000
    assert _core.output_budget(0) <= 256 * MB
    huge = _core.output_budget(10**15)
    available = _core.available_memory()
    # an eighth of what is available (which moves a little between the two calls), at least 4 MiB
    expected = max(available // 8, 4 * MB) if available else 32 * MB
    assert abs(huge - expected) <= expected // 10
    # what TCP() refuses is handed on for it to say so
    assert _core.output_budget(10**9, 100) == 100
    assert _core.output_budget(10**9, -1) == -1
    with pytest.raises(ValueError, match="buffer_bytes"):
        pcapflow.trace_file(io.BytesIO(b""), None, "pcap", buffer_bytes=100)


LIMITED = """
import json, os, resource
from pcapflow import _core
with open("/proc/self/statm") as statm:
    used = int(statm.read().split()[0]) * os.sysconf("SC_PAGESIZE")
resource.setrlimit(resource.RLIMIT_AS, (used + 200 * 2**20, resource.RLIM_INFINITY))
print(json.dumps({"available": _core.available_memory(), "budget": _core.output_budget(10**12)}))
"""


@pytest.mark.skipif(SANITIZED, reason="the sanitizers reserve terabytes of address space")
def test_the_budget_follows_an_address_space_limit():
    done = subprocess.run([sys.executable, "-c", LIMITED], capture_output=True, text=True, timeout=60,
                          env=python_env(), check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["available"] <= 200 * MB
    assert report["budget"] <= 25 * MB


def test_the_cli_takes_a_buffer_bound(many_open, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pcapflow", str(many_open), "-o", str(tmp_path / "small"),
                           "--buffer-mb", "1"], capture_output=True, text=True, timeout=120, env=python_env(),
                          check=False)
    assert done.returncode == 0, done.stderr
    pcapflow.trace_file(str(many_open), str(tmp_path / "auto"), "pcap")
    assert tree(tmp_path / "small") == tree(tmp_path / "auto")
