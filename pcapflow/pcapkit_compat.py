"""Switching pcapkit over to pcapflow's tracer, reassemblies and follow_tcp_stream."""

# (namespace, name) -> what pcapkit had there before use_in_pcapkit()
_saved: dict = {}


def _swaps():
    """(namespace, name, pcapflow's object) for everything use_in_pcapkit() replaces."""
    # pylint: disable=import-outside-toplevel
    import pcapkit.interface.core as core
    import pcapkit.interface.misc as misc
    from pcapkit.foundation.extraction import Extractor

    from pcapflow import reassembly
    from pcapflow.follow_compat import follow_tcp_stream

    tcp, ipv4, ipv6 = (pcapkit_reassembly_class(cls) for cls in (reassembly.TCP, reassembly.IPv4, reassembly.IPv6))
    return [
        # pcapkit.extract(..., trace=True, tcp=True): the tracer class is looked up for every extraction
        (Extractor.__traceflow__, "tcp", pcapkit_tracer_class()),
        # pcapkit.extract(..., reassembly=True): so are the reassembly classes
        (Extractor.__reassembly__, "ipv4", ipv4),
        (Extractor.__reassembly__, "ipv6", ipv6),
        (Extractor.__reassembly__, "tcp", tcp),
        # pcapkit.reassemble('TCP') and friends
        (vars(core), "IPv4_Reassembly", ipv4),
        (vars(core), "IPv6_Reassembly", ipv6),
        (vars(core), "TCP_Reassembly", tcp),
        (vars(misc), "follow_tcp_stream", follow_tcp_stream),
    ]


def use_in_pcapkit(enable=True):
    """Make pcapkit use pcapflow: pcapkit.extract(..., trace=True, tcp=True) traces TCP
    flows with pcapflow.TCP, pcapkit.extract(..., reassembly=True) and pcapkit.reassemble()
    reassemble with pcapflow.reassembly's TCP, IPv4 and IPv6, and
    pcapkit.interface.misc.follow_tcp_stream is pcapflow.follow_tcp_stream.

    Calling it again changes nothing; use_in_pcapkit(False) puts pcapkit's own back."""
    swaps = _swaps()
    if not enable:
        for namespace, name, _ in swaps:
            key = (id(namespace), name)
            if key in _saved:
                namespace[name] = _saved.pop(key)
        return
    for namespace, name, ours in swaps:
        key = (id(namespace), name)
        if key not in _saved:
            _saved[key] = namespace[name]
        namespace[name] = ours


_tracer_class = None
_registered = set()


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


def pcapkit_reassembly_class(cls):
    """A pcapflow.reassembly class, registered as a subclass of pcapkit's Reassembly
    so that pcapkit's checks (issubclass, Extractor.register_reassembly) accept it."""
    if cls not in _registered:
        import abc  # pylint: disable=import-outside-toplevel

        from pcapkit.foundation.reassembly.reassembly import Reassembly  # pylint: disable=import-outside-toplevel

        # ABCMeta's register: pcapkit's class method of that name registers callbacks
        abc.ABCMeta.register(Reassembly, cls)
        _registered.add(cls)
    return cls
