"""pcapkit's datagram reassembly (pcapkit.foundation.reassembly), reimplemented.

``TCP`` (alias ``TCP_Reassembly``), ``IPv4`` and ``IPv6`` take the records
pcapkit's extractor builds for its own classes (``pcapkit.toolkit.pcap``'s
``tcp_reassembly``, ``ipv4_reassembly``, ``ipv6_reassembly``: any object with
those attributes, or a mapping with those keys) and have pcapkit's interface:
``reassembly(info)`` and ``__call__(info)``, ``submit``, ``fetch``,
``datagram``, ``count``, ``index``, ``run``, the class method ``register``,
and the ``strict`` and ``store`` options. Datagrams have pcapkit's fields
(``completed``, ``id``, ``index``, ``header``, ``payload``, ``packet``) and
are read-only mappings like pcapkit's, equal to pcapkit's when their fields are.

A TCP datagram is what one direction of a connection sent while the peer's
acknowledgement number stayed the same (pcapkit's definition); an IP datagram
is the payload of a fragmented IPv4 or IPv6 packet. The results are pcapkit's
where pcapkit is right; where it is not (see "differs on purpose" below and
in the README), they are what the capture holds:

- a byte is kept from the first segment or fragment that carried it (pcapkit:
  the last one); RFC 9293 receivers and Wireshark keep the first copy;
- ``completed`` says whether every byte between a datagram's first and last
  received byte was received (pcapkit's TCP hole list is seeded with a length
  where a sequence number belongs, is shared by all datagrams of a direction
  and only its first hole is ever split); with ``strict=False`` a datagram
  with gaps keeps pcapkit's shape (bytes, gaps filled with zeros) but is no
  longer reported complete;
- an incomplete datagram's payload (``strict=True``) is the tuple of the runs
  of bytes received, exactly;
- a TCP datagram starts at its first payload byte: zero-length segments (the
  SYN, pure ACKs, keep-alive probes) carry frame numbers but no position
  (pcapkit zero-fills from their sequence number, so a server's greeting
  after its SYN-ACK starts with a NUL byte);
- sequence numbers compare modulo 2**32 (pcapkit allocates gigabytes of zeros
  when a datagram crosses the wrap);
- an IP datagram is complete as soon as its last missing fragment arrives,
  whichever it is (pcapkit only looks when the fragment with MF=0 arrives);
  an unfragmented packet whose key matches an open buffer flushes it and is
  then a datagram of its own (pcapkit drops it); without the final fragment
  the payload ends with the last byte received (pcapkit gives 65,534 bytes);
- ``store=False`` keeps no datagrams (pcapkit keeps them all and only refuses
  to show them) and ``count`` still counts them;
- ``packet`` (pcapkit's analysis of the payload as an application protocol)
  is computed when first read, with pcapkit, and is None without pcapkit.
"""
import collections.abc

from pcapflow.exceptions import UnsupportedCall

__all__ = ["TCP", "TCP_Reassembly", "IPv4", "IPv4_Reassembly", "IPv6", "IPv6_Reassembly", "Reassembly",
           "TCPDatagram", "TCPDatagramID", "IPDatagram", "IPDatagramID", "TCPSegment", "IPFragment"]

_MASK = 0xFFFFFFFF
_HALF = 0x80000000


# --------------------------------------------------------------------------- records

