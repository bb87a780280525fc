"""Build the pcapflow C extension against libpcap.

Everything here runs when the extension is built, never when this file is
imported: `python -m build --sdist`, `egg_info` and the like work on a machine
without a compiler or libpcap's headers.

Environment (all optional):

PCAPFLOW_WERROR=1
    compiler warnings are errors. `make test` (and so CI) sets it; an
    ordinary `pip install` does not, so a compiler that adds a warning
    cannot break a user's install.
PCAPFLOW_LIBPCAP_PREFIX=DIR
    link the libpcap installed under DIR (DIR/include, DIR/lib), as
    `make wheel` does with one built from source that needs nothing but libc.
PCAPFLOW_SYSTEM_LIBPCAP=1
    link the system's libpcap (pcap-config or pkg-config), what distributions
    want. It is also the default when no prefix is given; set both and the
    build stops rather than guess.
PCAPFLOW_CFLAGS, PCAPFLOW_LDFLAGS
    more compiler and linker flags (the sanitizer builds of `make test`).
"""
import glob
import os
import shlex
import shutil
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.errors import SetupError
except ImportError:  # setuptools before 59
    from distutils.errors import DistutilsSetupError as SetupError

MISSING_LIBPCAP = """\
pcapflow could not find libpcap's headers ({reason}).
Install them and build again, e.g.
    Debian/Ubuntu:  apt-get install libpcap-dev
    Fedora/RHEL:    dnf install libpcap-devel
    Alpine:         apk add libpcap-dev
    macOS:          libpcap comes with the Xcode command line tools
or point PCAPFLOW_LIBPCAP_PREFIX at a libpcap installed elsewhere.
Binary wheels, which carry their own libpcap, need none of this."""


def flag_set(name):
    return os.environ.get(name, "") not in ("", "0")


def libpcap_from_prefix(prefix):
    header = os.path.join(prefix, "include", "pcap", "pcap.h")
    if not os.path.exists(header):
        raise SetupError(MISSING_LIBPCAP.format(reason="PCAPFLOW_LIBPCAP_PREFIX=%s has no include/pcap/pcap.h" % prefix))
    return ["-I" + os.path.join(prefix, "include"), "-L" + os.path.join(prefix, "lib"), "-lpcap"]


def libpcap_from_system():
    """Compiler and linker flags for the system's libpcap, from pcap-config or pkg-config."""
    for command in (["pcap-config", "--cflags", "--libs"], ["pkg-config", "--cflags", "--libs", "libpcap"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        except subprocess.CalledProcessError:
            continue
        return shlex.split(out)
    # older distributions ship the headers without pcap-config or a .pc file
    if os.path.exists("/usr/include/pcap/pcap.h") or os.path.exists("/usr/include/pcap.h"):
        return ["-lpcap"]
    raise SetupError(MISSING_LIBPCAP.format(reason="no pcap-config, no libpcap.pc, no /usr/include/pcap.h"))


def libpcap_flags():
    prefix = os.environ.get("PCAPFLOW_LIBPCAP_PREFIX", "")
    if prefix and flag_set("PCAPFLOW_SYSTEM_LIBPCAP"):
        raise SetupError("PCAPFLOW_SYSTEM_LIBPCAP=1 and PCAPFLOW_LIBPCAP_PREFIX are both set: choose one")
    return libpcap_from_prefix(prefix) if prefix else libpcap_from_system()


class BuildExt(build_ext):
    """Finds libpcap and chooses the warning flags when the extension is built."""

    def build_extensions(self):
        flags = libpcap_flags()
        compile_args = ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
        if flag_set("PCAPFLOW_WERROR"):
            compile_args.append("-Werror")
        for ext in self.extensions:
            ext.extra_compile_args = (compile_args + [f for f in flags if f.startswith("-I")]
                                      + shlex.split(os.environ.get("PCAPFLOW_CFLAGS", "")))
            ext.extra_link_args = ([f for f in flags if not f.startswith("-I")]
                                   + shlex.split(os.environ.get("PCAPFLOW_LDFLAGS", "")))
        super().build_extensions()


core = Extension(
    "pcapflow._core",
    # relative paths: setuptools refuses absolute ones in an sdist build
    sources=sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/binding/*.c")),
    depends=sorted(glob.glob("csrc/*/*.h")),
    include_dirs=["csrc"],
)

setup(ext_modules=[core], cmdclass={"build_ext": BuildExt})
