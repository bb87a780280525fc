from typing import Any, Callable, ClassVar, Optional

from pcapflow import _core
from pcapflow._core import Index
from pcapflow._types import Path

__all__ = ["TCP"]

class _TracerMeta(type):
    # pcapkit's class-level name and protocol
    @property
    def name(cls) -> str: ...
    @property
    def protocol(cls) -> Any: ...

class TCP(_core.TCPBase, metaclass=_TracerMeta):
    __protocol_name__: ClassVar[str]
    __protocol_type__: ClassVar[Any]
    __output__: ClassVar[dict[str, tuple[Any, Optional[str]]]]
    __callback_fn__: ClassVar[list[Callable[[Index], object]]]
    def __init__(self, fout: Optional[Path] = ..., format: Optional[str] = ..., byteorder: str = ...,
                 nanosecond: bool = ..., *, buffer_bytes: int = ..., tunnels: bool = ..., frame_numbers: bool = ...,
                 bidirectional: bool = ...) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def protocol(self) -> Any: ...
    @classmethod
    def register_dumper(cls, format: str, dumper: Any, ext: Optional[str]) -> None: ...
    @classmethod
    def register_callback(cls, callback: Callable[[Index], object], *, index: Optional[int] = ...) -> None: ...
    @classmethod
    def make_fout(cls, fout: str = ..., fmt: str = ...) -> tuple[Any, Optional[str]]: ...
