"""Payload files: Follow TCP Stream written out as tcpflow does, one file per
direction of each conversation, with an index that says what is missing."""
import gc
import json
import os

from pcapflow import _core
from pcapflow.exceptions import CaptureError

__all__ = ["split_payload"]


def _time(seconds, nanoseconds):
    return seconds + nanoseconds / 1e9


def _direction(node, ends, direction):
    file, size, records, first_s, first_ns, last_s, last_ns, gaps = direction
    src, dst = ends if node == 0 else ends[::-1]
    return {
        "node": node, "src": list(src), "dst": list(dst), "file": file, "bytes": size, "records": records,
        "first": _time(first_s, first_ns) if records else None, "last": _time(last_s, last_ns) if records else None,
        "gaps": [{"offset": offset, "length": length, "frame": frame} for offset, length, frame in gaps],
    }


def _entry(stream, node0, node1, frames, first_s, first_ns, last_s, last_ns, directions):
    ends = (node0, node1)
    return {
        "stream": stream, "nodes": [list(node0), list(node1)], "frames": frames,
        "first": _time(first_s, first_ns), "last": _time(last_s, last_ns),
        "directions": [_direction(node, ends, d) for node, d in enumerate(directions)],
    }


def split_payload(fin, directory, *, filter=None, index=None, max_held_per_stream=None,
                  max_held=None):  # pylint: disable=redefined-builtin
    """Writes each direction's reassembled bytes to "{directory}/{stream}-{src}.{port}-{dst}.{port}".

    The bytes are those of Follow TCP Stream (pcapflow.follow), without the
    texts standing for missing bytes: a gap is left out of the file and listed
    in the index (its offset in the file and its length). A direction that
    sent nothing has no file. Returns the index: one dict per conversation
    (stream, nodes, frames, first and last time, and per direction its file,
    bytes, records, times and gaps); `index`, a path, also gets it as JSON
    lines. Memory: the segments held for reordering and the write buffers,
    not the streams' lengths. A damaged capture (CaptureError) or a stop
    (KeyboardInterrupt) still leaves every byte read before it in the files
    and the index; the exception carries the index as .conversations."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    reader = _core.FollowReader(fin, filter, False, max_held_per_stream, max_held, directory)
    stopped = None
    try:
        while reader.read() is not None:
            pass
    except (CaptureError, KeyboardInterrupt) as error:
        # a damaged capture or a stop: what was read is in the files, and goes in the index too
        stopped = error
    finally:
        reader.close()
    # the index is many small containers, none of them cyclic: the cyclic
    # collector, run again and again as they are made, would cost more than
    # everything else on a capture of many conversations
    collecting = gc.isenabled()
    gc.disable()
    try:
        entries = [_entry(*stream) for stream in reader.split_index()]
        if index is not None:
            with open(index, "w", encoding="utf-8") as out:
                out.writelines(json.dumps(entry) + "\n" for entry in entries)
    finally:
        if collecting:
            gc.enable()
    if stopped is not None:
        stopped.conversations = entries
        raise stopped
    return entries
