"""Scale-out on KerasTuner's own chief/worker mode, supervised.

The chief serves the study's oracle over gRPC with KerasTuner's ``OracleServicer``; each
worker is a ``BenchTuner`` whose oracle is KerasTuner's ``OracleClient`` (selected by
``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``). What
this module adds is what KerasTuner's mode lacks, each measured in ../shared/FACTS.md:

- the chief refuses a worker that runs another space or space version (the space's name
  and version travel in the worker's tuner id);
- a worker whose trials reach the consecutive-failure limit stops the study cleanly
  instead of dying with a gRPC error while the chief waits;
- workers pause while the oracle is busy (KerasTuner's client asks again at once) and
  say so when their chief stops answering (KerasTuner's client waits an hour): the
  client is in ``bench.tuning.worker_link``;
- under ``run --workers N`` a supervisor restarts a worker that died with the same
  tuner id, which gets its trial back, and records as failed a trial whose worker keeps
  dying, so the study always finishes;
- every worker appends to its own ``workers/<id>/epochs.csv``; the chief merges them into
  the run's ``epochs.csv`` in (trial, repeat, epoch) order, so each trial appears once,
  whichever worker ran it.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError, DiskFull, StudyFailed
from bench.results import RunDir, _replace_atomically, plain_name

#: Between a worker's id and its study's fingerprint in KERASTUNER_TUNER_ID.
SEPARATOR = "@"
#: Times a worker may die while running one trial before that trial is recorded failed.
MAX_DEATHS_PER_TRIAL = 2
#: Deaths in a row outside any trial after which the study stops.
MAX_DEATHS_BETWEEN_TRIALS = 3


def study_fingerprint(space_name: str, version) -> str:
    """What must match between the chief and a worker: the space and its version.

    KerasTuner takes any tuner id that contains "chief" for the chief's, so that word is
    written in capitals here.
    """
    return f"{space_name}.v{version}".replace("chief", "CHIEF")


def check_worker_id(name: str) -> None:
    """A worker's --id names its folder under the run's workers/ and its KerasTuner id."""
    # ".." would name the run folder itself: its merged epochs.csv.
    if not plain_name(name) or "chief" in name:
        raise BenchError(f"worker id {name!r} must be a letter or digit followed by letters, "
                         "digits, '.', '_' or '-', without the word 'chief' (for example "
                         "tuner0)")


def worker_tuner_id(name: str, fingerprint: str) -> str:
    check_worker_id(name)
    return f"{name}{SEPARATOR}{fingerprint}"


def worker_name(tuner_id: str) -> str:
    return tuner_id.partition(SEPARATOR)[0]


def worker_table(run: RunDir, name: str) -> Path:
    """The epochs table one worker appends to."""
    return run.path / "workers" / name / "epochs.csv"


def visible_gpus() -> list[str]:
    """The GPU ids this machine shows (CUDA_VISIBLE_DEVICES, else nvidia-smi), or []."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu for gpu in listed.split(",") if gpu.strip() not in ("", "-1")]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def worker_environment(index: int, *, workers: int, gpus: list[str]) -> dict:
    """Environment additions for local worker ``index``: one GPU each, round robin; when
    several share a GPU, memory is allocated as needed instead of all at once."""
    if not gpus:
        return {}
    env = {"CUDA_VISIBLE_DEVICES": gpus[index % len(gpus)]}
    if workers > len(gpus):
        env |= {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    return env


@contextmanager
def oracle_lock(oracle):
    """KerasTuner's lock of ``oracle``, released even when the call inside raises.

    Its ``synchronized`` decorator leaves the lock held after an exception (the
    consecutive-failure limit is one), which would stall every later call from another
    thread: the chief's gRPC thread and its supervisor share the oracle.
    """
    from keras_tuner.src.engine.oracle import LOCKS, THREADS

    name = threading.current_thread().name
    if THREADS[oracle] == name:
        yield
        return
    LOCKS[oracle].acquire()
    THREADS[oracle] = name
    try:
        yield
    finally:
        THREADS[oracle] = None
        LOCKS[oracle].release()


def end_trial(oracle, trial) -> bool:
    """``oracle.end_trial(trial)``; True when that reached KerasTuner's consecutive-failure
    limit (the trial's bookkeeping is then finished here)."""
    from bench.tuning.bench_tuner import CONSECUTIVE_FAILURES, end_at_failure_limit

    with oracle_lock(oracle):
        try:
            oracle.end_trial(trial)
        except RuntimeError as error:
            if CONSECUTIVE_FAILURES not in str(error).lower():
                raise
            end_at_failure_limit(oracle, trial.trial_id)
            return True
    return False


def _chief_servicer(oracle, *, fingerprint: str, described: str, failure_limit):
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine import trial as trial_module

    class ChiefServicer(OracleServicer):
        def __init__(self):
            super().__init__(oracle)
            self.failure: StudyFailed | BenchError | None = None
            self.refused: list[str] = []
            #: Workers that asked for a trial since they (re)started.
            self.asked: set[str] = set()

        def CreateTrial(self, request, context):  # noqa: N802 (gRPC's name)
            name, _, theirs = request.tuner_id.partition(SEPARATOR)
            if theirs != fingerprint:
                message = (f"the chief refused worker {name}: it runs space "
                           f"{theirs.replace('CHIEF', 'chief') or '(unknown)'}, the study "
                           f"runs {described}; start the worker with the same space file")
                self.refused.append(message)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)
            self.asked.add(name)
            if self.failure is not None:
                with oracle_lock(self.oracle):
                    # A worker restarted after the limit was reached: its trial will not
                    # run (it stays RUNNING on disk, and a resumed run runs it).
                    self.oracle.ongoing_trials.pop(request.tuner_id, None)
                    self.oracle.tuner_ids.discard(request.tuner_id)
                    self.stop_triggered = True
                stopped = trial_module.Trial(self.oracle.get_space(), trial_id="stopped",
                                             status=trial_module.TrialStatus.STOPPED)
                return protos.get_service().CreateTrialResponse(trial=stopped.to_proto())
            return super().CreateTrial(request, context)

        def _check_running(self, trial_id: str, context) -> None:
            running = {t.trial_id for t in dict(self.oracle.ongoing_trials).values()}
            if trial_id not in running:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"trial {trial_id} is not running on this chief (it was "
                              "recorded failed, or the chief was restarted since); this "
                              "worker is stale: stop it")

        def UpdateTrial(self, request, context):  # noqa: N802 (gRPC's name)
            self._check_running(request.trial_id, context)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request, context):  # noqa: N802 (gRPC's name)
            trial = trial_module.Trial.from_proto(request.trial)
            self._check_running(trial.trial_id, context)
            self.end(trial)
            return protos.get_service().EndTrialResponse()

        def end(self, trial) -> None:
            """Ends ``trial``; at the consecutive-failure limit the study stops (unless
            ``failure_limit`` says there is nothing left to stop): every worker is told
            so at its next request. The first trial that stopped it is the one named:
            a trial still running then may reach the limit again as it ends."""
            try:
                reached = end_trial(self.oracle, trial)
            except BenchError as error:
                # A mistake of the space that only this trial's values reach (a hook
                # declaring a hyperparameter): the study stops with it, as in one process.
                self.failure = self.failure or error
                return
            if reached and self.failure is None:
                self.failure = failure_limit()

    return ChiefServicer()


