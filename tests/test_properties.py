"""Property tests: random interleavings of everything a tracer offers, checked against invariants.

Programs of trace(), dump(), __call__, trace(output=True) followed by a call
of the writer, a call of a writer kept from earlier (its flow possibly closed
and reopened since), submit(), index and close(), over a few recurring
4-tuples and timestamps (so flows close, reopen and repeat labels), with
pcapflow Packets and pcapkit-style mappings, in pcap, json and an unknown
format, with a callback registered on a fresh subclass.

Invariants, checked against a small model of pcapkit's rules (a flow is one
direction of a 4-tuple, FIN closes it; open flows first in first-seen order,
then closed ones in closing order; a repeated label's n-th file is
'{label}_{n}{ext}'):
- every traced frame number is in exactly one flow of the final index, as many
  times as it was traced;
- after submit(), index and close() every file holds exactly the frames written
  into it, in order (pcap files read back with this suite's strict reader and
  libpcap's view checked by tcpdump -r; json parsed);
- submit() twice with no trace in between returns the same object;
- index equals submit() (and is it while flows are open);
- each callback gets its flow's Index when FIN closes it, and the flow's file
  then holds its frames (the FIN frame too when dump() wrote it).
"""
import collections
import dataclasses
import ipaddress
import json
import os
import tempfile
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapflow
from _hardening import libpcap_reads
from _support import AttrDict
from capture_tools import read_capture

EXTENSIONS = {"pcap": ".pcap", "json": ".json", "no-such-format": None}
TUPLES = [
    (ipaddress.ip_address("10.0.0.1"), 40000, ipaddress.ip_address("10.0.0.2"), 80),
    (ipaddress.ip_address("10.0.0.2"), 80, ipaddress.ip_address("10.0.0.1"), 40000),
    (ipaddress.ip_address("2001:db8::1"), 443, ipaddress.ip_address("2001:db8::2"), 5000),
    (ipaddress.ip_address("10.0.0.3"), 1, ipaddress.ip_address("10.0.0.4"), 65535),
]
TIMESTAMPS = [1.0, 2.5, 1600000000.123456, 7]


@dataclasses.dataclass(eq=False)
class Flow:
    label: str
    fpout: str
    frames: list = dataclasses.field(default_factory=list)  # frame numbers traced
    written: list = dataclasses.field(default_factory=list)  # (name, bytes) written to its file, in order


class Model:
    def __init__(self, out, ext):
        self.out, self.ext = out, ext
        self.open = {}  # 4-tuple -> Flow, in first-seen order
        self.closed = []
        self.labels = collections.Counter()

    def trace(self, spec):
        key = spec.key
        flow = self.open.get(key)
        if flow is None:
            src, sport, dst, dport = key
            label = f"{src}_{sport}-{dst}_{dport}-{spec.timestamp}"
            if src.version == 6:
                label = label.replace(":", ".")
            self.labels[label] += 1
            use = self.labels[label]
            name = label if use == 1 else f"{label}_{use}"
            flow = self.open[key] = Flow(label, None if self.ext is None else f"{self.out}/{name}{self.ext}")
        flow.frames.append(spec.number)
        return flow

    def close(self, spec):
        self.closed.append(self.open.pop(spec.key))

    def entries(self):
        return [(flow.fpout, tuple(flow.frames), flow.label) for flow in [*self.open.values(), *self.closed]]

    def flows(self):
        return [*self.open.values(), *self.closed]


@dataclasses.dataclass
class PacketSpec:
    tuple_no: int
    number: int
    fin: bool
    ts_no: int
    style: str  # 'pcapflow', 'mapping' (pcapkit-style: attribute frames), 'plain' (plain dict frame)

    @property
    def key(self):
        return TUPLES[self.tuple_no]

    @property
    def timestamp(self):
        return TIMESTAMPS[self.ts_no]


def frame_for(number, serial, style):
    data = b"f%d/%d" % (number, serial)
    info = {"ts_sec": 1_600_000_000 + serial, "ts_usec": serial * 7 % 1_000_000, "incl_len": len(data),
            "orig_len": len(data) + serial % 3}
    if style == "plain":
        return {"packet": data, "frame_info": info}
    return AttrDict(packet=data, frame_info=AttrDict(info))


