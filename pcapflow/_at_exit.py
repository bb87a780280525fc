"""Buffered frames are written when the process ends, and never twice across a fork.

Frames wait in C buffers until a flush (submit(), close(), a FIN, collection
of the tracer). A tracer that is still referenced when the process ends (held
by a daemon thread, a module global in a multiprocessing worker, which ends
with os._exit) is never collected, so this module keeps weak references to
every tracer and closes them all:

- at exit (atexit, registered when pcapflow is imported, so it runs after
  the exit handlers registered later, which may still dump frames);
- before os.fork() (and so before multiprocessing's 'fork' workers start), so
  that the child inherits no pending bytes to write a second time; in the
  child, a tracer whose bytes could not be written before the fork drops
  them (the parent still holds them and writes them);
- when a multiprocessing child ends (util.Finalize with an exit priority,
  which util._exit_function runs before os._exit), registered in a process
  only once multiprocessing is imported there, and again in every child it
  starts (multiprocessing clears the finalizers it inherits).

close() leaves a tracer usable: files are reopened in append mode by the
next write. It is the C base class's close() that is called, not an
override, since it runs inside fork and exit hooks. A failure is reported as
a FlushWarning, one line per tracer, and the other tracers are still closed.
What this cannot save: frames of a process that ends through os._exit()
outside multiprocessing's exit path, or by a signal such as SIGKILL.
"""
import atexit
import os
import sys
import warnings
import weakref

from pcapflow import _core
from pcapflow.exceptions import FlushWarning

# multiprocessing's own finalizers: a Pool's 15, a Queue's 10 and -5; at 0
# ours runs in the first round, before the process joins its children
EXIT_PRIORITY = 0

_close = _core.TCPBase.close
_abandon = _core.TCPBase._abandon  # pylint: disable=protected-access

_tracers = {}  # id(tracer) -> weak reference; a plain dict, copied in one C call
_not_flushed_before_fork = []  # ids of the tracers the last fork found busy or failing
_finalizer = None  # this process's multiprocessing.util.Finalize
_after_fork_hooked = False


class _Token:  # pylint: disable=too-few-public-methods
    """A weakly referenceable owner for multiprocessing's after-fork hook."""


_token = _Token()


def register(tracer):
    """Close tracer at exit and before a fork from now on (until it is collected)."""
    key = id(tracer)

    def forget(ref, key=key, tracers=_tracers):  # bound now: may run at interpreter shutdown
        if tracers.get(key) is ref:
            del tracers[key]

    _tracers[key] = weakref.ref(tracer, forget)
    _hook_multiprocessing()


def _live():
    return [tracer for tracer in (ref() for ref in list(_tracers.values())) if tracer is not None]


def _describe(tracer):
    try:
        return repr(tracer)
    except Exception:  # pylint: disable=broad-except
        return f"<{type(tracer).__name__} at {id(tracer):#x}>"


def _report(tracer, when, error):
    message = f"frames buffered in {_describe(tracer)} could not be written {when}: {error}"
    try:
        warnings.warn_explicit(message, FlushWarning, "pcapflow", 0, module="pcapflow")
    except Exception:  # pylint: disable=broad-except
        # warnings turned into errors (-W error): at exit there is no one to
        # raise to, so the same single line goes to stderr
        try:
            print(f"pcapflow: FlushWarning: {message}", file=sys.stderr)
        except Exception:  # pylint: disable=broad-except
            pass


def close_all():
    """Write every live tracer's buffered frames and close its files (at exit).

    What cannot be written is reported, then dropped: the collection of the
    tracer at shutdown would otherwise try again and report it a second time."""
    for tracer in _live():
        try:
            _close(tracer)
        except Exception as error:  # pylint: disable=broad-except
            _report(tracer, "at exit", error)
            try:
                _abandon(tracer)
            except Exception:  # pylint: disable=broad-except
                pass  # busy in another thread: nothing more to do here


def _before_fork():
    _hook_multiprocessing()  # before the child is made, so that it inherits the hook
    del _not_flushed_before_fork[:]
    for tracer in _live():
        try:
            _close(tracer)
        except RuntimeError:
            # tracing a capture in another thread: the parent goes on with
            # it; the child must not write its copy
            _not_flushed_before_fork.append(id(tracer))
        except Exception as error:  # pylint: disable=broad-except
            _not_flushed_before_fork.append(id(tracer))
            _report(tracer, "before fork", error)


def _after_fork_in_child():
    for key in _not_flushed_before_fork:
        ref = _tracers.get(key)
        tracer = ref() if ref is not None else None
        if tracer is None:
            continue
        try:
            # the parent's bytes, which the parent writes, are forgotten here;
            # frames the child adds later are the child's to write
            _abandon(tracer)
        except RuntimeError:
            # busy in a thread the child does not have: never closed here
            _tracers.pop(key, None)
    del _not_flushed_before_fork[:]
    _hook_multiprocessing()


def _after_fork_in_parent():
    del _not_flushed_before_fork[:]


def _hook_multiprocessing(_token_unused=None):
    """Where multiprocessing is imported, close the tracers in its exit path too.

    A process that multiprocessing starts ends through util._exit_function()
    and os._exit(): atexit handlers do not run, util.Finalize callbacks with
    an exit priority do. A child clears the finalizers it inherits, then runs
    the after-fork hooks, where this registers its own again."""
    global _finalizer, _after_fork_hooked  # pylint: disable=global-statement
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    if _finalizer is None or not _finalizer.still_active():
        _finalizer = util.Finalize(None, close_all, exitpriority=EXIT_PRIORITY)
    if not _after_fork_hooked:
        util.register_after_fork(_token, _hook_multiprocessing)
        _after_fork_hooked = True


atexit.register(close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child,
                        after_in_parent=_after_fork_in_parent)
