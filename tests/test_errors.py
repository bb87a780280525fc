"""Bad input: the named exception, the field named in its message, and no damage.

The contract promises that bad input never crashes the process and leaves the
tracer usable; each test therefore finishes by tracing and dumping a good
packet and checking submit() and the file. A separate test checks that a
rejected dump() leaves nothing behind (no flow claiming the frame, no file).
"""
import os

import pytest
from pcapkit.foundation.traceflow.data.tcp import Packet as PkPacket

import pcapflow
from _support import PACKET_FIELDS, make_packet, packet_fields, record_payloads


@pytest.fixture
def tracer(out):
    return pcapflow.TCP(out, "pcap")


GOOD_LABEL = "10.0.0.1_1000-10.0.0.2_80-77.0"


def assert_still_usable(tracer, out):
    """Trace and dump a good packet; its flow is reported and written correctly."""
    good = make_packet(pcapflow.Packet, 1000, srcport=1000, timestamp=77.0)
    assert tracer.trace(good) == GOOD_LABEL
    tracer.dump(make_packet(pcapflow.Packet, 1001, srcport=1000))
    flows = tracer.submit()
    (flow,) = [f for f in flows if f.label == GOOD_LABEL]
    assert flow.index == (1000, 1001)
    assert record_payloads(flow.fpout) == [b"frame-1001"]
    # one file per reported flow, nothing else
    assert sorted(os.listdir(out)) == sorted(os.path.basename(f.fpout) for f in flows)


# --- what is passed as the packet -------------------------------------------------------

@pytest.mark.parametrize("method", ["trace", "dump", "__call__"])
@pytest.mark.parametrize("bad", [42, None, [1, 2, 3], "packet", b"bytes", 1.5, object()], ids=repr)
def test_non_packet_is_type_error(tracer, out, method, bad):
    with pytest.raises(TypeError):
        getattr(tracer, method)(bad)
    assert_still_usable(tracer, out)


@pytest.mark.parametrize("field", PACKET_FIELDS)
@pytest.mark.parametrize("method", ["trace", "dump"])
def test_mapping_missing_a_field_names_it(tracer, out, field, method):
    data = packet_fields(1)
    del data[field]
    with pytest.raises(TypeError, match=field):
        getattr(tracer, method)(data)
    assert_still_usable(tracer, out)


def test_partial_pcapflow_packet_names_the_missing_field(tracer, out):
    partial = pcapflow.Packet.from_dict({k: v for k, v in packet_fields(1).items() if k != "dstport"})
    with pytest.raises(TypeError, match="dstport"):
        tracer.dump(partial)
    assert_still_usable(tracer, out)


# --- ports ----------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["srcport", "dstport"])
@pytest.mark.parametrize("value", ["80", 80.0, None, b"80", [80]], ids=repr)
def test_port_not_int_is_type_error(tracer, out, field, value):
    with pytest.raises(TypeError, match=field):
        tracer.trace(make_packet(pcapflow.Packet, 1, **{field: value}))
    assert_still_usable(tracer, out)


# ints below 2**30 are read in place (one internal digit); the rest take the general path
@pytest.mark.parametrize("field", ["srcport", "dstport"])
@pytest.mark.parametrize("value", [70000, 65536, -1, -65535, 2**30 - 1, 2**30, 2**31, 2**64, -2**70])
def test_port_out_of_range_is_value_error(tracer, out, field, value):
    with pytest.raises(ValueError, match=field):
        tracer.dump(make_packet(pcapflow.Packet, 1, **{field: value}))
    assert_still_usable(tracer, out)


@pytest.mark.parametrize("value", [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535])
def test_port_bounds_are_accepted(tracer, value):
    label = tracer.trace(make_packet(pcapflow.Packet, 1, srcport=value, dstport=value, timestamp=1.0))
    assert label == f"10.0.0.1_{value}-10.0.0.2_{value}-1.0"


class IntSubclass(int):
    pass


