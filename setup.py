"""Build the pcapflow C extension against the system libpcap."""
import glob
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup


def libpcap_flags():
    """Compiler and linker flags for libpcap, from pcap-config or pkg-config."""
    for command in (["pcap-config", "--cflags", "--libs"], ["pkg-config", "--cflags", "--libs", "libpcap"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        except subprocess.CalledProcessError:
            continue
        return shlex.split(out)
    if os.path.exists("/usr/include/pcap/pcap.h") or os.path.exists("/usr/include/pcap.h"):
        return ["-lpcap"]
    sys.exit("pcapflow needs the libpcap headers: install them first, "
             "e.g. 'apt-get install libpcap-dev' on Debian/Ubuntu.")


def extra_compile_args():
    args = ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
    if os.environ.get("PCAPFLOW_WERROR", "1") != "0":
        args.append("-Werror")
    args += shlex.split(os.environ.get("PCAPFLOW_CFLAGS", ""))
    return args


flags = libpcap_flags()
core = Extension(
    "pcapflow._core",
    sources=sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/binding/*.c")),
    include_dirs=["csrc"],
    extra_compile_args=extra_compile_args() + [f for f in flags if f.startswith("-I")],
    extra_link_args=[f for f in flags if not f.startswith("-I")]
    + shlex.split(os.environ.get("PCAPFLOW_LDFLAGS", "")),
)

setup(ext_modules=[core])
