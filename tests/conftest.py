"""Shared machinery for the differential tests of pcapflow.TCP against pcapkit's TCP.

A test is a list of Steps (one packet each, plus what to do with it). It runs
through pcapkit's tracer and through pcapflow's, and both are compared with a
small model of the tracer (simulate()). The model is checked against pcapkit on
every run, so it cannot drift from the reference; pcapflow's expected results
are then derived from it, applying the deliberate differences listed in
README.rst ("Where pcapflow differs from pcapkit, on purpose"):
  2. format 'text' writes tree text to '.txt' (pcapkit crashes),
  3. pcap records convert the sub-second field between input and output resolution,
  4. a repeated label writes '{label}_2{ext}', '_3', ... instead of truncating,
  5. a pcap record's incl_len is len(packet).
Expected file contents are always written by pcapkit's own dumper classes.
"""
import collections
import collections.abc
import dataclasses
import datetime
import ipaddress
import logging
import os
import signal
import subprocess
import types
import warnings
from decimal import Decimal
from typing import Any, Optional

import pytest
from hypothesis import strategies as st
from pcapkit.const.reg.linktype import LinkType
from pcapkit.const.tcp.option import Option
from pcapkit.corekit.multidict import OrderedMultiDict
from pcapkit.foundation.traceflow.data.tcp import Packet as PcapkitPacket
from pcapkit.foundation.traceflow.tcp import TCP as PcapkitTCP
from pcapkit.protocols.data.misc.pcap.frame import Frame as PcapkitFrame
from pcapkit.protocols.data.misc.pcap.frame import FrameInfo as PcapkitFrameInfo

import pcapflow

# A test run started in the background by a non-interactive shell inherits SIGINT ignored,
# and so would every process the tests start (an ignored signal stays ignored across exec):
# the Ctrl-C tests need it delivered, as it is to a user at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# The sanitizer runs (make test-sanitized, test-threads) preload the sanitizer runtimes into the
# test process, and every process it starts inherits LD_PRELOAD: Python children need them
# (they import the instrumented module), Wireshark's tools and tcpflow do not, and editcap under a
# preloaded ASan was seen to hang in a futex. The tools start without it.
TOOLS = {"tshark", "editcap", "capinfos", "mergecap", "text2pcap", "tcpflow", "tcpdump", "ip"}

if "LD_PRELOAD" in os.environ:
    class _ToolsWithoutPreload(subprocess.Popen):
        def __init__(self, args, *more, **kwargs):
            program = args[0] if isinstance(args, (list, tuple)) and args else args
            if os.path.basename(os.fspath(program)) in TOOLS:
                kwargs["env"] = {k: v for k, v in (kwargs.get("env") or os.environ).items() if k != "LD_PRELOAD"}
            super().__init__(args, *more, **kwargs)

    subprocess.Popen = _ToolsWithoutPreload


@pytest.fixture(autouse=True)
def signals_left_as_they_were():
    """A test that leaves signals blocked in the test process (or changes SIGINT's handler)
    would make every later test that stops a run with a signal hang, in this process and in
    the subprocesses it starts (they inherit the mask): fail the test that did it instead."""
    mask, handler = signal.pthread_sigmask(signal.SIG_BLOCK, []), signal.getsignal(signal.SIGINT)
    yield
    after, after_handler = signal.pthread_sigmask(signal.SIG_SETMASK, mask), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    assert after == mask, f"the test left signals blocked: {sorted(after - mask)}"
    assert after_handler == handler, f"the test left SIGINT's handler changed: {after_handler!r}"

# pcapkit logs a warning for every short frame its pcap writer parses; irrelevant here.
logging.getLogger("pcapkit").setLevel(logging.ERROR)

EXTENSIONS = {'pcap': '.pcap', 'cap': '.pcap', 'json': '.json', 'plist': '.plist', 'xml': '.plist',
              'tree': '.txt', 'txt': '.txt', 'text': '.txt'}
PCAP_FORMATS = ('pcap', 'cap')
TEXT_FORMATS = ('json', 'plist', 'xml', 'tree', 'txt', 'text')
TREE_FORMATS = ('tree', 'txt', 'text')
UNKNOWN_FORMAT = 'nosuchformat'


def reference_format(fmt):
    """The format pcapkit is run with: its 'text' crashes, pcapflow writes tree text (difference 2)."""
    return 'tree' if fmt == 'text' else fmt


# --------------------------------------------------------------------------- steps and the model

