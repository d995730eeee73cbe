"""A worker's side of its link to the chief: KerasTuner's oracle client made patient
(it pauses while the oracle is busy, says when the chief stops answering and stops at
once when told to) and, in a local worker, ending with the chief that started it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from bench.command import command
from bench.errors import BenchError
from bench.stopping import raise_if_stopped
from bench.tuning.distributed import CHIEF_PID, worker_name

#: A worker asks the chief again after this long when the oracle had no trial ready.
IDLE_PAUSE_SECONDS = 0.5
#: A worker says so when the chief has not answered a request for this long (KerasTuner's
#: client waits an hour, silently, for a chief that was killed).
CHIEF_SILENCE_SECONDS = 15.0
#: How long a local worker whose chief is gone may take to stop before it is killed.
ORPHAN_GRACE_SECONDS = 20.0

def patient_client(client, *, run: Path, log=print):
    """KerasTuner's ``OracleClient`` for a worker, which pauses while the oracle is busy,
    turns the chief's refusal into one line and says when the chief stops answering."""
    import grpc
    from keras_tuner.src.distribute.oracle_client import OracleClient
    from keras_tuner.src.engine import trial as trial_module

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    name = worker_name(os.environ["KERASTUNER_TUNER_ID"])

    def silence_said():
        if os.environ.get(CHIEF_PID):  # a local chief: its workers end with it
            what = "waiting for it"
        else:
            resume = command("chief", "--resume", run,
                             "--port", os.environ["KERASTUNER_ORACLE_PORT"])
            what = (f"waiting for it (KerasTuner's client waits up to an hour). If the chief "
                    f"was stopped, '{resume}' continues the study; then start the workers "
                    "again. Ctrl-C stops this worker")
        log(f"worker {name}: the chief at {address} has not answered for "
            f"{CHIEF_SILENCE_SECONDS:.0f} s; {what}")

    def watched(call):
        def wrapped(*args, **kwargs):
            # A stop that some library swallowed (a bare ``except:``) is raised here, not
            # after the call: KerasTuner's client waits up to an hour for a chief that is
            # gone, and a worker whose chief was killed got its SIGTERM just before it
            # reported its trial's end (found in test_distributed, 1 run in 8 under load).
            # A trial whose end a stopped worker does not report runs again, as one it
            # was stopped in does.
            raise_if_stopped()
            said = threading.Event()
            timer = threading.Timer(CHIEF_SILENCE_SECONDS,
                                    lambda: (silence_said(), said.set()))
            timer.daemon = True
            timer.start()
            try:
                answer = call(*args, **kwargs)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    raise BenchError(error.details()) from None
                raise
            finally:
                timer.cancel()
                timer.join()
            if said.is_set():
                log(f"worker {name}: the chief at {address} answers again")
            return answer
        return wrapped

    class PatientOracleClient(OracleClient):
        get_space = watched(OracleClient.get_space)
        update_space = watched(OracleClient.update_space)
        update_trial = watched(OracleClient.update_trial)
        end_trial = watched(OracleClient.end_trial)
        get_trial = watched(OracleClient.get_trial)
        get_best_trials = watched(OracleClient.get_best_trials)

        @watched
        def create_trial(self, tuner_id):
            trial = super().create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.IDLE:
                time.sleep(IDLE_PAUSE_SECONDS)
            return trial

    return PatientOracleClient(client._oracle)  # noqa: SLF001 (the wrapped local oracle)


def end_with_chief(*, grace: float = ORPHAN_GRACE_SECONDS) -> None:
    """In a local worker: end with the chief that started it (SIGKILL included), since an
    orphan would wait an hour for a chief that is gone (KerasTuner's RPC timeout).

    The worker sets this itself, after it started, rather than through ``Popen``'s
    ``preexec_fn``: Python code between fork and exec in a chief that serves gRPC ran
    gRPC's fork handlers in the child, which sometimes died of a signal before it ran.
    Nothing where there is no ``prctl`` (not Linux) or no chief pid in the environment.
    """
    chief = os.environ.get(CHIEF_PID)
    if not chief:
        return
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    _end_when_orphaned(int(chief), grace=grace)
    if os.getppid() != int(chief):  # the chief ended before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _end_when_orphaned(chief: int, *, grace: float) -> None:
    """Kills this process ``grace`` seconds after ``chief`` (its parent) is gone, should
    the SIGTERM's orderly stop not have ended it by then: code that swallows the stop, or
    ignores SIGTERM, must not keep an orphan (and its GPU) alive for an hour."""
    def watch():
        while os.getppid() == chief:
            time.sleep(1)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="end-when-orphaned", daemon=True).start()
