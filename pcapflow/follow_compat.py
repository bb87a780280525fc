"""follow_tcp_stream(): pcapkit.interface.misc.follow_tcp_stream, without pcapkit.

pcapkit decodes every frame with its own protocol classes, traces the flows,
then feeds each flow's frames to a fresh TCP reassembly. Here the capture is
read once by pcapflow's C reader: each TCP frame goes to pcapflow's tracer
(which writes the flow files pcapkit writes, under the same names) and its
TCP fields are read from its bytes in Python (pcapflow._segment_fields); the
flows' datagrams come from pcapflow.reassembly's TCP rules."""
import os
import sys

from pcapflow._segment_fields import tcp_fields
from pcapflow.capture import packets as capture_packets
from pcapflow.reassembly import _Info, tcp_conversations
from pcapflow.tcp import TCP

__all__ = ["follow_tcp_stream", "Stream"]

# the input names pcapkit takes as they are; any other gets '.pcap' appended (extension=True)
PCAP_EXT = (".pcap", ".cap", ".pcapng")


class Stream(_Info):
    """One traced flow: filename (the flow's output file, None when the format
    writes none), packets (its frames, pcapflow Packets) and conversations
    (its datagrams' payloads, ordered by frame number). A read-only mapping
    with attribute access, like pcapkit's Stream."""
    __slots__ = _fields = ("filename", "packets", "conversations")


def _input(fin, extension):
    """The capture to read, named as pcapkit's Extractor names it."""
    if isinstance(fin, (str, bytes, os.PathLike)):
        name = os.fspath(fin)
        if extension:
            suffix = os.path.splitext(name)[1]
            if (suffix.decode() if isinstance(suffix, bytes) else suffix) not in PCAP_EXT:
                name = name + (b".pcap" if isinstance(name, bytes) else ".pcap")
        if not os.path.isfile(name):
            raise FileNotFoundError(2, "No such file or directory", name)
        return name
    if fin is None:
        raise TypeError("fin must be a capture: a path or a binary file object")
    return fin


def follow_tcp_stream(fin=None, verbose=False, extension=True, engine=None,  # pylint: disable=unused-argument,too-many-arguments,too-many-locals
                      fout=None, format=None, byteorder=sys.byteorder, nanosecond=False):  # pylint: disable=redefined-builtin
    """Follow TCP streams: a tuple of Stream, one per flow pcapkit's tracer finds
    (one direction of a connection, up to its FIN), in the tracer's order.

    The arguments are pcapkit's: ``fin`` is the capture (a path, with ``.pcap``
    appended when ``extension`` is true and the name ends otherwise than in
    ``.pcap``, ``.cap`` or ``.pcapng``; or a binary file object), ``fout``,
    ``format``, ``byteorder`` and ``nanosecond`` are the tracer's (each flow
    is written to ``{fout}/{label}{ext}``, './tmp' and 'pcap' by default).
    ``verbose`` and ``engine`` are accepted and ignored: pcapflow reads the
    capture itself, through libpcap, whatever engine pcapkit would have used.

    Each Stream's ``conversations`` are the payloads of the flow's datagrams
    (pcapkit's TCP reassembly with ``strict=False``: the bytes one direction
    sent while the peer's acknowledgement number stayed the same), ordered by
    their frame numbers; see pcapflow.reassembly for where they differ from
    pcapkit's."""
    source = _input(fin, extension)
    tracer = TCP(fout, format, byteorder, nanosecond)
    segments = {}
    frames = {}
    try:
        with capture_packets(source) as reader:
            dump = tracer.dump
            for packet in reader:
                dump(packet)
                number = packet.index
                frames[number] = packet
                fields = tcp_fields(packet.protocol, packet.frame["packet"])
                if fields is not None:
                    segments[number] = fields
        flows = tracer.submit()
    finally:
        tracer.close()
    streams = []
    for flow in flows:
        numbers = flow.index
        found = []
        for number in numbers:
            fields = segments.get(number)
            if fields is not None:
                seq, ack, flags, header, payload = fields
                found.append((None, seq, ack, number, flags, header, payload))
        streams.append(Stream(flow.fpout, tuple(frames[number] for number in numbers), tcp_conversations(found)))
    return tuple(streams)
