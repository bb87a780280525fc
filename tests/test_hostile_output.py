"""A hostile output directory: someone who can write into fout plants things where flow files will go.

Flow file names are predictable ('{src}_{srcport}-{dst}_{dstport}-{timestamp}.pcap'),
so a symbolic link, a FIFO or a directory can be waiting there. pcapflow must
never write through a link (the victim outside fout stays as it was), never
hang, and must raise OSError naming the path. Labels come only from
addresses, ports and a float's repr, so they cannot hold '/' or be '..':
checked over every capture of tests/data/native."""
import errno
import gc
import json
import os
import re
import shutil

import pytest

import pcapflow
from _hardening import generated_capture, run_python
from _support import make_packet, record_payloads
from capture_tools import DATA, ETHERNET, expected_flows, write_pcap

LABEL = "10.0.0.1_40000-10.0.0.2_80-1.0"  # the label of make_packet(..., timestamp=1.0)
EXTENSIONS = {"pcap": ".pcap", "json": ".json", "plist": ".plist", "tree": ".txt"}
VICTIM_TEXT = b"the victim's own content\n"


@pytest.fixture
def victim(tmp_path):
    """A file outside the output directory that a planted link points at."""
    path = tmp_path / "elsewhere" / "victim"
    path.parent.mkdir()
    path.write_bytes(VICTIM_TEXT)
    return path


def dump_and_submit(tracer, *packets):
    for packet in packets:
        tracer.dump(packet)
    return tracer.submit()


@pytest.mark.parametrize("fmt", list(EXTENSIONS))
def test_symlink_at_a_new_flow_file(fmt, tmp_path, victim):
    """fout/<label>.<ext> is a symlink to a file outside fout before the flow's first frame."""
    out = tmp_path / "out"
    out.mkdir()
    planted = out / f"{LABEL}{EXTENSIONS[fmt]}"
    planted.symlink_to(victim)
    tracer = pcapflow.TCP(str(out), fmt)
    try:
        with pytest.raises(OSError) as caught:
            dump_and_submit(tracer, make_packet(pcapflow.Packet, 1, timestamp=1.0))
        assert caught.value.filename == str(planted), caught.value
        assert caught.value.errno == errno.ELOOP, caught.value
        assert str(planted) in str(caught.value)
    finally:
        assert victim.read_bytes() == VICTIM_TEXT, f"format {fmt!r} wrote through the planted link into {victim}"
        assert planted.is_symlink(), "the planted link was replaced"
        del tracer
        gc.collect()


def test_dangling_symlink_at_a_new_flow_file(tmp_path):
    """A link to a file that does not exist yet: pcapflow must not create it."""
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "would-be-created"
    (out / f"{LABEL}.pcap").symlink_to(target)
    tracer = pcapflow.TCP(str(out), "pcap")
    with pytest.raises(OSError) as caught:
        dump_and_submit(tracer, make_packet(pcapflow.Packet, 1, timestamp=1.0))
    assert caught.value.filename == str(out / f"{LABEL}.pcap")
    assert not target.exists() and not os.path.lexists(target), "pcapflow created the link's target"
    del tracer
    gc.collect()


@pytest.mark.parametrize("fmt", list(EXTENSIONS))
def test_symlink_swapped_in_after_the_file_was_created(fmt, tmp_path, victim):
    """The flow's file is replaced by a link between two frames (for pcap while the tracer has it closed, after
    close(); dictdumper's formats reopen the file for every frame): the next frame must not go through it."""
    out = tmp_path / "out"
    tracer = pcapflow.TCP(str(out), fmt)
    (flow,) = dump_and_submit(tracer, make_packet(pcapflow.Packet, 1, timestamp=1.0))
    tracer.close()  # descriptors closed: the next write opens the file again
    os.replace(flow.fpout, tmp_path / "moved")
    os.symlink(victim, flow.fpout)
    try:
        with pytest.raises(OSError) as caught:
            dump_and_submit(tracer, make_packet(pcapflow.Packet, 2, timestamp=1.0))
        assert caught.value.filename == flow.fpout
    finally:
        assert victim.read_bytes() == VICTIM_TEXT, f"format {fmt!r} wrote through the link swapped in at {flow.fpout}"
        del tracer
        gc.collect()
    if fmt == "pcap":
        assert record_payloads(tmp_path / "moved") == [b"frame-1"]


