"""``run --resume RUN_DIR``: continue a run that was killed or interrupted.

The run's own ``run.json`` says what it was asked to do; KerasTuner's project folder
(``tuner/``) says which trials ended. Trials that ended (completed or failed) are kept as
they are and never run again; the trial that was running is run again from its start,
and its partial rows are removed first, so no (trial, repeat, epoch) appears twice. Every
execution sets its own seed, so the resumed tables equal an uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from bench.command import command
from bench.errors import BenchError, FailureLimit
from bench.results import RunDir, process_is_here, read_run, write_json
from bench.tuning.search_record import COUNTS, WORKER_RECORD, add_notes, combined, worker_records

#: RunSpec fields that hold paths in run.json's "arguments".
PATH_FIELDS = ("spaces_dir", "results_dir", "cache_dir", "data", "data_dir")
#: Libraries whose version can change a trial's numbers, besides the backend's framework
#: (named like the backend: tensorflow, jax, torch).
NUMERIC_LIBRARIES = ("python", "keras", "keras-tuner", "numpy", "pillow")
#: Trial states after which a trial is never run again.
ENDED = ("COMPLETED", "FAILED", "INVALID")


def resume_spec(run_dir: Path, *, given: dict, spelled: dict | None = None):
    """The RunSpec the run at ``run_dir`` was started with.

    Args:
        run_dir: The run to continue.
        given: Options given on this command line besides ``--resume``; one that differs
            from the run's own is refused, since a resumed run must be the same study.
        spelled: For messages, each option's destination as typed and whether it is a
            flag (``{"reuse_models": ("--no-reuse", True)}``); by default the field's name
            with dashes (``cache_dir`` as ``--cache-dir``).

    Raises:
        BenchError: when the folder is not a run, the run has completed, or an option
            conflicts.
    """
    run = RunDir(Path(run_dir))
    if not run.run_json.exists() or not run.tuner.is_dir():
        raise BenchError(f"{run_dir} is not a run that can be resumed (no run.json or tuner/); "
                         f"pass a run directory made by '{command('run')}'")
    record = read_run(run)
    if record.get("status") == "completed":
        rebuild = ("" if (run.path / "report.md").exists() else
                   f"; its report was not written (stopped after the tables): "
                   f"'{command('analyze', run_dir)}' writes it")
        raise BenchError(f"{run_dir} has completed; there is nothing to resume{rebuild}")
    pid = (record.get("process") or {}).get("pid")
    if record.get("status") == "running" and pid is not None \
            and process_is_here(record["process"]):
        # read_run found its process alive: two processes would write one run's tables.
        raise BenchError(f"{run_dir} is still running (process {pid} on this machine); "
                         f"stop it first (kill {pid}: it keeps what finished), then resume")
    if record.get("failure_limit") or (record.get("status") == "failed"
                                       and FailureLimit.MARK in str(record.get("error"))):
        raise BenchError(f"{run_dir} was stopped by KerasTuner's limit on trials failing in a "
                         "row; KerasTuner counts those failures again, so a resumed run "
                         "would stop at its next trial. "
                         "Its report.md says why each trial failed: fix that, then start a "
                         "new run")
    from bench.plan import RunSpec

    arguments = record.get("arguments", {})
    start = started_in(run, arguments)
    for name, value in given.items():
        # An option newer than the run: it ran as that option's default does.
        default = RunSpec.__dataclass_fields__[name].default
        recorded = arguments.get(name, None if default is MISSING else default)
        resolved = _resolved(record, name)
        if not _same(name, value, recorded, start=start) and not (
                resolved is not None and str(value) == str(resolved)):
            option, flag = (spelled or {}).get(name, ("--" + name.replace("_", "-"), False))
            if flag:
                raise BenchError(f"{option} conflicts with the run, which ran without it; a "
                                 f"resumed run keeps its settings: drop {option}")
            own = f"{option} {recorded}" if recorded is not None else f"no {option}"
            if recorded is None and resolved is not None:
                own += f" (so {resolved})"
            raise BenchError(f"{option} {value} conflicts with the run, which had {own}; a "
                             f"resumed run keeps its settings: drop {option}")
    return recorded_spec(run, record=record)


#: Options whose value a run records as resolved (the space's setting where the option
#: was not given) under ``settings`` in ``run.json``.
RESOLVED_SETTINGS = ("dataset", "backbone", "image_size", "epochs", "batch_size", "repeats",
                     "max_trials")


def _resolved(record: dict, name: str):
    """The value the run used for option ``name``, given or not (the tuner a space's
    default chose, say), or None where ``run.json`` does not say."""
    if name == "tuner":
        return record.get("tuner")
    if name in RESOLVED_SETTINGS:
        return (record.get("settings") or {}).get(name)
    return None


def started_in(run: RunDir, arguments: dict) -> Path:
    """The folder the run's relative folders are relative to.

    Runs record their folders absolute; an older run recorded them as typed, relative to
    where it started. Its relative results folder is then the end of the folder the run
    is in now, which gives the start; where it is not (the run was moved), the current
    folder, as before.
    """
    here = run.path.resolve().parent
    recorded = Path(os.path.normpath(arguments.get("results_dir", "results")))
    parts = recorded.parts
    if recorded.is_absolute() or ".." in parts:
        return Path.cwd()
    if not parts:  # "." or "": the run's folder is where it started
        return here
    if here.parts[-len(parts):] == parts:
        return Path(*here.parts[:-len(parts)])
    return Path.cwd()


def _same(name: str, value, recorded, *, start: Path) -> bool:
    if name in PATH_FIELDS and value is not None and recorded is not None:
        # A folder given relative to here is the run's if it is the same folder.
        return Path(value).resolve() == (start / recorded).resolve()
    return str(value) == str(recorded)


def recorded_spec(run: RunDir, *, record: dict | None = None):
    """The RunSpec written in a run's ``run.json``, placed at the run's own folder."""
    from bench.plan import RunSpec

    record = read_run(run) if record is None else record
    known = {f.name for f in fields(RunSpec)}
    values = {k: v for k, v in record.get("arguments", {}).items() if k in known}
    start = started_in(run, record.get("arguments", {}))
    for name in PATH_FIELDS:
        if values.get(name) is not None:
            values[name] = start / values[name]  # an absolute one stays as it is
    values["results_dir"] = run.path.parent
    values["name"] = run.path.name
    return RunSpec(**values)


def ended_trials(run: RunDir) -> dict[str, str]:
    """Trial id -> status, for the trials KerasTuner recorded as ended."""
    ended = {}
    for path in sorted(run.tuner.glob("trial_*/trial.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # A trial file torn by the kill: that trial runs again.
        if state.get("status") in ENDED:
            ended[state["trial_id"]] = state["status"]
    return ended


def recorded_failure_limit(oracle, *, plan, run: RunDir) -> FailureLimit | None:
    """``bench_tuner.failure_limit_stop`` for a study whose trials' errors are recorded in
    ``run`` (a chief's, or a resumed run's): what stops it at KerasTuner's failure limit."""
    from bench.tuning.bench_tuner import failure_limit_stop

    return failure_limit_stop(
        oracle, nothing_left_to_run=plan.nothing_left_to_run,
        extras=lambda trial_id: earlier_extras(run, keep={trial_id}).get(trial_id, {}))


