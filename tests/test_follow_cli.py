"""`pcapflow follow CAPTURE [--stream N] [--format F]`, run as a real process.

It prints what `tshark -q -z follow,tcp,F,N` prints (every stream in order
without --stream); exit status 1 for a capture it cannot read or a stream it
does not have, 2 for bad usage, never a traceback. The plain command keeps its
meaning; a capture named `follow` is reached as `./follow`.

The tests that need the engine skip while pcapflow.follow does not exist.
"""
import os
import shutil
import subprocess
import sys

import pytest

import pcapflow
from capture_tools import DATA
from follow_synthetic import cases
from follow_tools import TSHARK, capture_id, find_capture, follow, oracle

MODULE = [sys.executable, "-m", "pcapflow"]
MODES = ("raw", "ascii", "hex", "yaml")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
CASES = {case.name: case for case in cases()}


def environment():
    env = dict(os.environ)
    # the package as the test session imports it, whatever the working directory
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(pcapflow.__file__)),
                                         env.get("PYTHONPATH", "")])
    return env


def run(*args, cwd=None, stdin=None):
    return subprocess.run(MODULE + [str(a) for a in args], capture_output=True, timeout=120, check=False,
                          cwd=cwd, env=environment(), stdin=stdin)


def no_traceback(done):
    assert b"Traceback" not in done.stderr, done.stderr.decode()


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """A few captures that cover the printers' cases: IPv6 nodes, a gap record, streams
    without data, out-of-order records (synthetic), an ICMP-only stream with empty nodes."""
    directory = tmp_path_factory.mktemp("follow-cli")
    paths = [CASES[name].write(directory) for name in ("out_of_order_pair", "icmp_error_before_connection")]
    # from the corpus when ../shared is not there
    names = ("real/http_ip4and6.pcapng", "linktypes/bgp-role.pcapng", "real/tcp_handshake.pcapng")
    return paths + [path for path in map(find_capture, names) if path is not None]


# --------------------------------------------------------------------------- now

def test_help_explains_the_subcommand():
    done = run("follow", "--help")
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "--stream N" in text and "raw,ascii,hex,yaml" in text
    assert "every stream of the capture" in text and "stream order" in text
    assert "./follow" in text
    assert b"pcapflow follow CAPTURE" in run("--help").stdout


@pytest.mark.parametrize("args, complaint", [
    (["--stream", "-1", "x.pcap"], b"must be a stream number"),
    (["--stream", "one", "x.pcap"], b"must be a stream number"),
    (["--format", "ebcdic", "x.pcap"], b"invalid choice"),
    ([], b"CAPTURE"),
    (["a.pcap", "b.pcap"], b"unrecognized arguments"),
])
def test_bad_usage_exits_2(args, complaint):
    done = run("follow", *args)
    assert done.returncode == 2 and complaint in done.stderr
    assert done.stdout == b""
    no_traceback(done)


def test_a_capture_named_follow_is_traced_as_dot_slash_follow(tmp_path):
    shutil.copy(DATA / "ssh.pcap", tmp_path / "follow")
    shutil.copy(DATA / "ssh.pcap", tmp_path / "ssh.pcap")
    done = run("./follow", "-o", "out", cwd=tmp_path)
    same = run("ssh.pcap", "-o", "same", cwd=tmp_path)  # the same bytes under another name
    assert done.returncode == same.returncode == 0, done.stderr.decode()
    summary = done.stderr.split(b" flows")[0]
    assert summary == same.stderr.split(b" flows")[0] and summary.endswith(b" 5")
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(tmp_path / "same"))


def test_the_plain_command_still_needs_its_output_directory(tmp_path):
    # `pcapflow CAPTURE` without -o is still a usage error, not a follow run
    done = run(DATA / "ssh.pcap")
    assert done.returncode == 2 and b"-o/--output" in done.stderr


# --------------------------------------------------------------------------- with the engine

@pytest.fixture(scope="module")
def tshark_prints(captures):
    """{capture: {(mode, stream): Block}}: what tshark prints for every stream in every mode."""
    return {path: follow(path, range(oracle(path).streams), MODES) for path in captures}


@needs_tshark
@pytest.mark.parametrize("mode", MODES)
def test_one_stream_prints_like_tshark(mode, captures, tshark_prints):
    for path in captures:
        for stream in range(oracle(path).streams):
            done = run("follow", path, "--stream", stream, "--format", mode)
            assert (done.returncode, done.stderr) == (0, b""), (path, stream)
            assert done.stdout == tshark_prints[path][mode, stream].text, (capture_id(path), stream, mode)


@needs_tshark
@pytest.mark.parametrize("mode", MODES)
def test_all_streams_print_in_stream_order(mode, captures, tshark_prints):
    for path in captures:
        blocks = tshark_prints[path]
        found = oracle(path)
        done = run("follow", path, "--format", mode)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout == b"".join(blocks[mode, s].text for s in range(found.streams)), capture_id(path)


def test_default_format_is_raw_and_standard_input_works(captures):
    path = captures[0]
    by_name = run("follow", path, "--stream", 0)
    with open(path, "rb") as stdin:
        piped = run("follow", "-", "--stream", 0, "--format", "raw", stdin=stdin)
    assert by_name.returncode == piped.returncode == 0
    assert by_name.stdout == piped.stdout
    assert by_name.stdout.startswith(b"\n" + b"=" * 67 + b"\nFollow: tcp,raw\nFilter: tcp.stream eq 0\n")


def test_a_stream_the_capture_does_not_have(captures):
    path = captures[0]  # one stream
    done = run("follow", path, "--stream", 1)
    assert done.returncode == 1 and done.stdout == b""
    assert b"has no stream 1 (it has one stream, 0)" in done.stderr
    no_traceback(done)


@pytest.mark.parametrize("what", ["missing", "not a capture", "directory"])
def test_unreadable_capture_exits_1(what, tmp_path):
    path = {"missing": tmp_path / "nothing.pcap", "not a capture": tmp_path / "text.pcap",
            "directory": tmp_path}[what]
    if what == "not a capture":
        path.write_text("not a capture\n")
    done = run("follow", path)
    assert done.returncode == 1
    assert done.stderr.startswith(b"pcapflow follow: ") and str(path).encode() in done.stderr
    no_traceback(done)


def test_a_reader_that_goes_away_is_no_error_to_report():
    big = find_capture("real/http_espn.pcapng")  # 25 streams, 590 kB of data
    process = subprocess.Popen(MODULE + ["follow", str(big)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment())
    process.stdout.read(100)
    process.stdout.close()  # like `| head -c 100`
    stderr = process.stderr.read()
    process.wait(timeout=120)
    assert process.returncode == 1
    assert b"Traceback" not in stderr and b"Broken pipe" not in stderr, stderr.decode()
