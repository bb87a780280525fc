"""Types the stubs share (a stub-only module: there is no pcapflow/_types.py)."""
import os
from typing import Any, Callable, Protocol, Union

# a capture or output path
Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

class Readable(Protocol):
    """A binary file object a capture is read from: open(), a pipe, gzip.open(), BytesIO, ..."""
    def read(self, size: int, /) -> bytes: ...

Capture = Union[Path, Readable]
# progress(bytes_read, total_bytes, packets, open_flows)
Progress = Callable[[int, int, int, int], object]
# started(info) once an interface is open: interface, linktype,
# linktype_description, snaplen, nanosecond
Started = Callable[[dict[str, Any]], object]
