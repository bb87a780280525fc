"""Memory stays flat while tracing a long stream of packets.

Each scenario runs in its own interpreter so that the baseline is not skewed
by other tests. Work is done in rounds, each on a fresh tracer that is dropped
at the end of the round: a tracer must keep every closed flow's Index (that is
its result), so growth *within* one tracer is expected, but nothing may
survive the tracer. Round 1 is a warm-up (allocator arenas, interned strings,
caches); RSS and the number of gc-tracked objects after the last round must be
close to the values after round 1. A leak of one small object per packet would
show as tens of megabytes over the 900,000 packets after the warm-up.
"""
import json

import pytest

from _support import run_python

SCRIPT = """
    import gc, ipaddress, json, os, sys, warnings
    sys.path.insert(0, sys.argv[1])
    import pcapflow
    from pcapkit.foundation.traceflow.data.tcp import Packet as PkPacket
    from _support import make_frame, ETHERNET

    mode, packet_kind, rounds, per_round = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    fout = sys.argv[6]
    Packet = pcapflow.Packet if packet_kind == 'pcapflow' else PkPacket
    FLOWS = 2000          # distinct 4-tuples
    FIN_EVERY = 5         # each 4-tuple closes after this many of its packets, then reopens
    PAGE = os.sysconf('SC_PAGE_SIZE')
    src = [ipaddress.ip_address('10.1.%d.%d' % (i // 250, i % 250 + 1)) for i in range(FLOWS)]
    dst = ipaddress.ip_address('192.0.2.80')
    frame = make_frame(b'x' * 60, 1_600_000_000, 0)

    def rss():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * PAGE

    def one_round(number):
        warnings.simplefilter('ignore')
        tracer = pcapflow.TCP(fout, 'no-such-format')  # fpout None, no files
        closed, still_open = 0, set()  # what the tracer should report
        base = number * per_round
        for i in range(per_round):
            flow = i % FLOWS
            fin = (i // FLOWS) % FIN_EVERY == FIN_EVERY - 1
            pkt = Packet(ETHERNET, base + i + 1, frame, False, fin, src[flow], dst,
                         1024 + flow, 80, 1_600_000_000 + (base + i) / 1000)
            if mode == 'dump':
                tracer(pkt)
            else:
                tracer.trace(pkt)
            if fin:
                closed += 1
                still_open.discard(flow)
            else:
                still_open.add(flow)
        flows = tracer.submit()
        assert len(flows) == closed + len(still_open), (len(flows), closed, len(still_open))
        assert sum(len(f.index) for f in flows) == per_round
        assert all(f.fpout is None for f in flows)
        assert os.listdir(fout) == []
        del flows, tracer, pkt, still_open
        gc.collect()
        return closed

    closed = one_round(0)
    assert closed > 0  # flows really do close and reopen
    rss_warm, objs_warm = rss(), len(gc.get_objects())
    for number in range(1, rounds):
        one_round(number)
    rss_end, objs_end = rss(), len(gc.get_objects())
    print(json.dumps({'rss_warm': rss_warm, 'rss_end': rss_end,
                      'objs_warm': objs_warm, 'objs_end': objs_end, 'closed_per_round': closed}))
"""

MiB = 1 << 20


def measure(mode, packet_kind, rounds, per_round, tests_dir, fout):
    proc = run_python(SCRIPT, tests_dir, mode, packet_kind, rounds, per_round, fout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_flat(result):
    growth = result["rss_end"] - result["rss_warm"]
    assert growth < 16 * MiB, f"RSS grew by {growth / MiB:.1f} MiB after warm-up: {result}"
    assert result["objs_end"] - result["objs_warm"] < 1000, result


@pytest.fixture
def tests_dir(request):
    return str(request.path.parent)


@pytest.mark.parametrize("mode", ["dump", "trace"])
def test_one_million_pcapflow_packets_memory_flat(tests_dir, tmp_path, mode):
    # 10 rounds x 100,000 packets; 2,000 4-tuples, each closing and reopening 10 times a round
    assert_flat(measure(mode, "pcapflow", 10, 100_000, tests_dir, tmp_path))


def test_hundred_thousand_pcapkit_packets_memory_flat(tests_dir, tmp_path):
    # pcapkit's own Packet objects go through the mapping/attribute path
    assert_flat(measure("dump", "pcapkit", 10, 10_000, tests_dir, tmp_path))