#: Lines TensorFlow, XLA and absl print at start-up: kept in the worker's log only.
BACKEND_CHATTER = re.compile(r"^(?:[IWEF]\d{4} |WARNING: All log messages before absl|"
                             r"To enable the following instructions|E0000 )")


#: Set by the supervisor in a local worker's environment: the pid the worker ends with.
CHIEF_PID = "BENCH_CHIEF_PID"


@dataclass
class LocalWorker:
    """One worker process started and watched by ``run --workers N``."""

    name: str
    command: list[str]
    env: dict
    log_path: Path  # everything the worker prints, the backends' chatter included
    process: subprocess.Popen | None = None
    restarts: int = 0
    deaths_between_trials: int = 0  # in a row: a worker that cannot even start is not
    #                                 restarted for ever
    output: list[str] = field(default_factory=list)
    log_cut: bool = False  # its log could not be written to the end (a full disk)
    forwarder: threading.Thread | None = None

    def start(self, log) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Undecodable bytes (a native library's) must not stop the pipe being read.
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1,
                                        errors="replace")

        def forward(stream, prefix=f"[{self.name}] "):
            # Whatever fails here, the pipe is read to its end: a worker whose output no
            # one reads blocks for ever once the pipe is full.
            kept = self._open_log(log)
            try:
                for line in stream:
                    kept = self._keep(kept, line, log=log)
                    line = line.rstrip()
                    self.output.append(line)
                    del self.output[:-20]
                    if line.strip() and not BACKEND_CHATTER.match(line):
                        try:
                            log(prefix + line)
                        except OSError:
                            pass  # the console is gone; the log and output keep it
            finally:
                if kept is not None:
                    kept.close()

        self.forwarder = threading.Thread(target=forward, args=(self.process.stdout,),
                                          daemon=True)
        self.forwarder.start()

    def _open_log(self, log):
        """The worker's log, open to append, or None where it cannot be (said once)."""
        try:
            return open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            return self._log_lost(None, error, log=log)

    def _keep(self, kept, line: str, *, log):
        """Appends ``line`` to the open log ``kept``; on a full disk the log stops and the
        output goes on to the console. Returns the log, or None once it stopped."""
        if kept is None:
            return None
        try:
            kept.write(line)
            kept.flush()
            return kept
        except OSError as error:
            return self._log_lost(kept, error, log=log)

    def _log_lost(self, kept, error: OSError, *, log) -> None:
        self.log_cut = True
        try:
            log(f"warning: cannot write {self.log_path} ({error.strerror or error}): "
                f"worker {self.name}'s output from here on is only in this console")
        except OSError:
            pass  # the console is gone too; the pipe is still read to its end
        try:
            if kept is not None:
                kept.close()
        except OSError:
            pass  # what it held could not be written either; the warning says so

    def output_read(self, seconds: float = 5) -> None:
        """Waits (a little) for the output of a process that has ended to be read."""
        if self.forwarder is not None:
            self.forwarder.join(timeout=seconds)


