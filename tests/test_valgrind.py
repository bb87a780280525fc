"""pcapflow under valgrind's memcheck: no memory error, no definitely lost block.

tests/valgrind/run.sh runs tests/valgrind/workload.py (every part of the C
code on a small scale, error paths included) with PYTHONMALLOC=malloc under
memcheck --leak-check=full --errors-for-leak-kinds=definite
--error-exitcode=99, with tests/valgrind/python.supp hiding only CPython's
own false positives (see that file). The harness itself is checked too: a
definite leak, a use-after-free and a Python object freed too early, made on
purpose through ctypes, must each fail the run.

Skipped in the sanitized run (make test-sanitized): valgrind cannot run a
process that has AddressSanitizer's runtime preloaded."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _hardening import SANITIZED

RUN = Path(__file__).resolve().parent / "valgrind" / "run.sh"

pytestmark = pytest.mark.skipif(SANITIZED, reason="valgrind cannot run under AddressSanitizer's preloaded runtime")


def run_under_valgrind(*args, timeout=300):
    env = dict(os.environ, PYTHON=os.path.realpath(sys.executable))
    env.pop("LD_PRELOAD", None)
    try:
        return subprocess.run(["bash", str(RUN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              env=env, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"valgrind did not finish within {timeout} s")


def reports(stderr):
    """memcheck's error and leak reports (each a block of '==PID== ' lines), without the banners."""
    blocks, block = [], []
    for line in stderr.splitlines():
        text = re.sub(r"^==\d+== ?", "", line)
        if not line.startswith("=="):
            continue
        if text == "":
            if block:
                blocks.append("\n".join(block))
            block = []
        else:
            block.append(text)
    keep = ("Invalid", "uninitialised", "Mismatched", "overlap", "definitely lost in", "points to", "free")
    return [b for b in blocks if any(k in b.splitlines()[0] for k in keep)]


def test_workload_has_no_memory_errors_or_definite_leaks():
    done = run_under_valgrind()
    found = reports(done.stderr)
    assert done.returncode == 0 and not found, (
        f"valgrind exit status {done.returncode} (99: errors or definite leaks); {len(found)} reports:\n\n"
        + "\n\n".join(found)[:15000] + f"\n\nworkload output:\n{done.stdout[-2000:]}")
    assert "workload done" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
    assert "ERROR SUMMARY: 0 errors" in done.stderr


FAULTS = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
fault = sys.argv[1]
if fault == "leak":
    for _ in range(10):
        libc.malloc(4096)
elif fault == "use-after-free":
    block = libc.malloc(64)
    libc.free(block)
    ctypes.string_at(block, 8)
elif fault == "object-freed-too-early":
    text = "".join(["abc", "def" * 50])
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(text))  # one reference too few, as a C bug would leave it
    len(text.upper())
print("done", fault)
"""


@pytest.mark.parametrize("fault", ["leak", "use-after-free", "object-freed-too-early"])
def test_the_harness_catches(fault, tmp_path):
    script = tmp_path / "fault.py"
    script.write_text(FAULTS)
    done = run_under_valgrind(script, fault)
    assert done.returncode == 99, (f"a {fault} went through valgrind unreported (exit status {done.returncode}):\n"
                                   f"{done.stderr[-3000:]}")
