from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Optional, TypeVar, Union

from pcapflow._core import UnsupportedCall as UnsupportedCall

__all__ = ["TCP", "TCP_Reassembly", "IPv4", "IPv4_Reassembly", "IPv6", "IPv6_Reassembly", "Reassembly",
           "TCPDatagram", "TCPDatagramID", "IPDatagram", "IPDatagramID", "TCPSegment", "IPFragment"]

_I = TypeVar("_I", bound="_Info")

class _Info(Mapping[str, Any]):
    """A read-only record: its fields by attribute and by key (pcapkit's Info)."""
    _fields: ClassVar[tuple[str, ...]]
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    def __getitem__(self, key: str) -> Any: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def to_dict(self) -> dict[str, Any]: ...
    @classmethod
    def from_dict(cls: type[_I], mapping: Optional[Union[Mapping[str, Any], Iterable[tuple[str, Any]]]] = ...,
                  **kwargs: Any) -> _I: ...

class TCPSegment(_Info):
    bufid: Any
    dsn: int
    ack: int
    num: int
    syn: bool
    fin: bool
    rst: bool
    len: int
    first: int
    last: int
    header: bytes
    payload: bytes

class IPFragment(_Info):
    bufid: Any
    num: int
    fo: int
    ihl: int
    mf: bool
    tl: int
    header: bytes
    payload: bytes

class TCPDatagramID(_Info):
    src: tuple[Any, int]
    dst: tuple[Any, int]
    ack: int

class IPDatagramID(_Info):
    src: Any
    dst: Any
    id: int
    proto: Any

class _Datagram(_Info):
    completed: bool
    id: Any
    index: tuple[int, ...]
    header: bytes
    # bytes, or a tuple of the runs received when incomplete with strict=True
    payload: Union[bytes, tuple[bytes, ...]]
    def __init__(self, completed: bool, id: Any, index: tuple[int, ...], header: bytes,
                 payload: Union[bytes, tuple[bytes, ...]], packet: Any = ..., *,
                 analyze: Optional[Callable[[Any], Any]] = ...) -> None: ...
    @property
    def packet(self) -> Any: ...

class TCPDatagram(_Datagram): ...
class IPDatagram(_Datagram): ...

class _ReassemblyMeta(type):
    @property
    def name(cls) -> str: ...
    @property
    def protocol(cls) -> Any: ...


class Reassembly(metaclass=_ReassemblyMeta):
    __protocol_name__: ClassVar[str]
    __protocol_type__: ClassVar[Any]
    __callback_fn__: ClassVar[list[Callable[[list[Any]], object]]]
    def __init__(self, *, strict: bool = ..., store: bool = ...) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def protocol(self) -> Any: ...
    @property
    def strict(self) -> bool: ...
    @property
    def store(self) -> bool: ...
    @property
    def count(self) -> int: ...
    @property
    def datagram(self) -> tuple[Any, ...]: ...
    def fetch(self) -> tuple[Any, ...]: ...
    def index(self, pkt_num: int) -> Optional[int]: ...
    def run(self, packets: Iterable[Any]) -> None: ...
    @classmethod
    def register(cls, callback: Callable[[list[Any]], object], *, index: Optional[int] = ...) -> None: ...
    def __call__(self, packet: Any) -> None: ...
    def reassembly(self, info: Any) -> None: ...
    def submit(self, buf: Any, **kwargs: Any) -> list[Any]: ...

class TCP(Reassembly):
    @property
    def datagram(self) -> tuple[TCPDatagram, ...]: ...
    def fetch(self) -> tuple[TCPDatagram, ...]: ...
    def reassembly(self, info: TCPSegment | Mapping[str, Any]) -> None: ...
    def submit(self, buf: Any, *, bufid: Any) -> list[TCPDatagram]: ...  # type: ignore[override]

TCP_Reassembly = TCP

class _IP(Reassembly):
    @property
    def datagram(self) -> tuple[IPDatagram, ...]: ...
    def fetch(self) -> tuple[IPDatagram, ...]: ...
    def reassembly(self, info: IPFragment | Mapping[str, Any]) -> None: ...
    def submit(self, buf: Any, *, bufid: Any, checked: bool = ...) -> list[IPDatagram]: ...  # type: ignore[override]

class IPv4(_IP): ...
class IPv6(_IP): ...

IPv4_Reassembly = IPv4
IPv6_Reassembly = IPv6

def tcp_conversations(segments: Iterable[tuple[Any, int, int, int, int, bytes, bytes]]) -> tuple[bytes, ...]: ...