def test_symlink_swapped_in_for_a_closed_flow_written_by_its_writer(tmp_path, victim):
    """A writer from trace(output=True) outlives its flow (closed by FIN) and reopens the file to append: a link
    planted there meanwhile must not be followed."""
    out = tmp_path / "out"
    tracer = pcapflow.TCP(str(out), "pcap")
    writer = tracer.trace(make_packet(pcapflow.Packet, 1, timestamp=1.0, fin=True), output=True)
    (flow,) = tracer.submit()
    os.replace(flow.fpout, tmp_path / "moved.pcap")
    os.symlink(victim, flow.fpout)
    frame = make_packet(pcapflow.Packet, 1)["frame"]
    with pytest.raises(OSError) as caught:
        writer(frame)
    assert caught.value.filename == flow.fpout
    assert victim.read_bytes() == VICTIM_TEXT
    del tracer, writer
    gc.collect()


def test_symlink_planted_for_trace_file(tmp_path, victim):
    """trace_file() over a capture whose first flow's file name is known in advance."""
    records, packets = generated_capture(3, 30, 50, fin_every=4)
    capture = write_pcap(tmp_path / "c.pcap", records, ETHERNET)
    out = tmp_path / "out"
    out.mkdir()
    names = [fpout for fpout, _, _ in expected_flows(packets, str(out))]
    os.symlink(victim, names[0])
    with pytest.raises(OSError) as caught:
        pcapflow.trace_file(str(capture), str(out))
    assert caught.value.filename == names[0]
    assert caught.value.errno == errno.ELOOP
    assert victim.read_bytes() == VICTIM_TEXT
    del caught
    gc.collect()


def test_directory_at_a_flow_file(tmp_path):
    out = tmp_path / "out"
    (out / f"{LABEL}.pcap").mkdir(parents=True)
    tracer = pcapflow.TCP(str(out), "pcap")
    with pytest.raises(OSError) as caught:
        dump_and_submit(tracer, make_packet(pcapflow.Packet, 1, timestamp=1.0))
    assert caught.value.filename == str(out / f"{LABEL}.pcap")
    assert caught.value.errno == errno.EISDIR
    del tracer
    gc.collect()


PLANTED_FIFO = """
import json, os, sys
import pcapflow
from _support import make_packet
out, fmt = sys.argv[1], sys.argv[2]
tracer = pcapflow.TCP(out, fmt)
try:
    tracer.dump(make_packet(pcapflow.Packet, 1, timestamp=1.0))
    tracer.submit()
    print(json.dumps({"ok": True}))
except OSError as error:
    print(json.dumps({"ok": False, "error": repr(error), "filename": error.filename}))
"""


@pytest.mark.parametrize("fmt", ["pcap", "json"])
def test_fifo_at_a_flow_file_does_not_hang(fmt, tmp_path):
    """A FIFO (nobody reading it) planted at the flow's file: opening it for writing blocks forever unless
    pcapflow refuses what is not a regular file. Must end within 15 s with OSError naming the path."""
    out = tmp_path / "out"
    out.mkdir()
    fifo = out / f"{LABEL}{EXTENSIONS[fmt]}"
    os.mkfifo(fifo)
    done = run_python(PLANTED_FIFO, out, fmt, timeout=15, what=f"dump() into a planted FIFO ({fmt})")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert not report["ok"], f"pcapflow wrote frames into a FIFO planted at {fifo}"
    assert report["filename"] == str(fifo), report


# ---------------------------------------------------------------------------
# fout itself a symbolic link
# ---------------------------------------------------------------------------

def test_symlinked_output_directory_is_followed(tmp_path):
    """fout is a link to a directory: it is used as that directory (as os.makedirs and every tool does), the files
    land in the target and Index.fpout names them through the link as given."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    index = pcapflow.trace_file(str(DATA / "ssh.pcap"), str(link))
    assert index
    assert sorted(os.listdir(real)) == sorted(os.path.basename(flow.fpout) for flow in index)
    assert all(os.path.dirname(flow.fpout) == str(link) for flow in index)
    assert link.is_symlink()


def test_dangling_symlink_as_output_directory(tmp_path):
    """fout is a link to nothing: FileExists naming fout, and the link's target is not created."""
    link = tmp_path / "link"
    target = tmp_path / "nowhere"
    link.symlink_to(target)
    with pytest.raises(FileExistsError) as caught:
        pcapflow.TCP(str(link), "pcap")
    assert caught.value.filename == str(link)
    assert not os.path.lexists(target)


