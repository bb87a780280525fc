"""Types of pcapflow.dask. A function added to dask.py is added here too (make typecheck's
stubtest fails until it is)."""
from typing import Iterable, Literal, Optional, overload

import dask.dataframe
import distributed

from pcapflow._core import Index
from pcapflow._types import Path

__all__ = ["trace_files", "flows", "INSTALL_HINT"]

INSTALL_HINT: str
PCAP_HEADER_BYTES: int
RUN_PREFIX: str
COLUMNS: tuple[str, ...]

# index=False returns None, as pcapflow.trace_files does
@overload
def trace_files(fins: Iterable[Path], fout: Path, format: Optional[str] = ..., byteorder: str = ...,
                nanosecond: bool = ..., *, filter: Optional[str] = ..., client: Optional[distributed.Client] = ...,
                partitions: Optional[int] = ..., stats: Optional[dict[str, int]] = ..., tunnels: bool = ...,
                index: Literal[True] = ..., bidirectional: bool = ...,
                idle_timeout: Optional[float] = ...) -> tuple[Index, ...]: ...
@overload
def trace_files(fins: Iterable[Path], fout: Path, format: Optional[str] = ..., byteorder: str = ...,
                nanosecond: bool = ..., *, filter: Optional[str] = ..., client: Optional[distributed.Client] = ...,
                partitions: Optional[int] = ..., stats: Optional[dict[str, int]] = ..., tunnels: bool = ...,
                index: Literal[False], bidirectional: bool = ..., idle_timeout: Optional[float] = ...) -> None: ...
def flows(fins: Iterable[Path], fout: Path, format: Optional[str] = ..., byteorder: str = ...,
          nanosecond: bool = ..., *, filter: Optional[str] = ..., client: Optional[distributed.Client] = ...,
          partitions: Optional[int] = ..., tunnels: bool = ...) -> dask.dataframe.DataFrame: ...
