import os
from typing import IO, Any, Generic, Iterator, NamedTuple, Optional, TypeVar, Union

from pcapflow._types import Capture

__all__ = ["follow", "follow_records", "Conversation", "Record", "StreamRecord", "Gap"]

_Endpoint = tuple[str, int]

class Record(NamedTuple):
    node: int
    frame: int
    seconds: int
    nanoseconds: int
    data: bytes
    missing: int

class StreamRecord(NamedTuple):
    stream: int
    node: int
    src: _Endpoint
    dst: _Endpoint
    frame: int
    seconds: int
    nanoseconds: int
    data: bytes
    missing: int

class Gap(NamedTuple):
    node: int
    offset: int
    length: int
    frame: int

class Conversation:
    stream: int
    nodes: tuple[_Endpoint, _Endpoint]
    records: tuple[Record, ...]
    frames: tuple[int, ...]
    first_timestamp: float
    last_timestamp: float
    def __init__(self, stream: int, nodes: tuple[_Endpoint, _Endpoint], records: tuple[Record, ...] | list[Record],
                 frames: tuple[int, ...], first_timestamp: float, last_timestamp: float) -> None: ...
    @property
    def segments(self) -> tuple[tuple[int, bytes], ...]: ...
    @property
    def gaps(self) -> tuple[Gap, ...]: ...
    def data(self, node: int, *, markers: bool = ...) -> bytes: ...
    def write(self, node: int, file: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]", IO[bytes]], *,
              markers: bool = ...) -> int: ...

_T = TypeVar("_T")

class _Run(Iterator[_T], Generic[_T]):
    # the run's counters, once the capture is read
    stats: Optional[dict[str, int]]
    def __init__(self, reader: Any, items: Iterator[_T]) -> None: ...
    def __iter__(self) -> _Run[_T]: ...
    def __next__(self) -> _T: ...
    def close(self) -> None: ...

def follow(fin: Capture, *, filter: Optional[str] = ..., max_held_per_stream: Optional[int] = ...,
           max_held: Optional[int] = ...) -> _Run[Conversation]: ...
def follow_records(fin: Capture, *, filter: Optional[str] = ..., max_held_per_stream: Optional[int] = ...,
                   max_held: Optional[int] = ...) -> _Run[StreamRecord]: ...