def forget_ended_as_ongoing(run: RunDir, *, ended: set[str]) -> None:
    """Drops ended trials from the ``ongoing_trials`` of the run's ``oracle.json`` (and
    queues them in a grid's walk).

    KerasTuner's ``end_trial`` saves the oracle before it drops the trial from its ongoing
    ones, so a process killed before the next save leaves an ended trial listed as
    running; reloaded, KerasTuner trains it again while its rows are kept (a distributed
    run's table then held the trial twice, seen in CI on 2026-12-05)."""
    path = run.tuner / "oracle.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    ongoing = state.get("ongoing_trials") or {}
    kept = {tuner: trial for tuner, trial in ongoing.items() if trial not in ended}
    changed = {"ongoing_trials": kept} if kept != ongoing else {}
    # It saves the trial before the oracle, too: killed in between, the trial has ended
    # but is not in the end order, where KerasTuner's failure limit counts it.
    end_order = state.get("end_order") or []
    unordered = sorted((t for t in ended if t not in end_order), key=lambda t: (len(t), t))
    if unordered:
        changed["end_order"] = end_order + unordered
    if "grid_populate_next" in state:
        # The grid oracle queues an ended trial (to walk on to its next combination) after
        # that same save, too: killed in between, a resumed grid found nothing left to run
        # and stopped early (seen in CI, 2026-12-05: 2 of 4 trials). KerasTuner skips a
        # queued trial whose next combination has run, so every ended trial is queued.
        queued = list(state["grid_populate_next"])
        missing = [t for t in changed.get("end_order", end_order)
                   if t in ended and t not in queued]
        if missing:
            changed["grid_populate_next"] = queued + missing
    if changed:
        write_json(path, state | changed)


