"""Captures read from file objects that cannot seek and from compressed files.

The documentation promises any binary object with read(): every source of the
matrix must give what trace_file gives the plain path (labels, frame lists,
byte-identical flow files), and packets() the same packets. Sources without a
descriptor of their own data are read a chunk at a time (streaming), pipes
and sockets through their descriptor after what their buffer already holds."""
import bz2
import gzip
import io
import lzma
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import pcapflow
from capture_tools import (ACK, DATA, ETHERNET, FIN, Record, as_tuples, check_flow_files, ethernet, ipv4,
                           read_capture, tcp, write_pcap)

zstandard = pytest.importorskip("zstandard")

REPO = Path(pcapflow.__file__).resolve().parents[1]  # the pcapflow under test


def generated_capture(path, packets=4000, flows=300):
    """A pcap of about 600 KB (more than one 256 KiB read, more than a pipe holds), flows closed by FIN."""
    records = []
    for i in range(packets):
        f = (i * 7919) % flows
        flags = FIN | ACK if i % 53 == 0 else ACK
        frame = ethernet(ipv4(f"10.1.{f >> 8}.{f & 255}", "192.0.2.1", tcp(1024 + f, 443, flags, b"y" * (i % 90))))
        ns = i * 1_000_123
        records.append(Record(1_700_000_000 + ns // 10**9, ns % 10**9, frame))
    return write_pcap(path, records, ETHERNET)


@pytest.fixture(scope="module", params=["generated.pcap", "sessionhijacking.pcapng"])
def capture(request, tmp_path_factory):
    if request.param == "generated.pcap":
        return generated_capture(tmp_path_factory.mktemp("capture") / request.param)
    return DATA / request.param


def files_of(directory):
    return {p.name: p.read_bytes() for p in Path(directory).iterdir()}


def traced(fin, out):
    index = pcapflow.trace_file(fin, str(out))
    return as_tuples(index, out), files_of(out)


def packet_list(fin):
    with pcapflow.packets(fin) as reader:
        return [(p.index, p.frame["packet"], str(p.src), p.srcport, str(p.dst), p.dstport, p.timestamp)
                for p in reader]


# ---------------------------------------------------------------------------
# The sources: each a function (capture path, tmp_path) -> a fresh file object
# ---------------------------------------------------------------------------

def _feed(write_end, data):
    """Writes data into a pipe from a thread (a pipe holds 64 KiB), then closes it."""
    def run():
        try:
            with open(write_end, "wb") as out:
                out.write(data)
        except BrokenPipeError:
            pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def subprocess_stdout(path, tmp_path):
    process = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)  # pylint: disable=consider-using-with
    return process.stdout


def os_pipe(path, tmp_path):
    read_end, write_end = os.pipe()
    _feed(write_end, path.read_bytes())
    return open(read_end, "rb")  # pylint: disable=consider-using-with


def os_pipe_peeked(path, tmp_path):
    """A BufferedReader that already read ahead (peek): those bytes must not be lost."""
    fin = os_pipe(path, tmp_path)
    assert fin.peek(1)
    return fin


def os_pipe_after_a_prefix(path, tmp_path):
    """The caller read a prefix off the pipe: the buffer holds the capture's first bytes."""
    read_end, write_end = os.pipe()
    _feed(write_end, b"PREFIX" + path.read_bytes())
    fin = open(read_end, "rb")  # pylint: disable=consider-using-with
    assert fin.read(6) == b"PREFIX"
    return fin


def unbuffered_pipe(path, tmp_path):
    read_end, write_end = os.pipe()
    _feed(write_end, path.read_bytes())
    return open(read_end, "rb", buffering=0)  # pylint: disable=consider-using-with


def _socket_pair(path, timeout):
    ours, theirs = socket.socketpair()
    data = path.read_bytes()

    def send():
        with theirs:
            try:
                theirs.sendall(data)
            except OSError:
                pass
    threading.Thread(target=send, daemon=True).start()
    ours.settimeout(timeout)
    fin = ours.makefile("rb")
    ours.close()  # the file object keeps the socket open
    return fin


def socket_makefile(path, tmp_path):
    return _socket_pair(path, None)


def socket_with_timeout(path, tmp_path):
    """A socket with a timeout is non-blocking underneath: reads wait instead of failing with EAGAIN."""
    return _socket_pair(path, 30)


def _compressed(module, suffix):
    def make(path, tmp_path):
        target = tmp_path / (path.name + suffix)
        with module.open(target, "wb") as out:
            out.write(path.read_bytes())
        return module.open(target, "rb")
    make.__name__ = f"{module.__name__}_file_object"
    return make


def zstandard_reader(path, tmp_path):
    target = tmp_path / (path.name + ".zst")
    target.write_bytes(zstandard.ZstdCompressor().compress(path.read_bytes()))
    return zstandard.ZstdDecompressor().stream_reader(open(target, "rb"), closefd=True)  # pylint: disable=consider-using-with


def bytes_io(path, tmp_path):
    return io.BytesIO(path.read_bytes())


class ReadOnly:
    """Only read(size), as io's protocol has it; gives at most 1000 bytes a call."""

    def __init__(self, data):
        self.data = memoryview(data)
        self.calls = 0

    def read(self, size):
        self.calls += 1
        chunk, self.data = self.data[:min(size, 1000)], self.data[min(size, 1000):]
        return bytes(chunk)


def read_only_object(path, tmp_path):
    return ReadOnly(path.read_bytes())


FILE_OBJECTS = [subprocess_stdout, os_pipe, os_pipe_peeked, os_pipe_after_a_prefix, unbuffered_pipe,
                socket_makefile, socket_with_timeout, _compressed(gzip, ".gz"), _compressed(lzma, ".xz"),
                _compressed(bz2, ".bz2"), zstandard_reader, bytes_io, read_only_object]


def compressed_path(path, tmp_path, suffix):
    target = tmp_path / (path.name + suffix)
    data = path.read_bytes()
    compress = {".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress,
                ".zst": zstandard.ZstdCompressor().compress}[suffix.lower()]
    target.write_bytes(compress(data))
    return target


@pytest.fixture(scope="module")
def expected(capture, tmp_path_factory):
    out = tmp_path_factory.mktemp("expected")
    return traced(str(capture), out), packet_list(str(capture))


@pytest.mark.parametrize("source", FILE_OBJECTS, ids=lambda source: source.__name__)
def test_file_object_gives_what_the_path_gives(source, capture, expected, tmp_path):
    fin = source(capture, tmp_path)
    try:
        assert traced(fin, tmp_path / "out") == expected[0]
    finally:
        fin.close() if hasattr(fin, "close") else None


@pytest.mark.parametrize("source", FILE_OBJECTS, ids=lambda source: source.__name__)
def test_packets_of_a_file_object(source, capture, expected, tmp_path):
    fin = source(capture, tmp_path)
    try:
        assert packet_list(fin) == expected[1]
    finally:
        fin.close() if hasattr(fin, "close") else None


@pytest.mark.parametrize("suffix", [".gz", ".xz", ".bz2", ".zst", ".GZ"])
def test_compressed_path(suffix, capture, expected, tmp_path):
    path = compressed_path(capture, tmp_path, suffix)
    stats = {}
    index = pcapflow.trace_file(path, str(tmp_path / "out"), stats=stats)
    assert (as_tuples(index, tmp_path / "out"), files_of(tmp_path / "out")) == expected[0]
    assert stats["bytes"] == capture.stat().st_size  # the decompressed bytes
    assert packet_list(str(path)) == expected[1]


def test_an_object_with_read_is_read_in_chunks(capture, tmp_path):
    """Streaming: many read(size) calls, not one read() of everything."""
    fin = ReadOnly(capture.read_bytes())
    pcapflow.trace_file(fin, None)
    assert fin.calls > capture.stat().st_size // 1000


# ---------------------------------------------------------------------------
# Damage and errors
# ---------------------------------------------------------------------------

def test_truncated_gzip_is_a_damaged_capture(tmp_path):
    """What precedes the damage is written; the error names the path and carries the decompressor's."""
    capture = generated_capture(tmp_path / "in.pcap")
    blob = gzip.compress(capture.read_bytes())
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    error = caught.value
    assert error.filename == str(path)
    assert isinstance(error.__cause__, EOFError)
    assert "EOFError" in str(error)
    assert error.index, "the flows read before the damage"
    check_flow_files(error.index, read_capture(capture))


def test_not_gzip_under_a_gz_name(tmp_path):
    path = tmp_path / "plain.pcap.gz"
    path.write_bytes(generated_capture(tmp_path / "in.pcap").read_bytes())
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), None)
    assert caught.value.filename == str(path)
    assert isinstance(caught.value.__cause__, gzip.BadGzipFile)


