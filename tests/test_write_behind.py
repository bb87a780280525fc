"""trace_file's background writers (csrc/core/write_behind.c).

Flows closed by FIN whose file is still to be made are created by worker
threads; PCAPFLOW_WRITERS sets how many (0: the tracer writes everything
itself). Whatever the number, the index and every file must be the same, and
a file a worker cannot make must be reported as the tracer would report it.
"""
import errno
import os

import pytest

import pcapflow
from _hardening import generated_capture
from capture_tools import ETHERNET, check_flow_files, expected_flows, read_capture, write_pcap


@pytest.fixture(scope="module")
def short_flows(tmp_path_factory):
    """2,000 flows of 3 frames closed by FIN (most files made in the background) and 50 left open."""
    tmp = tmp_path_factory.mktemp("behind")
    records, packets = generated_capture(2050, 6100, 120, fin_every=3)
    return write_pcap(tmp / "short.pcap", records, ETHERNET), packets


def tree(path):
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path))}


@pytest.mark.parametrize("writers", ["1", "2", "4"])
def test_same_files_with_and_without_background_writers(writers, short_flows, tmp_path, monkeypatch):
    capture, packets = short_flows
    monkeypatch.setenv("PCAPFLOW_WRITERS", "0")
    alone = pcapflow.trace_file(str(capture), str(tmp_path / "alone"), "pcap")
    monkeypatch.setenv("PCAPFLOW_WRITERS", writers)
    behind = pcapflow.trace_file(str(capture), str(tmp_path / "behind"), "pcap")

    def relative(index, root):
        return [(os.path.relpath(i.fpout, root), i.index, i.label) for i in index]

    assert relative(behind, tmp_path / "behind") == relative(alone, tmp_path / "alone")
    assert [(f, i, l) for f, i, l in expected_flows(packets, str(tmp_path / "behind"))] == \
        [(i.fpout, i.index, i.label) for i in behind]
    assert len(os.listdir(tmp_path / "behind")) == len(behind) == 2050
    assert tree(tmp_path / "behind") == tree(tmp_path / "alone")
    check_flow_files(behind, read_capture(capture))


@pytest.mark.parametrize("writers", ["0", "2"])
def test_a_file_a_worker_cannot_make_is_reported_by_name(writers, short_flows, tmp_path, monkeypatch):
    """A directory planted where a closed flow's file goes: IsADirectoryError naming it, whichever
    thread tried; no file is left half-written."""
    capture, packets = short_flows
    out = tmp_path / "out"
    flows = expected_flows(packets, str(out))
    closed = [fpout for fpout, _, _ in flows][-2000:]
    blocked = closed[700]
    os.makedirs(blocked)
    monkeypatch.setenv("PCAPFLOW_WRITERS", writers)
    with pytest.raises(OSError) as caught:
        pcapflow.trace_file(str(capture), str(out), "pcap")
    assert caught.value.errno == errno.EISDIR
    assert caught.value.filename == blocked
    assert os.path.isdir(blocked)
    # every flow closed before the blocked one reached its file, whole
    written = {fpout: index for fpout, index, _ in flows}
    before = [fpout for fpout in closed[:700]]
    assert all(os.path.isfile(path) for path in before)
    original = read_capture(capture).records
    for path in before:
        records = read_capture(path).records
        assert [r.data for r in records] == [original[n - 1].data for n in written[path]]
