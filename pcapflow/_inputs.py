"""What the C reader reads a capture from (csrc/binding/input.c calls prepare()).

A path is opened by C, unless its name says it is compressed: then it is
decompressed here, streaming. A file object is read through its descriptor
only when that descriptor holds the object's bytes (a file, a pipe, a socket
opened by io); anything else (gzip.GzipFile, lzma.LZMAFile, BytesIO, an object
with only read()) is read through read(), a chunk at a time."""
import io
import os
import socket

__all__ = ["Input", "prepare", "is_compressed", "open_compressed"]


class Input:
    """A capture for the C reader: its descriptor (with `offset` to seek to when the file
    is seekable, and `head`, bytes the object had already taken from it), or `read(size)`
    giving the next bytes; `close()` is called when the reading ends (the files opened
    here are closed then)."""

    __slots__ = ("name", "fd", "offset", "head", "read", "close")

    def __init__(self, name, *, fd=-1, offset=-1, head=b"", read=None, close=None):
        self.name, self.fd, self.offset, self.head, self.read, self.close = name, fd, offset, head, read, close


def _open_zstd(path):
    try:
        from compression import zstd  # pylint: disable=import-outside-toplevel  # Python 3.14 on
        return zstd.open(path, "rb")
    except ImportError:
        pass
    try:
        import zstandard  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ModuleNotFoundError(f"{os.fsdecode(path)}: reading a .zst capture needs the zstandard package "
                                  "(pip install zstandard)", name="zstandard") from None
    # across frames: pzstd and concatenated files hold several
    return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"),  # pylint: disable=consider-using-with
                                                      read_across_frames=True, closefd=True)


def _opener(extension):
    # imported when used: most captures are not compressed
    if extension == ".gz":
        import gzip  # pylint: disable=import-outside-toplevel
        return gzip.open
    if extension == ".xz":
        import lzma  # pylint: disable=import-outside-toplevel
        return lzma.open
    if extension == ".bz2":
        import bz2  # pylint: disable=import-outside-toplevel
        return bz2.open
    if extension == ".zst":
        return _open_zstd
    return None


def _extension(path):
    return os.path.splitext(os.fsdecode(path))[1].lower()


def is_compressed(path):
    """Whether the path names a compressed capture (.gz, .xz, .bz2, .zst, in any case)."""
    return _extension(path) in (".gz", ".xz", ".bz2", ".zst")


def open_compressed(path):
    """The decompressed bytes of a compressed capture as a binary file object, or None
    when the name says it is not compressed. The name decides, not the content: a
    capture named .pcap that holds gzip is an error from libpcap (which says so)."""
    opener = _opener(_extension(path))
    return opener(path) if opener else None


def _descriptor_holds_data(fin):
    """Whether fin.fileno() is where fin.read() gets its bytes (not a decompressor's source)."""
    raw = fin.raw if isinstance(fin, (io.BufferedReader, io.BufferedRandom)) else fin
    return isinstance(raw, (io.FileIO, socket.SocketIO))


def _reader_of(fin):
    # read1: one read of the source at most, so that a live pipe's frames come as they arrive
    read = getattr(fin, "read1", None)
    return read if callable(read) else fin.read


def prepare(fin):
    """A path (str or bytes) for C to open, or an Input."""
    if isinstance(fin, (str, bytes, os.PathLike)):
        path = os.fspath(fin)
        stream = open_compressed(path)
        if stream is None:
            return path
        return Input(os.fsdecode(path), read=_reader_of(stream), close=stream.close)
    if isinstance(fin, io.TextIOBase):
        raise TypeError(f"fin must be a path or a binary file object, not the text file {fin!r}")
    name = fin.name if hasattr(fin, "name") else repr(fin)
    if not _descriptor_holds_data(fin):
        read = getattr(fin, "read", None)
        if not callable(read):
            raise TypeError(f"fin must be a path or a binary file object, not {type(fin).__name__}")
        return Input(name, read=_reader_of(fin))
    fd = fin.fileno()
    if fin.seekable():
        return Input(name, fd=fd, offset=fin.tell())  # tell() counts what a buffer holds
    # a pipe or a socket: what the object's buffer holds comes first, then the
    # descriptor (peek() gives all the buffer holds, reading once if it is empty)
    head = fin.peek() if isinstance(fin, io.BufferedReader) else b""
    if head:
        fin.read(len(head))
    return Input(name, fd=fd, head=bytes(head))