class FailingReader(ReadOnly):
    def __init__(self, data, after, error):
        super().__init__(data)
        self.after, self.error = after, error

    def read(self, size):
        if self.calls * 1000 >= self.after:
            raise self.error
        return super().read(size)


def test_read_raising_is_a_damaged_capture(tmp_path):
    capture = generated_capture(tmp_path / "in.pcap")
    boom = ValueError("the source broke")
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(FailingReader(capture.read_bytes(), 300_000, boom), str(tmp_path / "out"))
    assert caught.value.__cause__ is boom
    assert caught.value.__cause__.__traceback__ is not None
    assert caught.value.index
    check_flow_files(caught.value.index, read_capture(capture))


def test_keyboard_interrupt_in_read_stays_one(tmp_path):
    capture = generated_capture(tmp_path / "in.pcap")
    with pytest.raises(KeyboardInterrupt) as caught:
        pcapflow.trace_file(FailingReader(capture.read_bytes(), 300_000, KeyboardInterrupt()), str(tmp_path / "out"))
    assert caught.value.index
    check_flow_files(caught.value.index, read_capture(capture))


def test_read_giving_str_is_a_type_error():
    class Text:
        def read(self, size):
            return "text"
    with pytest.raises(TypeError, match="str"):
        pcapflow.trace_file(Text(), None)


