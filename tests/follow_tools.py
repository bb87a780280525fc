"""tshark as the oracle of Follow TCP Stream: run it, and parse what it prints.

Independent of pcapflow. One tshark run prints many streams: each
`-z follow,tcp,MODE,N` option adds a block, and tshark prints the blocks in the
reverse order of the options (the last one given comes first). The raw, ascii
and hex blocks name their stream ("Filter: tcp.stream eq N"); yaml blocks do
not, so blocks are matched to options by that order, and the parsers read each
block by its structure (lengths, line shapes), never by searching for the
separator, which an ascii record could contain.

Everything is bytes: the ascii and yaml modes print capture bytes and text.
"""
import base64
import collections
import dataclasses
import functools
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from capture_tools import SHARED_CAPTURES, TSHARK

HERE = Path(__file__).resolve().parent
SEPARATOR = b"=" * 67 + b"\n"
MODES = ("raw", "ascii", "hex", "yaml")
# options per tshark run: each one is a tap that filters every frame, so a run
# costs (frames x options); 200 keeps a 2,000-stream capture to 10 passes
OPTIONS_PER_RUN = 200


class TsharkError(RuntimeError):
    """tshark could not read the capture (its message is the text)."""


@dataclasses.dataclass
class Record:
    node: int
    data: bytes
    frame: int = None        # yaml only: the `packet` line
    timestamp: str = None    # yaml only: the text of the `timestamp` line


@dataclasses.dataclass
class Block:
    """One stream as one mode printed it: its bytes as printed, and what they say."""
    mode: str
    stream: int
    text: bytes
    nodes: tuple             # ((addr, port), (addr, port)); IPv6 without brackets; ("", 0) when tshark knew none
    records: list            # Record; for hex, one (node, line bytes) pair per line instead


_ENV = None


def _env():
    """tshark with an empty configuration directory: a developer's preferences
    (say, tcp.analyze_sequence_numbers off) change follow's output."""
    global _ENV
    if _ENV is None:
        _ENV = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp(prefix="follow-tshark-conf-"),
                    LC_ALL="C")
    return _ENV


def _cache_path(args):
    """Where tshark's output for args is kept when PCAPFLOW_TSHARK_CACHE names a directory
    (make test sets it, so the sanitizer runs reuse what the plain run asked tshark), or None.
    The key holds the capture's bytes, not its path: synthetic captures are rebuilt in new
    temporary directories each run."""
    directory = os.environ.get("PCAPFLOW_TSHARK_CACHE")
    if not directory:
        return None
    key = hashlib.sha256()
    for i, arg in enumerate(args):
        if i and args[i - 1] == "-r":
            with open(arg, "rb") as file:
                arg = hashlib.sha256(file.read()).hexdigest()
        key.update(str(arg).encode() + b"\0")
    return os.path.join(directory, key.hexdigest())


def _tshark(args):
    cached = _cache_path(args)
    if cached and os.path.exists(cached):
        with open(cached, "rb") as file:
            return file.read()
    done = subprocess.run([TSHARK, "-n", *args], capture_output=True, env=_env(), check=False)
    if done.returncode != 0:
        message = [line for line in done.stderr.decode("utf-8", "replace").splitlines()
                   if line and not line.startswith("Running as user")]
        raise TsharkError("; ".join(message) or f"tshark exited with {done.returncode}")
    if cached:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        with open(cached + ".partial", "wb") as file:
            file.write(done.stdout)
        os.replace(cached + ".partial", cached)
    return done.stdout


def frame_fields(capture):
    """Two maps over every frame, from one tshark run: {frame number: [tcp.stream values]}
    ([] when it has no TCP header) and {frame number: (seconds, nanoseconds)}.

    frame.time_epoch is printed from the integer time, digit for digit, never through a
    double, as "%d.%09d"; a pcap nanosecond field of 10**9 or more shows as more digits
    (linktypes/timestamp_invalid_nano), and a time before 1970 carries its sign on both
    parts, as Wireshark's nstime does."""
    out = _tshark(["-r", str(capture), "-T", "fields", "-e", "frame.number", "-e", "frame.time_epoch",
                   "-e", "tcp.stream"])
    streams, times = {}, {}
    for line in out.decode("ascii").splitlines():
        number, epoch, values = line.split("\t")
        match = re.fullmatch(r"(-?)(\d+)\.(\d{9,})", epoch)
        assert match, f"{capture}: frame {number}: time {epoch!r}"
        sign = -1 if match.group(1) else 1
        times[int(number)] = (sign * int(match.group(2)), sign * int(match.group(3)))
        streams[int(number)] = [int(v) for v in values.split(",") if v]
    return streams, times


