"""Output formats. pcap is written by the C core; json, plist and tree text
are written by dictdumper with the same conversions pcapkit applies, so the
files are byte-identical to pcapkit's."""
import collections
import datetime
import decimal
import enum
import ipaddress

import dictdumper
from dictdumper.dumper import Dumper


class PCAPIO(Dumper):
    """Stands for the C pcap writer in the format registry.

    A tracer whose format maps to this class writes pcap files itself, in C;
    the class is never instantiated."""

    __pcapflow_native__ = True

    @property
    def kind(self):
        return "pcap"

    def __init__(self, fname, **kwargs):  # pylint: disable=super-init-not-called
        raise TypeError("PCAPIO marks the C pcap writer; use pcapflow.TCP(format='pcap')")


class NotImplementedIO(Dumper):
    """The dumper of unknown formats: writes nothing (pcapkit's behaviour)."""

    @property
    def kind(self):
        return "null"

    def __init__(self, fname=None, **kwargs):  # pylint: disable=super-init-not-called,unused-argument
        self._file = fname

    def __call__(self, value, name=None):  # pylint: disable=unused-argument
        return self

    def _dump_header(self, **kwargs):
        pass

    def _append_value(self, value, file, name):
        pass


def _is_enum(value):
    if isinstance(value, enum.Enum):
        return True
    # pcapkit's constants are aenum enums, which are not stdlib enums
    return any(klass.__name__ == "Enum" and klass.__module__.startswith("aenum") for klass in type(value).__mro__)


def _enum_text(value):
    return f"{type(value).__name__}::{value.name} [{value.value}]"


def make_dumper(output):
    """A subclass of a dictdumper class that converts values the way pcapkit's
    dumpers do (Decimal, timedelta, Info, addresses, multi-dicts, enums)."""

    class DictDumper(output):
        def object_hook(self, o):
            if isinstance(o, decimal.Decimal):
                return str(o)
            if isinstance(o, datetime.timedelta):
                return o.total_seconds()
            if isinstance(o, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                return str(o)
            if type(o).__name__ in ("MultiDict", "OrderedMultiDict") and hasattr(o, "items"):
                grouped = collections.defaultdict(list)
                for key, val in o.items(multi=True):
                    if _is_enum(key):
                        key = _enum_text(key)
                    grouped[key].append(val)
                return grouped
            if hasattr(o, "to_dict"):  # pcapkit's Info and Schema, pcapflow's Info types
                return o.to_dict()
            if isinstance(o, dict):
                return o
            if _is_enum(o):
                extra = {key: val for key, val in o.__dict__.items() if not key.startswith("_")}
                if extra:
                    return {"enum": _enum_text(o), **extra}
                return _enum_text(o)
            return super().object_hook(o)  # not super(type(self), self): a subclass would call itself

        def default(self, o):  # pylint: disable=unused-argument
            return "fallback"

        def _append_fallback(self, value, file):
            if hasattr(value, "__slots__"):
                new_value = {key: getattr(value, key) for key in value.__slots__}
            elif hasattr(value, "__dict__"):
                new_value = vars(value)
            else:
                new_value = str(value)
            self._encode_func(new_value)(new_value, file)

    DictDumper.__name__ = DictDumper.__qualname__ = f"DictDumper[{output.__name__}]"
    return DictDumper


def default_formats():
    """pcapkit's format table; 'text' writes tree text (pcapkit crashes on it)."""
    return collections.defaultdict(
        lambda: (NotImplementedIO, None),
        {
            "pcap": (PCAPIO, ".pcap"),
            "cap": (PCAPIO, ".pcap"),
            "plist": (dictdumper.PLIST, ".plist"),
            "xml": (dictdumper.PLIST, ".plist"),
            "json": (dictdumper.JSON, ".json"),
            "tree": (dictdumper.Tree, ".txt"),
            "text": (dictdumper.Tree, ".txt"),
            "txt": (dictdumper.Tree, ".txt"),
        },
    )
