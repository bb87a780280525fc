"""Follow TCP Stream from several threads: the reader runs without the GIL, so
two captures followed at once must not disturb each other, and a reader used
by a second thread while the first reads it is refused, not corrupted. Run
under ThreadSanitizer too (make test-threads)."""
import os
import threading

import pytest

import pcapflow
from pcapflow import _core
from pcapflow.payload import split_payload

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = [os.path.join(HERE, "..", "examples", "data", "http_espn.pcapng"),
            os.path.join(HERE, "data", "http_ip4and6.pcapng"), os.path.join(HERE, "data", "ssh.pcap")]


def digest(capture):
    return [(c.stream, c.nodes, c.records, c.frames) for c in pcapflow.follow(capture)]


def test_captures_followed_at_once_give_what_they_give_alone(tmp_path):
    expected = {capture: digest(capture) for capture in CAPTURES}
    results, errors = {}, []

    def work(n, capture):
        try:
            for _ in range(3):
                results[(n, capture)] = digest(capture)
                split_payload(capture, tmp_path / f"{n}-{os.path.basename(capture)}")
        except Exception as error:  # pylint: disable=broad-except
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n, capture)) for n in range(2) for capture in CAPTURES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for (n, capture), result in results.items():
        assert result == expected[capture], (n, capture)


def test_a_reader_busy_in_another_thread_is_refused():
    read, write = os.pipe()
    with open(CAPTURES[0], "rb") as file:
        data = file.read()
    release = threading.Event()
    # whatever happens below, the rest of the capture comes within 10 s: nothing can hang
    timer = threading.Timer(10, release.set)
    timer.daemon = True
    timer.start()

    def feed():
        os.write(write, data[:4096])  # the header and a little: a read() then waits for more
        release.wait()
        os.write(write, data[4096:])
        os.close(write)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read, "rb", buffering=0) as pipe:
        reader = _core.FollowReader(pipe)
        inside = threading.Event()
        batches = []

        def read_in_thread():
            inside.set()
            batches.append(reader.read())

        reading = threading.Thread(target=read_in_thread)
        reading.start()
        inside.wait()
        threading.Event().wait(0.3)  # the thread is now waiting on the pipe inside read()
        try:
            with pytest.raises(RuntimeError, match="another thread"):
                reader.read()
            with pytest.raises(RuntimeError, match="another thread"):
                reader.close()
        finally:
            release.set()
            timer.cancel()
            reading.join()
            feeder.join()
        while reader.read() is not None:
            pass
        reader.close()
    assert batches and batches[0] is not None


@pytest.mark.parametrize("capture", CAPTURES[:1])
def test_follow_records_stopped_early_closes_the_capture(capture):
    run = pcapflow.follow_records(capture)
    first = next(run)
    assert first.stream == 0
    run.close()
    with pytest.raises(StopIteration):
        next(run)
