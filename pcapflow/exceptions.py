"""Exceptions and warnings, named as pcapkit names them so handlers carry over.

UnsupportedCall, CaptureError and FilterError are raised by the C core and
created there (pcapflow._core); they are re-exported here."""
from pcapflow._core import CaptureError, FilterError, UnsupportedCall  # pylint: disable=no-name-in-module

__all__ = ["UnsupportedCall", "CaptureError", "FilterError", "FileExists", "RegistryError", "FormatWarning",
           "FileWarning", "RegistryWarning", "FlushWarning", "Terminated"]


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


class FlushWarning(UserWarning):
    """Buffered frames could not be written at exit or before a fork (the
    message names the tracer, the file and the error)."""


class Terminated(KeyboardInterrupt):
    """The pcapflow command was sent SIGTERM (args[0] is the signal number). A
    KeyboardInterrupt, so that trace_file() writes what it read before raising it
    again, as it does for Ctrl-C."""
