"""Switching pcapkit's extractor over to pcapflow's tracer."""

_saved: dict = {}


def use_in_pcapkit(enable=True):
    """Make pcapkit.extract(..., trace=True, tcp=True) trace TCP flows with pcapflow.

    pcapkit looks its tracer up in Extractor.__traceflow__['tcp'] for every
    extraction; this puts a pcapflow tracer class there (and, with
    enable=False, puts pcapkit's own back)."""
    from pcapkit.foundation.extraction import Extractor  # pylint: disable=import-outside-toplevel

    registry = Extractor.__traceflow__
    if not enable:
        if "tcp" in _saved:
            registry["tcp"] = _saved.pop("tcp")
        return
    if "tcp" not in _saved:
        _saved["tcp"] = registry["tcp"]
    registry["tcp"] = pcapkit_tracer_class()


_tracer_class = None


def pcapkit_tracer_class():
    """pcapflow.TCP, also registered as a subclass of pcapkit's TraceFlow so
    pcapkit's checks (issubclass) accept it."""
    global _tracer_class  # pylint: disable=global-statement
    if _tracer_class is None:
        from pcapkit.foundation.traceflow.traceflow import TraceFlowBase  # pylint: disable=import-outside-toplevel

        from pcapflow.tcp import TCP  # pylint: disable=import-outside-toplevel

        TraceFlowBase.register(TCP)
        _tracer_class = TCP
    return _tracer_class