def forget_unrecorded_trials(run: RunDir) -> list[str]:
    """Removes the folders of trials the oracle never recorded; returns their ids.

    KerasTuner's ``create_trial`` writes the new trial's ``trial.json`` before the
    oracle's ``oracle.json``: a process killed in between leaves a trial that never ran
    (no rows) and that the reloaded oracle does not know. It stayed RUNNING for good, and
    its combination ran again under the next id (found in review); removed, its id and
    combination are handed out again, as in an uninterrupted run."""
    import shutil

    try:
        recorded = set(json.loads((run.tuner / "oracle.json").read_text())["start_order"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return []
    removed = []
    for folder in sorted(run.tuner.glob("trial_*")):
        trial_id = folder.name.removeprefix("trial_")
        if folder.is_dir() and trial_id not in recorded:
            shutil.rmtree(folder)
            removed.append(trial_id)
    return removed


def tidy_epochs(run: RunDir, *, keep: set[str], path: Path | None = None) -> set[tuple]:
    """Keeps in ``epochs.csv`` (or a worker's table at ``path``) only the whole rows of the
    trials in ``keep``; returns the rows removed: (trial, repeat, epoch) of each row of a
    trial that runs again, (path, count) for each torn row. A worker's row is also in the
    merged table once the chief has merged it: the same key in both."""
    from bench.results import _replace_atomically
    from bench.tuning.recording import whole_rows

    path = run.epochs_csv if path is None else path
    if not path.exists():
        return set()
    with open(path, newline="", encoding="utf-8") as file:
        body = len(file.read().splitlines()) - 1
    header, rows = whole_rows(path)
    if not header:
        return set()
    columns = next(csv.reader([header]))
    if not {"trial_id", "repeat", "epoch"} <= set(columns):
        return set()  # a header torn by a kill: the table never held a row
    key = [columns.index(name) for name in ("trial_id", "repeat", "epoch")]
    kept = [line for cells, line in rows if cells[key[0]] in keep]
    removed = {tuple(cells[i] for i in key) for cells, _ in rows if cells[key[0]] not in keep}
    removed |= {(str(path), line) for line in range(body - len(rows))}  # torn rows
    if len(kept) < body:
        content = header + "".join(kept)
        _replace_atomically(path, lambda partial: partial.write_bytes(content.encode()))
    return removed


def extras_path(trial_dir) -> Path:
    """Where a trial's additions to KerasTuner's record (test accuracy, seconds, resident
    memory, the trial it duplicates) are kept, beside its ``trial.json``."""
    return Path(trial_dir) / "bench_extras.json"


def earlier_extras(run: RunDir, *, keep: set[str]) -> dict[str, dict]:
    """What the suite recorded beyond KerasTuner's files for the trials that ended, so the
    resumed table keeps it. Read from each trial's folder, written before KerasTuner marks
    the trial ended; ``trials.csv`` for a run made before that file existed."""
    extras = {}
    for trial_id in keep:
        path = extras_path(run.tuner / f"trial_{trial_id}")
        try:
            extras[trial_id] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    if run.trials_csv.exists():
        for row in csv.DictReader(io.StringIO(run.trials_csv.read_text())):
            trial_id = row.get("trial_id")
            if trial_id in keep and trial_id not in extras:
                extras[trial_id] = {
                    name: float(row[name])
                    for name in ("test_accuracy", "seconds", "rss_mib", "device_mib")
                    if row.get(name) not in (None, "")}
    return extras


@dataclass(frozen=True)
class Resumed:
    """What a resumed run starts from."""

    ended: dict[str, str]  # trial id -> status, never run again
    extras: dict[str, dict]  # trial id -> test accuracy and seconds from trials.csv
    removed_rows: int


def changed_inputs(ran: dict, now: dict) -> list[str]:
    """What the numbers depend on that differs between ``ran`` (a run's ``run.json``) and
    ``now`` (what this process would record): the Keras backend, a library version, the
    pretrained weights or the data. Trials run on other inputs must not be added to a run
    whose tables say it ran on the recorded ones. Fields a record lacks are not compared.
    """
    changes = []
    if ran.get("backend") and now.get("backend") and ran["backend"] != now["backend"]:
        changes.append(f"Keras backend {ran['backend']} -> {now['backend']}")
    was, is_ = ran.get("versions") or {}, now.get("versions") or {}
    if was and is_:
        # The libraries that compute the numbers (not pandas or scipy), where both
        # records list them (an older one may not), and the backend's framework always.
        names = {name for name in NUMERIC_LIBRARIES if name in was and name in is_}
        names |= {record["backend"] for record in (ran, now) if record.get("backend")}
        changes += [f"{name} {was.get(name, 'not installed')} -> "
                    f"{is_.get(name, 'not installed')}"
                    for name in sorted(names) if was.get(name) != is_.get(name)]
    weights = [record.get("pretraining", {}).get("weights_sha256") for record in (ran, now)]
    if all(weights) and weights[0] != weights[1]:
        changes.append(f"pretrained weights (SHA-256) {weights[0][:8]}... -> {weights[1][:8]}..."
                       " (pretraining ran again and came out different)")
    data = [record.get("dataset", {}) for record in (ran, now)]
    for field in ("sha256", "classes"):
        if field in data[0] and field in data[1] and data[0][field] != data[1][field]:
            changes.append(f"the data ({'images and labels' if field == 'sha256' else field}"
                           " differ)")
    return changes


def space_change(ran: dict, now: dict) -> str | None:
    """How the space ``now`` (``bench.space.space_identity``'s) differs from the one a run
    ran (its ``run.json``'s ``space``), or None. The file's SHA-256 catches an edit that
    kept the version; a record without one (older runs) is compared by name and version."""
    if (ran.get("name"), ran.get("version")) != (now["name"], now["version"]):
        return (f"space {ran.get('name')} version {ran.get('version')}, but "
                f"{now['name']} is now version {now['version']}")
    if ran.get("sha256") and ran["sha256"] != now["sha256"]:
        return (f"space {now['name']} from a file other than {now.get('file', 'its file')} "
                f"here (SHA-256 {ran['sha256'][:8]}... in the run, {now['sha256'][:8]}... "
                "here)")
    return None


def refuse_other_space(path: Path, ran: dict, now: dict) -> None:
    """Raises the user's error for ``space_change``; nothing where the space is the same."""
    change = space_change(ran.get("space", {}), now)
    if change:
        raise BenchError(f"{path} ran {change}; a resumed run must run the same space, or "
                         "its trials and new ones would be mixed in one table: restore the "
                         "file as it was, or start a new run")


def refuse_changed_inputs(path: Path, ran: dict, now: dict) -> None:
    """Raises the user's error for ``changed_inputs``; nothing where nothing changed."""
    changes = changed_inputs(ran, now)
    if changes:
        raise BenchError(f"{path} ran on other inputs than this process has: "
                         f"{'; '.join(changes)}. Its trials and new ones would be mixed in one "
                         "table; resume where it ran (run.json says what with), or start a "
                         "new run")


#: What ``run.json`` records of one process's search. A resumed run moves the earlier
#: process's values to ``earlier_processes``: written over, the run's search time would be
#: the last process's alone.
PER_PROCESS = ("search_seconds", "preflight_seconds", *COUNTS, "device_data", "distributed")


def _take_worker_records(run: RunDir, record: dict) -> None:
    """Moves what the workers of the stopped process recorded into ``record``: their
    notes stay the run's, their counts are that process's where its chief was stopped
    before adding them up. The files go, so that this process's workers count afresh."""
    search = combined(worker_records(run.path))
    add_notes(record, search.pop("notes"))
    for key, value in search.items():
        record.setdefault(key, value)
    for path in run.path.glob(f"workers/*/{WORKER_RECORD}"):
        path.unlink()


def continue_run(path: Path, fresh: dict, *, log) -> tuple[RunDir, dict, Resumed]:
    """Readies ``path`` to continue: checks it is the same study, removes the rows of
    trials that will run again, and returns the run directory, its ``run.json`` updated
    from ``fresh`` (the record a new run would write), and what was kept."""
    from datetime import datetime, timezone

    run = RunDir(path)
    record = read_run(run)
    refuse_changed_inputs(path, record, fresh)
    _take_worker_records(run, record)
    forget_unrecorded_trials(run)
    ended = ended_trials(run)
    forget_ended_as_ongoing(run, ended=set(ended))
    removed = len(set().union(*(tidy_epochs(run, keep=set(ended), path=table) for table in
                                [run.epochs_csv, *sorted(run.path.glob("workers/*/epochs.csv"))])))
    extras = earlier_extras(run, keep=set(ended))
    started = {path.parent.name.removeprefix("trial_")
               for path in run.tuner.glob("trial_*/trial.json")}
    running = sorted(started - set(ended))
    again = (f"; {'trial' if len(running) == 1 else 'trials'} {', '.join(running)}, started "
             f"and not ended, {'runs' if len(running) == 1 else 'run'} again from the first "
             "epoch" if running else "")
    log(f"resuming {run.path.name}: {len(ended)} trial(s) ended and kept; {removed} row(s) "
        f"of unfinished work removed{again}")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    earlier = {key: record.get(key) for key in PER_PROCESS}  # None: killed before it said
    earlier["process"] = record.get("process")
    updated = {**record, "status": "running", "process": fresh["process"],
               "resumed": [*record.get("resumed", []), now],
               # Per resume, the trials that had started and not ended: they ran again.
               "run_again": [*record.get("run_again", []), running],
               "earlier_processes": [*record.get("earlier_processes", []), earlier]}
    for stale in ("error", "ended", *PER_PROCESS):
        updated.pop(stale, None)
    updated["preflight_seconds"] = fresh.get("preflight_seconds")
    # What this process found (a weak source model, an unread hyperparameter) and the
    # run had not said yet.
    said = record.get("warnings", [])
    updated["warnings"] = said + [w for w in fresh.get("warnings", []) if w not in said]
    machine = ("device", "cpu_features")
    if any(record.get(k) is not None and record.get(k) != fresh.get(k) for k in machine):
        updated["warnings"] = [*updated["warnings"], (
            f"resumed on {fresh['device']} after running on {record.get('device')}"
            f"{' (other CPU features)' if record.get('device') == fresh['device'] else ''}: "
            "numbers can differ between processors in the last digits")]
        # The machine the run goes on with; a later resume there adds no second warning.
        updated |= {k: fresh.get(k) for k in machine}
    return run, updated, Resumed(ended=ended, extras=extras, removed_rows=removed)
