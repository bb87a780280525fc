"""pcapflow.TCP: pcapkit's TCP flow tracer with the per-packet work in C.

The C base type does the tracing and the pcap writing; this class adds what
pcapkit keeps at class level (the format registry, the callbacks) so that
code written against pcapkit's class keeps working."""
import operator
import os
import sys
import warnings

from dictdumper.dumper import Dumper

from pcapflow import _at_exit, _core
from pcapflow.dumpers import default_formats, make_dumper
from pcapflow.exceptions import FileExists, FileWarning, FormatWarning, RegistryError, RegistryWarning

__all__ = ["TCP"]


def _output_root(fout):
    """fout as the str the flow files' paths start with (./tmp when None);
    bytes and undecodable names through the file system encoding."""
    if fout is None:
        return "./tmp"
    try:
        return os.fsdecode(os.fspath(fout))
    except TypeError:
        raise TypeError(f"fout must be a str, bytes or os.PathLike, not {type(fout).__name__}") from None


class _ProtocolType:
    """Resolves to pcapkit's TCP protocol class when pcapkit is installed
    (importing pcapkit takes a second, so only on first use), else None."""

    def __get__(self, instance, owner):
        try:
            from pcapkit.protocols.transport.tcp import TCP as TCPProtocol  # pylint: disable=import-outside-toplevel
        except ImportError:
            return None
        return TCPProtocol


class _TracerMeta(type):
    """Gives the class itself pcapkit's `name` and `protocol` properties."""

    @property
    def name(cls):
        return getattr(cls, "__protocol_name__", cls.__name__)

    @property
    def protocol(cls):
        return cls.__protocol_type__


class TCP(_core.TCPBase, metaclass=_TracerMeta):
    """Trace TCP flows: TCP(fout='./tmp', format='pcap', byteorder=sys.byteorder, nanosecond=False).

    A flow is one direction of a TCP connection, keyed by (src, srcport, dst,
    dstport); a FIN closes it. trace() returns the flow's label, dump() also
    writes the frame to the flow's file "{fout}/{label}{ext}", submit() and
    index return an Index per flow. Frames are buffered in C (``buffer_bytes``
    in all, 32 MiB unless set; the largest buffers are written when it fills)
    and are all on disk after submit(), index, the flow's FIN, close(),
    leaving a `with` block, garbage collection, or the end of the process
    (see pcapflow._at_exit). With ``tunnels=True`` a capture it reads itself
    (``pcapflow.trace_file``) has its tunnels opened: GRE, IP in IP, VXLAN and
    GENEVE, the innermost TCP traced; packets given to trace() and dump() are
    already decoded, and the option does not concern them. With
    ``frame_numbers=False`` no frame numbers are kept (each Index's ``index``
    is empty), so memory does not grow with the packets, only with the flows;
    otherwise each takes a byte or two, and an Index turns them into a tuple
    of ints when its ``index`` is first read.

    With ``bidirectional=True`` a flow is a whole connection instead: both
    directions share one flow (and one file, frames in the order traced),
    labelled as its first packet's one-direction flow would be, so an
    Index's label (and fpout) names the first packet's src and dst. It is
    closed once both sides have sent FIN, or at an RST from either side;
    a later packet of the same connection opens a new flow. pcapkit's
    Packet has no RST flag: a packet given to trace() or dump() carries
    one as an optional ``rst`` field (``Packet.from_dict({..., 'rst':
    True})``); captures read by ``pcapflow.trace_file`` see the TCP header's
    own."""

    __protocol_name__ = "TCP"
    __protocol_type__ = _ProtocolType()
    __output__ = default_formats()
    __callback_fn__: list = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__callback_fn__ = []

    @property
    def name(self):
        """Protocol name of the tracer: 'TCP'."""
        return type(self).name

    @property
    def protocol(self):
        """pcapkit's TCP protocol class (None without pcapkit)."""
        return type(self).protocol

    @classmethod
    def register_dumper(cls, format, dumper, ext):  # pylint: disable=redefined-builtin
        """Add or replace an output format: a dictdumper Dumper class and its file extension."""
        klass = getattr(dumper, "klass", dumper)  # pcapkit's ModuleDescriptor
        if not (isinstance(klass, type) and issubclass(klass, Dumper)):
            raise RegistryError(f"dumper must be a Dumper subclass, not {dumper!r}")
        if format in cls.__output__:
            warnings.warn(f"dumper {format} already registered, overwriting", RegistryWarning, stacklevel=2)
        cls.__output__[format] = (klass, ext)

    @classmethod
    def register_callback(cls, callback, *, index=None):
        """Call callback(Index) for every flow closed by FIN (at position index of the list, if given)."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if index is not None:
            cls.__callback_fn__.insert(index, callback)
        else:
            cls.__callback_fn__.append(callback)

    @classmethod
    def make_fout(cls, fout="./tmp", fmt="pcap"):
        """Create the output directory; return (dumper class, file extension or None)."""
        output, ext = cls.__output__[fmt]
        if ext is None:
            warnings.warn(f"Unsupported output format: {fmt}; disabled file output feature", FormatWarning,
                          stacklevel=3)
        try:
            os.makedirs(fout, exist_ok=True)
        except FileExistsError as error:
            if ext is None:
                warnings.warn(error.strerror, FileWarning, stacklevel=3)
            else:
                raise FileExists(error.errno, error.strerror, error.filename) from error
        if getattr(output, "__pcapflow_native__", False) or ext is None:
            return output, ext
        return make_dumper(output), ext

    def __init__(self, fout=None, format=None, byteorder=sys.byteorder, nanosecond=False, *,  # pylint: disable=redefined-builtin
                 buffer_bytes=32 * 1024 * 1024, tunnels=False, frame_numbers=True, bidirectional=False):
        # what to write and where is decided here, in Python (make_fout may be
        # overridden); the C tracer is handed the result
        root = _output_root(fout)
        if format is not None and not isinstance(format, str):
            raise TypeError(f"format must be a str or None, not {type(format).__name__}")
        if not isinstance(byteorder, str) or byteorder not in ("little", "big"):
            raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
        if not isinstance(bidirectional, bool):
            raise TypeError(f"bidirectional must be True or False, not {type(bidirectional).__name__}")
        if operator.index(buffer_bytes) < 4096:
            raise ValueError(f"buffer_bytes must be at least 4096, not {buffer_bytes}")
        made = self.make_fout(root, "pcap" if format is None else format)
        if not (isinstance(made, tuple) and len(made) == 2):
            raise TypeError("make_fout() must return (dumper class, extension)")
        dumper, extension = made
        native = bool(getattr(dumper, "__pcapflow_native__", False))
        super().__init__(root, str(byteorder), nanosecond, buffer_bytes=buffer_bytes, dumper=dumper,
                         extension=extension, native=native, tunnels=bool(tunnels),
                         frame_numbers=bool(frame_numbers), bidirectional=bidirectional)
        _at_exit.register(self)  # buffered frames are written at exit even if it is never collected

    def __repr__(self):
        return f"<{type(self).__name__} open_flows={self.open_flows}>"
