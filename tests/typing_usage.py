"""The whole public API of pcapflow, used as a program would use it.

`make typecheck` runs `mypy --strict` on this file, so every name of
pcapflow.__all__ must have types a strict user can call without an Any
leaking out (assert_type pins the types that matter);
tests/test_packaging.py runs it, so the types it claims are the ones the
calls return, and fails while a name of pcapflow.__all__ (trace_live, say,
once added) has no use here.

    python tests/typing_usage.py CAPTURE OUTPUT_DIR
"""
import io
import ipaddress
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Optional

import pcapflow
from pcapflow import reassembly

if TYPE_CHECKING:
    import distributed

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # what typing.assert_type does at run time (mypy checks this file as 3.11 or later)
    def assert_type(value, _type):
        return value


def tracer(out: str) -> list[str]:
    frame = {"packet": b"abc", "frame_info": {"ts_sec": 1600000000, "ts_usec": 250000, "incl_len": 3, "orig_len": 3}}
    packet = pcapflow.Packet(protocol=1, index=1, frame=frame, syn=True, fin=False,
                             src=ipaddress.ip_address("10.0.0.1"), dst=ipaddress.ip_address("10.0.0.2"),
                             srcport=40000, dstport=80, timestamp=1600000000.25)
    again = pcapflow.Packet.from_dict(packet.to_dict())
    assert_type(again, pcapflow.Packet)
    closed: list[pcapflow.Index] = []
    labels = []

    class Counting(pcapflow.TCP):
        """Subclassing is part of pcapkit's interface."""

    Counting.register_callback(closed.append)
    with Counting(os.path.join(out, "tracer"), "pcap", nanosecond=False) as tcp:
        label = tcp.trace(packet)
        assert_type(label, str)
        labels.append(label)
        writer = tcp.trace(again, output=True)
        assert_type(writer, pcapflow._core.FlowWriter)
        labels.append(writer.label)
        tcp.dump(packet)
        tcp(packet)
        flows = tcp.submit()
        assert_type(flows, tuple[pcapflow.Index, ...])
        for flow in tcp.index:
            fpout: Optional[str] = flow.fpout
            numbers: tuple[int, ...] = flow.index
            labels.append(flow.label if fpout else "")
            labels.append(str(len(numbers)))
        assert_type(tcp.open_flows, int)
        assert_type(tcp.name, str)
    buffer = pcapflow.Buffer(fpout=None, index=[1, 2], label="x")
    index = pcapflow.Index.from_dict({"fpout": None, "index": (1, 2), "label": "x"})
    labels.append(buffer.label + index.label)
    return labels


def captures(capture: str, out: str) -> int:
    stats: dict[str, int] = {}
    flows = pcapflow.trace_file(capture, os.path.join(out, "file"), filter="tcp", stats=stats, idle_timeout=60,
                                progress=lambda read, total, packets, open_flows: None)
    assert_type(flows, tuple[pcapflow.Index, ...])
    with open(capture, "rb") as stream:
        more = pcapflow.trace_files([capture, stream], os.path.join(out, "files"), bidirectional=True)
    nothing = pcapflow.trace_file(capture, index=False)
    assert_type(nothing, None)
    live: dict[str, int] = {}
    try:
        # a tenth of a second of the loopback interface (root or CAP_NET_RAW)
        opened: list[dict[str, Any]] = []
        caught = pcapflow.trace_live("lo", os.path.join(out, "live"), filter="tcp", count=10, duration=0.1,
                                     idle_timeout=5.0, stats=live, started=opened.append)
        assert_type(caught, tuple[pcapflow.Index, ...])
    except PermissionError:
        live["received"] = 0
    count = live["received"]
    with pcapflow.packets(capture, filter="port 80") as reader:
        for packet in reader:
            assert_type(packet, pcapflow.Packet)
            count += packet.srcport > 0
    return len(flows) + len(more) + count + stats["frames"]


def errors(capture: str, out: str) -> list[type[BaseException]]:
    seen: list[type[BaseException]] = []
    try:
        pcapflow.trace_file(io.BytesIO(b"not a capture"), os.path.join(out, "bad"))
    except pcapflow.CaptureError as error:
        index: tuple[pcapflow.Index, ...] = error.index
        seen.append(type(error) if not index else type(error))
    try:
        pcapflow.packets(capture, filter="no such (filter")
    except pcapflow.FilterError as error:
        seen.append(type(error))
    try:
        pcapflow.Index(None, (), "x").label = "y"  # type: ignore[misc]  # read-only: mypy refuses it too
    except (pcapflow.UnsupportedCall, AttributeError) as error:
        seen.append(type(error))
    with open(os.path.join(out, "a-file"), "wb"):
        pass
    try:
        pcapflow.TCP(os.path.join(out, "a-file"))
    except pcapflow.FileExists as error:
        seen.append(type(error))
    try:
        pcapflow.TCP.register_dumper("mine", object, ".x")
    except pcapflow.RegistryError as error:
        seen.append(type(error))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warned: list[type[Warning]] = [pcapflow.FormatWarning, pcapflow.FileWarning, pcapflow.RegistryWarning,
                                       pcapflow.FlushWarning]
    return seen + list(warned)


def following(capture: str, out: str) -> int:
    total = 0
    run = pcapflow.follow(capture, max_held=1 << 20)
    for conversation in run:
        assert_type(conversation, pcapflow.Conversation)
        total += len(conversation.data(0)) + conversation.write(1, os.path.join(out, "node1"), markers=False)
        addr, port = conversation.nodes[0]
        total += port + len(addr)
    stats = run.stats
    assert stats is not None
    for record in pcapflow.follow_records(capture, filter="tcp"):
        total += len(record.data) + record.src[1]
    streams = pcapflow.follow_tcp_stream(capture, fout=os.path.join(out, "streams"))
    for stream in streams:
        assert_type(stream, pcapflow.Stream)
        total += sum(len(data) for data in stream.conversations) + len(stream.packets)
    return total + stats["streams"]


def pcapkit_side() -> Any:
    pcapflow.use_in_pcapkit()
    pcapflow.use_in_pcapkit(False)
    tcp = reassembly.TCP(strict=False)
    tcp.run([])
    assert_type(tcp.datagram, tuple[reassembly.TCPDatagram, ...])
    ipv4 = reassembly.IPv4_Reassembly(store=False)
    return (tcp.count, ipv4.fetch(), reassembly.IPv6().strict)


def on_a_cluster(client: "distributed.Client", series: list[str], out: str) -> int:
    """pcapflow.dask (not in pcapflow.__all__: it needs the dask extra), typed only: running it
    needs a cluster, which tests/test_dask.py makes."""
    import pcapflow.dask  # pylint: disable=import-outside-toplevel
    stats: dict[str, int] = {}
    flows = pcapflow.dask.trace_files(series, out, client=client, partitions=2, stats=stats)
    assert_type(flows, tuple[pcapflow.Index, ...])
    frame = pcapflow.dask.flows(series, out, client=client)
    return len(flows) + int(frame.npartitions) + stats["stitched_flows"]


def main(capture: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    labels = tracer(out)
    print("pcapflow", pcapflow.__version__, len(labels), captures(capture, out), len(errors(capture, out)),
          following(capture, out), pcapkit_side()[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
