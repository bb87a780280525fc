"""Follow TCP Stream: each TCP conversation's bytes, reassembled as
Wireshark's "Follow TCP Stream" (tshark -z follow,tcp,raw,N) gives them.

``follow(capture)`` yields a Conversation per tcp.stream, in tshark's order;
``follow_records(capture)`` is the streaming form: every record as it is
accepted, with memory bounded by the segments held back for reordering."""
import collections
import os

from pcapflow import _core

__all__ = ["follow", "follow_records", "Conversation", "Record", "StreamRecord", "Gap"]

Record = collections.namedtuple("Record", "node frame seconds nanoseconds data missing")
Record.__doc__ = """One piece of a conversation, as tshark's follow prints it: the
bytes a segment added (data), or for bytes the capture lacks but the peer
acknowledged, Wireshark's text "[N bytes missing in capture file]" and a NUL
(missing = N, frame = the acknowledging frame, seconds = nanoseconds = 0)."""

StreamRecord = collections.namedtuple("StreamRecord", "stream node src dst frame seconds nanoseconds data missing")
StreamRecord.__doc__ = """A Record with its stream and its sender and receiver
((address, port) each), as follow_records() gives them."""

NO_NODES = (("", 0), ("", 0))

Gap = collections.namedtuple("Gap", "node offset length frame")
Gap.__doc__ = """Bytes of node's stream the capture lacks: `length` bytes at `offset`
(counting the captured bytes of that node before it), found missing at `frame`."""


class Conversation:
    """One TCP conversation (tshark's tcp.stream) and both sides' bytes.

    nodes: ((address, port), (address, port)); node 0 sent the conversation's
    first segment, as in tshark's output. records: the Records in the order
    tshark prints them; segments: (node, data) of each. data(node) is what
    tshark's raw output gives for that node; gaps lists what is missing."""

    __slots__ = ("stream", "nodes", "records", "frames", "first_timestamp", "last_timestamp")

    def __init__(self, stream, nodes, records, frames, first_timestamp, last_timestamp):
        self.stream = stream
        self.nodes = nodes
        self.records = tuple(records)
        self.frames = frames
        self.first_timestamp = first_timestamp
        self.last_timestamp = last_timestamp

    @property
    def segments(self):
        return tuple((r.node, r.data) for r in self.records)

    @property
    def gaps(self):
        gaps, offsets = [], [0, 0]
        for r in self.records:
            if r.missing:
                gaps.append(Gap(r.node, offsets[r.node], r.missing, r.frame))
            else:
                offsets[r.node] += len(r.data)
        return tuple(gaps)

    def data(self, node, *, markers=True):
        """Node's bytes in order; markers=False leaves out the texts that stand for missing bytes."""
        _check_node(node)
        return b"".join(r.data for r in self.records if r.node == node and (markers or not r.missing))

    def write(self, node, file, *, markers=True):
        """Writes data(node) to a path or a binary file object; returns the bytes written."""
        _check_node(node)
        if hasattr(file, "write"):
            return _write_records(self.records, node, markers, file)
        with open(os.fspath(file), "wb") as out:
            return _write_records(self.records, node, markers, out)

    def __repr__(self):
        return (f"<Conversation stream={self.stream} nodes={self.nodes} records={len(self.records)} "
                f"bytes={sum(len(r.data) for r in self.records if not r.missing)}>")


def _check_node(node):
    if node not in (0, 1) or isinstance(node, bool):
        raise ValueError(f"node must be 0 or 1, not {node!r}")


def _write_records(records, node, markers, out):
    written = 0
    for r in records:
        if r.node == node and (markers or not r.missing):
            out.write(r.data)
            written += len(r.data)
    return written


def _timestamp(seconds, nanoseconds):
    return seconds + nanoseconds / 1e9


def _batches(reader):
    """(streams, records) of each batch; the caller lets go of a batch before
    asking for the next, so that two are never held at once."""
    try:
        while True:
            batch = reader.read()
            if batch is None:
                return
            yield batch
            del batch
    finally:
        reader.close()


class _Run:
    """The iterator follow() and follow_records() return; .stats holds the
    run's counters (streams, records, bytes, peak_held_bytes, dropped_segments,
    dropped_bytes, fragments, reassembled, ...) once the capture is read."""

    def __init__(self, reader, items):
        self._reader = reader
        self._items = items
        self.stats = None

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._items)
        except StopIteration:
            self.stats = self._reader.stats()
            raise

    def close(self):
        """Stops reading and closes the capture."""
        self._items.close()


def follow(fin, *, filter=None, max_held_per_stream=None, max_held=None):  # pylint: disable=redefined-builtin
    """Every TCP conversation of a capture, as Wireshark's Follow TCP Stream gives it.

    Yields Conversations in tshark's tcp.stream order (streams without data
    too). fin: a path or a binary file object, as for trace_file(); filter: a
    BPF expression frames must match. Segments held back waiting for the bytes
    before them are bounded per conversation (max_held_per_stream, default
    16 MiB) and in all (max_held, default 512 MiB); one past a bound is
    dropped and counted (the iterator's .stats). All payload is kept until the
    capture is read: for captures larger than memory use follow_records()."""
    reader = _core.FollowReader(fin, filter, True, max_held_per_stream, max_held)
    return _Run(reader, _conversations(reader))


def _conversations(reader):
    # only streams with records have an entry here: a stream's nodes are the
    # engine's to keep (reader.nodes), so a conversation costs Python nothing
    # until it has bytes
    records = {}
    for batch in _batches(reader):
        for stream, node, frame, seconds, nanoseconds, data, missing in batch[1]:
            record = Record(node, frame, seconds, nanoseconds, data, missing)
            try:
                records[stream].append(record)
            except KeyError:
                records[stream] = [record]
        del batch
    for stream in range(reader.stats()["streams"]):
        frames, first_s, first_ns, last_s, last_ns = reader.frames(stream)
        # a stream only ICMP errors quote has no nodes: tshark prints ":0" for both
        nodes = reader.nodes(stream) or NO_NODES
        yield Conversation(stream, nodes, records.pop(stream, ()), frames, _timestamp(first_s, first_ns),
                           _timestamp(last_s, last_ns))


def follow_records(fin, *, filter=None, max_held_per_stream=None, max_held=None):  # pylint: disable=redefined-builtin
    """Every record of every TCP conversation in the order Follow accepts them.

    Yields StreamRecords; memory stays at the segments held back for
    reordering (bounded as in follow()) and a batch of records, whatever the
    capture's size. src/dst are the record's sender and receiver."""
    reader = _core.FollowReader(fin, filter, False, max_held_per_stream, max_held)
    return _Run(reader, _stream_records(reader))


def _stream_records(reader):
    # the nodes of the batch's streams only, from the engine: nothing here
    # grows with the number of conversations
    for batch in _batches(reader):
        nodes = {}
        for stream, node, frame, seconds, nanoseconds, data, missing in batch[1]:
            ends = nodes.get(stream)
            if ends is None:
                ends = nodes[stream] = reader.nodes(stream)
            src, dst = (ends[0], ends[1]) if node == 0 else (ends[1], ends[0])
            yield StreamRecord(stream, node, src, dst, frame, seconds, nanoseconds, data, missing)
        del batch, nodes
