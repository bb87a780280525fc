"""Exceptions and warnings, named as pcapkit names them so handlers carry over."""


class UnsupportedCall(AttributeError):
    """An attribute of a read-only object was set or deleted."""


class FileExists(FileExistsError):
    """The output path exists and is not a directory."""


class RegistryError(TypeError):
    """A dumper registered for a format is not a dictdumper Dumper class."""


class FormatWarning(UserWarning):
    """The output format is unknown: no files are written."""


class FileWarning(UserWarning):
    """The output path could not be used (for a format that writes no files)."""


class RegistryWarning(UserWarning):
    """A registered format was replaced."""


class CaptureError(ValueError):
    """A capture file is not a capture, or is damaged.

    Attributes: filename, frame (the number the unreadable frame would have
    had), offset (bytes of the file read when the damage was found), index
    (every flow traced before the damage; their files are complete) and
    stats (the counters up to the damage)."""

    filename = None
    frame = None
    offset = None
    index = ()
    stats = None

    def __str__(self):
        where = f"{self.filename}: " if self.filename is not None else ""
        at = f" (frame {self.frame}, byte offset {self.offset})" if self.frame is not None else ""
        return f"{where}{super().__str__()}{at}"


class FilterError(ValueError):
    """A BPF filter expression does not compile."""


class Terminated(KeyboardInterrupt):
    """The pcapflow command was sent SIGTERM (args[0] is the signal number). A
    KeyboardInterrupt, so that trace_file() writes what it read before raising it
    again, as it does for Ctrl-C."""
