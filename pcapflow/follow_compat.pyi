from typing import Any, Optional

from pcapflow._core import Packet
from pcapflow._types import Capture, Path
from pcapflow.reassembly import _Info

__all__ = ["follow_tcp_stream", "Stream"]

class Stream(_Info):
    filename: Optional[str]
    packets: tuple[Packet, ...]
    conversations: tuple[bytes, ...]

def follow_tcp_stream(fin: Optional[Capture] = ..., verbose: bool = ..., extension: bool = ..., engine: Any = ...,
                      fout: Optional[Path] = ..., format: Optional[str] = ..., byteorder: str = ...,
                      nanosecond: bool = ...) -> tuple[Stream, ...]: ...
