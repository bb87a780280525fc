"""pcapflow promises Python 3.9 and later; the suite itself runs on one interpreter.

For every other CPython from 3.9 on that this machine has (pyenv's versions,
python3.X on PATH), the C sources are compiled against that interpreter's
headers with the package's warnings-as-errors flags, and the module is loaded
by that interpreter to trace a few packets. This is what caught a 3.9 build
break and checks the version-specific parts (an int's digits are read in place
differently before and after 3.12; the collector pause needs 3.10), and a
subinterpreter imports its own instance of the module (module state).
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from test_module_state import SUBINTERPRETER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1", "-fPIC", "-shared"]


def interpreters():
    """Other CPythons >= 3.9 found here, one per minor version: {(major, minor): path}."""
    found = {}
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3")))
    candidates += [shutil.which(f"python3.{minor}") for minor in range(9, 20)]
    for path in filter(None, candidates):
        try:
            out = subprocess.run([path, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        version = (int(out[0]), int(out[1]))
        if version >= (3, 9) and version != sys.version_info[:2]:
            found.setdefault(version, os.path.realpath(path))
    return found


OTHERS = interpreters()

SMOKE = r"""
import ipaddress, sys
import pcapflow
a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
frame = {"packet": b"", "frame_info": {"ts_sec": 1, "ts_usec": 0, "incl_len": 0, "orig_len": 0}}
tracer = pcapflow.TCP(sys.argv[1], "null")
labels = [tracer.trace(pcapflow.Packet(protocol=1, index=n, frame=frame, syn=False, fin=n == 3, src=a, dst=b,
                                       srcport=port, dstport=80, timestamp=1795666673.984141))
          for n, port in ((1, 40000), (2**40, 40000), (3, 40000), (4, 65535))]
flows = tracer.submit()
print(labels[0], labels[3])
print(sorted(flow.index for flow in flows))
"""


def libpcap_flags():
    out = subprocess.run(["pcap-config", "--cflags", "--libs"], capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else ["-lpcap"]


@pytest.mark.skipif(not OTHERS, reason="no other CPython >= 3.9 on this machine")
@pytest.mark.parametrize("version", sorted(OTHERS), ids=lambda v: "%d.%d" % v)
def test_builds_and_traces_on(version, tmp_path):
    python = OTHERS[version]
    config = subprocess.run([python, "-c", "import sysconfig as s; print(s.get_paths()['include']);"
                             "print(s.get_config_var('EXT_SUFFIX'))"], capture_output=True, text=True,
                            check=True).stdout.split()
    include, suffix = config
    package = tmp_path / "pcapflow"
    shutil.copytree(os.path.join(ROOT, "pcapflow"), package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc/core/*.c"))) + sorted(glob.glob(os.path.join(ROOT, "csrc/binding/*.c")))
    compiled = subprocess.run(["gcc", *FLAGS, "-I" + include, "-I" + os.path.join(ROOT, "csrc"), *sources,
                               "-o", str(package / ("_core" + suffix)), *libpcap_flags()],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr[-4000:]
    # dictdumper (pure Python) is pcapflow's one dependency: lend this interpreter's copy
    import dictdumper
    os.symlink(os.path.dirname(dictdumper.__file__), tmp_path / "dictdumper")
    ran = subprocess.run([python, "-c", SMOKE, str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert ran.returncode == 0, ran.stderr[-4000:]
    assert ran.stdout.splitlines() == [
        "10.0.0.1_40000-10.0.0.2_80-1795666673.984141 10.0.0.1_65535-10.0.0.2_80-1795666673.984141",
        f"[(1, {2**40}, 3), (4,)]",
    ]
    # the module's state is per interpreter (multi-phase init): a subinterpreter imports its own
    ran = subprocess.run([python, "-c", SUBINTERPRETER], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert ran.returncode == 0, ran.stderr[-4000:]
    assert ran.stdout.split() == ["10.0.0.3_1-10.0.0.3_2-2.5"]
