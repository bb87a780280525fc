"""Sphinx configuration of pcapflow's documentation (make docs).

The pages are built from the package's docstrings (autodoc), the README and
the CHANGELOG, included rather than copied, and the commands' own --help.
A name of pcapflow.__all__ that ends up undocumented is a warning, which
make docs (sphinx -W) turns into a failure: a name added to __all__ without a
docstring cannot slip out of the site.
"""
import os
import re
import subprocess
import sys

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.util import logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the checkout's pcapflow (built in place by make install), not another one
sys.path.insert(0, ROOT)

import pcapflow  # noqa: E402

project = "pcapflow"
copyright = "the pcapflow authors"
version = release = pcapflow.__version__

extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
# the docstrings are prose: `name` is code, as in the README
default_role = "code"
# inherited members too: TCP's trace(), dump(), submit() ... are its C base
# type's; skip_foreign_member leaves out what Python's own classes define
autodoc_default_options = {"members": True, "inherited-members": True, "member-order": "bysource",
                           "show-inheritance": True}
autodoc_member_order = "bysource"
# signatures of the C types' methods come from their docstrings' first line
autodoc_docstring_signature = True

logger = logging.getLogger("pcapflow.docs")


class CommandHelp(Directive):
    """``.. command-help:: follow --help``: the output of `python -m pcapflow ARGS`, run at build time."""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"caption": directives.unchanged}

    def run(self):
        # a fixed width and the C locale, so the page does not depend on the
        # terminal or the language of the machine that builds it
        env = dict(os.environ, COLUMNS="80", LC_ALL="C", PYTHONPATH=ROOT)
        args = self.arguments[0].split()
        ran = subprocess.run([sys.executable, "-m", "pcapflow", *args], capture_output=True, text=True, env=env,
                             cwd=ROOT)
        if ran.returncode != 0:
            raise self.error("python -m pcapflow %s exited with %d: %s" % (" ".join(args), ran.returncode, ran.stderr))
        return [nodes.literal_block(ran.stdout, ran.stdout)]


# The C types' methods say their signature in the docstring's first words,
# "from_dict(mapping=None, /, **kwargs): what it does"; autodoc wants it on
# a line of its own, so it is moved into the signature.
C_SIGNATURE = re.compile(r"^(\w+)(\(.*?\))(?::\s*(.*))?$")


def c_signature(name, obj):
    doc = getattr(obj, "__doc__", None) or ""
    if getattr(obj, "__text_signature__", None) is not None or callable(getattr(obj, "__code__", None)):
        return None
    match = C_SIGNATURE.match(doc.split("\n", 1)[0])
    if match and match.group(1) == name.rsplit(".", 1)[-1]:
        return match
    return None


def signature_from_docstring(app, what, name, obj, options, signature, return_annotation):
    if what not in ("method", "function", "classmethod"):
        return None
    match = c_signature(name, obj)
    return (match.group(2), return_annotation) if match else None


def docstring_without_signature(app, what, name, obj, options, lines):
    match = c_signature(name, obj) if what in ("method", "function", "classmethod") else None
    if match and lines:
        lines[0] = match.group(3) or ""


def defined_in_pcapflow(obj):
    owner = getattr(obj, "__objclass__", None)  # methods and attributes of C types
    module = getattr(owner if owner is not None else obj, "__module__", None)
    if module is None and isinstance(obj, property):
        module = getattr(obj.fget, "__module__", None)
    return module is None or module.startswith("pcapflow")


def skip_foreign_member(app, what, name, obj, skip, options):
    if what in ("class", "exception") and not defined_in_pcapflow(obj):
        return True
    return None


def documented_names(env):
    """Every Python object the pages document, by full name."""
    return set(env.get_domain("py").objects)


def check_public_api(app, env):
    documented = documented_names(env)
    for name in pcapflow.__all__:
        obj = getattr(pcapflow, name)
        # a name may be documented where the package exports it or where it is defined
        candidates = {"pcapflow." + name, getattr(obj, "__name__", "")}
        if hasattr(obj, "__module__") and hasattr(obj, "__qualname__"):
            candidates.add("%s.%s" % (obj.__module__, obj.__qualname__))
        if not candidates & documented:
            logger.warning("pcapflow.%s is in pcapflow.__all__ but documented nowhere "
                           "(a docstring missing, or a module left out of docs/api.rst)", name)


def setup(app):
    app.add_directive("command-help", CommandHelp)
    app.connect("env-check-consistency", check_public_api)
    app.connect("autodoc-process-signature", signature_from_docstring)
    app.connect("autodoc-process-docstring", docstring_without_signature)
    app.connect("autodoc-skip-member", skip_foreign_member)
    return {"parallel_read_safe": True}