def test_text_file_is_refused(tmp_path):
    path = generated_capture(tmp_path / "in.pcap")
    with open(path, encoding="latin-1") as text, pytest.raises(TypeError, match="binary"):
        pcapflow.trace_file(text, None)


def test_damage_midway_through_a_pipe_does_not_hang(tmp_path):
    """libpcap stops early: the call returns, and the writer gets EPIPE once the pipe is closed."""
    capture = generated_capture(tmp_path / "in.pcap")
    data = bytearray(capture.read_bytes() * 4)
    data[24 + 8:24 + 12] = (0xFFFFFFF0).to_bytes(4, "little")  # the first record's incl_len
    path = tmp_path / "damaged.pcap"
    path.write_bytes(data)
    process = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)  # pylint: disable=consider-using-with
    try:
        with pytest.raises(pcapflow.CaptureError):
            pcapflow.trace_file(process.stdout, None)
    finally:
        process.stdout.close()
        assert process.wait(timeout=30) is not None


def test_zst_without_zstandard_names_the_package(tmp_path, monkeypatch):
    try:
        from compression import zstd  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
        pytest.skip("Python's own zstd module reads .zst")
    except ImportError:
        pass
    path = compressed_path(generated_capture(tmp_path / "in.pcap"), tmp_path, ".zst")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ImportError) as caught:
        pcapflow.trace_file(str(path), None)
    assert str(path) in str(caught.value) and "pip install zstandard" in str(caught.value)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

def run_cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "pcapflow", *map(str, args)], stdin=stdin, capture_output=True,
                          timeout=120, check=False, env=env, cwd=REPO)


@pytest.mark.parametrize("how", ["gz path", "-", "/dev/stdin"])
def test_cli_reads_compressed_paths_and_standard_input(how, tmp_path):
    capture = generated_capture(tmp_path / "in.pcap")
    expected_out = tmp_path / "expected"
    pcapflow.trace_file(str(capture), str(expected_out))
    out = tmp_path / "out"
    if how == "gz path":
        result = run_cli(compressed_path(capture, tmp_path, ".gz"), "-o", out)
    else:
        with subprocess.Popen(["cat", str(capture)], stdout=subprocess.PIPE) as feeder:
            result = run_cli(how, "-o", out, stdin=feeder.stdout)
            feeder.stdout.close()
    assert result.returncode == 0, result.stderr
    assert files_of(out) == files_of(expected_out)


def test_compressed_capture_under_a_plain_name_says_so(tmp_path):
    path = tmp_path / "in.pcap"
    path.write_bytes(gzip.compress(generated_capture(tmp_path / "plain.pcap").read_bytes()))
    with pytest.raises(pcapflow.CaptureError, match=r"gz-compressed: a path ending in \.gz is decompressed"):
        pcapflow.trace_file(str(path), None)


def test_text_format_of_a_compressed_path(tmp_path):
    pytest.importorskip("pcapkit")
    capture = DATA / "dns_tcp.pcap"
    pcapflow.trace_file(str(capture), str(tmp_path / "expected"), "json")
    pcapflow.trace_file(compressed_path(capture, tmp_path, ".xz"), str(tmp_path / "out"), "json")
    assert files_of(tmp_path / "out") == files_of(tmp_path / "expected")


def test_cli_interrupted_while_a_gz_fifo_stalls(tmp_path):
    """Ctrl-C stops a read() that waits (the decompressor's source is an idle FIFO): exit 130, no hang."""
    import signal  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel
    fifo = tmp_path / "live.pcap.gz"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with subprocess.Popen([sys.executable, "-m", "pcapflow", str(fifo), "-o", str(tmp_path / "out")], env=env,
                          cwd=REPO, stderr=subprocess.PIPE, text=True) as process:
        try:
            with open(fifo, "wb") as writer:  # opens once the command has opened its end
                writer.write(gzip.compress(generated_capture(tmp_path / "in.pcap").read_bytes())[:5000])
                writer.flush()
                time.sleep(1)
                process.send_signal(signal.SIGINT)
                status = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        stderr = process.stderr.read()
    assert status == 130, stderr
    assert "interrupted by SIGINT" in stderr


def test_packets_waiting_on_a_pipe_refuses_a_second_thread(tmp_path):
    """packets() waits for input without the GIL: another thread may run, but not read the same capture."""
    import time  # pylint: disable=import-outside-toplevel
    from capture_tools import pcap_header  # pylint: disable=import-outside-toplevel
    read_end, write_end = os.pipe()
    os.write(write_end, pcap_header(ETHERNET))
    reader = pcapflow.packets(open(read_end, "rb", buffering=0))  # pylint: disable=consider-using-with
    got = []
    waiting = threading.Thread(target=lambda: got.extend(reader), daemon=True)
    waiting.start()
    time.sleep(0.3)  # the thread now waits in next() for a frame
    with pytest.raises(RuntimeError, match="another thread"):
        next(reader)
    with pytest.raises(RuntimeError, match="another thread"):
        reader.close()
    os.close(write_end)
    waiting.join(timeout=30)
    assert not waiting.is_alive() and got == []
    reader.close()
