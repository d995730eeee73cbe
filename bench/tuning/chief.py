"""The two ends of a distributed study: ``ChiefStudy`` serves a run's oracle (and starts
the local workers of ``run --workers N``), ``run_worker`` runs trials for a chief."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench.command import command
from bench.errors import BenchError, FailureLimit
from bench.results import (
    RunDir,
    read_epochs,
    read_run,
    summarise_trials,
    write_csv,
    write_json,
)
from bench.tuning.distributed import (
    CHIEF_PID,
    Chief,
    LocalWorker,
    check_worker_id,
    local_worker_command,
    merge_worker_tables,
    stop_all,
    study_fingerprint,
    visible_gpus,
    worker_environment,
    worker_table,
    worker_tuner_id,
)
from bench.tuning.worker_link import end_with_chief


class ChiefStudy:
    """A run's search served to workers. ``run()`` returns when the oracle has stopped
    every worker; ``write_trials()`` merges the workers' tables into the run's."""

    def __init__(self, scale, *, oracle, plan, run_dir: RunDir, record: dict, resumed, log):
        from bench.tuning.recording import epoch_columns

        self.scale = scale
        self.oracle = oracle
        self.plan = plan
        self.run_dir = run_dir
        self.record = record
        self.log = log
        self.header = epoch_columns(plan.columns, plan.space.epoch_columns)
        oracle._set_project_dir(str(run_dir.path), "tuner")  # noqa: SLF001 (as a Tuner does)
        if resumed is not None:
            if run_dir.epochs_csv.exists() and not (run_dir.path / "workers").is_dir():
                # A run started in one process: its rows join the workers' tables.
                earlier = worker_table(run_dir, "earlier")
                earlier.parent.mkdir(parents=True)
                shutil.move(run_dir.epochs_csv, earlier)
            if (run_dir.tuner / "oracle.json").exists():
                oracle.reload()  # the trial that was running goes back to the queue
        space = plan.space
        self.chief = Chief(oracle, run=run_dir,
                           fingerprint=study_fingerprint(space.name, space.version),
                           described=f"{space.name} version {space.version}",
                           failure_limit=self._failure_limit,
                           on_trial_end=self.write_trials, log=log)

    def _failure_limit(self) -> FailureLimit | None:
        from bench.tuning.resume import recorded_failure_limit

        return recorded_failure_limit(self.oracle, plan=self.plan, run=self.run_dir)

    def write_trials(self) -> None:
        from bench.tuning.bench_tuner import trial_rows
        from bench.tuning.resume import earlier_extras

        merge_worker_tables(self.run_dir, header=self.header)
        trials = dict(self.oracle.trials)  # a copy: the server thread adds to it
        extras = earlier_extras(self.run_dir, keep=set(trials))
        rows = trial_rows(trials, extras, space=self.plan.space, columns=self.plan.columns)
        write_csv(self.run_dir.trials_csv,
                  summarise_trials(read_epochs(self.run_dir), rows, self.plan.columns))

    def run(self) -> None:
        scale = self.scale
        host = scale.host if scale.remote else "127.0.0.1"
        port = self.chief.start(host=host, port=scale.port)
        address = f"{host}:{port}"
        self.record["distributed"] |= {"chief": address}
        write_json(self.run_dir.run_json, self.record)
        try:
            if scale.remote:
                if host in ("0.0.0.0", "::", "[::]"):
                    import socket

                    address = f"{socket.gethostname()}:{port}"
                worker = command("worker", "--chief", address, "--run", self.run_dir.path,
                                 "--id", "NAME")
                self.log(f"chief serving on {address}; start workers with: {worker}")
                self.chief.serve_remote()
            else:
                gpus = visible_gpus()
                workers = [LocalWorker(
                    name=f"tuner{i}", log_path=self.run_dir.path / "workers" / f"tuner{i}"
                    / "log.txt",
                    command=local_worker_command(name=f"tuner{i}", address=address,
                                                 run=self.run_dir),
                    env=os.environ | worker_environment(i, workers=scale.workers, gpus=gpus)
                    | {"PYTHONUNBUFFERED": "1", CHIEF_PID: str(os.getpid())})
                    for i in range(scale.workers)]
                on = f" on GPUs {', '.join(gpus)}" if gpus else ""
                self.log(f"chief on {address}: {scale.workers} worker process(es){on}")
                try:
                    self.chief.supervise(workers)
                finally:
                    stop_all(workers)
                    self.record["distributed"] |= {
                        "restarts": {w.name: w.restarts for w in workers if w.restarts}}
        finally:
            self.chief.stop()
        if self.chief.failure is not None:
            self.write_trials()
            raise self.chief.failure


#: How long a worker waits for run.json once the chief answers: the chief writes it before
#: it serves, so only a shared disk slow to show it needs this long (Linux's NFS client
#: caches a directory's attributes and a name's absence for up to 60 s by default).
ANSWERED_GRACE_SECONDS = 120


def _wait_for_run(run: RunDir, *, address: str, wait_seconds: float, log) -> dict:
    """The run's record once its chief has written it (a worker may start first)."""
    deadline = time.monotonic() + wait_seconds
    told = False
    answered = None  # when the chief was first seen answering
    next_probe = time.monotonic()
    while True:
        if run.run_json.exists():
            record = read_run(run)
            if record.get("status") == "running":
                return record
            raise BenchError(f"{run.path} is {record.get('status')}, not running; start its "
                             f"chief first (run --workers, or '{command('chief')}')")
        now = time.monotonic()
        if answered is None and now >= next_probe:
            next_probe = now + 5
            if _answers(address, seconds=1):
                answered = now
        if answered is not None and now - answered > ANSWERED_GRACE_SECONDS:
            missing = "has no run.json" if run.path.is_dir() else "does not exist"
            raise BenchError(f"the chief at {address} is serving, but {run.path} {missing} "
                             "(the chief writes its run.json before it serves): --run must "
                             "name the run folder the chief printed, on a disk this machine "
                             "shares")
        if now > deadline:
            raise BenchError(f"no run.json appeared in {run.path} within {wait_seconds:.0f} s; "
                             "check that --run names the chief's run folder on a shared disk")
        if not told:
            log(f"waiting for the chief to write {run.run_json}")
            told = True
        time.sleep(1)


