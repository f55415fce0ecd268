"""Ctrl-C and SIGTERM as exceptions that end a run KILLED, never lost."""

from __future__ import annotations

import contextlib
import signal


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM.

    A ``BaseException`` like ``KeyboardInterrupt``, so ordinary
    ``except Exception`` blocks (Keras', keras-tuner's) do not swallow it.
    """


# Signals whose exception may not have reached the code that acts on it:
# Python runs a handler at whatever bytecode the main thread is on, and an
# exception raised inside a finalizer (``__del__``, a weakref callback: the
# garbage collector runs them at arbitrary points) is printed as "Exception
# ignored" and dropped. Training then goes on as if Ctrl-C was never pressed.
# ``raise_if_signalled``, called at every epoch's end, raises it again.
_PENDING: list[int] = []


def _raise_terminated(signum, frame):
    _PENDING.append(signum)
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def _interrupt(signum, frame):
    _PENDING.append(signum)
    raise KeyboardInterrupt


def _raise_for(signum):
    """The exception ``signum`` raises while a run is open."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def raise_if_signalled():
    """Raise again a Ctrl-C or SIGTERM whose exception was swallowed."""
    if _PENDING:
        signum = _PENDING[0]
        _PENDING.clear()
        _raise_for(signum)


@contextlib.contextmanager
def terminate_as_exception():
    """While active, SIGTERM raises ``Terminated`` and Ctrl-C
    ``KeyboardInterrupt`` in the main thread, and both are remembered until
    the run is closed (see ``raise_if_signalled``). A SIGINT the process was
    started ignoring (a background job's) stays ignored."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _PENDING.clear()


@contextlib.contextmanager
def signals_held():
    """While a run is being closed, a second Ctrl-C or SIGTERM waits: it is
    noted, and raised once the run's status is written. Without this a
    second Ctrl-C lands in the middle of the close and leaves the run RUNNING."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def note(signum, frame):
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:  # already on the way out: pass the signal on as it would have been
        _raise_for(received[0])
