"""The workload run under valgrind by run.sh: every part of pcapflow's C code, small.

trace/dump/submit/index of a few hundred packets as pcapflow Packets and as
pcapkit-style mappings (attribute frames, str addresses), trace(output=True)
writers (also after FIN), callbacks, pcap/json/unknown formats, both byte
orders and resolutions, trace_file and trace_files on small captures, packets()
iteration, and the error paths. Kept free of pcapkit (its import alone takes
a minute under valgrind). Exits 0 when every check passed."""
import gc
import io
import ipaddress
import os
import sys
import tempfile
import warnings
from decimal import Decimal

import pcapflow

DATA = sys.argv[1]
warnings.simplefilter("ignore")


class AttrDict(dict):
    """A frame as pcapkit hands it over: a mapping whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


SOURCES = [ipaddress.ip_address(a) for a in ("10.0.0.1", "10.0.0.2", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1")]
DEST = [ipaddress.ip_address(a) for a in ("192.0.2.1", "192.0.2.2", "2001:db8::2", "::ffff:5.6.7.8", "fe80::2")]


def fields(n, style):
    k = n % 7
    src, dst = SOURCES[k % 5], DEST[k % 5]
    data = bytes([n % 256]) * (40 + n % 50)
    info = {"ts_sec": 1_600_000_000 + n, "ts_usec": n * 997 % 1_000_000, "incl_len": len(data), "orig_len": len(data)}
    if n % 11 == 0:
        info["ts_usec"] = 1_500_000 + n  # a nanosecond field
    frame = AttrDict(packet=data, frame_info=AttrDict(info))
    if n % 5 == 0:
        frame["time_epoch"] = Decimal(info["ts_sec"]) + Decimal(info["ts_usec"]).scaleb(-9)
    timestamp = [1_600_000_000.25 + n, Decimal("1600000000.123456789"), n, 1e-05, float("inf")][n % 5]
    out = {"protocol": 1, "index": n, "frame": frame, "syn": n % 3 == 0, "fin": n % 9 == 8, "src": src, "dst": dst,
           "srcport": 1000 + k, "dstport": 80, "timestamp": timestamp}
    if style == "pcapflow":
        return pcapflow.Packet(**out)
    out["src"], out["dst"] = str(src), str(dst)
    return out


def expect(error_type, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except error_type:
        return
    raise AssertionError(f"{call!r}{args} did not raise {error_type.__name__}")


def traced_tracer(tmp, fmt, count, **options):
    class Tracer(pcapflow.TCP):
        pass

    closed = []
    Tracer.register_callback(closed.append)
    Tracer.register_callback(lambda index: None, index=0)
    tracer = Tracer(os.path.join(tmp, f"{fmt}-{sorted(options.items())}"), fmt, **options)
    writers = []
    for n in range(1, count + 1):
        packet = fields(n, "pcapflow" if n % 2 else "mapping")
        how = n % 4
        if how == 0:
            assert isinstance(tracer.trace(packet), str)
        elif how == 1:
            tracer.dump(packet)
        elif how == 2:
            tracer(packet)
        else:
            writer = tracer.trace(packet, output=True)
            writer(packet["frame"] if isinstance(packet, dict) else packet.frame, name=f"Frame {n}")
            writers.append(writer)
        if n % 37 == 0:
            first = tracer.submit()
            assert tracer.submit() is first and tracer.index == first
    for writer in writers[:5]:  # their flows may be closed by now
        writer(AttrDict(packet=b"late", frame_info=AttrDict(ts_sec=1, ts_usec=2, incl_len=4, orig_len=4)))
    flows = tracer.index
    assert sum(len(flow.index) for flow in flows) == count
    assert closed
    for flow in flows[:3]:
        repr(flow), str(flow), flow.to_dict(), dict(flow), pcapflow.Index.from_dict(flow.to_dict())
    tracer.close()
    return tracer, flows


def tracer_api(tmp):
    for options in ({}, {"byteorder": "big", "nanosecond": True}):
        tracer, _ = traced_tracer(tmp, "pcap", 400, **options)
        del tracer
    tracer, _ = traced_tracer(tmp, "json", 30)
    del tracer
    tracer, flows = traced_tracer(tmp, "no-such-format", 300)
    assert all(flow.fpout is None for flow in flows)
    del tracer

    # a subclass that traces its own way; re-__init__; garbage collection with frames still buffered
    class Overriding(pcapflow.TCP):
        def trace(self, packet, *, output=False):
            return super().trace(packet, output=output)

    tracer = Overriding(os.path.join(tmp, "override"))
    for n in range(1, 30):
        tracer.dump(fields(n, "pcapflow"))
    tracer.__init__(os.path.join(tmp, "override2"))
    for n in range(1, 30):
        tracer(fields(n, "mapping"))
    del tracer
    gc.collect()
    with pcapflow.TCP(os.path.join(tmp, "with")) as tracer:
        tracer.dump(fields(1, "pcapflow"))
    info = pcapflow.Packet(**{k: v for k, v in fields(3, "mapping").items()})
    repr(info), info.to_dict(), len(info)
    expect(pcapflow.UnsupportedCall, setattr, info, "index", 1)


def bad_input(tmp):
    tracer = pcapflow.TCP(os.path.join(tmp, "bad"))
    good = fields(1, "mapping")
    for bad in (42, None, "packet", b"x", [1], object()):
        expect(TypeError, tracer.trace, bad)
        expect(TypeError, tracer.dump, bad)
    for field in good:
        partial = dict(good)
        del partial[field]
        expect(TypeError, tracer.dump, partial)
    for field, value, error in (("srcport", "80", TypeError), ("dstport", 70000, ValueError), ("srcport", -1, ValueError),
                                ("src", "999.1.1.1", ValueError), ("dst", 12.5, TypeError), ("index", "1", TypeError),
                                ("frame", {"packet": b"x"}, TypeError), ("frame", None, TypeError),
                                ("timestamp", "1/2", TypeError), ("timestamp", float("nan"), None)):
        if error is None:  # accepted
            tracer.dump(dict(good, **{field: value}))
        else:
            expect(error, tracer.dump, dict(good, **{field: value}))
    expect(TypeError, pcapflow.TCP, os.path.join(tmp, "x"), 12)
    expect(ValueError, pcapflow.TCP, os.path.join(tmp, "x"), "pcap", "middle")
    blocker = os.path.join(tmp, "blocker")
    open(blocker, "w").close()
    expect(pcapflow.FileExists, pcapflow.TCP, blocker)
    expect(TypeError, tracer.trace, good, outputs=True)
    tracer.dump(good)
    assert tracer.submit()
    del tracer


def captures(tmp):
    ssh = os.path.join(DATA, "ssh.pcap")
    ng = os.path.join(DATA, "http_ip4and6.pcapng")
    stats = {}
    flows = pcapflow.trace_file(ssh, os.path.join(tmp, "ssh"), stats=stats, progress=lambda *a: None)
    assert flows and stats["frames"] > 0
    pcapflow.trace_file(ng, os.path.join(tmp, "ng"), nanosecond=True, byteorder="big", filter="tcp port 80")
    pcapflow.trace_files([ssh, ng], os.path.join(tmp, "series"), "no-files")
    with open(ssh, "rb") as file:
        pcapflow.trace_file(file, os.path.join(tmp, "fileobj"))
    with open(ssh, "rb") as file:
        blob = file.read()
    pcapflow.trace_file(io.BytesIO(blob), os.path.join(tmp, "bytesio"))
    try:
        pcapflow.trace_file(io.BytesIO(blob[:len(blob) // 2 + 7]), os.path.join(tmp, "cut"))
        raise AssertionError("a cut capture was read")
    except pcapflow.CaptureError as error:
        assert error.index and error.frame > 1
    expect(pcapflow.CaptureError, pcapflow.trace_file, io.BytesIO(b"not a capture at all, no"), os.path.join(tmp, "n"))
    expect(pcapflow.CaptureError, pcapflow.trace_file, io.BytesIO(b""), os.path.join(tmp, "n"))
    expect(pcapflow.FilterError, pcapflow.trace_file, ssh, os.path.join(tmp, "f"), filter="tcp port")
    expect(FileNotFoundError, pcapflow.trace_file, os.path.join(tmp, "missing.pcap"), os.path.join(tmp, "m"))
    # text formats go through pcapkit (pcapflow.text_capture); the C loop itself refuses them
    expect(ValueError, pcapflow.TCP(os.path.join(tmp, "j"), "json")._trace_capture, ssh)

    tracer = pcapflow.TCP(os.path.join(tmp, "packets"))
    count = 0
    with pcapflow.packets(ng) as reader:
        for packet in reader:
            tracer.dump(packet)
            count += 1
    for packet in pcapflow.packets(ssh, filter="tcp[tcpflags] & tcp-push != 0"):
        tracer.trace(packet)
    reader = pcapflow.packets(io.BytesIO(blob[:len(blob) // 2 + 7]))
    expect(pcapflow.CaptureError, list, reader)
    abandoned = pcapflow.packets(ssh)
    next(abandoned)
    del abandoned
    expect(pcapflow.FilterError, pcapflow.packets, ssh, filter="no such (")
    assert count and tracer.submit()
    tracer.close()
    del tracer

    # every link type, IP extension, resolution and byte order the decoder knows, damage included
    for k, name in enumerate(sorted(os.listdir(DATA))):
        if not name.endswith((".pcap", ".pcapng")):
            continue
        path = os.path.join(DATA, name)
        try:
            pcapflow.trace_file(path, os.path.join(tmp, f"all{k}"), nanosecond=k % 2 == 0)
        except pcapflow.CaptureError as error:
            assert error.frame is not None
        try:
            for packet in pcapflow.packets(path):
                pass
        except pcapflow.CaptureError:
            pass


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tracer_api(tmp)
        bad_input(tmp)
        captures(tmp)
        gc.collect()
    print("workload done")


if __name__ == "__main__":
    main()
