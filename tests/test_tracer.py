"""Behaviour of pcapflow.TCP, the flow tracer.

Where the contract says "like pcapkit", pcapkit's own TCP tracer is run on the
same packets and the results compared; where the contract deliberately differs
(numbered items), the test asserts pcapflow's documented behaviour.
"""
import decimal
import ipaddress
import gc
import json
import os
import types
import warnings

import dictdumper.dumper
import pytest
from pcapkit.foundation.traceflow.data.tcp import Packet as PkPacket
from pcapkit.foundation.traceflow.tcp import TCP as PkTCP

import pcapflow
from _support import (CLIENT, CLIENT6, ETHERNET, RAW, SERVER6, handshake_and_teardown,
                      index_tuple, make_frame, make_packet, read_pcap, record_payloads, run_python)

Packet = pcapflow.Packet


def quiet_pcapkit_tcp(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PkTCP(*args, **kwargs)


def relative(indexes, root):
    """Index tuples with fpout made relative to the output root, for cross-run comparison."""
    return [(None if fp is None else os.path.relpath(fp, root), idx, label)
            for fp, idx, label in map(index_tuple, indexes)]


# --- construction ----------------------------------------------------------------

def test_defaults_are_tmp_and_pcap(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for number, args in enumerate([(), (None, None)], 1):
        tracer = pcapflow.TCP(*args)
        label = tracer.trace(make_packet(Packet, number))
        assert os.path.isdir("tmp")
        (flow,) = tracer.submit()
        assert flow.fpout == f"./tmp/{label}.pcap"
        tracer.close()
        assert read_pcap(flow.fpout)[0]["version"] == (2, 4)


FORMAT_EXTENSIONS = [("pcap", ".pcap"), ("cap", ".pcap"), ("json", ".json"), ("plist", ".plist"),
                     ("xml", ".plist"), ("tree", ".txt"), ("txt", ".txt"), ("text", ".txt")]


@pytest.mark.parametrize("fmt,ext", FORMAT_EXTENSIONS)
def test_make_fout_extension_and_directory(tmp_path, fmt, ext):
    target = tmp_path / "a" / "b"
    dumper, got_ext = pcapflow.TCP.make_fout(str(target), fmt)
    assert got_ext == ext
    assert callable(dumper)
    assert target.is_dir()
    if fmt != "text":  # 'text' is contract item 2; pcapkit agrees on the others
        assert got_ext == PkTCP.make_fout(str(tmp_path / "pk"), fmt)[1]


def test_make_fout_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pcapflow.TCP.make_fout()[1] == ".pcap"
    assert (tmp_path / "tmp").is_dir()


def test_unknown_format_warns_and_writes_nothing(out):
    with pytest.warns(pcapflow.FormatWarning,
                      match="^Unsupported output format: bogus; disabled file output feature$"):
        assert pcapflow.TCP.make_fout(out, "bogus")[1] is None
    with pytest.warns(pcapflow.FormatWarning, match="bogus"):
        tracer = pcapflow.TCP(out, "bogus")
    packets = handshake_and_teardown(Packet)
    for pkt in packets[:-1]:
        tracer(pkt)
    writer = tracer.trace(packets[-1], output=True)
    writer(packets[-1].frame, name="Frame 7")  # accepted and ignored
    flows = tracer.submit()
    assert len(flows) == 3
    assert all(flow.fpout is None for flow in flows)
    tracer.close()
    assert os.listdir(out) == []  # the directory is made, but no file is written


def test_fout_is_a_file_with_known_format_raises_file_exists(tmp_path):
    path = tmp_path / "taken"
    path.write_text("not a directory")
    assert issubclass(pcapflow.FileExists, FileExistsError)
    with pytest.raises(pcapflow.FileExists):
        pcapflow.TCP(str(path), "pcap")
    with pytest.raises(FileExistsError):
        pcapflow.TCP.make_fout(str(path), "json")
    assert path.read_text() == "not a directory"


def test_fout_is_a_file_with_unknown_format_only_warns(tmp_path):
    path = tmp_path / "taken"
    path.write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracer = pcapflow.TCP(str(path), "bogus")
    categories = {w.category for w in caught}
    assert pcapflow.FileWarning in categories
    assert pcapflow.FormatWarning in categories
    tracer.trace(make_packet(Packet, 1))
    assert tracer.submit()[0].fpout is None
    assert path.read_text() == "x"


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_valid_byteorders_accepted(out, byteorder):
    pcapflow.TCP(out, "pcap", byteorder=byteorder)


@pytest.mark.parametrize("byteorder", ["middle", "", "LITTLE", "native"])
def test_invalid_byteorder_rejected(out, byteorder):
    with pytest.raises(ValueError, match="byteorder"):
        pcapflow.TCP(out, "pcap", byteorder=byteorder)


# --- trace / dump -------------------------------------------------------------------

LABEL_CASES = [
    dict(timestamp=1.25),
    dict(timestamp=1e-05),
    dict(timestamp=1600000000.123456),
    dict(timestamp=decimal.Decimal("1600000000.000000001")),
    dict(timestamp=17),
    dict(src=CLIENT6, dst=SERVER6, srcport=12345, dstport=443, timestamp=3.5),
    dict(src=SERVER6, dst=CLIENT, srcport=0, dstport=65535, timestamp=0.0),
]


@pytest.mark.parametrize("case", LABEL_CASES, ids=repr)
def test_trace_returns_pcapkit_label(out, case):
    ours = pcapflow.TCP(out, "pcap")
    theirs = quiet_pcapkit_tcp(out + "-pk", "pcap")
    label = ours.trace(make_packet(Packet, 1, **case))
    assert type(label) is str
    assert label == theirs.trace(make_packet(PkPacket, 1, **case))
    if case.get("src") == CLIENT6:
        assert label == "2001.db8..1_12345-2001.db8..2_443-3.5"
    assert relative(ours.submit(), out) == relative(theirs.submit(), out + "-pk")


def test_trace_accepts_string_addresses_and_plain_mappings(out):
    tracer = pcapflow.TCP(out, "pcap")
    a = tracer.trace(make_packet(Packet, 1, src="10.0.0.1", dst="10.0.0.2", timestamp=1.5))
    b = tracer.trace(dict(make_packet(Packet, 2, timestamp=9.0)))      # same flow as a
    c = tracer.trace(make_packet(PkPacket, 3, src="2001:db8::1", dst=SERVER6, timestamp=2.0))
    assert a == b == "10.0.0.1_40000-10.0.0.2_80-1.5"
    assert c == "2001.db8..1_40000-2001.db8..2_80-2.0"
    assert [f.index for f in tracer.submit()] == [(1, 2), (3,)]


def test_trace_output_true_returns_callable_writer(out):
    tracer = pcapflow.TCP(out, "pcap")
    first, second = make_packet(Packet, 1), make_packet(Packet, 2)
    writer = tracer.trace(first, output=True)
    assert callable(writer)
    writer(first.frame, name="Frame 1")
    tracer.trace(second, output=True)(second.frame)  # name is optional
    (flow,) = tracer.submit()
    assert flow.index == (1, 2)
    assert record_payloads(flow.fpout) == [b"frame-1", b"frame-2"]


def test_dump_and_call_write_frames(out):
    tracer = pcapflow.TCP(out, "pcap")
    assert tracer.dump(make_packet(Packet, 1)) is None
    assert tracer(make_packet(Packet, 2)) is None
    tracer.trace(make_packet(Packet, 3))  # traced, not written
    (flow,) = tracer.submit()
    assert flow.index == (1, 2, 3)
    assert record_payloads(flow.fpout) == [b"frame-1", b"frame-2"]


def test_object_and_mapping_frames_write_the_same_bytes(tmp_path):
    # the contract accepts frame / frame_info as attribute objects or as mappings
    roots = []
    for style in ("mapping", "object"):
        root = str(tmp_path / style)
        tracer = pcapflow.TCP(root, "pcap")
        for i in range(1, 4):
            frame = make_frame(b"payload%d" % i, 100 + i, 1000 * i)
            if style == "object":
                frame = types.SimpleNamespace(packet=frame["packet"],
                                              frame_info=types.SimpleNamespace(**frame["frame_info"]))
            else:
                frame = {"packet": frame["packet"], "frame_info": dict(frame["frame_info"])}
            tracer(make_packet(Packet, i, frame=frame, timestamp=5.0))
        tracer.close()
        roots.append(root)
    names = [sorted(os.listdir(r)) for r in roots]
    assert names[0] == names[1] and len(names[0]) == 1
    blobs = [open(os.path.join(r, names[0][0]), "rb").read() for r in roots]
    assert blobs[0] == blobs[1]
    assert [r["ts_frac"] for r in read_pcap(os.path.join(roots[0], names[0][0]))[1]] == [1000, 2000, 3000]


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_bytes_identical_to_pcapkit_when_resolutions_agree(tmp_path, byteorder, nanosecond):
    # frames in the output's own resolution: nothing to convert, so byte-for-byte as pcapkit
    frac = 123456789 if nanosecond else 123456
    roots = {}
    for name, tcp_cls, pkt_cls in (("ours", pcapflow.TCP, Packet), ("theirs", quiet_pcapkit_tcp, PkPacket)):
        root = str(tmp_path / name)
        tracer = tcp_cls(root, "pcap", byteorder=byteorder, nanosecond=nanosecond)
        for pkt in handshake_and_teardown(pkt_cls):
            frame = make_frame(b"data-%d" % pkt.index * pkt.index, 1_600_000_000 + pkt.index, frac)
            tracer(pkt_cls(**dict(pkt.items(), frame=frame)))
        tracer.submit()
        if hasattr(tracer, "close"):
            tracer.close()
        roots[name] = root
    files = sorted(os.listdir(roots["theirs"]))
    assert sorted(os.listdir(roots["ours"])) == files and len(files) == 3
    for name in files:
        with open(os.path.join(roots["ours"], name), "rb") as a, open(os.path.join(roots["theirs"], name), "rb") as b:
            assert a.read() == b.read(), name


# --- submit / index / FIN -----------------------------------------------------------

def test_four_way_teardown_gives_three_flows_like_pcapkit(out):
    ours = pcapflow.TCP(out, "pcap")
    theirs = quiet_pcapkit_tcp(out + "-pk", "pcap")
    for a, b in zip(handshake_and_teardown(Packet), handshake_and_teardown(PkPacket)):
        ours(a)
        theirs(b)
    flows = ours.submit()
    assert all(isinstance(f, pcapflow.Index) for f in flows)
    # open flow first, then FIN-closed flows in closing order
    assert [f.index for f in flows] == [(7,), (1, 3, 4), (2, 5, 6)]
    assert relative(flows, out) == relative(theirs.submit(), out + "-pk")
    assert [f.label for f in flows] == ["10.0.0.1_40000-10.0.0.2_80-3.0",
                                        "10.0.0.1_40000-10.0.0.2_80-1.0",
                                        "10.0.0.2_80-10.0.0.1_40000-1.25"]
    for flow in flows:
        assert record_payloads(flow.fpout) == [b"frame-%d" % i for i in flow.index]


def test_submit_orders_open_flows_by_first_seen(out):
    tracer = pcapflow.TCP(out, "pcap")
    ports = [5, 3, 9, 1]
    for i, port in enumerate(ports, 1):
        tracer.trace(make_packet(Packet, i, srcport=port))
    tracer.trace(make_packet(Packet, 5, srcport=9, fin=True))   # closes the third flow
    tracer.trace(make_packet(Packet, 6, srcport=5))             # existing flow: order unchanged
    tracer.trace(make_packet(Packet, 7, srcport=1, fin=True))
    assert [f.index for f in tracer.submit()] == [(1, 6), (2,), (3, 5), (4, 7)]


def test_submit_is_cached_until_next_trace(out):
    tracer = pcapflow.TCP(out, "pcap")
    tracer.trace(make_packet(Packet, 1))
    first = tracer.submit()
    assert type(first) is tuple
    assert tracer.submit() is first
    assert tracer.index is first  # open flows: index is submit()
    tracer.trace(make_packet(Packet, 2))
    second = tracer.submit()
    assert second is not first
    assert first[0].index == (1,)  # an earlier result is not changed afterwards
    assert second[0].index == (1, 2)
    tracer.dump(make_packet(Packet, 3))  # dump also invalidates
    assert tracer.submit() is not second
    assert tracer.submit()[0].index == (1, 2, 3)


def test_index_property_without_open_flows_is_closed_flows(out):
    tracer = pcapflow.TCP(out, "pcap")
    assert tracer.index == () and tracer.submit() == ()
    tracer.trace(make_packet(Packet, 1, fin=True))
    tracer.trace(make_packet(Packet, 2, srcport=1, fin=True))
    assert type(tracer.index) is tuple
    assert [f.index for f in tracer.index] == [(1,), (2,)]
    assert tracer.index == tracer.submit()


def test_packet_after_fin_opens_new_flow_with_new_label(out):
    tracer = pcapflow.TCP(out, "pcap")
    first = tracer.trace(make_packet(Packet, 1, fin=True, timestamp=1.0))
    second = tracer.trace(make_packet(Packet, 2, timestamp=2.0))
    assert first != second
    assert [f.label for f in tracer.submit()] == [second, first]


# --- callbacks ----------------------------------------------------------------------

def test_callback_called_once_per_fin_closed_flow(out, restore_tcp_callbacks):
    seen = []
    def record(index):
        seen.append(index)
    pcapflow.TCP.register_callback(record)
    assert pcapflow.TCP.__callback_fn__[-1] is record
    tracer = pcapflow.TCP(out, "pcap")
    for pkt in handshake_and_teardown(Packet):
        tracer(pkt)
    assert [type(x) for x in seen] == [pcapflow.Index, pcapflow.Index]
    assert [x.index for x in seen] == [(1, 3, 4), (2, 5, 6)]
    assert list(seen) == list(tracer.submit()[1:])
    tracer.submit()
    tracer.close()  # the still-open flow never triggers a callback
    assert len(seen) == 2


def test_callback_sees_fin_frame_on_disk(out, restore_tcp_callbacks):
    # contract item 6: the flow's file is complete when callbacks run
    contents = []
    pcapflow.TCP.register_callback(lambda idx: contents.append(record_payloads(idx.fpout)))
    tracer = pcapflow.TCP(out, "pcap")
    for pkt in handshake_and_teardown(Packet)[:4]:
        tracer(pkt)
    assert contents == [[b"frame-1", b"frame-3", b"frame-4"]]


def test_callback_index_insertion_order(out, restore_tcp_callbacks):
    order = []
    def a(idx): order.append("a")
    def b(idx): order.append("b")
    def c(idx): order.append("c")
    before = list(pcapflow.TCP.__callback_fn__)
    pcapflow.TCP.register_callback(a)
    pcapflow.TCP.register_callback(b, index=0)
    pcapflow.TCP.register_callback(c, index=1)
    assert pcapflow.TCP.__callback_fn__ == [b, c, *before, a]  # list.insert semantics
    pcapflow.TCP(out, "pcap").trace(make_packet(Packet, 1, fin=True))
    assert order[-3:] == ["b", "c", "a"]


def test_callback_lists_are_per_class(out, restore_tcp_callbacks):
    class One(pcapflow.TCP):
        pass

    class Two(pcapflow.TCP):
        pass

    assert One.__callback_fn__ == [] and Two.__callback_fn__ == []
    assert One.__callback_fn__ is not Two.__callback_fn__
    assert One.__callback_fn__ is not pcapflow.TCP.__callback_fn__
    hits = []
    One.register_callback(lambda idx: hits.append(("one", idx.label)))
    pcapflow.TCP.register_callback(lambda idx: hits.append(("base", idx.label)))
    assert len(One.__callback_fn__) == 1 and Two.__callback_fn__ == []
    Two(out + "2", "pcap").trace(make_packet(Packet, 1, fin=True))
    assert hits == []
    label = One(out + "1", "pcap").trace(make_packet(Packet, 1, fin=True))
    assert hits == [("one", label)]
    base_label = pcapflow.TCP(out, "pcap").trace(make_packet(Packet, 1, fin=True, timestamp=4.0))
    assert hits[-1] == ("base", base_label)


def test_callbacks_follow_the_class_while_a_tracer_runs(out, restore_tcp_callbacks):
    """A tracer keeps the callback list it looked up while the class is unchanged: registering,
    replacing or deleting the list between FINs, on the class or a base, is seen at the next FIN."""
    class Base(pcapflow.TCP):
        pass

    class Sub(Base):
        pass

    hits = []
    tracer = Sub(out, "pcap")
    serial = iter(range(1, 100))

    def close_one_flow():
        n = next(serial)
        return tracer.trace(make_packet(Packet, n, srcport=1000 + n, fin=True, timestamp=float(n)))

    close_one_flow()
    assert hits == []
    Sub.register_callback(lambda idx: hits.append(("first", idx.label)))
    label = close_one_flow()
    assert hits == [("first", label)]
    Sub.__callback_fn__ = [lambda idx: hits.append(("replaced", idx.label))]
    label = close_one_flow()
    assert hits[-1] == ("replaced", label) and len(hits) == 2
    del Sub.__callback_fn__  # now the base's list is the one found
    Base.register_callback(lambda idx: hits.append(("base", idx.label)))
    label = close_one_flow()
    assert hits[-1] == ("base", label) and len(hits) == 3
    Base.__callback_fn__ = []
    close_one_flow()
    assert len(hits) == 3
    tracer.close()


# --- dumpers ------------------------------------------------------------------------

class LineDumper(dictdumper.dumper.Dumper):
    """A custom output format: one line per frame, records what it was given."""

    calls = []

    @property
    def kind(self):
        return "lines"

    def _dump_header(self, **kwargs):
        LineDumper.calls.append(("open", self._file, kwargs))
        with open(self._file, "w") as file:
            file.write("start\n")

    def __call__(self, value, name=None):
        LineDumper.calls.append(("write", self._file, name, value))
        with open(self._file, "a") as file:
            file.write(f"{name}\n")
        return self


def test_register_dumper_with_custom_dictdumper_subclass(out):
    LineDumper.calls.clear()
    pcapflow.TCP.register_dumper("pcapflow-test-lines", LineDumper, ".lines")
    tracer = pcapflow.TCP(out, "pcapflow-test-lines")
    packets = [make_packet(Packet, 1), make_packet(Packet, 2, fin=True)]
    for pkt in packets:
        tracer(pkt)
    (flow,) = tracer.submit()
    assert flow.fpout == f"{out}/{flow.label}.lines"
    with open(flow.fpout) as file:
        assert file.read() == "start\nFrame 1\nFrame 2\n"
    opens = [c for c in LineDumper.calls if c[0] == "open"]
    writes = [c for c in LineDumper.calls if c[0] == "write"]
    assert [c[1] for c in opens] == [flow.fpout]
    assert opens[0][2].get("protocol") == ETHERNET  # pcapkit passes the link type on
    assert [(c[2], c[3]) for c in writes] == [("Frame 1", packets[0].frame), ("Frame 2", packets[1].frame)]
    assert writes[0][3] is packets[0].frame  # the frame object itself, as pcapkit passes it


def test_register_dumper_override_warns_and_bad_dumper_rejected(out):
    pcapflow.TCP.register_dumper("pcapflow-test-twice", LineDumper, ".a")
    with pytest.warns(pcapflow.RegistryWarning):
        pcapflow.TCP.register_dumper("pcapflow-test-twice", LineDumper, ".b")
    assert pcapflow.TCP.make_fout(out, "pcapflow-test-twice")[1] == ".b"
    for bad in (int, object, dict):
        with pytest.raises(pcapflow.RegistryError):
            pcapflow.TCP.register_dumper("pcapflow-test-bad", bad, ".bad")


# --- names ---------------------------------------------------------------------------

def test_names_and_protocol(out):
    tracer = pcapflow.TCP(out, "pcap")
    assert tracer.name == "TCP"
    assert pcapflow.TCP.__protocol_name__ == "TCP"
    assert tracer.protocol is pcapflow.TCP.__protocol_type__
    assert tracer.protocol is not None


# --- subclassing from Python ----------------------------------------------------------

class Recording(pcapflow.TCP):
    """A user subclass that wraps trace and dump and adds its own state."""

    def __init__(self, fout, format, **kwargs):
        super().__init__(fout, format, **kwargs)
        self.traced = []
        self.dumped = 0

    def trace(self, packet, *, output=False):
        result = super().trace(packet, output=output)
        self.traced.append((packet.index, output))
        return result

    def dump(self, packet):
        self.dumped += 1
        return super().dump(packet)


def test_subclass_with_extra_attributes_and_overrides(out):
    tracer = Recording(out, "pcap", byteorder="big")
    tracer.note = "free-form attribute"
    label = tracer.trace(make_packet(Packet, 1))
    tracer.dump(make_packet(Packet, 2))
    assert tracer.dumped == 1
    assert tracer.name == "TCP" and tracer.note == "free-form attribute"
    (flow,) = tracer.submit()
    assert flow.label == label and flow.index == (1, 2)
    header, records = read_pcap(flow.fpout)
    assert header["byteorder"] == "big" and len(records) == 1


def test_subclass_overrides_are_used_by_dump_and_call(out):
    # as in pcapkit, __call__ goes through dump() and dump() through trace()
    tracer = Recording(out, "pcap")
    tracer(make_packet(Packet, 1))
    tracer.dump(make_packet(Packet, 2))
    tracer.trace(make_packet(Packet, 3))
    assert tracer.dumped == 2
    assert tracer.traced == [(1, True), (2, True), (3, False)]


# --- durability: when are frames on disk? ------------------------------------------

def dump_three(tracer):
    for i in (1, 2, 3):
        tracer(make_packet(Packet, i))


def expect_three_frames(out):
    (name,) = os.listdir(out)
    assert record_payloads(os.path.join(out, name)) == [b"frame-1", b"frame-2", b"frame-3"]


@pytest.mark.parametrize("trigger", ["submit", "index", "close", "context"])
def test_frames_on_disk_after(out, trigger):
    if trigger == "context":
        with pcapflow.TCP(out, "pcap") as tracer:
            assert isinstance(tracer, pcapflow.TCP)
            dump_three(tracer)
    else:
        tracer = pcapflow.TCP(out, "pcap")
        dump_three(tracer)
        if trigger == "submit":
            tracer.submit()
        elif trigger == "index":
            tracer.index
        else:
            tracer.close()
    expect_three_frames(out)


def test_frames_on_disk_after_fin(out):
    tracer = pcapflow.TCP(out, "pcap")
    tracer(make_packet(Packet, 1))
    tracer(make_packet(Packet, 2))
    tracer(make_packet(Packet, 3, fin=True))
    expect_three_frames(out)  # no submit/close: the FIN alone flushes the flow


def test_frames_on_disk_after_garbage_collection_of_a_cycle(out):
    class WithDict(pcapflow.TCP):
        pass

    tracer = WithDict(out, "pcap")
    dump_three(tracer)
    tracer.cycle = tracer  # only the cyclic collector can free this one
    del tracer
    gc.collect()
    expect_three_frames(out)


def test_frames_on_disk_after_del(out):
    tracer = pcapflow.TCP(out, "pcap")
    dump_three(tracer)
    del tracer
    gc.collect()
    expect_three_frames(out)


def test_close_twice_is_harmless(out):
    tracer = pcapflow.TCP(out, "pcap")
    dump_three(tracer)
    tracer.close()
    tracer.close()
    expect_three_frames(out)


# --- contract item 4: duplicate labels ----------------------------------------------

def test_duplicate_labels_keep_every_flows_frames(out):
    tracer = pcapflow.TCP(out, "pcap")
    # same 4-tuple reopened at the same timestamp, three times
    tracer(make_packet(Packet, 1, timestamp=5.0))
    tracer(make_packet(Packet, 2, timestamp=5.5, fin=True))
    tracer(make_packet(Packet, 3, timestamp=5.0, fin=True))
    tracer(make_packet(Packet, 4, timestamp=5.0))
    flows = tracer.submit()
    label = "10.0.0.1_40000-10.0.0.2_80-5.0"
    assert [f.label for f in flows] == [label] * 3
    assert [(f.index, f.fpout) for f in flows] == [
        ((4,), f"{out}/{label}_3.pcap"),
        ((1, 2), f"{out}/{label}.pcap"),
        ((3,), f"{out}/{label}_2.pcap"),
    ]
    tracer.close()
    for flow in flows:
        assert record_payloads(flow.fpout) == [b"frame-%d" % i for i in flow.index]
    assert len(os.listdir(out)) == 3


def test_duplicate_labels_in_json_output(out):
    # item 4 holds for every format: the suffix goes before the extension
    tracer = pcapflow.TCP(out, "json")
    tracer(make_packet(Packet, 1, timestamp=5.0, fin=True))
    tracer(make_packet(Packet, 2, timestamp=5.0, fin=True))
    label = "10.0.0.1_40000-10.0.0.2_80-5.0"
    flows = tracer.submit()
    assert [f.fpout for f in flows] == [f"{out}/{label}.json", f"{out}/{label}_2.json"]
    tracer.close()
    for flow in flows:
        with open(flow.fpout) as file:
            assert list(json.load(file)) == [f"Frame {flow.index[0]}"]


def test_callback_may_use_the_tracer_reentrantly(out):
    # a callback that traces more packets (closing more flows) and calls
    # submit() must not upset the C state: every flow ends up reported once
    class Reentrant(pcapflow.TCP):
        pass

    tracer = Reentrant(out, "pcap")
    labels = []

    def callback(index):
        labels.append(index.label)
        tracer.submit()
        if len(labels) < 3:
            tracer(make_packet(Packet, 100 + len(labels), srcport=9, fin=True, timestamp=50.0 + len(labels)))

    Reentrant.register_callback(callback)
    tracer(make_packet(Packet, 1, fin=True, timestamp=1.0))
    flows = tracer.submit()
    assert sorted(f.index for f in flows) == [(1,), (101,), (102,)]
    assert sorted(labels) == sorted(f.label for f in flows)
    for flow in flows:
        assert record_payloads(flow.fpout) == [b"frame-%d" % flow.index[0]]


# --- pcap file format ----------------------------------------------------------------

MAGIC_BYTES = {("little", False): "d4c3b2a1", ("big", False): "a1b2c3d4",
               ("little", True): "4d3cb2a1", ("big", True): "a1b23c4d"}


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("linktype", [ETHERNET, RAW])
def test_pcap_global_header(out, byteorder, nanosecond, linktype):
    tracer = pcapflow.TCP(out, "pcap", byteorder=byteorder, nanosecond=nanosecond)
    tracer(make_packet(Packet, 1, protocol=linktype))
    (flow,) = tracer.submit()
    tracer.close()
    header, records = read_pcap(flow.fpout)
    assert header["magic_bytes"].hex() == MAGIC_BYTES[byteorder, nanosecond]
    assert header["version"] == (2, 4)
    assert header["thiszone"] == 0 and header["sigfigs"] == 0
    assert header["snaplen"] == 262144
    assert header["linktype"] == int(linktype)
    assert len(records) == 1


def test_trace_only_leaves_header_only_file(out):
    tracer = pcapflow.TCP(out, "pcap")
    tracer.trace(make_packet(Packet, 1))
    (flow,) = tracer.submit()
    tracer.close()
    header, records = read_pcap(flow.fpout)
    assert records == [] and header["version"] == (2, 4)


def one_record(out, frame, nanosecond):
    tracer = pcapflow.TCP(out, "pcap", nanosecond=nanosecond)
    tracer(make_packet(Packet, 1, frame=frame))
    (flow,) = tracer.submit()
    tracer.close()
    (record,) = read_pcap(flow.fpout)[1]
    return record


# contract item 3: (ts_usec, time_epoch, output nanosecond?) -> written sub-second field
TIMESTAMP_CASES = [
    (123456, None, False, 123456),                # micro in, micro out: unchanged
    (123456, None, True, 123456000),              # micro in, nano out: * 1000
    (999999, None, True, 999999000),
    (123456789, None, True, 123456789),           # >= 1e6 means nano in; nano out: unchanged
    (123456789, None, False, 123456),             # nano in, micro out: // 1000 (truncating)
    (1999999, None, False, 1999),
    (456789, 100 + 456789 / 1e9, False, 456),     # time_epoch says nano
    (456789, 100 + 456789 / 1e9, True, 456789),
    (999, 100 + 999 / 1e9, False, 0),
    (456789, 100 + 456789 / 1e6, True, 456789000),  # time_epoch says micro
    (456789, 100 + 456789 / 1e6, False, 456789),
]


@pytest.mark.parametrize("ts_usec,time_epoch,nanosecond,expected", TIMESTAMP_CASES)
def test_timestamp_resolution_conversion(out, ts_usec, time_epoch, nanosecond, expected):
    record = one_record(out, make_frame(b"abc", 100, ts_usec, time_epoch=time_epoch), nanosecond)
    assert record["ts_sec"] == 100
    assert record["ts_frac"] == expected


def test_timestamp_nano_detected_from_pcapkit_style_decimal_epoch(out):
    # pcapkit's frame Info for a nanosecond capture: Decimal(sec) + Decimal(nsec) / 10**9
    import decimal
    epoch = decimal.Decimal(100) + decimal.Decimal(456789) / 1_000_000_000
    assert one_record(out, make_frame(b"abc", 100, 456789, time_epoch=epoch), False)["ts_frac"] == 456


def test_incl_len_follows_bytes_written(out):
    # contract item 5: a frame_info claiming more bytes than given must not corrupt the file
    record = one_record(out, make_frame(b"0123456789", 100, 5, incl_len=60, orig_len=60), False)
    assert record["incl_len"] == 10 and record["data"] == b"0123456789"
    assert record["orig_len"] == 60


# --- text formats ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "plist", "tree"])
def test_python_formats_match_pcapkit_files(tmp_path, fmt):
    roots = {"ours": str(tmp_path / "ours"), "theirs": str(tmp_path / "theirs")}
    ours, theirs = pcapflow.TCP(roots["ours"], fmt), quiet_pcapkit_tcp(roots["theirs"], fmt)
    for a, b in zip(handshake_and_teardown(Packet), handshake_and_teardown(PkPacket)):
        ours(a)
        theirs(b)
    ours.close()
    files = sorted(os.listdir(roots["theirs"]))
    assert sorted(os.listdir(roots["ours"])) == files
    for name in files:
        with open(os.path.join(roots["ours"], name)) as a, open(os.path.join(roots["theirs"], name)) as b:
            assert a.read() == b.read(), name


def test_json_output_is_valid_json(out):
    tracer = pcapflow.TCP(out, "json")
    for pkt in handshake_and_teardown(Packet):
        tracer(pkt)
    first_flow = tracer.submit()[1]
    tracer.close()
    with open(first_flow.fpout) as file:
        assert list(json.load(file)) == ["Frame 1", "Frame 3", "Frame 4"]


class _Note:
    """A frame value no conversion knows: it reaches dictdumper's own object_hook."""

    def __init__(self, text):
        self.text = text


@pytest.fixture
def restore_tcp_formats():
    """Formats registered on pcapflow.TCP itself are process-wide: undo them."""
    saved = dict(pcapflow.TCP.__output__)
    yield
    pcapflow.TCP.__output__.clear()
    pcapflow.TCP.__output__.update(saved)


def test_subclass_of_a_wrapped_dumper(tmp_path, restore_tcp_formats):
    # the class make_dumper returns, subclassed and registered as a format of
    # its own, converts values as the class itself does (its object_hook once
    # called super(type(self), self), which in a subclass calls itself forever)
    from pcapflow.dumpers import make_dumper

    class Subclassed(make_dumper(dictdumper.JSON)):
        pass

    pcapflow.TCP.register_dumper("json-subclassed", Subclassed, ".json")
    files = {}
    for fmt in ("json", "json-subclassed"):
        root = str(tmp_path / fmt)
        tracer = pcapflow.TCP(root, fmt)
        for number, pkt in enumerate(handshake_and_teardown(Packet), 1):
            frame = dict(pkt.frame, note=_Note(f"frame {number}"), epoch=decimal.Decimal(number) / 8)
            tracer.dump(Packet(**{**pkt.to_dict(), "frame": frame}))
        tracer.close()
        files[fmt] = {name: open(os.path.join(root, name)).read() for name in sorted(os.listdir(root))}
    assert files["json-subclassed"] == files["json"]
    first = json.loads(files["json"]["10.0.0.1_40000-10.0.0.2_80-1.0.json"])
    assert first["Frame 1"]["note"] == {"text": "frame 1"} and first["Frame 1"]["epoch"] == "0.125"


def test_text_format_writes_tree_text(tmp_path):
    # contract item 2: 'text' is an alias of 'tree' (pcapkit crashes)
    outputs = {}
    for fmt in ("text", "tree"):
        root = str(tmp_path / fmt)
        tracer = pcapflow.TCP(root, fmt)
        for pkt in handshake_and_teardown(Packet):
            tracer(pkt)
        tracer.close()
        outputs[fmt] = {name: open(os.path.join(root, name)).read() for name in sorted(os.listdir(root))}
        assert all(name.endswith(".txt") for name in outputs[fmt])
    assert outputs["text"] == outputs["tree"]
    assert "Frame 1" in outputs["text"]["10.0.0.1_40000-10.0.0.2_80-1.0.txt"]


# --- many simultaneously open flows --------------------------------------------------

MANY_FLOWS_SCRIPT = """
    import os, resource, sys
    sys.path.insert(0, sys.argv[2])
    import pcapflow
    from _support import make_packet, read_pcap

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    fds_before = len(os.listdir('/proc/self/fd'))
    out = sys.argv[1]
    flows = 5000
    tracer = pcapflow.TCP(out, 'pcap')
    # interleave: every flow is open while every other flow gets its frames
    for rnd in range(3):
        for port in range(flows):
            index = rnd * flows + port + 1
            tracer(make_packet(pcapflow.Packet, index, srcport=port + 1, timestamp=1.0,
                               data=b'%d/%d' % (port, rnd)))
    result = tracer.submit()
    assert len(result) == flows, len(result)
    for port, flow in enumerate(result):
        header, records = read_pcap(flow.fpout)
        assert flow.index == tuple(r * flows + port + 1 for r in range(3)), flow
        assert [r['data'] for r in records] == [b'%d/%d' % (port, r) for r in range(3)], flow.fpout
    tracer.close()
    del tracer
    assert len(os.listdir(out)) == flows
    fds_after = len(os.listdir('/proc/self/fd'))
    assert fds_after <= fds_before, (fds_before, fds_after)
    print('ok')
"""


def test_thousands_of_open_flows_under_low_fd_limit(tmp_path):
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = run_python(MANY_FLOWS_SCRIPT, tmp_path / "out", tests_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


# ---------------------------------------------------------------------------
# The tracer remembers the last address objects it converted (read_address in
# tcp.c); only exact ipaddress types and str, which cannot change, are kept.
# ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::pcapflow.FormatWarning")
def test_shared_address_objects_give_the_same_flows_as_fresh_ones():
    a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("2001:db8::2")
    c = ipaddress.ip_address("10.0.0.3")
    plan = [(a, b), (b, a), (a, c), (c, a), ("10.0.0.1", b), (a, "2001:db8::2"), (b, c), (a, b)]
    shared, fresh = pcapflow.TCP(format="null"), pcapflow.TCP(format="null")
    for n, (src, dst) in enumerate(plan, 1):
        shared.trace(make_packet(pcapflow.Packet, n, src=src, dst=dst))
        fresh.trace(make_packet(pcapflow.Packet, n, src=ipaddress.ip_address(str(src)),
                                dst=ipaddress.ip_address(str(dst))))
    assert [(f.label, f.index) for f in shared.submit()] == [(f.label, f.index) for f in fresh.submit()]
    assert len(shared.submit()) == 5  # (a,b) thrice incl. its str spellings; the rest once each


@pytest.mark.filterwarnings("ignore::pcapflow.FormatWarning")
def test_a_subclass_whose_value_changes_is_read_again():
    class Mutable(ipaddress.IPv4Address):
        pass

    address = Mutable("10.0.0.1")
    tracer = pcapflow.TCP(format="null")
    first = tracer.trace(make_packet(pcapflow.Packet, 1, src=address))
    address._ip = int(ipaddress.IPv4Address("10.0.0.9"))  # pylint: disable=protected-access
    second = tracer.trace(make_packet(pcapflow.Packet, 2, src=address))
    assert first.startswith("10.0.0.1_") and second.startswith("10.0.0.9_")
    assert len(tracer.submit()) == 2
