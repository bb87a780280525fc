"""Buffered frames reach the files however the process ends, and only once.

Each test runs a real Python process (and its real forks) twice: once as a
user would write it, leaving frames buffered when the process ends, and once
closing every tracer explicitly; the files of the two runs must be the same,
and every frame must be in them exactly once. The endings: a daemon thread
still holding a tracer when the main thread returns; multiprocessing workers
started with 'fork' or 'forkserver' (they end with os._exit after
multiprocessing's finalizers) tracing with a module-level tracer; a tracer
with frames buffered when the process forks, used on in the parent and the
child. Flushes that fail at exit or before a fork are one warning line each,
from the process that owns the frames.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pcapflow
from _support import read_pcap

# the directory this process imported pcapflow from (the checkout, or the
# sanitizer build that make test-sanitized runs from): the scripts use it too
ROOT = Path(pcapflow.__file__).resolve().parent.parent

# shared by the scripts: packets with distinct, recognisable frames; the
# label's timestamp comes from the port, so both runs name files alike
PRELUDE = '''
import ipaddress, os, sys, threading
from pcapflow import TCP, Packet

OUT, EXPLICIT = os.environ["EXIT_TEST_OUT"], os.environ["EXIT_TEST_MODE"] == "explicit"
A, B = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")


def packet(number, port):
    data = b"port %d frame %d " % (port, number) * 8
    frame = {"packet": data, "frame_info": {"ts_sec": 1_600_000_000 + number, "ts_usec": 0,
                                            "incl_len": len(data), "orig_len": len(data)}}
    return Packet(protocol=1, index=number, frame=frame, syn=number == 1, fin=False, src=A, dst=B,
                  srcport=port, dstport=80, timestamp=1_600_000_000.0 + port)


def dump(tracer, port, numbers):
    for number in numbers:
        tracer.dump(packet(number, port))
'''


def run_script(body, out, mode, timeout=120, check=True):
    """Runs PRELUDE + body as a script file with this checkout's pcapflow
    (multiprocessing's forkserver and spawn children import it too)."""
    script = out.parent / f"{out.name}.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = dict(os.environ, EXIT_TEST_OUT=str(out), EXIT_TEST_MODE=mode,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env=env)
    if check:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "FlushWarning" not in result.stderr, result.stderr
    return result


def files_of(out):
    return {name: (out / name).read_bytes() for name in sorted(os.listdir(out))}


def frames_of(path):
    return [record["data"] for record in read_pcap(path)[1]]


def expected_frames(port, numbers):
    return [b"port %d frame %d " % (port, number) * 8 for number in numbers]


def run_both(tmp_path, body):
    """The files left by the script ending on its own, and by it closing explicitly."""
    implicit, explicit = tmp_path / "implicit", tmp_path / "explicit"
    run_script(body, implicit, "implicit")
    run_script(body, explicit, "explicit")
    return files_of(implicit), files_of(explicit), implicit


def label_file(port):
    return f"10.0.0.1_{port}-10.0.0.2_80-{1_600_000_000.0 + port!r}.pcap"


def test_a_daemon_thread_holding_a_tracer_when_the_main_thread_ends(tmp_path):
    body = '''
    held = threading.Event()

    def trace():
        tracer = TCP(OUT, "pcap")
        for port in (40000, 40001, 40002):
            dump(tracer, port, range(1, 6))
        if EXPLICIT:
            tracer.close()
        held.set()
        threading.Event().wait()  # keeps the tracer until the process ends

    threading.Thread(target=trace, daemon=True).start()
    held.wait()
    print("main thread done")
    '''
    implicit, explicit, out = run_both(tmp_path, body)
    assert implicit == explicit
    assert sorted(implicit) == [label_file(port) for port in (40000, 40001, 40002)]
    for port in (40000, 40001, 40002):
        assert frames_of(out / label_file(port)) == expected_frames(port, range(1, 6))


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_multiprocessing_pool_workers_with_a_module_level_tracer(tmp_path, start_method):
    # a forkserver worker is forked from the server, imports pcapflow itself
    # and also ends with os._exit
    body = '''
    import multiprocessing

    tracer = None  # the worker's, made on its first task


    def work(port):
        global tracer
        if tracer is None:
            tracer = TCP(OUT, "pcap")
        dump(tracer, port, range(1, 5))
        if EXPLICIT:
            tracer.close()
        return os.getpid()


    if __name__ == "__main__":
        pool = multiprocessing.get_context("START_METHOD").Pool(2)
        pids = pool.map(work, range(41000, 41008), chunksize=1)
        pool.close()
        pool.join()
        assert os.getpid() not in pids
        print("pool done")
    '''.replace("START_METHOD", start_method)
    implicit, explicit, out = run_both(tmp_path, body)
    assert implicit == explicit
    assert sorted(implicit) == sorted(label_file(port) for port in range(41000, 41008))
    for port in range(41000, 41008):
        assert frames_of(out / label_file(port)) == expected_frames(port, range(1, 5))


def test_multiprocessing_process_fork_with_a_tracer_made_at_import(tmp_path):
    # the tracer is made in the parent at import and inherited by each child,
    # which adds a flow of its own and ends through multiprocessing; it is
    # made before multiprocessing is imported (pcapflow does not import it)
    body = '''
    tracer = TCP(OUT, "pcap")
    assert "multiprocessing" not in sys.modules
    import multiprocessing


    def work(port):
        dump(tracer, port, range(1, 7))
        if EXPLICIT:
            tracer.close()


    if __name__ == "__main__":
        context = multiprocessing.get_context("fork")
        for port in (42000, 42001, 42002):
            child = context.Process(target=work, args=(port,))
            child.start()
            child.join()
            assert child.exitcode == 0
        dump(tracer, 42100, range(1, 4))  # the parent's own, written at its exit
        if EXPLICIT:
            tracer.close()
    '''
    implicit, explicit, out = run_both(tmp_path, body)
    assert implicit == explicit
    assert sorted(implicit) == sorted(label_file(port) for port in (42000, 42001, 42002, 42100))
    for port in (42000, 42001, 42002):
        assert frames_of(out / label_file(port)) == expected_frames(port, range(1, 7))
    assert frames_of(out / label_file(42100)) == expected_frames(42100, range(1, 4))


@pytest.mark.parametrize("child_ends", ["sys.exit", "returning"])
def test_frames_buffered_at_fork_are_written_once(tmp_path, child_ends):
    # flow 43000's file exists (submit()) and frames 4-6 wait in the buffer
    # when the process forks: the child must not append them too
    body = '''
    tracer = TCP(OUT, "pcap")
    dump(tracer, 43000, range(1, 4))
    tracer.submit()
    dump(tracer, 43000, range(4, 7))
    if EXPLICIT:
        tracer.close()
    pid = os.fork()
    if pid == 0:
        dump(tracer, 43001, range(1, 4))  # the child's own flow
        dump(tracer, 43000, [100])         # and a frame of the shared one
        if EXPLICIT:
            tracer.close()
        CHILD_ENDS
    else:
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        dump(tracer, 43000, range(7, 10))
        if EXPLICIT:
            tracer.close()
    '''.replace("CHILD_ENDS", "sys.exit(0)" if child_ends == "sys.exit" else "pass")
    implicit, explicit, out = run_both(tmp_path, body)
    assert implicit == explicit
    assert frames_of(out / label_file(43000)) == expected_frames(43000, [1, 2, 3, 4, 5, 6, 100, 7, 8, 9])
    assert frames_of(out / label_file(43001)) == expected_frames(43001, range(1, 4))


def test_a_failed_flush_at_exit_is_one_warning_line_and_the_others_are_written(tmp_path):
    # the first tracer's directory is gone when the process ends: its frames
    # cannot be written, which is said in one line; the second's are written
    body = '''
    import shutil
    doomed = TCP(os.path.join(OUT, "doomed"), "pcap")
    dump(doomed, 44000, range(1, 4))
    kept = TCP(os.path.join(OUT, "kept"), "pcap")
    dump(kept, 44001, range(1, 4))
    shutil.rmtree(os.path.join(OUT, "doomed"))
    print("output before exit")
    '''
    out = tmp_path / "out"
    result = run_script(body, out, "implicit", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "output before exit\n"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "FlushWarning" in lines[0] and "could not be written at exit" in lines[0]
    assert str(out / "doomed") in lines[0]
    assert frames_of(out / "kept" / label_file(44001)) == expected_frames(44001, range(1, 4))


def test_a_flush_that_fails_before_fork_is_reported_by_the_parent_only(tmp_path):
    # the frames stay the parent's (it reports them again at exit); the
    # child drops its copy and says nothing
    body = '''
    import shutil
    tracer = TCP(OUT, "pcap")
    dump(tracer, 45000, range(1, 4))
    shutil.rmtree(OUT)
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    '''
    result = run_script(body, tmp_path / "out", "implicit", check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, result.stderr
    assert "could not be written before fork" in lines[0] and "could not be written at exit" in lines[1]
    assert not (tmp_path / "out").exists()