class _Info(collections.abc.Mapping):
    """A read-only record with attribute and key access, like pcapkit's Info:
    equal to any mapping with the same items (pcapkit's records included)."""

    __slots__ = ()
    _fields = ()

    def __init__(self, *args, **kwargs):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes {len(self._fields)} fields, not {len(args)}")
        values = dict(zip(self._fields, args))
        for key, value in kwargs.items():
            if key not in self._fields:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
            if key in values:
                raise TypeError(f"{type(self).__name__} got {key!r} twice")
            values[key] = value
        missing = [key for key in self._fields if key not in values]
        if missing:
            raise TypeError(f"{type(self).__name__} is missing {', '.join(missing)}")
        for key in self._fields:
            object.__setattr__(self, key, values[key])

    def __getitem__(self, key):
        if key in self._fields:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self._fields)

    def __len__(self):
        return len(self._fields)

    def __contains__(self, key):
        return key in self._fields

    def __setattr__(self, name, value):
        raise UnsupportedCall("can't set attribute")

    def __delattr__(self, name):
        raise UnsupportedCall("can't delete attribute")

    def __eq__(self, other):
        if isinstance(other, collections.abc.Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None

    def __str__(self):
        return f"{type(self).__name__}({', '.join(f'{key}={self[key]}' for key in self._fields)})"

    def __repr__(self):
        def show(value):
            return f"{type(value).__name__}(...)" if isinstance(value, _Info) else repr(value)
        return f"<{type(self).__name__} {', '.join(f'{key}={show(self[key])}' for key in self._fields)}>"

    def __reduce__(self):
        return (type(self), tuple(self[key] for key in self._fields))

    def to_dict(self):
        return {key: value.to_dict() if isinstance(value, _Info) else value for key, value in self.items()}

    @classmethod
    def from_dict(cls, mapping=None, **kwargs):
        values = dict(mapping.items() if hasattr(mapping, "items") else mapping or ())
        values.update(kwargs)
        return cls(**values)


class TCPSegment(_Info):
    """The record TCP.reassembly() takes (pcapkit's reassembly.data.tcp.Packet).
    Only bufid, dsn, ack, num, syn, fin, rst, header and payload are read: a
    segment's length is its payload's."""
    __slots__ = _fields = ("bufid", "dsn", "ack", "num", "syn", "fin", "rst", "len", "first", "last", "header",
                           "payload")


class IPFragment(_Info):
    """The record IPv4/IPv6.reassembly() takes (pcapkit's reassembly.data.ip.Packet)."""
    __slots__ = _fields = ("bufid", "num", "fo", "ihl", "mf", "tl", "header", "payload")


class TCPDatagramID(_Info):
    """src and dst are (address, port); ack the acknowledgement number shared by the datagram's segments."""
    __slots__ = _fields = ("src", "dst", "ack")


class IPDatagramID(_Info):
    """The fragments' key: addresses, identification (IPv6: flow label) and protocol."""
    __slots__ = _fields = ("src", "dst", "id", "proto")


_NOT_YET = object()


class _Datagram(_Info):
    """completed, id, index (frame numbers), header, payload (bytes; a tuple of
    the runs received when incomplete with strict=True) and packet (pcapkit's
    analysis of the payload, made when first read)."""
    __slots__ = ("completed", "id", "index", "header", "payload", "_packet", "_analyze")
    _fields = ("completed", "id", "index", "header", "payload", "packet")

    def __init__(self, completed, id, index, header, payload, packet=_NOT_YET, *, analyze=None):  # pylint: disable=redefined-builtin,too-many-arguments
        setattr_ = object.__setattr__
        setattr_(self, "completed", completed)
        setattr_(self, "id", id)
        setattr_(self, "index", index)
        setattr_(self, "header", header)
        setattr_(self, "payload", payload)
        setattr_(self, "_packet", packet)
        setattr_(self, "_analyze", analyze)

    @property
    def packet(self):
        packet = self._packet
        if packet is _NOT_YET:
            packet = None
            if self._analyze is not None and isinstance(self.payload, bytes):
                packet = self._analyze(self)
            object.__setattr__(self, "_packet", packet)
            object.__setattr__(self, "_analyze", None)
        return packet

    def __reduce__(self):
        return (type(self), (self.completed, self.id, self.index, self.header, self.payload, self.packet))


class TCPDatagram(_Datagram):
    __slots__ = ()


class IPDatagram(_Datagram):
    __slots__ = ()


def _pcapkit_protocol(module, name):
    try:
        imported = __import__(module, fromlist=[name])
    except ImportError:
        return None
    return getattr(imported, name)


def _analyze_tcp(datagram):
    protocol = _pcapkit_protocol("pcapkit.protocols.transport.tcp", "TCP")
    if protocol is None:
        return None
    return protocol.analyze((datagram.id.src[1], datagram.id.dst[1]), datagram.payload)


def _analyze_ipv4(datagram):
    protocol = _pcapkit_protocol("pcapkit.protocols.internet.ipv4", "IPv4")
    return None if protocol is None else protocol.analyze(datagram.id.proto, datagram.payload)


def _analyze_ipv6(datagram):
    protocol = _pcapkit_protocol("pcapkit.protocols.internet.ipv6", "IPv6")
    return None if protocol is None else protocol.analyze(datagram.id.proto, datagram.payload)


# --------------------------------------------------------------------------- byte buffers

class _Bytes:
    """Bytes received at offsets from an origin: the data (gaps zero) and the
    sorted, disjoint, non-adjacent runs [start, end) actually received. A
    byte already received is kept (first write wins)."""

    __slots__ = ("data", "runs")

    def __init__(self):
        self.data = bytearray()
        self.runs = []

    def put(self, offset, payload):
        """Place payload at offset (>= 0)."""
        size = len(payload)
        if not size:
            return
        end = offset + size
        data, runs = self.data, self.runs
        if runs:
            last = runs[-1]
            if offset == last[1] == len(data):  # in order: the common case
                data += payload
                last[1] = end
                return
        elif not data and offset == 0:
            data += payload
            runs.append([0, end])
            return
        if end > len(data):
            data.extend(bytes(end - len(data)))
        # write the parts no earlier segment covered, then merge the run in
        position = offset
        merged_start, merged_end = offset, end
        keep_before, keep_after = [], []
        for run in runs:
            start, stop = run
            if stop < offset:
                keep_before.append(run)
                continue
            if start > end:
                keep_after.append(run)
                continue
            if start > position:
                data[position:start] = payload[position - offset:start - offset]
            if stop > position:
                position = stop
            merged_start = min(merged_start, start)
            merged_end = max(merged_end, stop)
        if position < end:
            data[position:end] = payload[position - offset:]
        keep_before.append([merged_start, merged_end])
        keep_before.extend(keep_after)
        self.runs = keep_before

    def shift(self, by):
        """Move the origin `by` bytes earlier."""
        self.data[:0] = bytes(by)
        for run in self.runs:
            run[0] += by
            run[1] += by

    def complete(self, length=None):
        """Every byte from 0 to length (default: the last byte received) received."""
        runs = self.runs
        if length is None:
            return len(runs) == 1 and runs[0][0] == 0
        return len(runs) == 1 and runs[0][0] == 0 and runs[0][1] >= length

    def pieces(self):
        data = self.data
        return tuple(bytes(data[start:stop]) for start, stop in self.runs)


# --------------------------------------------------------------------------- the base class

class _ReassemblyMeta(type):
    """Gives the class pcapkit's `name` and `protocol` properties."""

    @property
    def name(cls):
        return getattr(cls, "__protocol_name__", cls.__name__)

    @property
    def protocol(cls):
        return cls.__protocol_type__


class _ProtocolType:
    """pcapkit's protocol class for the reassembly (None without pcapkit), imported on first use."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __get__(self, instance, owner):
        return _pcapkit_protocol(self.module, self.name)


class Reassembly(metaclass=_ReassemblyMeta):
    """What the TCP, IPv4 and IPv6 reassemblies share: pcapkit's
    ReassemblyBase interface. Subclasses implement reassembly() and submit()."""

    __protocol_name__ = "Reassembly"
    __protocol_type__ = None
    __callback_fn__: list = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__callback_fn__ = []

    def __init__(self, *, strict=True, store=True):
        self._flag_s = bool(strict)
        self._flag_d = bool(store)
        self._flag_n = False
        self._buffer = {}
        self._dtgram = []
        self._submitted = 0
        self._cache = None

    @property
    def name(self):
        return type(self).name

    @property
    def protocol(self):
        return type(self).protocol

    @property
    def strict(self):
        return self._flag_s

    @property
    def store(self):
        return self._flag_d

    def _finished(self, datagrams):
        """Datagrams of a buffer that closed: callbacks, then kept (store=True)."""
        self._submitted += len(datagrams)
        if self._flag_d:
            self._dtgram.extend(datagrams)

    @property
    def count(self):
        """Number of datagrams: finished ones, and those open buffers would give now.
        With store=False, the number of datagrams finished so far."""
        if not self._flag_d:
            return self._submitted
        return len(self.datagram)

    @property
    def datagram(self):
        """The datagrams: those of the open buffers as they stand (see fetch()), then the finished ones."""
        if not self._flag_d:
            raise UnsupportedCall(f'{type(self).__name__}(store=False) has no attribute "datagram"')
        if self._buffer:
            return self.fetch()
        return tuple(self._dtgram)

    def fetch(self):
        """The open buffers submitted as they stand (without closing them), then the
        finished datagrams; cached until the next packet."""
        if self._cache is not None:
            return self._cache
        found = []
        for bufid, buffer in list(self._buffer.items()):
            found.extend(self.submit(buffer, bufid=bufid))
        found.extend(self._dtgram)
        self._cache = tuple(found)
        return self._cache

    def index(self, pkt_num):
        """Position in `datagram` of the first datagram frame pkt_num belongs to, or None."""
        for counter, datagram in enumerate(self.datagram):
            if pkt_num in datagram.index:
                return counter
        return None

    def run(self, packets):
        """reassembly() for each record."""
        for packet in packets:
            self.reassembly(packet)

    @classmethod
    def register(cls, callback, *, index=None):
        """Call callback(list of datagrams) for every submitted list (at position index of the list, if given)."""
        if index is not None:
            cls.__callback_fn__.insert(index, callback)
        else:
            cls.__callback_fn__.append(callback)

    def __call__(self, packet):
        self._flag_n = True
        self.reassembly(packet)

    def _callbacks(self, datagrams):
        for callback in type(self).__callback_fn__:
            callback(datagrams)

    def reassembly(self, info):  # pragma: no cover - abstract
        raise NotImplementedError

    def submit(self, buf, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} strict={self._flag_s} store={self._flag_d} open={len(self._buffer)}>"


def _fields(info, names):
    """The named fields of a record: attributes (pcapkit's Info), else keys."""
    try:
        return [getattr(info, name) for name in names]
    except AttributeError:
        return [info[name] for name in names]


# --------------------------------------------------------------------------- TCP

class _Fragment:
    """The segments of one direction sharing one acknowledgement number."""

    __slots__ = ("ind", "isn", "bytes")

    def __init__(self, num):
        self.ind = [num]
        self.isn = None  # sequence number of bytes.data[0], set by the first payload byte
        self.bytes = _Bytes()

    def put(self, seq, payload):
        if not payload:
            return
        isn = self.isn
        if isn is None:
            self.isn = seq & _MASK
            self.bytes.put(0, payload)
            return
        offset = ((seq - isn + _HALF) & _MASK) - _HALF  # signed, modulo 2**32
        if offset < 0:
            self.bytes.shift(-offset)
            self.isn = seq & _MASK
            offset = 0
        self.bytes.put(offset, payload)


class _TCPBuffer:
    __slots__ = ("hdr", "ack")

    def __init__(self, header):
        self.hdr = header
        self.ack = {}


def _tcp_segment(buffers, bufid, seq, ack, num, syn, fin_or_rst, header, payload, flush):
    """One segment into `buffers` (bufid -> _TCPBuffer); flush(bufid, buffer) closes one."""
    if syn and bufid in buffers:
        flush(bufid, buffers.pop(bufid))
    buffer = buffers.get(bufid)
    if buffer is None:
        buffer = buffers[bufid] = _TCPBuffer(header if syn else b"")
    fragment = buffer.ack.get(ack)
    if fragment is None:
        fragment = buffer.ack[ack] = _Fragment(num)
    else:
        fragment.ind.append(num)
    if payload:
        # a SYN's payload (TCP Fast Open) follows the sequence number the SYN takes
        fragment.put(seq + 1 if syn else seq, payload)
    if fin_or_rst:
        flush(bufid, buffers.pop(bufid))


class TCP(Reassembly):
    """TCP reassembly: TCP(strict=True, store=True), fed pcapkit's TCP records.

    ``strict`` reports a datagram with gaps as incomplete, its payload the
    tuple of the runs received; otherwise it is bytes with zeros in the gaps
    (``completed`` is False either way)."""

    __protocol_name__ = "TCP"
    __protocol_type__ = _ProtocolType("pcapkit.protocols.transport.tcp", "TCP")

    def reassembly(self, info):
        """Feed one segment record (see TCPSegment)."""
        self._flag_n = False
        self._cache = None
        bufid, seq, ack, num, syn, fin, rst, header, payload = _fields(
            info, ("bufid", "dsn", "ack", "num", "syn", "fin", "rst", "header", "payload"))
        _tcp_segment(self._buffer, bufid, seq, ack, num, syn, fin or rst, header, payload, self._flush)

    def _flush(self, bufid, buffer):
        self._finished(self.submit(buffer, bufid=bufid))

    def submit(self, buf, *, bufid):  # pylint: disable=arguments-differ
        """The datagrams of a buffer (one per acknowledgement number with payload); calls the callbacks."""
        datagrams = []
        src, dst = (bufid[0], bufid[1]), (bufid[2], bufid[3])
        for ack, fragment in buf.ack.items():
            received = fragment.bytes
            if not received.runs:
                continue
            completed = received.complete()
            if completed or not self._flag_s:
                payload = bytes(received.data)
            else:
                payload = received.pieces()
            datagrams.append(TCPDatagram(completed, TCPDatagramID(src, dst, ack), tuple(fragment.ind), buf.hdr,
                                         payload, analyze=_analyze_tcp if completed or not self._flag_s else None))
        self._callbacks(datagrams)
        return datagrams


TCP_Reassembly = TCP


def tcp_conversations(segments):
    """What pcapkit's follow_tcp_stream makes of one flow: the payloads of its
    datagrams (TCP(strict=False)), ordered by their frame numbers.
    segments: (bufid, seq, ack, num, flags, header, payload) in capture order."""
    buffers = {}
    found = []

    def flush(bufid, buffer):  # pylint: disable=unused-argument
        for fragment in buffer.ack.values():
            if fragment.bytes.runs:
                found.append((tuple(fragment.ind), bytes(fragment.bytes.data)))

    for bufid, seq, ack, num, flags, header, payload in segments:
        _tcp_segment(buffers, bufid, seq, ack, num, flags & 0x02, flags & 0x05, header, payload, flush)
    closed = found
    found = []
    for bufid, buffer in buffers.items():
        flush(bufid, buffer)
    found.extend(closed)  # open buffers first, as pcapkit's fetch() lists them (the sort makes it moot)
    found.sort(key=lambda item: item[0])
    return tuple(payload for _, payload in found)


# --------------------------------------------------------------------------- IP

class _IPBuffer:
    __slots__ = ("TDL", "index", "header", "bytes")

    def __init__(self, header):
        self.TDL = -1  # pylint: disable=invalid-name
        self.index = []
        self.header = header
        self.bytes = _Bytes()


class _IP(Reassembly):
    """IP reassembly (RFC 791): fragments keyed by bufid, complete when every
    byte up to the end the last fragment (MF=0) gives has arrived."""

    _analyze = None

    def reassembly(self, info):
        """Feed one fragment record (see IPFragment)."""
        self._flag_n = False
        self._cache = None
        bufid, num, fo, ihl, mf, tl, header, payload = _fields(
            info, ("bufid", "num", "fo", "ihl", "mf", "tl", "header", "payload"))
        buffers = self._buffer
        if not fo and not mf and bufid in buffers:
            # an unfragmented packet with an open buffer's key: that buffer is over
            self._finished(self.submit(buffers.pop(bufid), bufid=bufid))
        buffer = buffers.get(bufid)
        if buffer is None:
            buffer = buffers[bufid] = _IPBuffer(b"" if fo else header)
        elif not fo:
            buffer.header = header
        buffer.index.append(num)
        buffer.bytes.put(fo, payload)
        if not mf:
            # a total length of 0 (TCP segmentation offload) states nothing: the bytes captured count
            buffer.TDL = (tl - ihl if tl >= ihl else len(payload)) + fo
        if buffer.TDL > 0 and buffer.bytes.complete(buffer.TDL):
            self._finished(self.submit(buffers.pop(bufid), bufid=bufid))

    def submit(self, buf, *, bufid, checked=False):  # pylint: disable=arguments-differ,unused-argument
        """The datagram of a buffer, if it holds anything; calls the callbacks."""
        received = buf.bytes
        total = buf.TDL
        completed = total > 0 and received.complete(total)
        ident = IPDatagramID(bufid[0], bufid[1], bufid[2], bufid[3])
        datagrams = []
        if completed:
            datagrams.append(IPDatagram(True, ident, tuple(buf.index), buf.header, bytes(received.data[:total]),
                                        analyze=self._analyze))
        elif self._flag_s:
            pieces = received.pieces()
            if pieces or buf.header:
                datagrams.append(IPDatagram(False, ident, tuple(buf.index), buf.header, pieces, None))
        else:
            end = total if total > 0 else len(received.data)
            payload = bytes(received.data[:end])
            payload += bytes(end - len(payload))
            datagrams.append(IPDatagram(False, ident, tuple(buf.index), buf.header, payload,
                                        analyze=self._analyze))
        self._callbacks(datagrams)
        return datagrams


class IPv4(_IP):
    """IPv4 reassembly: IPv4(strict=True, store=True), fed pcapkit's IPv4 records."""
    __protocol_name__ = "IPv4"
    __protocol_type__ = _ProtocolType("pcapkit.protocols.internet.ipv4", "IPv4")
    _analyze = staticmethod(_analyze_ipv4)


class IPv6(_IP):
    """IPv6 reassembly: IPv6(strict=True, store=True), fed pcapkit's IPv6 records."""
    __protocol_name__ = "IPv6"
    __protocol_type__ = _ProtocolType("pcapkit.protocols.internet.ipv6", "IPv6")
    _analyze = staticmethod(_analyze_ipv6)


IPv4_Reassembly = IPv4
IPv6_Reassembly = IPv6