def _answers(address: str, *, seconds: float) -> bool:
    """Whether a gRPC server answers at ``address`` within ``seconds``."""
    import grpc

    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=seconds)
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()
    return True


def _reach(address: str, *, seconds: float) -> None:
    """Fails in one line when nothing answers at ``address`` (KerasTuner's own client
    would wait an hour on a mistyped --chief)."""
    if not _answers(address, seconds=seconds):
        raise BenchError(f"no chief answers at {address} after {seconds:.0f} s; check --chief "
                         "against the address the chief printed")


_HELD = []  # the lock files of this process's worker ids, open until it exits


def _hold_worker_id(folder: Path, name: str) -> None:
    """Refuses a second live worker with the same id: both would write one table."""
    import fcntl

    handle = open(folder / "lock", "w")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise BenchError(f"another live worker has --id {name} in this run; give each worker "
                         "its own --id") from None
    _HELD.append(handle)


def _refuse_other_inputs(record: dict, mine: dict) -> None:
    from bench.tuning.resume import changed_inputs

    changes = changed_inputs(record, mine)
    if changes:
        raise BenchError(f"this worker's inputs differ from the chief's: {'; '.join(changes)}"
                         ". Its trials would enter the run's tables as if made on the chief's;"
                         " install the versions in the run's run.json and use the same data")