def stream_count(frames):
    """Streams of a capture, from frame_fields(): numbers are 0..count-1."""
    numbers = {s for streams in frames.values() for s in streams}
    assert numbers == set(range(len(numbers))), f"tcp.stream numbers with holes: {sorted(numbers)[:20]}"
    return len(numbers)


def follow(capture, streams, modes=("raw",)):
    """{(mode, stream): Block} for every stream and mode, in as few tshark runs as the batch size allows."""
    options = [(mode, stream) for stream in streams for mode in modes]
    blocks = {}
    for start in range(0, len(options), OPTIONS_PER_RUN):
        batch = options[start:start + OPTIONS_PER_RUN]
        args = ["-r", str(capture), "-q"]
        for mode, stream in batch:
            args += ["-z", f"follow,tcp,{mode},{stream}"]
        out = _tshark(args)
        pos = 0
        for mode, stream in reversed(batch):  # the last option prints first
            block, pos = parse_block(out, pos, mode, stream)
            blocks[mode, stream] = block
        assert pos == len(out), f"{capture}: {len(out) - pos} bytes after the last block: {out[pos:pos + 200]!r}"
    return blocks


# --------------------------------------------------------------------------- parsers

def parse_block(out, pos, mode, stream):
    """The block of `mode` for `stream` starting at out[pos]; returns (Block, position after it)."""
    if mode == "yaml":
        return _parse_yaml(out, pos, stream)
    start = pos
    header = b"\n" + SEPARATOR + b"Follow: tcp,%s\nFilter: tcp.stream eq %d\n" % (mode.encode(), stream)
    assert out.startswith(header, pos), f"expected the {mode} block of stream {stream}: {out[pos:pos + 200]!r}"
    pos += len(header)
    nodes = []
    for number in (0, 1):
        line, pos = _line(out, pos)
        match = re.fullmatch(rb"Node %d: (.*):(\d+)" % number, line)
        assert match, f"stream {stream}: bad node line {line!r}"
        addr = match.group(1).decode("ascii")
        if addr.startswith("["):  # IPv6 in brackets
            assert addr.endswith("]"), line
            addr = addr[1:-1]
        nodes.append((addr, int(match.group(2))))
    records = []
    while not out.startswith(SEPARATOR, pos):
        assert pos < len(out), f"stream {stream}: {mode} block without its closing separator"
        node = 1 if out[pos:pos + 1] == b"\t" else 0
        pos += node
        if mode == "raw":
            line, pos = _line(out, pos)
            records.append(Record(node, bytes.fromhex(line.decode("ascii"))))
        elif mode == "ascii":
            line, pos = _line(out, pos)
            length = int(line)
            data = out[pos:pos + length]
            assert out[pos + length:pos + length + 1] == b"\n", f"stream {stream}: ascii record not ended by LF"
            pos += length + 1
            records.append(Record(node, data))
        else:  # hex: one item per line; record boundaries do not show when a record fills its last line
            line, pos = _line(out, pos)
            records.append((node, line))
    pos += len(SEPARATOR)
    return Block(mode, stream, out[start:pos], tuple(nodes), records), pos


def _parse_yaml(out, pos, stream):
    start = pos
    line, pos = _line(out, pos)
    assert line == b"peers:", f"expected the yaml block of stream {stream}: {out[start:start + 200]!r}"
    nodes = []
    for number in (0, 1):
        peer, pos = _line(out, pos)
        host, pos = _line(out, pos)
        port, pos = _line(out, pos)
        assert peer == b"  - peer: %d" % number, peer
        assert host.startswith(b"    host: ") and port.startswith(b"    port: "), (host, port)
        nodes.append((host[10:].decode("ascii"), int(port[10:])))
    line, pos = _line(out, pos)
    assert line == b"packets:", line
    records = []
    while out.startswith(b"  - packet: ", pos):
        packet, pos = _line(out, pos)
        peer, pos = _line(out, pos)
        stamp, pos = _line(out, pos)
        tag, pos = _line(out, pos)
        assert peer.startswith(b"    peer: ") and stamp.startswith(b"    timestamp: "), (peer, stamp)
        assert tag == b"    data: !!binary |", tag
        chunks = []
        while out.startswith(b"      ", pos):
            chunk, pos = _line(out, pos)
            chunks.append(chunk[6:])
        records.append(Record(int(peer[10:]), base64.b64decode(b"".join(chunks), validate=True),
                              frame=int(packet[12:]), timestamp=stamp[15:].decode("ascii")))
    return Block("yaml", stream, out[start:pos], tuple(nodes), records), pos