def build_packet(spec, frame):
    src, sport, dst, dport = spec.key
    fields = {"protocol": 1, "index": spec.number, "frame": frame, "syn": False, "fin": spec.fin, "src": src,
              "dst": dst, "srcport": sport, "dstport": dport, "timestamp": spec.timestamp}
    if spec.style == "pcapflow":
        return pcapflow.Packet(**fields)
    if spec.style == "plain":
        fields["src"], fields["dst"] = str(src), str(dst)
    return fields


packet_specs = st.builds(PacketSpec, st.integers(0, len(TUPLES) - 1), st.integers(1, 12),
                         st.sampled_from([False, False, False, True]), st.integers(0, len(TIMESTAMPS) - 1),
                         st.sampled_from(["pcapflow", "mapping", "plain"]))
operations = st.one_of(
    st.tuples(st.sampled_from(["trace", "dump", "call", "writer"]), packet_specs),
    st.tuples(st.just("late-writer"), st.integers(0, 50)),
    st.tuples(st.sampled_from(["submit", "index", "close"])),
)


# --------------------------------------------------------------------------- reading files back

def pcap_contents(path):
    """[(None, record bytes)] of a pcap file, which must be complete for both readers."""
    capture = read_capture(path)
    ok, message = libpcap_reads(path)
    assert ok, f"{path}: libpcap cannot read it: {message}"
    return [r.data for r in capture.records]


def json_contents(path):
    with open(path, encoding="utf-8") as file:
        frames = json.load(file, object_pairs_hook=lambda pairs: pairs)
    return [(name, bytes.fromhex(dict(dict(value)["packet"])["hex"])) for name, value in frames]


def file_contents(path, fmt):
    if fmt == "pcap":
        return pcap_contents(path)
    return json_contents(path)


def expected_contents(flow, fmt):
    if fmt == "pcap":
        return [data for _, data in flow.written]
    return list(flow.written)


def check_files(out, fmt, model, when):
    if EXTENSIONS[fmt] is None:
        assert os.listdir(out) == [], f"{when}: files for format {fmt!r}"
        return
    for flow in model.flows():
        assert os.path.isfile(flow.fpout), f"{when}: no file {flow.fpout}"
        got = file_contents(flow.fpout, fmt)
        assert got == expected_contents(flow, fmt), f"{when}: {flow.fpout} holds {got}, not {flow.written}"
    # nothing else in the directory
    assert sorted(os.listdir(out)) == sorted(os.path.basename(flow.fpout) for flow in model.flows()), when


# --------------------------------------------------------------------------- the property

SETTINGS = {"deadline": None, "max_examples": 250, "suppress_health_check": [HealthCheck.too_slow],
            "report_multiple_bugs": False}


@settings(**SETTINGS)
@given(fmt=st.sampled_from(list(EXTENSIONS)), program=st.lists(operations, min_size=1, max_size=30))
def test_random_programs_keep_the_invariants(fmt, program):
    class Tracer(pcapflow.TCP):  # a fresh class per example: its callbacks do not leak
        pass

    global_callbacks = list(pcapflow.TCP.__callback_fn__)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pcapflow.FormatWarning)
            tracer = Tracer(out, fmt)
        model = Model(out, EXTENSIONS[fmt])
        callbacks = []

        def on_close(index):
            contents = None
            if index.fpout is not None:
                contents = file_contents(index.fpout, fmt)
            callbacks.append((index, contents))

        Tracer.register_callback(on_close)
        try:
            run_program(program, fmt, out, tracer, model, callbacks)
        finally:
            try:
                tracer.close()
            except OSError:
                pass
            del tracer
    assert pcapflow.TCP.__callback_fn__ == global_callbacks, "a subclass' callback leaked into pcapflow.TCP"


