"""pcapflow._core keeps everything in its module state (multi-phase init, heap types).

Each execution of the extension module is a separate instance: its own types,
exceptions and looked-up objects. These tests load the built .so a second time
under its own name (not through sys.modules), trace with both instances, drop a
module while a tracer made from it lives on, and check that tracers, their
callbacks and the modules themselves are collected. A subinterpreter imports
pcapflow too, where this interpreter has the module that makes one.
"""
import gc
import importlib.util
import ipaddress
import os
import subprocess
import sys
import textwrap
import weakref

import pytest

import pcapflow
from pcapflow import _core

HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
A, B = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
FRAME = {"packet": b"", "frame_info": {"ts_sec": 1, "ts_usec": 0, "incl_len": 0, "orig_len": 0}}
TYPES = ("Packet", "Buffer", "Index", "TCPBase", "FlowWriter", "CaptureReader")
EXCEPTIONS = ("UnsupportedCall", "FilterError", "CaptureError")
CAPTURE = "whois.pcap"


def load_again():
    """A second instance of the extension, executed from the same file under the same name."""
    spec = importlib.util.spec_from_file_location("pcapflow._core", _core.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def packet(core, number, fin=False, srcport=40000):
    return core.Packet(protocol=1, index=number, frame=FRAME, syn=False, fin=fin, src=A, dst=B,
                       srcport=srcport, dstport=80, timestamp=1.5)


def as_mapping(number, fin=False):
    """A packet as a plain dict: traced without any Packet type."""
    return {"protocol": 1, "index": number, "frame": FRAME, "syn": False, "fin": fin, "src": A, "dst": B,
            "srcport": 40000, "dstport": 80, "timestamp": 1.5}


def test_every_type_is_a_heap_type_and_keeps_its_names():
    for name in TYPES:
        assert getattr(_core, name).__flags__ & HEAPTYPE, name
    assert type(pcapflow.Packet(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)).__flags__ & HEAPTYPE
    assert [(pcapflow.Packet.__module__, pcapflow.Packet.__qualname__),
            (_core.TCPBase.__module__, _core.TCPBase.__qualname__)] == [("pcapflow", "Packet"),
                                                                      ("pcapflow._core", "TCPBase")]
    with pytest.raises(TypeError):
        _core.FlowWriter()
    if sys.version_info >= (3, 10):  # immutable, as the static types were (3.9 has no flag for it)
        for name in TYPES:
            with pytest.raises(TypeError):
                setattr(getattr(_core, name), "extra", 1)


def test_a_second_instance_has_its_own_types_and_exceptions(tmp_path):
    other = load_again()
    assert other is not _core
    for name in TYPES + EXCEPTIONS:
        assert getattr(other, name) is not getattr(_core, name), name
        assert getattr(other, name).__qualname__ == getattr(_core, name).__qualname__
    # both trace, each answering with its own Index type
    for core in (_core, other):
        tracer = core.TCPBase(str(tmp_path), "little", False)
        assert tracer.trace(packet(core, 1)) == "10.0.0.1_40000-10.0.0.2_80-1.5"
        assert tracer.trace(packet(core, 2, fin=True)) == "10.0.0.1_40000-10.0.0.2_80-1.5"
        (index,) = tracer.submit()
        assert type(index) is core.Index and index.index == (1, 2)
    # a packet of one instance is traced by the other's tracer, as any mapping-like packet
    tracer = other.TCPBase(str(tmp_path), "little", False)
    assert tracer.trace(packet(_core, 7)) == "10.0.0.1_40000-10.0.0.2_80-1.5"
    assert tracer.submit()[0].index == (7,)
    # errors are raised with the instance's own classes
    with pytest.raises(other.UnsupportedCall) as caught:
        packet(other, 1).src = B
    assert not isinstance(caught.value, _core.UnsupportedCall)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all, not even close")
    with pytest.raises(other.CaptureError):
        other.CaptureReader(str(junk))
    with pytest.raises(other.CaptureError) as caught:
        other.TCPBase(str(tmp_path), "little", False)._trace_capture(str(junk))
    assert not isinstance(caught.value, _core.CaptureError)
    with pytest.raises(other.FilterError):
        other.CaptureReader(os.path.join(os.path.dirname(__file__), "data", CAPTURE), "not a ( filter")


def test_a_python_subclass_finds_its_instance(tmp_path):
    other = load_again()

    class Mine(other.TCPBase):
        pass

    class Deeper(Mine):
        def __new__(cls, *args, **kwargs):
            return super().__new__(cls)

    for cls in (Mine, Deeper):
        tracer = cls(str(tmp_path), "little", False)
        tracer.trace(packet(other, 1, fin=True))
        assert type(tracer.submit()[0]) is other.Index


def test_a_tracer_keeps_its_module_alive(tmp_path):
    other = load_again()
    tracer = other.TCPBase(str(tmp_path), "little", False)
    module, died = weakref.ref(other), weakref.ref(tracer)
    del other
    gc.collect()
    assert module() is not None  # the tracer holds it
    assert tracer.trace(as_mapping(1)) == "10.0.0.1_40000-10.0.0.2_80-1.5"
    tracer.trace(as_mapping(2, fin=True))
    (index,) = tracer.submit()
    assert type(index).__module__ == "pcapflow" and index.index == (1, 2)
    del tracer, index
    gc.collect()
    assert died() is None
    assert module() is None  # and nothing else held the module: its state is released


def test_packets_outlive_their_module(tmp_path):
    other = load_again()
    module = weakref.ref(other)
    made = packet(other, 3, fin=True)
    del other
    gc.collect()
    assert module() is not None  # the packet's type holds it
    assert made.to_dict()["index"] == 3 and "Packet" in repr(made)
    assert _core.TCPBase(str(tmp_path), "little", False).trace(made) == "10.0.0.1_40000-10.0.0.2_80-1.5"
    del made
    gc.collect()
    assert module() is None


@pytest.mark.filterwarnings("ignore:Unsupported output format")
def test_a_cycle_through_a_tracer_and_its_callback_is_collected(tmp_path):
    class Tracer(pcapflow.TCP):
        pass

    seen = []
    tracer = Tracer(str(tmp_path), "null")
    # tracer -> __dict__ -> callback -> tracer, and the class's list -> callback
    tracer.on_fin = lambda index, tracer=tracer: seen.append((tracer.open_flows, index.index))
    Tracer.register_callback(tracer.on_fin)
    tracer.trace(packet(_core, 1))
    tracer.trace(packet(_core, 2, fin=True))
    assert seen == [(0, (1, 2))]
    referents = gc.get_referents(tracer)  # what tp_traverse visits: the class and the module too
    assert Tracer in referents and _core in referents and tracer.__dict__ in referents
    died = weakref.ref(tracer)
    del tracer, referents
    gc.collect()
    assert died() is not None  # the class's callback list still holds it
    Tracer.__callback_fn__.clear()
    gc.collect()
    assert died() is None


def test_a_cycle_through_a_flow_writer_is_collected(tmp_path):
    tracer = pcapflow.TCP(str(tmp_path), "pcap")
    writer = tracer.trace(packet(_core, 1), output=True)
    assert type(writer) is _core.FlowWriter and tracer in gc.get_referents(writer)
    tracer.writer = writer  # tracer -> __dict__ -> writer -> tracer
    died = weakref.ref(tracer)
    del tracer, writer
    gc.collect()
    assert died() is None


SUBINTERPRETER = r"""
import sys
try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters
# pcapflow shares the main interpreter's GIL (it does not declare a GIL per interpreter)
if sys.version_info >= (3, 13):
    interpreter = interpreters.create("legacy")
elif sys.version_info >= (3, 12):
    interpreter = interpreters.create(isolated=False)
else:
    interpreter = interpreters.create()
import pcapflow
interpreters.run_string(interpreter, '''
import ipaddress, pcapflow
a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
frame = {"packet": b"", "frame_info": {"ts_sec": 1, "ts_usec": 0, "incl_len": 0, "orig_len": 0}}
tracer = pcapflow._core.TCPBase("unused", "little", False)
tracer.trace(pcapflow.Packet(1, 1, frame, False, True, a, b, 1, 2, 1.5))
assert type(tracer.submit()[0]) is pcapflow.Index
try:
    pcapflow.Packet(1, 1, frame, False, True, a, b, 1, 2, 1.5).src = b
except pcapflow.UnsupportedCall:
    pass
''')
interpreters.destroy(interpreter)
# this interpreter's instance is untouched by the other's
import ipaddress
c = ipaddress.ip_address("10.0.0.3")
tracer = pcapflow._core.TCPBase("unused", "little", False)
print(tracer.trace(pcapflow.Packet(1, 1, {}, False, False, c, c, 1, 2, 2.5)))
"""


def run_in_subinterpreter(python, path):
    return subprocess.run([python, "-c", SUBINTERPRETER], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": path})


def test_a_subinterpreter_has_its_own_instance():
    try:
        import _interpreters  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        pytest.importorskip("_xxsubinterpreters")
    package = os.path.dirname(os.path.dirname(pcapflow.__file__))
    ran = run_in_subinterpreter(sys.executable, package)
    assert ran.returncode == 0, ran.stderr[-4000:]
    assert ran.stdout.split() == ["10.0.0.3_1-10.0.0.3_2-2.5"]
