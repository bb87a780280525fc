#!/usr/bin/env bash
# Runs a Python script under valgrind's memcheck and fails (exit status 99) on
# any memory error or definitely lost block that python.supp does not cover.
#
#   tests/valgrind/run.sh                      # the workload: tests/valgrind/workload.py tests/data/native
#   tests/valgrind/run.sh SCRIPT [ARGS...]     # any script
#   PYTHON=/path/to/python tests/valgrind/run.sh
#
# The interpreter is the real binary (os.path.realpath(sys.executable)), not a
# pyenv shim: a shim is a shell script, and valgrind would check bash instead.
# PYTHONMALLOC=malloc makes every Python object a malloc() block, so memcheck
# sees each of them (pymalloc's arenas would hide use-after-free and leaks).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v valgrind >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "valgrind is not installed (apt-get install valgrind)" >&2
        exit 2
    fi
fi
python="${PYTHON:-python3}"
python="$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
if [ $# -eq 0 ]; then
    set -- "$here/workload.py" "$here/../data/native"
fi
exec env PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --error-exitcode=99 --track-origins=yes --num-callers=40 \
    --suppressions="$here/python.supp" "$python" "$@"