def run_program(program, fmt, out, tracer, model, callbacks):
    """Runs the operations on the tracer and the model side by side, checking as it goes."""
    expected_callbacks = []
    traced = collections.Counter()
    writers = []  # (writer, model flow)
    last_submit = None  # the last submit() result, while no trace happened since
    for serial, op in enumerate(program):
        kind = op[0]
        when = f"after step {serial} ({kind})"
        if kind in ("trace", "dump", "call", "writer"):
            spec = op[1]
            frame = frame_for(spec.number, serial, spec.style)
            packet = build_packet(spec, frame)
            data = bytes(frame["packet"])
            name = f"Frame {spec.number}"
            flow = model.trace(spec)
            traced[spec.number] += 1
            last_submit = None
            if kind in ("dump", "call"):
                flow.written.append((name, data))
            if spec.fin:
                model.close(spec)
                expected_callbacks.append(((flow.fpout, tuple(flow.frames), flow.label),
                                           expected_contents(flow, fmt) if flow.fpout else None))
            if kind == "trace":
                assert tracer.trace(packet) == flow.label, when
            elif kind == "dump":
                assert tracer.dump(packet) is None
            elif kind == "call":
                assert tracer(packet) is None
            else:
                writer = tracer.trace(packet, output=True)
                assert callable(writer), when
                writer(frame, name=name)
                flow.written.append((name, data))
                writers.append((writer, flow))
            assert len(callbacks) == len(expected_callbacks), f"{when}: callbacks {callbacks}"
        elif kind == "late-writer":
            if not writers:
                continue
            writer, flow = writers[op[1] % len(writers)]
            number = 1000 + serial
            frame = frame_for(number, serial, "mapping")
            writer(frame, name=f"Frame {number}")
            flow.written.append((f"Frame {number}", bytes(frame["packet"])))
        elif kind == "submit":
            result = tracer.submit()
            assert [tuple(i.values()) for i in result] == model.entries(), when
            again = tracer.submit()
            assert again is result, f"{when}: submit() twice gave two objects"
            if last_submit is not None:
                assert result is last_submit, f"{when}: submit() with no trace since the last one gave a new object"
            last_submit = result
            check_files(out, fmt, model, when)
        elif kind == "index":
            index = tracer.index
            assert [tuple(i.values()) for i in index] == model.entries(), when
            submitted = tracer.submit()
            assert index == submitted, when
            if model.open:
                assert index is submitted, f"{when}: index is not submit() while flows are open"
            if last_submit is not None:
                assert submitted is last_submit, when
            last_submit = submitted
            check_files(out, fmt, model, when)
        else:
            tracer.close()
            check_files(out, fmt, model, when)

        # the callbacks so far: each closed flow's Index, and its file as it was then
        got = [(tuple(index.values()), contents) for index, contents in callbacks]
        assert got == expected_callbacks, f"{when}: callbacks"

    final = tracer.index
    assert [tuple(i.values()) for i in final] == model.entries()
    assert final == tracer.submit()
    numbers = collections.Counter(n for flow in final for n in flow.index)
    assert numbers == traced, f"frame numbers traced {traced}, in the index {numbers}"
    check_files(out, fmt, model, "after the program")
    tracer.close()
    check_files(out, fmt, model, "after close()")


@settings(**SETTINGS)
@given(numbers=st.lists(st.integers(min_value=-2**63, max_value=2**63 - 1), min_size=1, max_size=60),
       close=st.booleans())
def test_any_frame_numbers_come_back_exactly(numbers, close):
    """The tracer keeps a flow's frame numbers as differences (csrc/core/frame_list.h): any int64
    sequence, backwards, repeated or jumping across the whole range, comes back as given, from an
    open flow and from a closed one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracer = pcapflow.TCP(tempfile.mkdtemp(), "none")
    src, dst = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    for i, number in enumerate(numbers):
        tracer.trace(pcapflow.Packet(protocol=1, index=number, frame={}, syn=False,
                                     fin=close and i == len(numbers) - 1, src=src, dst=dst, srcport=1, dstport=2,
                                     timestamp=1.5))
    (flow,) = tracer.index
    assert flow.index == tuple(numbers)
