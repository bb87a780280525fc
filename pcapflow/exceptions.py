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
