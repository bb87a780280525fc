"""pcapflow: TCP flow tracing for packet captures, with its core in C.

`from pcapflow import TCP, Packet, Buffer, Index` gives pcapkit's flow tracer
API (pcapkit.foundation.traceflow.tcp), much faster. `use_in_pcapkit()` makes
`pcapkit.extract(..., trace=True, tcp=True)` use it. `trace_file()` traces a
whole capture in C through libpcap. `follow()` is Wireshark's Follow TCP Stream; `follow_tcp_stream()` is pcapkit's
(pcapkit.interface.misc), and `pcapflow.reassembly` has pcapkit's TCP, IPv4
and IPv6 reassembly classes."""
import collections.abc

from pcapflow import _core
from pcapflow._core import Buffer, Index, Packet
from pcapflow.capture import packets, trace_file, trace_files, trace_live
from pcapflow import text_capture  # noqa: F401  loaded now, not by trace_files() when descriptors may be short
from pcapflow.exceptions import (CaptureError, FileExists, FileWarning, FilterError, FlushWarning, FormatWarning,
                                 RegistryError, RegistryWarning, UnsupportedCall)
from pcapflow.follow import Conversation, follow, follow_records
from pcapflow.pcapkit_compat import use_in_pcapkit
from pcapflow import reassembly  # noqa: F401
from pcapflow.follow_compat import Stream, follow_tcp_stream
from pcapflow.tcp import TCP

__all__ = [
    "TCP", "Packet", "Buffer", "Index", "use_in_pcapkit", "trace_file", "trace_files", "trace_live", "packets",
    "follow", "follow_records", "Conversation", "follow_tcp_stream", "Stream", "reassembly",
    "CaptureError", "FilterError", "UnsupportedCall", "FileExists", "RegistryError", "FormatWarning", "FileWarning", "RegistryWarning",
    "FlushWarning",
]
# the version's one place: pyproject.toml and the docs read it from here
__version__ = "0.1.0"

for _info_type in (Packet, Buffer, Index):
    collections.abc.Mapping.register(_info_type)
del _info_type