@pytest.mark.parametrize("value", [True, IntSubclass(443)], ids=repr)
def test_int_subclass_ports_are_their_int_value(tracer, value):
    label = tracer.trace(make_packet(pcapflow.Packet, 1, srcport=value, dstport=80, timestamp=1.0))
    assert label == f"10.0.0.1_{int(value)}-10.0.0.2_80-1.0"


@pytest.mark.parametrize("number", [0, 1, -1, 2**30 - 1, 2**30, -(2**30) + 1, -(2**30), 2**31, 2**62, 2**63 - 1,
                                    -(2**63), IntSubclass(7), True])
def test_frame_numbers_are_kept_exactly(tracer, number):
    tracer.trace(make_packet(pcapflow.Packet, number, timestamp=1.0))
    (flow,) = tracer.submit()
    assert flow.index == (int(number),) and type(flow.index[0]) is int


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 2**100])
def test_frame_number_out_of_range(tracer, out, number):
    with pytest.raises(ValueError, match="index"):
        tracer.trace(make_packet(pcapflow.Packet, number))
    assert_still_usable(tracer, out)


# --- addresses -------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["src", "dst"])
@pytest.mark.parametrize("value", ["not-an-ip", "", "10.0.0.256", "1.2.3", "2001:db8:::1", "10.0.0.1/24"])
def test_unparseable_address_string(tracer, out, field, value):
    with pytest.raises((TypeError, ValueError), match=field):
        tracer.trace(make_packet(pcapflow.Packet, 1, **{field: value}))
    assert_still_usable(tracer, out)


@pytest.mark.parametrize("field", ["src", "dst"])
@pytest.mark.parametrize("value", [12, None, 1.5, b"\x0a\x00\x00\x01", ("10.0.0.1",)], ids=repr)
def test_address_of_wrong_type(tracer, out, field, value):
    # an int is not an address here, though ipaddress.ip_address(12) would accept it
    with pytest.raises((TypeError, ValueError), match=field):
        tracer.dump(make_packet(pcapflow.Packet, 1, **{field: value}))
    assert_still_usable(tracer, out)


# --- index ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["x", None, 1.0, "1", [1]], ids=repr)
def test_index_not_int(tracer, out, value):
    with pytest.raises(TypeError, match="index"):
        tracer.trace(make_packet(pcapflow.Packet, value))
    assert_still_usable(tracer, out)


# --- pcapkit's own Packet with bad values goes through the same checks ----------------------

def test_pcapkit_packet_with_bad_port(tracer, out):
    with pytest.raises(ValueError, match="dstport"):
        tracer.trace(make_packet(PkPacket, 1, dstport=70000))
    assert_still_usable(tracer, out)


# --- a bad packet in the middle of good traffic -------------------------------------------

def test_bad_packet_between_good_ones_leaves_flow_state_intact(tracer, out):
    tracer.dump(make_packet(pcapflow.Packet, 1, srcport=1))
    with pytest.raises(ValueError):
        tracer.dump(make_packet(pcapflow.Packet, 2, srcport=1, dstport=99999))
    with pytest.raises(TypeError):  # an existing flow's 4-tuple, bad index
        tracer.dump(make_packet(pcapflow.Packet, "2", srcport=1))
    tracer.dump(make_packet(pcapflow.Packet, 3, srcport=1))
    (flow,) = tracer.submit()
    assert flow.index == (1, 3)
    assert record_payloads(flow.fpout) == [b"frame-1", b"frame-3"]
    assert_still_usable(tracer, out)