def _line(out, pos):
    end = out.index(b"\n", pos)
    return out[pos:end], end + 1


# --------------------------------------------------------------------------- tshark's stream as a Conversation

GAP = re.compile(rb"\[(\d+) bytes missing in capture file\]\x00")
FollowRecord = collections.namedtuple("FollowRecord", "node frame seconds nanoseconds data missing")


class TsharkConversation:
    """A stream as tshark's yaml gives it, in the shape of pcapflow.follow's Conversation
    (the attributes the printers and the differential checks read). Timestamps come from
    the frames (frame_fields), not from the yaml text, which is a rounded double."""

    def __init__(self, block, times):
        self.stream = block.stream
        self.nodes = block.nodes
        records = []
        for r in block.records:
            gap = GAP.fullmatch(r.data)
            if gap and r.timestamp == "0.000000000":
                records.append(FollowRecord(r.node, r.frame, 0, 0, r.data, int(gap.group(1))))
            else:
                records.append(FollowRecord(r.node, r.frame, *times[r.frame], r.data, 0))
        self.records = tuple(records)
        self.segments = tuple((r.node, r.data) for r in self.records)

    def data(self, node, *, markers=True):
        return b"".join(r.data for r in self.records if r.node == node and (markers or not r.missing))


# --------------------------------------------------------------------------- captures

def shared_captures():
    """Every capture of ../shared/captures (real/ and linktypes/), [] when it is not there."""
    if not SHARED_CAPTURES.is_dir():
        return []
    return sorted(p for sub in ("real", "linktypes") for p in (SHARED_CAPTURES / sub).glob("*")
                  if p.suffix in (".pcap", ".pcapng"))


def corpus_captures():
    """The project's own captures (tests/data, its native/ and follow/ subdirectories, examples/data)."""
    roots = [HERE / "data", HERE / "data" / "native", HERE / "data" / "follow", HERE.parent / "examples" / "data"]
    return sorted(p for root in roots for p in root.glob("*") if p.suffix in (".pcap", ".pcapng"))


@functools.lru_cache(maxsize=None)
def oracle(capture):
    """The one Oracle of a capture in this test session (tests of several modules share it)."""
    return Oracle(capture)


def unique_captures(paths):
    """Paths with distinct contents (the corpus holds copies of shared captures), first one kept."""
    seen, out = set(), []
    for path in paths:
        digest = hashlib.sha256(Path(path).read_bytes()).digest()
        if digest not in seen:
            seen.add(digest)
            out.append(path)
    return out


def find_capture(name):
    """A capture named like its place in ../shared/captures ("real/x.pcapng"): there, else a
    copy of it in the corpus (same file name), else None."""
    for path in shared_captures():
        if capture_id(path) == name:
            return path
    copies = [p for p in corpus_captures() if p.name == Path(name).name]
    return copies[0] if copies else None


def capture_id(path):
    """A short test id: the capture's path below ../shared/captures or the repository."""
    path = Path(path)
    for root in (SHARED_CAPTURES, HERE.parent):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return path.name


class Oracle:
    """tshark's answers for one capture, each computed once (tests share one Oracle per file)."""

    def __init__(self, capture):
        self.capture = Path(capture)
        self._fields = None
        self._blocks = {}

    @property
    def frames(self):
        """{frame number: [its tcp.stream values]}"""
        if self._fields is None:
            self._fields = frame_fields(self.capture)
        return self._fields[0]

    @property
    def times(self):
        """{frame number: (seconds, nanoseconds)}"""
        if self._fields is None:
            self._fields = frame_fields(self.capture)
        return self._fields[1]

    @property
    def streams(self):
        return stream_count(self.frames)

    def blocks(self, modes):
        """{(mode, stream): Block} of every stream, for every mode in `modes`."""
        wanted = [m for m in modes if ("done", m) not in self._blocks]
        if wanted:
            self._blocks.update(follow(self.capture, range(self.streams), wanted))
            self._blocks.update({("done", m): None for m in wanted})
        return {key: block for key, block in self._blocks.items() if key[0] in modes}

    def conversations(self):
        """Every stream as a TsharkConversation."""
        blocks = self.blocks(("yaml",))
        return [TsharkConversation(blocks["yaml", s], self.times) for s in range(self.streams)]

    def raw(self, stream):
        return self.blocks(("raw",))["raw", stream]

    def yaml(self, stream):
        return self.blocks(("yaml",))["yaml", stream]
