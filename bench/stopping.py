"""A stop (SIGTERM, Ctrl-C) that no library can swallow.

A signal handler raises ``KeyboardInterrupt`` wherever the main thread happens to be, and
Keras has bare ``except:`` clauses (building a layer, matching outputs to losses) that
catch it there and go on: the run then finished as if never stopped. So the stop is also
remembered, and every epoch and trial boundary raises it again (``raise_if_stopped``,
``stop_check``). Where Python itself swallows it (a garbage-collection callback, such as
JAX's, or a ``__del__``), it would print "Exception ignored in ..." and a traceback: that
one is kept quiet, and delivered to the main thread again a moment later, so that code
which reaches no boundary (a hook's wait loop, a worker between trials) stops too.
"""

from __future__ import annotations

import os
import signal
import sys

_stopped = False
_signal: int | None = None  # the stop signal that came, for ``end_by_stop_signal``
_swallowed = False  # a stop Python swallowed, not raised again since

#: How long after Python swallowed a stop it is delivered again.
REDELIVERY_SECONDS = 0.05


def _stop(signum, frame):
    global _stopped, _signal, _swallowed
    _stopped, _signal, _swallowed = True, signum, False
    raise KeyboardInterrupt


def _deliver_again() -> None:
    """Delivers a swallowed stop to the main thread again, unless it was raised since."""
    import _thread
    import threading

    def again():
        if _swallowed:
            _thread.interrupt_main(_signal or signal.SIGINT)

    timer = threading.Timer(REDELIVERY_SECONDS, again)
    timer.daemon = True
    timer.start()


def _quiet_when_a_stop_is_swallowed(previous_hook):
    def hook(unraisable):
        global _swallowed
        if _stopped and isinstance(unraisable.exc_value, KeyboardInterrupt):
            _swallowed = True
            _deliver_again()
            return
        previous_hook(unraisable)

    hook.quiets_swallowed_stops = True
    return hook


def install_stop_handlers() -> None:
    """SIGTERM (a scheduler's or kill's stop) and Ctrl-C both stop the run from now on."""
    global _stopped, _signal, _swallowed
    _stopped, _signal, _swallowed = False, None, False
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not getattr(sys.unraisablehook, "quiets_swallowed_stops", False):
        sys.unraisablehook = _quiet_when_a_stop_is_swallowed(sys.unraisablehook)


def raise_if_stopped() -> None:
    """Raises ``KeyboardInterrupt`` again if a stop was asked for (and swallowed)."""
    global _swallowed
    if _stopped:
        _swallowed = False
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