@dataclasses.dataclass(eq=False)
class Step:
    """One packet and what the test does with it."""
    fields: dict                  # the 10 Packet fields as pcapkit gets them (ip objects, pcapkit-style frame)
    op: str = 'dump'              # 'trace' | 'dump' | 'call' | 'writer' | 'writer-noname' (trace(output=True)(frame))
    peek: Optional[str] = None    # 'submit' | 'index': inspect the tracer after this step
    cand_frame: Any = None        # the frame pcapflow gets instead, when it is a plain dict

    def __repr__(self):  # short, so that hypothesis' falsifying examples stay readable
        f = self.fields
        frame = f['frame']
        info = dict(get(frame, 'frame_info'))
        extras = sorted(set(frame) & set(FRAME_EXTRAS))
        kind = 'dict' if self.cand_frame is not None else 'Info'
        return (f"<{self.op}{'+' + self.peek if self.peek else ''} #{f['index']} "
                f"{f['src']}:{f['srcport']}>{f['dst']}:{f['dstport']} ts={f['timestamp']!r} fin={f['fin']} "
                f"link={f['protocol']!r} {kind} frame {info} time_epoch={get(frame, 'time_epoch')!r} "
                f"packet={get(frame, 'packet')!r} extras={extras}>")

    def _repr_pretty_(self, printer, cycle):  # what hypothesis prints
        printer.text(repr(self))


@dataclasses.dataclass(eq=False)  # identity hash: flows are dict keys
class Flow:
    label: str
    occurrence: int   # 1 for the first flow with this label, 2 for the second, ...
    protocol: Any     # link type of the flow's first packet: the pcap global header's network
    indices: list
    frames: list      # (frame pcapkit gets, frame pcapflow gets, dumper name) in writing order

    def filename(self, ext, numbered):
        """pcapkit reuses the label's name; pcapflow numbers repeats (difference 4)."""
        suffix = f'_{self.occurrence}' if numbered and self.occurrence > 1 else ''
        return f'{self.label}{suffix}{ext}'


@dataclasses.dataclass
class Timeline:
    flows: list = dataclasses.field(default_factory=list)      # in opening order
    labels: list = dataclasses.field(default_factory=list)     # per step
    peeks: list = dataclasses.field(default_factory=list)      # per peek: (entries, frames written per flow)
    callbacks: list = dataclasses.field(default_factory=list)  # per FIN: (flow, indices, frames on disk for pcapflow)
    final: tuple = ()


def flow_label(fields):
    """pcapkit's label; the ':' of an IPv6 *source* flow become '.' (the whole label)."""
    label = f"{fields['src']}_{fields['srcport']}-{fields['dst']}_{fields['dstport']}-{fields['timestamp']}"
    return label.replace(':', '.') if fields['src'].version == 6 else label


def frame_name(step):
    return None if step.op == 'writer-noname' else f"Frame {step.fields['index']}"


def simulate(steps):
    """What a tracer must do with the steps: flows keyed by direction, closed by FIN."""
    timeline = Timeline()
    open_flows, closed, seen = {}, [], collections.Counter()

    def entries():
        return [(flow, tuple(flow.indices)) for flow in [*open_flows.values(), *closed]]

    def written():
        return {flow: len(flow.frames) for flow in timeline.flows}

    for step in steps:
        fields = step.fields
        key = (fields['src'], fields['srcport'], fields['dst'], fields['dstport'])
        flow = open_flows.get(key)
        if flow is None:
            label = flow_label(fields)
            seen[label] += 1
            flow = open_flows[key] = Flow(label, seen[label], fields['protocol'], [], [])
            timeline.flows.append(flow)
        flow.indices.append(fields['index'])
        cand_frame = fields['frame'] if step.cand_frame is None else step.cand_frame
        entry = (fields['frame'], cand_frame, frame_name(step))
        if step.op in ('dump', 'call'):
            flow.frames.append(entry)
        if fields['fin']:
            closed.append(open_flows.pop(key))
            # difference 6: dump()/__call__ write the FIN frame before callbacks run; a writer
            # returned by trace(output=True) is only called after trace() has returned.
            timeline.callbacks.append((flow, tuple(flow.indices), len(flow.frames)))
        if step.op.startswith('writer'):
            flow.frames.append(entry)
        timeline.labels.append(flow.label)
        if step.peek:
            timeline.peeks.append((entries(), written()))
    timeline.final = (entries(), written())
    return timeline


def render(entries, out, ext, *, numbered):
    """Index entries as plain dicts, with fpout as pcapkit (numbered=False) or pcapflow names files."""
    return [{'fpout': None if ext is None else f'{out}/{flow.filename(ext, numbered)}',
             'index': indices, 'label': flow.label} for flow, indices in entries]


def as_dicts(indexes):
    return [dict(index) for index in indexes]


