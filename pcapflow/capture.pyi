"""Types of pcapflow.capture. A function added to capture.py is added here too
(make typecheck's stubtest fails until it is)."""
from typing import Iterable, Literal, Optional, overload

from pcapflow._core import CaptureReader, Index
from pcapflow._types import Capture, Path, Progress, Started

__all__ = ["trace_file", "trace_files", "trace_live", "packets"]

KERNEL_BUFFER_MB: int

# index=False keeps no frame numbers and returns None
@overload
def trace_file(fin: Capture, fout: Optional[Path] = ..., format: Optional[str] = ..., byteorder: str = ...,
               nanosecond: bool = ..., *, filter: Optional[str] = ..., progress: Optional[Progress] = ...,
               stats: Optional[dict[str, int]] = ..., buffer_bytes: Optional[int] = ..., tunnels: bool = ...,
               index: Literal[True] = ..., bidirectional: bool = ..., idle_timeout: Optional[float] = ...) -> tuple[Index, ...]: ...
@overload
def trace_file(fin: Capture, fout: Optional[Path] = ..., format: Optional[str] = ..., byteorder: str = ...,
               nanosecond: bool = ..., *, filter: Optional[str] = ..., progress: Optional[Progress] = ...,
               stats: Optional[dict[str, int]] = ..., buffer_bytes: Optional[int] = ..., tunnels: bool = ...,
               index: Literal[False], bidirectional: bool = ..., idle_timeout: Optional[float] = ...) -> None: ...
@overload
def trace_files(fins: Iterable[Capture], fout: Optional[Path] = ..., format: Optional[str] = ...,
                byteorder: str = ..., nanosecond: bool = ..., *, filter: Optional[str] = ...,
                progress: Optional[Progress] = ..., stats: Optional[dict[str, int]] = ...,
                buffer_bytes: Optional[int] = ..., tunnels: bool = ..., index: Literal[True] = ...,
                bidirectional: bool = ..., idle_timeout: Optional[float] = ...) -> tuple[Index, ...]: ...
@overload
def trace_files(fins: Iterable[Capture], fout: Optional[Path] = ..., format: Optional[str] = ...,
                byteorder: str = ..., nanosecond: bool = ..., *, filter: Optional[str] = ...,
                progress: Optional[Progress] = ..., stats: Optional[dict[str, int]] = ...,
                buffer_bytes: Optional[int] = ..., tunnels: bool = ..., index: Literal[False],
                bidirectional: bool = ..., idle_timeout: Optional[float] = ...) -> None: ...
# capture on an interface until count frames, duration seconds or an interrupt
@overload
def trace_live(interface: str, fout: Optional[Path] = ..., format: Optional[str] = ..., byteorder: str = ...,
               nanosecond: bool = ..., *, filter: Optional[str] = ..., count: Optional[int] = ...,
               duration: Optional[float] = ..., snaplen: int = ..., promisc: bool = ..., buffer_mb: Optional[int] = ...,
               idle_timeout: Optional[float] = ..., progress: Optional[Progress] = ...,
               stats: Optional[dict[str, int]] = ..., tunnels: bool = ..., index: Literal[True] = ...,
               bidirectional: bool = ..., started: Optional[Started] = ...) -> tuple[Index, ...]: ...
@overload
def trace_live(interface: str, fout: Optional[Path] = ..., format: Optional[str] = ..., byteorder: str = ...,
               nanosecond: bool = ..., *, filter: Optional[str] = ..., count: Optional[int] = ...,
               duration: Optional[float] = ..., snaplen: int = ..., promisc: bool = ..., buffer_mb: Optional[int] = ...,
               idle_timeout: Optional[float] = ..., progress: Optional[Progress] = ...,
               stats: Optional[dict[str, int]] = ..., tunnels: bool = ..., index: Literal[False],
               bidirectional: bool = ..., started: Optional[Started] = ...) -> None: ...
def packets(fin: Capture, *, filter: Optional[str] = ..., tunnels: bool = ...) -> CaptureReader: ...