def stop_all(workers: list[LocalWorker]) -> None:
    """Sends every running worker SIGTERM (each stops at its next step), then waits for
    them, 15 seconds in all, and kills those still running."""
    running = [w.process for w in workers if w.process is not None and w.process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + 15
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Chief:
    """Serves a study's oracle to workers and, for local workers, supervises them.

    Args:
        oracle: The study's KerasTuner oracle, its project folder set (and reloaded when
            the run is resumed).
        run: The run directory every process shares.
        fingerprint: ``study_fingerprint`` of the study's space.
        described: The space as a user reads it ("seed version 2").
        failure_limit: Called when a trial's end reached KerasTuner's limit on failures in
            a row; returns the ``FailureLimit`` the study stops with, or None when no trial
            is left to stop (or none yet, while another still runs).
        on_trial_end: Called (no arguments) after trials end, to rewrite trials.csv.
    """

    def __init__(self, oracle, *, run: RunDir, fingerprint: str, described: str,
                 failure_limit, on_trial_end, log=print):
        self.oracle = oracle
        self.run = run
        self.log = log
        self.on_trial_end = on_trial_end
        self.servicer = _chief_servicer(oracle, fingerprint=fingerprint, described=described,
                                        failure_limit=failure_limit)
        self.server = None
        self.port = None
        self.deaths: dict[str, int] = {}

    def start(self, *, host: str, port: int) -> int:
        """Starts serving; returns the port (a free one when ``port`` is 0)."""
        from concurrent import futures

        import grpc
        from keras_tuner.src import protos

        self.oracle.verbose = 0
        self.oracle.save()
        # One thread, as KerasTuner's own chief: the oracle's calls stay in order.
        # Without SO_REUSEPORT a second chief on a port in use fails instead of sharing it.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1),
                                  options=[("grpc.so_reuseport", 0)])
        protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, self.server)
        try:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise BenchError(f"cannot serve on {host}:{port} (in use, or not this machine's "
                             "address); choose another --port or --host")
        self.server.start()
        return self.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=1)

    @property
    def failure(self) -> StudyFailed | BenchError | None:
        return self.servicer.failure

    def _search_over(self) -> bool:
        return (self.servicer.stop_triggered and not self.oracle.ongoing_trials
                and not self.oracle.tuner_ids)

    def _watch_trials(self, state: dict) -> None:
        ended = len(self.oracle.end_order)
        if ended != state.get("ended"):
            state["ended"] = ended
            self.on_trial_end()

    def serve_remote(self) -> None:
        """Waits until every worker has been told the study is over."""
        state: dict = {}
        while not self._search_over():
            time.sleep(1)
            self._watch_trials(state)
        self._watch_trials(state)

    def supervise(self, workers: list[LocalWorker]) -> None:
        """Runs the local workers until the oracle has stopped them all, restarting one
        that dies (same tuner id: it gets its trial back)."""
        state: dict = {}
        for worker in workers:
            worker.start(self.log)
        while True:
            self._watch_trials(state)
            running = 0
            for worker in workers:
                code = worker.process.poll()
                if code is None:
                    running += 1
                elif code > 0:
                    # It stopped itself (a refusal, a full disk, an error): restarting it
                    # would end the same way.
                    worker.output_read()  # its last line is its reason
                    reason = self._reason(worker)
                    kept = ("its output until its log could not be written" if worker.log_cut
                            else "its whole output")
                    failure = StudyFailed(f"worker {worker.name} stopped ({kept} is in "
                                          f"{worker.log_path}): {reason}")
                    failure.resumable = DiskFull.MARK in reason
                    raise failure
                elif code < 0:
                    worker.output_read()
                    self._worker_died(worker, code)
                    running += 1
            if running == 0:
                break
            time.sleep(0.5)
        self._watch_trials(state)

    def _reason(self, worker: LocalWorker) -> str:
        if self.servicer.refused:
            return self.servicer.refused[-1]
        errors = [line for line in worker.output if line.startswith("error: ")]
        last = (errors or worker.output or ["(no output)"])[-1].removeprefix("error: ")
        return last.removeprefix(f"worker {worker.name} stopped: ")

    def _worker_died(self, worker: LocalWorker, code: int) -> None:
        """A worker killed by a signal (SIGKILL, the out-of-memory killer) restarts."""
        ongoing = dict(self.oracle.ongoing_trials)  # a copy: the server thread changes it
        trial = next((t for tuner_id, t in ongoing.items()
                      if worker_name(tuner_id) == worker.name), None)
        waiting = None
        if trial is not None and worker.name not in self.servicer.asked:
            # It died restarting, before it asked for its trial back: not in that trial.
            waiting, trial = trial, None
        how = f"exit status {code}" if code > 0 else f"signal {-code}"
        if trial is not None:
            deaths = self.deaths[trial.trial_id] = self.deaths.get(trial.trial_id, 0) + 1
            if deaths >= MAX_DEATHS_PER_TRIAL:
                message = (f"its worker process died {deaths} times while running it "
                           f"(last: {how}); recorded as failed so the study goes on")
                self._record_failed(trial, message)
                self.log(f"[{worker.name}] trial {trial.trial_id}: {message}")
            else:
                self.log(f"[{worker.name}] died ({how}) in trial {trial.trial_id}; "
                         "restarting it with the same id, which runs that trial again")
        else:
            worker.deaths_between_trials += 1
            if worker.deaths_between_trials >= MAX_DEATHS_BETWEEN_TRIALS:
                raise StudyFailed(f"worker {worker.name} died {worker.deaths_between_trials} "
                                  f"times outside any trial (last: {how}); its output is in "
                                  f"{worker.log_path}")
            when = ("between trials" if waiting is None else "while restarting, before it "
                    f"asked for trial {waiting.trial_id} again")
            self.log(f"[{worker.name}] died ({how}) {when}; restarting it")
        if trial is not None:
            worker.deaths_between_trials = 0
        worker.restarts += 1
        self.servicer.asked.discard(worker.name)
        worker.start(self.log)

    def _record_failed(self, trial, message: str) -> None:
        from bench.results import write_json
        from bench.tuning.resume import extras_path

        write_json(extras_path(self.run.tuner / f"trial_{trial.trial_id}"),
                   {"error": message})
        trial.status = "FAILED"
        trial.message = message
        self.servicer.end(trial)


def merge_worker_tables(run: RunDir, *, header: list[str]) -> int:
    """Writes the run's ``epochs.csv`` from every worker's table: whole rows only, in
    (trial, repeat, epoch) order; returns the number of rows."""
    from bench.tuning.recording import _csv_line, whole_rows

    rows = []
    for path in sorted(run.path.glob("workers/*/epochs.csv")):
        first, whole = whole_rows(path)
        if first and next(csv.reader([first])) == header:
            rows += whole
    trial, repeat, epoch = (header.index(c) for c in ("trial_id", "repeat", "epoch"))
    rows.sort(key=lambda row: (row[0][trial], int(row[0][repeat]), int(row[0][epoch])))

    content = _csv_line(header) + "\r\n" + "".join(line for _, line in rows)
    _replace_atomically(run.epochs_csv, lambda partial: partial.write_bytes(content.encode()))
    return len(rows)


def local_worker_command(*, name: str, address: str, run: RunDir) -> list[str]:
    return [sys.executable, "-m", "bench", "worker", "--chief", address, "--run",
            str(run.path), "--id", name]