# --------------------------------------------------------------------------- frames and pcap records

def get(obj, name, default=None):
    """A field of a frame that is either a mapping or an object with attributes."""
    if isinstance(obj, collections.abc.Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def input_is_nanosecond(frame):
    """Contract, difference 3: nanosecond if ts_usec >= 1e6 or time_epoch == ts_sec + ts_usec/1e9."""
    info = get(frame, 'frame_info')
    ts_sec, ts_usec = get(info, 'ts_sec'), get(info, 'ts_usec')
    if ts_usec >= 1_000_000:
        return True
    epoch = get(frame, 'time_epoch')
    return epoch is not None and Decimal(epoch) == Decimal(ts_sec) + Decimal(ts_usec).scaleb(-9)


def pcapflow_record(frame, nanosecond):
    """The frame as pcapflow writes it to a pcap (differences 3 and 5), for pcapkit's writer."""
    info, packet = get(frame, 'frame_info'), get(frame, 'packet')
    sub = get(info, 'ts_usec')
    if input_is_nanosecond(frame) != nanosecond:
        sub = sub * 1000 if nanosecond else sub // 1000
    return types.SimpleNamespace(packet=packet, frame_info={
        'ts_sec': get(info, 'ts_sec'), 'ts_usec': sub, 'incl_len': len(packet), 'orig_len': get(info, 'orig_len')})


class FileOracle:
    """Expected file contents, written by pcapkit's own dumper classes into a scratch directory."""

    def __init__(self, scratch, fmt, byteorder, nanosecond):
        os.makedirs(scratch, exist_ok=True)
        self.scratch, self.fmt, self.byteorder, self.nanosecond = scratch, fmt, byteorder, nanosecond
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the unknown format warns here too
            self.dumper, self.ext = PcapkitTCP.make_fout(scratch, reference_format(fmt))
        self.memo = {}

    def content(self, flow, count, as_pcapflow=True):
        """The flow's file after its first `count` frames."""
        key = (flow, count, as_pcapflow)
        if key not in self.memo:
            path = os.path.join(self.scratch, f'{len(self.memo)}{self.ext}')
            dumper = self.dumper(fname=path, protocol=flow.protocol, byteorder=self.byteorder,
                                 nanosecond=self.nanosecond)
            for ref_frame, cand_frame, name in flow.frames[:count]:
                # A dict frame dumps differently from an Info one (pcapkit's Info.__len__ counts
                # two hidden attributes, which moves tree branches), so each side gets its own.
                frame = cand_frame if as_pcapflow else ref_frame
                if as_pcapflow and self.fmt in PCAP_FORMATS:
                    frame = pcapflow_record(frame, self.nanosecond)
                dumper(frame, name=name)
            with open(path, 'rb') as file:
                self.memo[key] = file.read()
        return self.memo[key]

    def files(self, written, *, as_pcapflow=True):
        """{file name: bytes} of a directory holding these flows (frames written per flow).

        pcapflow keeps one file per flow; pcapkit's file for a repeated label holds the
        newest flow with that label only."""
        if self.ext is None:
            return {}
        files = {}
        for flow, count in written.items():
            files[flow.filename(self.ext, as_pcapflow)] = self.content(flow, count, as_pcapflow)
        return files


def snapshot(out):
    """{file name: bytes} of everything in an output directory."""
    files = {}
    for name in sorted(os.listdir(out)):
        with open(os.path.join(out, name), 'rb') as file:
            files[name] = file.read()
    return files


# --------------------------------------------------------------------------- running a tracer

@dataclasses.dataclass
class Run:
    tracer: Any
    returns: list      # per step: trace()'s label, dump()'s None, or 'writer' for trace(output=True)
    peeks: list        # per peek: (submit()/index as dicts, files on disk)
    callbacks: list    # per FIN: (Index as dict, bytes of its file when the callback ran)
    index: list
    submit: list
    submit_cached: bool
    files: dict
    warnings: list


def pcapkit_packet(step):
    return PcapkitPacket(**step.fields)


def candidate_packet(style, addresses_as_str=False):
    """pcapflow accepts pcapkit's Packet, its own Packet, or any mapping; src/dst also as str."""
    def build(step):
        fields = dict(step.fields)
        if step.cand_frame is not None:
            fields['frame'] = step.cand_frame
        if addresses_as_str:
            fields['src'], fields['dst'] = str(fields['src']), str(fields['dst'])
        if style == 'pcapkit':
            return PcapkitPacket(**fields)
        if style == 'pcapflow':
            return pcapflow.Packet(**fields)
        return fields
    return build


def run_tracer(cls, steps, out, fmt, *, byteorder, nanosecond, make_packet, candidate_frames=False,
               read_at_callback=False):
    """Feed the steps to a new tracer of class cls writing into out; record everything observable."""
    returns, peeks, callbacks = [], [], []

    def on_fin(index):
        data = None
        if read_at_callback and index.fpout is not None:
            with open(index.fpout, 'rb') as file:
                data = file.read()
        callbacks.append((dict(index), data))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        tracer = cls(out, fmt, byteorder=byteorder, nanosecond=nanosecond)
    cls.register_callback(on_fin)
    try:
        for step in steps:
            packet = make_packet(step)
            if step.op == 'trace':
                returns.append(tracer.trace(packet))
            elif step.op == 'dump':
                returns.append(tracer.dump(packet))
            elif step.op == 'call':
                returns.append(tracer(packet))
            else:
                writer = tracer.trace(packet, output=True)
                frame = step.cand_frame if candidate_frames and step.cand_frame is not None else step.fields['frame']
                if step.op == 'writer-noname':
                    writer(frame)
                else:
                    writer(frame, name=frame_name(step))
                returns.append('writer' if callable(writer) else writer)
            if step.peek == 'submit':
                peeks.append((as_dicts(tracer.submit()), snapshot(out)))
            elif step.peek == 'index':
                peeks.append((as_dicts(tracer.index), snapshot(out)))
        index = as_dicts(tracer.index)
        submitted = tracer.submit()
        cached = tracer.submit() is submitted
        return Run(tracer, returns, peeks, callbacks, index, as_dicts(submitted), cached, snapshot(out), caught)
    finally:
        cls.__callback_fn__.remove(on_fin)


# --------------------------------------------------------------------------- hypothesis strategies

# Link types pcapkit's pcap writer decodes cheaply: it parses every frame it writes, and
# random bytes under IPv4/IPv6 link types can keep it busy for seconds.
LINK_TYPES = [LinkType.ETHERNET, LinkType.RAW, LinkType.LINUX_SLL, LinkType.NULL, 1, 101, 113, 0]

SPECIAL_TIMESTAMPS = [1e-05, 1e16, 0.1, 0.0, -0.0, 1.0, 1, Decimal('1'), Decimal('1.0'), 1600000000.123456,
                      5e-324, 1.7976931348623157e308, float('inf'), float('nan'), Decimal('NaN'),
                      Decimal('-Infinity'), Decimal('1E+2'), Decimal('0E-9'), 2 ** 64, -1]

SPECIAL_ADDRESSES = [ipaddress.ip_address(a) for a in (
    '0.0.0.0', '255.255.255.255', '10.0.0.1', '::', '::1', '::ffff:1.2.3.4', 'fe80::1', '2001:db8::1')]

# Values found in real pcapkit frames (and a few more), to exercise the json/plist/tree hooks.
FRAME_EXTRAS = {
    'protocols': 'Ethernet:IPv4:TCP',
    'linktype': LinkType.ETHERNET,
    'address': ipaddress.ip_address('2001:db8::7'),
    'delta': datetime.timedelta(seconds=1, microseconds=500),
    'ratio': 0.1,
    'flag': True,
    'nothing': None,
    'blob': b'\x00\xffab"<&',
    'pair': (1, 'two'),
    'items': [3, 'x', None],
    'nested': PcapkitFrameInfo(ts_sec=1, ts_usec=2, incl_len=3, orig_len=4),
    'amount': Decimal('1.50'),
    'text': 'h\u00e9llo "q" <x> & \n\t',
    'options': OrderedMultiDict([(Option.Maximum_Segment_Size, 1460), (Option.No_Operation, None),
                                 (Option.No_Operation, None)]),
    'object': types.SimpleNamespace(a=1, b='b'),
}


def timestamps():
    # float(time_epoch) of a capture: seconds with up to 6 (or 9) decimals, the common case
    epochs = st.builds(lambda sec, frac, digits: float(f'{sec}.{frac % 10 ** digits:0{digits}d}'),
                       st.integers(0, 2 ** 33), st.integers(0, 10 ** 9 - 1), st.sampled_from([6, 9]))
    return st.one_of(
        st.sampled_from(SPECIAL_TIMESTAMPS), epochs, st.floats(), st.integers(-10 ** 20, 10 ** 20),
        st.builds(lambda n, e: Decimal(n).scaleb(e), st.integers(-10 ** 20, 10 ** 20), st.integers(-30, 30)))


def addresses(version=None):
    if version is None:
        return st.one_of(st.sampled_from(SPECIAL_ADDRESSES), st.ip_addresses())
    special = [a for a in SPECIAL_ADDRESSES if a.version == version]
    return st.one_of(st.sampled_from(special), st.ip_addresses(v=version))


ports = st.one_of(st.sampled_from([0, 80, 443, 65535]), st.integers(0, 65535))


@st.composite
def four_tuples(draw):
    """Mostly one IP version per flow, sometimes mixed (pcapkit decides by the source)."""
    version = draw(st.sampled_from([4, 6, 4, 6, None]))
    return draw(addresses(version)), draw(ports), draw(addresses(version)), draw(ports)


@st.composite
def frames(draw, number):
    """(pcapkit-style frame, plain-dict frame for pcapflow or None).

    Microsecond frames have ts_usec < 1e6 and time_epoch = ts_sec + ts_usec/1e6, as pcapkit
    builds them; nanosecond frames have ts_usec < 1e9 and time_epoch = ts_sec + ts_usec/1e9."""
    nano = draw(st.booleans())
    ts_sec = draw(st.integers(0, 2 ** 32 - 1))
    ts_usec = draw(st.integers(0, 10 ** 9 - 1 if nano else 10 ** 6 - 1))
    packet = bytearray(draw(st.binary(max_size=48)))
    if len(packet) >= 14:
        packet[12:14] = b'\x88\xb5'  # an EtherType pcapkit does not decode further
    packet = bytes(packet)
    orig_len = draw(st.one_of(st.just(len(packet)), st.integers(len(packet), 2 ** 32 - 1)))
    epoch = Decimal(ts_sec) + Decimal(ts_usec).scaleb(-9 if nano else -6)
    info = {'ts_sec': ts_sec, 'ts_usec': ts_usec, 'incl_len': len(packet), 'orig_len': orig_len}
    fields = {'frame_info': info,
              'time': datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=ts_sec, microseconds=ts_usec // 1000 if nano else ts_usec),
              'number': number, 'time_epoch': epoch, 'len': orig_len, 'cap_len': len(packet), 'packet': packet}
    for key in draw(st.lists(st.sampled_from(sorted(FRAME_EXTRAS)), unique=True, max_size=3)):
        fields[key] = FRAME_EXTRAS[key]

    kind = draw(st.sampled_from(['pcapkit', 'mapping', 'mapping without time_epoch']))
    if kind == 'pcapkit':  # as pcapkit's extractor builds them
        frame = PcapkitFrame(frame_info=PcapkitFrameInfo(**info), time=fields['time'], number=number,
                             time_epoch=epoch, len=orig_len, cap_len=len(packet))
        frame.__update__({k: v for k, v in fields.items() if k not in frame})
        return frame, None
    if kind == 'mapping without time_epoch':
        del fields['time_epoch']
    # pcapkit's pcap writer needs attribute access, so pcapkit gets the same content as an Info.
    return PcapkitFrame.from_dict(fields), fields


@st.composite
def scenarios(draw, *, unnamed_writes=True, max_steps=24):
    """Packets over a few recurring 4-tuples and timestamps, so flows reopen, labels repeat, FIN anywhere."""
    tuples = draw(st.lists(four_tuples(), min_size=1, max_size=4))
    stamps = draw(st.lists(timestamps(), min_size=1, max_size=3))
    ops = ['trace', 'dump', 'call', 'writer'] + (['writer-noname'] if unnamed_writes else [])
    number = draw(st.integers(0, 2 ** 32))
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        number = draw(st.one_of(st.just(number + 1), st.integers(-2 ** 31, 2 ** 40)))
        src, srcport, dst, dstport = draw(st.sampled_from(tuples))
        frame, cand_frame = draw(frames(number))
        fields = {'protocol': draw(st.sampled_from(LINK_TYPES)), 'index': number, 'frame': frame,
                  'syn': draw(st.booleans()), 'fin': draw(st.sampled_from([False, False, True])),
                  'src': src, 'dst': dst, 'srcport': srcport, 'dstport': dstport,
                  'timestamp': draw(st.sampled_from(stamps))}
        steps.append(Step(fields, op=draw(st.sampled_from(ops)),
                          peek=draw(st.sampled_from([None] * 8 + ['submit', 'index'])), cand_frame=cand_frame))
    return steps


@pytest.fixture
def out(tmp_path):
    """An output directory for a tracer, not yet made (the tracer makes it)."""
    return str(tmp_path / "out")


@pytest.fixture
def restore_tcp_callbacks():
    """Callbacks registered on pcapflow.TCP itself are process-wide: undo them."""
    saved = list(pcapflow.TCP.__callback_fn__)
    yield
    pcapflow.TCP.__callback_fn__[:] = saved