def run_worker(*, chief: str, run_path: Path, name: str, wait_seconds: float = 3600,
               log=print) -> None:
    """Runs trials for the chief at ``chief`` (HOST:PORT) until it says the study is over.

    The run folder (and the weights cache) must be the chief's, on a shared disk: the
    worker reads its settings from ``run.json`` and writes its epochs to
    ``workers/NAME/epochs.csv`` and each trial's results into ``tuner/``.
    """
    end_with_chief()
    host, _, port = chief.rpartition(":")
    if not host or not port.isdigit():
        raise BenchError(f"--chief {chief} must be HOST:PORT, for example node1:8000")
    if not 0 < int(port) < 65536:
        raise BenchError(f"--chief {chief}: the port must be between 1 and 65535")
    check_worker_id(name)
    if Path(run_path).is_file():
        raise BenchError(f"--run {run_path} is a file; pass the chief's run folder (the one "
                         "holding run.json)")
    run = RunDir(Path(run_path))
    if run.run_json.exists() and read_run(run).get("status") == "completed":
        # Not a mistake: a late worker of a job array finds nothing left to do.
        log(f"worker {name}: {run.path} has completed: no trial is left for a worker")
        return
    plan, data, inputs = _worker_inputs(run, address=f"{host}:{port}",
                                        wait_seconds=wait_seconds, log=log)
    space = plan.space
    tuner_id = worker_tuner_id(name, study_fingerprint(space.name, space.version))
    os.environ |= {"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": host,
                   "KERASTUNER_ORACLE_PORT": port}
    _search_for_chief(plan, run=run, name=name, data=data, inputs=inputs, log=log)
    log(f"worker {name}: the chief has no more trials")


def _worker_inputs(run: RunDir, *, address: str, wait_seconds: float, log) -> tuple:
    """The study's plan, data and model inputs as the chief's ``run.json`` records them,
    once a chief answers at ``address``; refuses a worker whose space, libraries, weights
    or data differ from the chief's."""
    import keras

    from bench.device import library_versions
    from bench.plan import plan_study
    from bench.runner import prepare_inputs
    from bench.space import space_identity
    from bench.tuning.resume import recorded_spec, space_change

    record = _wait_for_run(run, address=address, wait_seconds=wait_seconds, log=log)
    plan = plan_study(recorded_spec(run), new=False)
    _reach(address, seconds=min(wait_seconds, 120))
    change = space_change(record.get("space", {}), space_identity(plan.space))
    if change:
        # The chief refuses another version too; saying so here touches no file of the run.
        raise BenchError(f"this worker's space is not the run's: the run ran {change}; "
                         "start the worker with the same space file")
    _refuse_other_inputs(record, {"backend": keras.backend.backend(),
                                  "versions": library_versions()})
    data, weights, facts = prepare_inputs(plan.spec, settings=plan.settings,
                                          backbone=plan.backbone, hp=plan.hp,
                                          image_size=plan.image_size, log=log)
    _refuse_other_inputs(record, facts)
    return plan, data, plan.model_inputs(data, weights)


def _search_for_chief(plan, *, run: RunDir, name: str, data, inputs, log) -> None:
    """This worker's search: trials from the chief (KerasTuner's client, selected by the
    environment), rows into its own table, what it found into its own record."""
    from bench.runner import build_tuner, study_oracle
    from bench.tuning.recording import CsvAppender, epoch_columns
    from bench.tuning.resume import ended_trials, tidy_epochs
    from bench.tuning.search_record import WORKER_RECORD, combined, read_record, search_record

    table_path = worker_table(run, name)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    _hold_worker_id(table_path.parent, name)
    # Rows of a trial this worker did not finish (it was killed) go: it runs it again.
    tidy_epochs(run, keep=set(ended_trials(run)), path=table_path)
    oracle = study_oracle(plan)  # local only: KerasTuner's client forwards to the chief
    table = CsvAppender(table_path, epoch_columns(plan.columns, plan.space.epoch_columns))
    # What this worker found (its notes, its counts), for the chief's run.json; a worker
    # restarted after a kill adds to what it had written before.
    record_path = table_path.parent / WORKER_RECORD
    earlier = read_record(record_path)
    if record_path.exists() and not earlier:
        log(f"warning: worker {name}: {record_path} is damaged; the notes and counts of this "
            "worker's earlier trials are lost from run.json (its tables are whole)")
    try:
        tuner, prefix = build_tuner(plan, oracle=oracle, data=data, inputs=inputs,
                                    run_dir=run, table=table, log=log, worker=True)
        tuner.after_trial = lambda: write_json(
            record_path, combined([*earlier, search_record(tuner, prefix)]))
        log(f"worker {name}: asking {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']} for trials")
        tuner.search(verbose=0)
    finally:
        table.close()
