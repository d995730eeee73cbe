"""A stop (SIGTERM, Ctrl-C) that no library can swallow.

A signal handler raises ``KeyboardInterrupt`` wherever the main thread happens to be, and
Keras has bare ``except:`` clauses (building a layer, matching outputs to losses) that
catch it there and go on: the run then finished as if never stopped. So the stop is also
remembered, and every epoch and trial boundary raises it again (``raise_if_stopped``,
``stop_check``). Where Python itself swallows it (a garbage-collection callback, such as
JAX's, or a ``__del__``), it would print "Exception ignored in ..." and a traceback; that
one is kept quiet, since the stop is remembered all the same.
"""

from __future__ import annotations

import os
import signal
import sys

_stopped = False
_signal: int | None = None  # the stop signal that came, for ``end_by_stop_signal``


def _stop(signum, frame):
    global _stopped, _signal
    _stopped, _signal = True, signum
    raise KeyboardInterrupt


def _quiet_when_a_stop_is_swallowed(previous_hook):
    def hook(unraisable):
        if _stopped and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        previous_hook(unraisable)

    hook.quiets_swallowed_stops = True
    return hook


def install_stop_handlers() -> None:
    """SIGTERM (a scheduler's or kill's stop) and Ctrl-C both stop the run from now on."""
    global _stopped, _signal
    _stopped, _signal = False, None
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not getattr(sys.unraisablehook, "quiets_swallowed_stops", False):
        sys.unraisablehook = _quiet_when_a_stop_is_swallowed(sys.unraisablehook)


def raise_if_stopped() -> None:
    """Raises ``KeyboardInterrupt`` again if a stop was asked for (and swallowed)."""
    if _stopped:
        raise KeyboardInterrupt


def stop_check():
    """A Keras callback that raises a swallowed stop at each epoch's start, for a fit
    without the suite's recorder (the source pretraining)."""
    import keras

    class RaiseIfStopped(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            raise_if_stopped()

    return RaiseIfStopped()


def end_by_stop_signal() -> None:
    """Ends this process by the stop signal that came, as if it had no handler, so that
    whoever started it sees a process killed by that signal (a chief restarts a local
    worker killed by a signal). Returns when no stop signal came."""
    if _signal is None:
        return
    signal.signal(_signal, signal.SIG_DFL)
    os.kill(os.getpid(), _signal)