def test_output_directory_swapped_for_a_symlink_after_construction(tmp_path):
    """Files are created relative to the directory opened at construction: renaming fout away and planting a link
    to another directory in its place does not redirect the frames."""
    out = tmp_path / "out"
    moved = tmp_path / "moved"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tracer = pcapflow.TCP(str(out), "pcap")
    dump_and_submit(tracer, make_packet(pcapflow.Packet, 1, srcport=1, timestamp=1.0))
    out.rename(moved)
    out.symlink_to(elsewhere)
    flows = dump_and_submit(tracer, make_packet(pcapflow.Packet, 2, srcport=1, timestamp=1.0),
                            make_packet(pcapflow.Packet, 3, srcport=2, timestamp=2.0))
    tracer.close()
    assert os.listdir(elsewhere) == [], "frames followed the link planted at fout"
    assert sorted(os.listdir(moved)) == sorted(os.path.basename(flow.fpout) for flow in flows)
    assert record_payloads(moved / os.path.basename(flows[0].fpout)) == [b"frame-1", b"frame-2"]
    assert record_payloads(moved / os.path.basename(flows[1].fpout)) == [b"frame-3"]


# ---------------------------------------------------------------------------
# Labels cannot escape fout
# ---------------------------------------------------------------------------

NATIVE = sorted(p for p in DATA.iterdir() if p.suffix in (".pcap", ".pcapng"))
# what pcapkit's formatting can produce: dotted IPv4, IPv6 with ':' made '.', ports, str(float)
ADDRESS = r"[0-9a-f.]+"
PORT = r"(?:0|[1-9][0-9]{0,4})"
TIMESTAMP = r"(?:[0-9]+\.[0-9]+(?:e[+-][0-9]+)?|[0-9](?:\.[0-9]+)?e[+-][0-9]+|inf|nan)"
LABEL_RE = re.compile(rf"(?P<src>{ADDRESS})_(?P<sport>{PORT})-(?P<dst>{ADDRESS})_(?P<dport>{PORT})-(?P<ts>{TIMESTAMP})")
FILE_RE = re.compile(rf"(?P<label>{LABEL_RE.pattern})(?:_[2-9]|_[1-9][0-9]+)?\.pcap")
LABEL_CHARACTERS = set("0123456789abcdef._-+infa")


def test_labels_of_every_native_capture_stay_inside_fout(tmp_path):
    checked = 0
    for capture in NATIVE:
        out = tmp_path / capture.name
        try:
            index = pcapflow.trace_file(str(capture), str(out))
        except pcapflow.CaptureError as error:
            index = error.index
        for flow in index:
            checked += 1
            assert set(flow.label) <= LABEL_CHARACTERS, f"{capture.name}: label {flow.label!r}"
            assert LABEL_RE.fullmatch(flow.label), f"{capture.name}: label {flow.label!r}"
            assert int(LABEL_RE.fullmatch(flow.label)["sport"]) <= 65535
            name = os.path.basename(flow.fpout)
            match = FILE_RE.fullmatch(name)
            assert match and match["label"] == flow.label, f"{capture.name}: file {name!r} of label {flow.label!r}"
            assert flow.fpout == f"{out}/{name}"
            assert os.path.realpath(flow.fpout) == os.path.join(os.path.realpath(out), name)
            assert os.path.isfile(flow.fpout) and not os.path.islink(flow.fpout)
        if out.exists():
            entries = list(os.scandir(out))
            assert all(entry.is_file(follow_symlinks=False) for entry in entries), (
                f"{capture.name}: not only regular files in {out}: {[e.name for e in entries if not e.is_file()]}")
            assert sorted(e.name for e in entries) == sorted(os.path.basename(f.fpout) for f in index)
            shutil.rmtree(out)
    assert checked > 1000, f"only {checked} flows over {len(NATIVE)} captures"


def test_label_regex_rejects_what_could_escape():
    """The checks above can fail: names with a separator or a parent reference do not pass."""
    for bad in ["../x_1-10.0.0.2_80-1.0", "10.0.0.1_1-10.0.0.2_80-1.0/..", "10.0.0.1_1-10.0.0.2_80-..",
                "10.0.0.1_1-10.0.0.2_80-1.0\0", "a/b_1-c_2-1.0", "10.0.0.1_1-10.0.0.2_80-"]:
        assert not LABEL_RE.fullmatch(bad), bad
    assert LABEL_RE.fullmatch("2001.db8..1_443-2001.db8..2_51000-1545562209.891237")
    assert LABEL_RE.fullmatch("10.0.0.1_0-10.0.0.2_65535-1e-05")
