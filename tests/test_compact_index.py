"""Frame numbers kept compact (csrc/core/frame_list.h, csrc/binding/frame_numbers.c): an Index
returned by trace_file() holds them a byte or two each until its ``index`` is first read, then is
exactly pcapkit's Index; ``index=False`` keeps none."""
import copy
import gc
import os
import pickle
import threading

import pcapflow
from capture_tools import DATA
from pcapflow import _core

CAPTURE = DATA / "http_ip4and6.pcapng"


def test_compact_index_reads_as_a_tuple_everywhere(tmp_path):
    eager = pcapflow.trace_file(CAPTURE, tmp_path / "a")
    frames = [tuple(flow["index"]) for flow in eager]  # item access turns them into tuples
    assert all(type(flow.index) is tuple for flow in eager)
    views = [
        lambda flow: flow.index,
        lambda flow: flow["index"],
        lambda flow: dict(flow)["index"],
        lambda flow: flow.to_dict()["index"],
        lambda flow: flow.get("index"),
        lambda flow: pickle.loads(pickle.dumps(flow)).index,
        lambda flow: copy.deepcopy(flow).index,
    ]
    for view in views:
        lazy = pcapflow.trace_file(CAPTURE, tmp_path / "a")
        assert [view(flow) for flow in lazy] == frames
        assert [type(flow.index) for flow in lazy] == [tuple] * len(lazy)
    lazy = pcapflow.trace_file(CAPTURE, tmp_path / "a")
    assert lazy == eager and [flow == other for flow, other in zip(lazy, eager)] == [True] * len(eager)
    assert [repr(flow) for flow in pcapflow.trace_file(CAPTURE, tmp_path / "a")] == [repr(flow) for flow in eager]
    assert [str(flow) for flow in pcapflow.trace_file(CAPTURE, tmp_path / "a")] == [str(flow) for flow in eager]


def test_frame_text_writes_what_json_writes(tmp_path):
    flows = pcapflow.trace_file(CAPTURE, tmp_path / "out")
    for flow in flows:
        pieces, start = [], 0
        while start is not None:
            text, start = _core.frame_text(flow, start, 3)
            pieces.append(text)
        assert ", ".join(piece for piece in pieces if piece) == ", ".join(map(str, flow.index))
        assert _core.frame_text(flow) is None  # reading .index made the tuple


def test_index_false_keeps_no_frame_numbers_and_writes_the_same_files(tmp_path):
    full = pcapflow.trace_file(CAPTURE, tmp_path / "full")
    stats = {}
    assert pcapflow.trace_file(CAPTURE, tmp_path / "bare", index=False, stats=stats) is None
    assert stats["flows_opened"] == stats["files_created"] == len(full)
    assert sorted(os.listdir(tmp_path / "bare")) == sorted(os.listdir(tmp_path / "full"))
    for name in os.listdir(tmp_path / "full"):
        assert (tmp_path / "bare" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_threads_reading_one_compact_index(tmp_path):
    """Eight threads read the same Indexes at once (switching every microsecond): each sees the tuple."""
    flows = pcapflow.trace_file(CAPTURE, tmp_path / "out")
    expected = [tuple(flow.to_dict()["index"]) for flow in pcapflow.trace_file(CAPTURE, tmp_path / "out")]
    seen = []
    barrier = threading.Barrier(8)

    def read():
        barrier.wait()
        seen.append([flow.index for flow in flows])

    import sys  # pylint: disable=import-outside-toplevel
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen == [expected] * 8
    gc.collect()
