"""Holding SIGINT and SIGTERM back for a moment: while a frame is written to a
text file, while the frames read are written after an interrupt."""
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class HeldSignals:
    """Within the block, the Python handlers of SIGINT and SIGTERM (a KeyboardInterrupt,
    say) do not run when the signal comes but when deliver() is called. Leaving the
    block puts the handlers back; the signals still pending are then delivered if
    `deliver_on_exit`, else they wait for a call of deliver() (or are dropped). Only the main thread sets handlers: elsewhere,
    and for signals ignored or left to the system, nothing changes."""

    def __init__(self, deliver_on_exit=True):
        self.deliver_on_exit = deliver_on_exit
        self.pending = []
        self.saved = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if callable(handler):
                    self.saved[signum] = handler
                    signal.signal(signum, self._hold)
        return self

    def _hold(self, signum, frame):  # pylint: disable=unused-argument
        self.pending.append(signum)

    def deliver(self):
        """Runs the handler of each signal that came since the last call, in order."""
        while self.pending:
            signum = self.pending.pop(0)
            self.saved[signum](signum, None)

    def __exit__(self, *exc_info):
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        if self.deliver_on_exit:
            self.deliver()
        return False
