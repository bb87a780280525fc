"""How the package is built and described: setup.py's choices, the sdist's
contents, the type stubs and the program that uses the whole public API.

The long checks (a wheel from the sdist, repaired, installed in a fresh venv;
the docs; mypy --strict and stubtest) are make test-packaging's; these are
the quick ones, run with the suite."""
import ast
import os
import subprocess
import sys
import tarfile

import pytest

import pcapflow
from pcapflow import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURE = os.path.join(ROOT, "examples", "data", "http_espn.pcapng")

sys.path.insert(0, os.path.join(ROOT, "tests"))
import typing_usage  # noqa: E402  pylint: disable=wrong-import-position


def setup_py(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "setup.py", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def clean_env(**changes):
    env = {key: value for key, value in os.environ.items() if not key.startswith("PCAPFLOW_")}
    # the sanitizer runs preload their runtimes; setup.py and the compiler need none
    env.pop("LD_PRELOAD", None)
    env.update(changes)
    return env


def compile_commands(tmp_path, **env):
    """The compiler's command lines for the extension, as setup.py would run them (--dry-run compiles nothing)."""
    ran = setup_py("build_ext", "--dry-run", "--force", "-b", str(tmp_path / "lib"), "-t", str(tmp_path / "obj"),
                   env=clean_env(**env))
    assert ran.returncode == 0, ran.stderr
    return [line for line in ran.stdout.splitlines() if " -c csrc/" in line]


def test_warnings_are_errors_only_when_asked(tmp_path):
    plain = compile_commands(tmp_path)
    asked = compile_commands(tmp_path, PCAPFLOW_WERROR="1")
    sources = len([name for part in ("core", "binding") for name in os.listdir(os.path.join(ROOT, "csrc", part))
                   if name.endswith(".c")])
    assert len(plain) == len(asked) == sources
    assert not any("-Werror" in line for line in plain)
    assert all("-Werror" in line.split() for line in asked)
    # PCAPFLOW_WERROR=0 is not a request
    assert not any("-Werror" in line for line in compile_commands(tmp_path, PCAPFLOW_WERROR="0"))


def test_metadata_without_libpcap(tmp_path):
    # no pcap-config nor pkg-config on PATH: describing the package needs no libpcap
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python3")
    ran = setup_py("--version", env=clean_env(PATH=str(bare), PCAPFLOW_LIBPCAP_PREFIX=str(tmp_path / "none")))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == pcapflow.__version__


def test_missing_libpcap_stops_the_build_with_a_message(tmp_path):
    ran = setup_py("build_ext", "-b", str(tmp_path / "lib"), "-t", str(tmp_path / "obj"),
                   env=clean_env(PCAPFLOW_LIBPCAP_PREFIX=str(tmp_path / "none")))
    assert ran.returncode != 0
    assert "could not find libpcap's headers" in ran.stderr
    assert "apt-get install libpcap-dev" in ran.stderr
    assert not (tmp_path / "obj").exists()  # stopped before compiling anything


def test_system_and_prefix_libpcap_are_exclusive(tmp_path):
    ran = setup_py("build_ext", "--dry-run", "-b", str(tmp_path / "lib"), "-t", str(tmp_path / "obj"),
                   env=clean_env(PCAPFLOW_LIBPCAP_PREFIX="/usr", PCAPFLOW_SYSTEM_LIBPCAP="1"))
    assert ran.returncode != 0
    assert "choose one" in ran.stderr


def test_sdist_holds_every_source_and_header(tmp_path):
    ran = setup_py("-q", "sdist", "-d", str(tmp_path), env=clean_env())
    assert ran.returncode == 0, ran.stderr
    (archive,) = tmp_path.glob("pcapflow-*.tar.gz")
    assert archive.name == f"pcapflow-{pcapflow.__version__}.tar.gz"
    with tarfile.open(archive) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = {os.path.relpath(os.path.join(folder, name), ROOT)
              for folder, _, files in os.walk(os.path.join(ROOT, "csrc")) for name in files
              if name.endswith((".c", ".h"))}
    needed |= {"setup.py", "pyproject.toml", "MANIFEST.in", "README.rst", "CHANGELOG.rst", "Makefile",
               "pcapflow/_core.pyi", "pcapflow/py.typed", "examples/data/http_espn.pcapng",
               "tests/typing_usage.py", "packaging/build-libpcap.sh", "packaging/smoke.py", "docs/conf.py"}
    assert sorted(needed - names) == []
    assert not [name for name in names if name.endswith((".so", ".o", ".pyc"))]


def stub_names(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_core_stub_has_every_name_of_the_extension():
    # make typecheck's stubtest checks signatures too; this is the quick part
    stubbed = stub_names(os.path.join(ROOT, "pcapflow", "_core.pyi"))
    assert sorted(name for name in dir(_core) if not name.startswith("__") and name not in stubbed) == []


def used_public_names():
    """The names of pcapflow that typing_usage.py reaches (pcapflow.NAME, or the reassembly module it imports)."""
    tree = ast.parse(open(typing_usage.__file__, encoding="utf-8").read())
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "pcapflow"}
    used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "pcapflow"
             for alias in node.names}
    return used


def test_typing_usage_covers_the_public_api():
    # a name added to pcapflow.__all__ needs a use in tests/typing_usage.py,
    # so that mypy --strict sees its types
    assert sorted(set(pcapflow.__all__) - used_public_names()) == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_typing_usage_runs(tmp_path, capsys):
    # the program mypy checks does what its types say when run
    typing_usage.main(CAPTURE, str(tmp_path))
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["pcapflow", pcapflow.__version__]
    assert int(printed[3]) > 50  # flows of trace_file and trace_files, TCP packets, frames