@pytest.mark.parametrize("frame", [
    None,
    {"frame_info": {"ts_sec": 1, "ts_usec": 0, "incl_len": 1, "orig_len": 1}},    # no packet bytes
    {"packet": 12345, "frame_info": {"ts_sec": 1, "ts_usec": 0, "incl_len": 1, "orig_len": 1}},
    {"packet": b"x"},                                                               # no frame_info
    {"packet": b"x", "frame_info": {"ts_sec": 1, "incl_len": 1, "orig_len": 1}},    # no ts_usec
    {"packet": b"x", "frame_info": {"ts_sec": "1", "ts_usec": 0, "incl_len": 1, "orig_len": 1}},
], ids=["none", "no-packet", "int-packet", "no-frame_info", "no-ts_usec", "str-ts_sec"])
def test_dump_with_unusable_frame_raises_and_recovers(tracer, out, frame):
    # not named in the contract's list, but "bad input is never a crash" covers it
    with pytest.raises((TypeError, ValueError, KeyError, AttributeError)):
        tracer.dump(make_packet(pcapflow.Packet, 1, srcport=5, frame=frame))
    assert_still_usable(tracer, out)


def _without(field):
    data = packet_fields(1)
    del data[field]
    return data


REJECTED = {
    "dstport-70000": lambda: make_packet(pcapflow.Packet, 1, dstport=70000),
    "srcport-str": lambda: make_packet(pcapflow.Packet, 1, srcport="80"),
    "src-not-an-ip": lambda: make_packet(pcapflow.Packet, 1, src="not-an-ip"),
    "index-str": lambda: make_packet(pcapflow.Packet, "x"),
    "no-frame": lambda: _without("frame"),
    "no-timestamp": lambda: _without("timestamp"),
    "frame-none": lambda: make_packet(pcapflow.Packet, 1, frame=None),
    "frame-no-packet": lambda: make_packet(pcapflow.Packet, 1, frame={"frame_info": {}}),
    "frame-info-no-ts_usec": lambda: make_packet(
        pcapflow.Packet, 1, frame={"packet": b"x", "frame_info": {"ts_sec": 1, "incl_len": 1, "orig_len": 1}}),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_dump_leaves_nothing_behind(tracer, out, name):
    # a packet whose dump() raised was not written, so no flow may claim its
    # frame number (Index.index would promise a frame the file lacks) and no
    # file may be created for it
    with pytest.raises((TypeError, ValueError)):
        tracer.dump(REJECTED[name]())
    assert tracer.submit() == ()
    assert os.listdir(out) == []


# --- constructor arguments ---------------------------------------------------------------------

@pytest.mark.parametrize("value", ["middle", "", "Big"])
def test_bad_byteorder_names_it(out, value):
    with pytest.raises(ValueError, match="byteorder"):
        pcapflow.TCP(out, "pcap", byteorder=value)
    assert_still_usable(pcapflow.TCP(out, "pcap"), out)


def test_fout_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"")
    with pytest.raises(FileExistsError):
        pcapflow.TCP(str(path), "pcap")
    with pytest.raises(pcapflow.FileExists):
        pcapflow.TCP(str(path))


def test_fout_below_a_regular_file_is_oserror_with_filename(tmp_path):
    # root can write anywhere, but not through a regular file used as a directory
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    target = str(blocker / "sub" / "dir")
    with pytest.raises(OSError) as info:
        pcapflow.TCP(target, "pcap")
    assert info.value.filename is not None
    assert str(info.value.filename).startswith(str(blocker))


def test_fout_that_cannot_be_created_is_oserror_with_filename():
    # nothing may be created under /proc/self, not even by root
    target = "/proc/self/pcapflow-out"
    with pytest.raises(OSError) as info:
        pcapflow.TCP(target, "pcap")
    assert info.value.filename == target


def test_fout_where_flow_files_cannot_be_written(tmp_path):
    # /proc/self exists as a directory, so construction succeeds; creating the
    # flow file fails (for root too), and that must surface as an OSError naming it,
    # at the latest when the frames are forced out by submit()/close()
    tracer = pcapflow.TCP("/proc/self", "pcap")
    pkt = make_packet(pcapflow.Packet, 1, timestamp=1.0)
    with pytest.raises(OSError) as info:
        tracer.dump(pkt)
        tracer.submit()
        tracer.close()
    assert info.value.filename == "/proc/self/10.0.0.1_40000-10.0.0.2_80-1.0.pcap"
