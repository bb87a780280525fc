"""Planted flow files: in a world-writable output directory another user creates a
flow's predictable file name before the trace (mode 0666, or a hard link to a
file elsewhere), waiting for a root trace_file to write the capture into it.

pcapflow replaces an existing file only when it is the effective user's own with
no other link (an earlier run's: truncated, as pcapkit does); anything else is
refused with FileExistsError naming the path and left as it was. The tests run as
root (as in CI) and plant the files as `nobody`, in a sticky directory (mode
1777, like /tmp) and in a plain world-writable one (0777). fs.protected_regular
does not change the outcome: pcapflow opens an existing file without O_CREAT,
which is all that setting governs; its value is printed for the record."""
import errno
import os
import pwd
from pathlib import Path

import pytest

import pcapflow
from capture_tools import ACK, ETHERNET, FIN, Record, ethernet, ipv4, tcp, write_pcap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="planting a file as another user needs root")

PLANTED_TEXT = b"the other user's bytes\n"


def nobody():
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def protected_regular():
    try:
        return Path("/proc/sys/fs/protected_regular").read_text().strip()
    except OSError:
        return "unknown"


def two_flow_capture(path):
    """One flow closed by FIN (written by a background writer), one left open (written at the end)."""
    records = [
        Record(1_700_000_000, 0, ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(40000, 80, ACK, b"a")))),
        Record(1_700_000_001, 0, ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(40000, 80, FIN | ACK)))),
        Record(1_700_000_002, 0, ethernet(ipv4("10.0.0.3", "10.0.0.4", tcp(40001, 443, ACK, b"b")))),
    ]
    return write_pcap(path, records, ETHERNET)


def flow_names(capture, scratch):
    """The file names trace_file gives the capture's flows: closed flow first, then the open one."""
    index = pcapflow.trace_file(str(capture), str(scratch))
    return sorted((Path(flow.fpout).name for flow in index), key=lambda name: not name.startswith("10.0.0.1_"))


@pytest.fixture(params=[0o1777, 0o777], ids=["sticky-1777", "plain-0777"])
def shared_dir(request, tmp_path):
    print(f"fs.protected_regular = {protected_regular()}")
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, request.param)
    return directory


def plant(path, uid_gid):
    """Creates path owned by uid_gid, mode 0666, as that user would."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, PLANTED_TEXT)
        os.fchown(fd, *uid_gid)
        os.fchmod(fd, 0o666)
    finally:
        os.close(fd)


@pytest.mark.parametrize("which", ["closed flow", "open flow"])
def test_file_planted_by_another_user_is_refused(which, shared_dir, tmp_path):
    capture = two_flow_capture(tmp_path / "in.pcap")
    closed_name, open_name = flow_names(capture, tmp_path / "scratch")
    planted = shared_dir / (closed_name if which == "closed flow" else open_name)
    plant(planted, nobody())
    with pytest.raises(OSError) as caught:
        pcapflow.trace_file(str(capture), str(shared_dir))
    assert caught.value.errno == errno.EEXIST, caught.value
    assert caught.value.filename == str(planted), caught.value
    assert "another user's" in str(caught.value)
    assert planted.read_bytes() == PLANTED_TEXT, "the capture was written into the planted file"
    assert planted.stat().st_uid == nobody()[0]


def test_planted_file_refused_for_a_text_format(shared_dir, tmp_path):
    """The text formats' dumpers open their files in Python: pcapflow creates them first, with the same rule."""
    pytest.importorskip("pcapkit")
    capture = two_flow_capture(tmp_path / "in.pcap")
    names = pcapflow.trace_file(str(capture), str(tmp_path / "scratch"), "json")
    planted = shared_dir / Path(names[0].fpout).name
    plant(planted, nobody())
    with pytest.raises(OSError) as caught:
        pcapflow.trace_file(str(capture), str(shared_dir), "json")
    assert caught.value.filename == str(planted), caught.value
    assert planted.read_bytes() == PLANTED_TEXT


def test_hard_link_to_a_file_of_ours_is_refused(shared_dir, tmp_path):
    """A name linked to another file (owned by root, so the owner check alone would pass)."""
    capture = two_flow_capture(tmp_path / "in.pcap")
    closed_name, _ = flow_names(capture, tmp_path / "scratch")
    victim = shared_dir.parent / "victim"
    victim.write_bytes(PLANTED_TEXT)
    os.link(victim, shared_dir / closed_name)
    with pytest.raises(FileExistsError) as caught:
        pcapflow.trace_file(str(capture), str(shared_dir))
    assert caught.value.filename == str(shared_dir / closed_name)
    assert victim.read_bytes() == PLANTED_TEXT


def test_own_earlier_files_are_still_replaced(shared_dir, tmp_path):
    """Running again into the same directory truncates the effective user's own files, as before."""
    capture = two_flow_capture(tmp_path / "in.pcap")
    first = pcapflow.trace_file(str(capture), str(shared_dir))
    contents = {flow.fpout: Path(flow.fpout).read_bytes() for flow in first}
    for path in contents:
        Path(path).write_bytes(b"x" * 100_000)  # longer than the flow: truncation shows
    second = pcapflow.trace_file(str(capture), str(shared_dir))
    assert {flow.fpout: Path(flow.fpout).read_bytes() for flow in second} == contents
