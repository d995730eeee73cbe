"""The run directory: its layout, writing ``run.json`` and ``trials.csv``, reading tables.

``results/<run-id>/`` holds ``run.json`` (what ran), ``epochs.csv`` (one row per trial x
repeat x epoch), ``trials.csv`` (one row per trial), ``plots/``, ``report.md`` and
``tuner/`` (KerasTuner's own project). Reading needs pandas only, never Keras.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.analysis.validate import (
    EPOCHS_SCHEMA,
    TRIALS_SCHEMA,
    TableSchema,
    check_csv_rows,
    check_table,
    text_hyperparameters,
)
from bench.command import command
from bench.errors import BenchError, DiskFull
from bench.files import write_whole

#: What trials.csv says of each trial; the objective columns are empty unless it completed.
OBJECTIVE_COLUMNS = ["best_val_accuracy", "final_val_accuracy", "test_accuracy"]
TRIAL_METRICS = [*OBJECTIVE_COLUMNS, "epochs_completed", "seconds", "rss_mib", "device_mib"]


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def epochs_csv(self) -> Path:
        return self.path / "epochs.csv"

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def tuner(self) -> Path:
        return self.path / "tuner"


def run_name(given: str | None, *, prefix: str) -> str:
    """The name given (an empty one is then refused, not replaced), or PREFIX-DATE-TIME."""
    from datetime import datetime

    return given if given is not None else f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"


#: The longest run name: a folder name, which file systems cap at 255 bytes, with room
#: for the suffixes a run folder's siblings take.
MAX_RUN_NAME = 200


def plain_name(name: str) -> bool:
    """A letter or digit, then letters, digits, '.', '_' or '-': safe as a folder name
    (no '/', never '..')."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) is not None


def check_run_name(name: str) -> None:
    if not plain_name(name):
        raise BenchError(f"run name {name!r} must be a letter or digit followed by "
                         "letters, digits, '.', '_' or '-'")
    if len(name) > MAX_RUN_NAME:
        raise BenchError(f"run name {name[:20]}... is {len(name)} characters long; use at "
                         f"most {MAX_RUN_NAME}")


#: The least free space a run starts with: tables, figures and KerasTuner's files of a
#: study of hundreds of trials fit in a few megabytes; the margin is for the caches.
MIN_FREE_BYTES = 50 * 2**20


def check_writable(folder: Path, *, what: str) -> None:
    """Creates ``folder`` if needed and proves a file can be written there; else a
    BenchError beginning with ``what`` ("cannot write to --results-dir DIR")."""
    try:
        existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
        if existing is not None and not existing.is_dir():
            raise BenchError(f"{what}: {existing} is a file, not a folder; pass a folder")
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise BenchError(f"{what}: {error.strerror or error}; pass a writable folder") \
            from None


def check_results_dir(results_dir: Path) -> None:
    """The results folder exists (or is made), takes a file and has room for a run."""
    folder = Path(results_dir)
    check_writable(folder, what=f"cannot write to --results-dir {folder}")
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise BenchError(f"only {free / 2**20:.0f} MiB free on the disk holding {folder}; a "
                         f"run needs about {MIN_FREE_BYTES // 2**20} MiB: free some space or "
                         "pass another --results-dir")


def check_new_run_dir(results_dir: Path, name: str) -> Path:
    """The path a new run would take; raises if the name is bad or taken, or the results
    folder cannot take a run. Called before any data is loaded or weights trained."""
    check_run_name(name)
    path = Path(results_dir) / name
    if path.exists():
        raise BenchError(f"{path} already exists; choose another --name or move that run away")
    check_results_dir(Path(results_dir))
    return path


def new_run_dir(results_dir: Path, name: str) -> RunDir:
    """Creates ``results_dir/name``; an existing run is never overwritten."""
    path = check_new_run_dir(results_dir, name)
    try:
        path.mkdir(parents=True)
    except OSError as error:
        raise BenchError(f"cannot create the run directory {path}: {error.strerror}; "
                         "pass a writable --results-dir") from None
    return RunDir(path)


def _replace_atomically(path: Path, write) -> None:
    """``write_whole``, with a full disk raised as ``DiskFull``."""
    try:
        write_whole(path, write)
    except OSError as error:
        if DiskFull.caused(error):
            raise DiskFull(path, rows=None, error=error) from error
        raise


def write_json(path: Path, data: dict) -> None:
    """Writes JSON under a temporary name and renames it, so a reader never sees half. A
    NaN or infinity is written as null: strict JSON has neither, and other readers refuse
    them."""
    text = json.dumps(_nan_as_none(data), indent=2, default=str, allow_nan=False) + "\n"
    _replace_atomically(path, lambda partial: partial.write_text(text))


def _nan_as_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_as_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_as_none(v) for v in value]
    return value


def write_csv(path: Path, table: pd.DataFrame) -> None:
    _replace_atomically(path, lambda partial: table.to_csv(partial, index=False))


def open_run(path: Path) -> RunDir:
    run = RunDir(Path(path))
    if not Path(path).exists():
        raise BenchError(f"{path} does not exist; pass a run directory made by "
                         f"'{command('run')}'")
    if Path(path).is_file():
        # Found by a new user: analyze results/x/epochs.csv said "no epochs.csv".
        where = Path(path).parent
        within = (f": pass the run directory that holds it, {where}" if
                  (where / "run.json").exists() else f"; pass a folder made by "
                  f"'{command('run')}'")
        raise BenchError(f"{path} is a file, not a run directory{within}")
    has_epochs = run.epochs_csv.exists() or run.epochs_csv.with_suffix(".parquet").exists()
    if (run.path / "perf.json").exists() and (run.path / "suite" / "run.json").exists():
        raise BenchError(f"{path} holds a 'perf' comparison, not a run; its suite run is "
                         f"{run.path / 'suite'}: pass that")
    if run.run_json.exists() and not has_epochs:
        # Found by a new user: told it was no run directory, beside its run.json.
        raise BenchError(_why_no_epochs(run, path))
    if has_epochs and not run.run_json.exists():
        raise BenchError(f"{path} has epochs.csv but no run.json, which records the study "
                         "the rows are of: restore run.json from a copy of the run")
    if not run.run_json.exists() or not has_epochs:
        raise BenchError(f"{path} is not a run directory (no run.json or epochs.csv); "
                         f"pass a folder made by '{command('run')}'")
    return run


def _why_no_epochs(run: RunDir, path) -> str:
    """Why a run folder with a ``run.json`` has no ``epochs.csv``: not yet, never, or lost."""
    status = read_run(run).get("status")
    counted = 0
    if run.trials_csv.exists():
        try:
            counted = int(pd.to_numeric(pd.read_csv(run.trials_csv)["epochs_completed"],
                                        errors="coerce").fillna(0).sum())
        except (ValueError, KeyError, OSError, pd.errors.ParserError):
            counted = 0
    if counted or status == "completed":
        said = (f"trials.csv counts {counted} epoch row(s)" if counted
                else "the run completed")
        return (f"{path}: epochs.csv is missing, but {said}; restore epochs.csv from a copy "
                "of the run")
    if status in ("failed", "interrupted"):
        return (f"{path} has no epochs.csv: its run {status} before any execution finished "
                "an epoch, so there is nothing to analyse (run.json's error"
                + (" and trials.csv say" if run.trials_csv.exists() else " says") + " why)")
    return (f"{path} has run.json but no epochs.csv yet: its run has not finished an epoch "
            "(it is starting, or stopped before one ended); analyse it once it has rows")


def process_identity() -> dict:
    """Which process writes a run, so a reader can tell a live run from a dead one: its
    id, machine and (on Linux) start time, since a process id is reused."""
    import socket

    identity = {"pid": os.getpid(), "host": socket.gethostname()}
    started = _start_ticks(os.getpid())
    return identity if started is None else identity | {"start_ticks": started}


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the name (Linux), from field 3, or None."""
    try:  # bytes: a process's name need not be UTF-8 (and may hold ")")
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return [field.decode("ascii", errors="replace") for field in fields]


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (Linux), or None."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19])  # field 22
    except (TypeError, ValueError, IndexError):
        return None


def process_is_here(identity: dict | None) -> bool:
    """Whether ``identity`` (``process_identity``'s) names a process of this machine."""
    import socket

    return bool(identity) and identity.get("host") == socket.gethostname()


def _process_gone(identity: dict) -> bool:
    if not process_is_here(identity):
        return False  # Another machine's process cannot be checked from here.
    try:
        pid = int(identity["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False
    # A killed process not yet reaped by its parent (a zombie, for seconds) has ended.
    if (_stat_fields(pid) or ["?"])[0] in ("Z", "X"):
        return True
    # A live process under a reused id (a restarted container's) is another process.
    recorded, now = identity.get("start_ticks"), _start_ticks(pid)
    return recorded is not None and now is not None and recorded != now


#: What ``run.json``'s status can be: a run writes running first, then how it ended.
RUN_STATUSES = ("running", "completed", "failed", "interrupted")


def read_run(run: RunDir) -> dict:
    """``run.json`` as a dict; a file that is not a JSON object is a BenchError."""
    try:
        data = json.loads(run.run_json.read_text())
    except json.JSONDecodeError as error:
        raise BenchError(f"{run.run_json} is not valid JSON (line {error.lineno}: {error.msg}); "
                         "restore it from a copy or rerun the study") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read {run.run_json}: {error}") from None
    if not isinstance(data, dict):
        raise BenchError(f"{run.run_json} holds a JSON {type(data).__name__}, not the object a "
                         "run writes; restore it from a copy or rerun the study")
    if data.get("status") not in RUN_STATUSES:
        raise BenchError(f"{run.run_json}'s status is {data.get('status')!r}, not one the suite "
                         f"writes ({', '.join(RUN_STATUSES)}); the file was edited: restore it "
                         "from a copy")
    if data.get("status") == "running" and _process_gone(data.get("process", {})):
        # Killed (SIGKILL, a crash, a lost machine) before it could say so.
        data["status"] = "interrupted"
        data.setdefault("error", "its process ended without finishing the run")
    return data


def _text_columns(run: RunDir) -> list[str]:
    if not run.run_json.exists():
        return []  # a folder of tables alone: the types as pandas reads them
    return text_hyperparameters(read_run(run))


def _never_cut(run: RunDir, table: str) -> str | None:
    """Why a cut-short last row of ``run``'s ``table`` can only be damage, or None where a
    stop may have cut it (rows are appended whole, but a power loss is not a stop)."""
    if table == "trials.csv":
        return "trials.csv is written whole, never row by row"
    if (run.path / "workers").is_dir():
        return "a run with workers writes its epochs.csv whole, from the workers' tables"
    if run.run_json.exists() and read_run(run).get("status") == "completed":
        return "the run completed"
    return None


def _read_table(csv_path: Path, dtypes: dict, schema: TableSchema, *,
                text: list[str], never_cut: str | None) -> pd.DataFrame:
    """Reads the CSV table (checked whole first), or its Parquet copy when only that is
    there; either way the columns and their types are checked. ``text``: columns read as
    text (their empty cells stay missing); ``never_cut``: see ``_never_cut``."""
    if csv_path.exists():
        check_csv_rows(csv_path, never_cut=never_cut)
        with open(csv_path, newline="", encoding="utf-8") as file:
            header = next(csv.reader(file), [])
        # A hyperparameter's value is what the space declared, "None" and "nan" included:
        # only an empty cell (a conditional one not active) is missing. A number may be
        # "nan" (epochs.csv before 2026-12-03 wrote a NaN loss so).
        missing = {c: ["", "nan", "NaN"] if c in schema.numeric else [""] for c in header}
        try:
            table = pd.read_csv(csv_path, dtype={**dict.fromkeys(text, str), **dtypes},
                                keep_default_na=False, na_values=missing)
        except (ValueError, pd.errors.ParserError) as error:
            raise BenchError(f"{csv_path} cannot be read as a table: {error}") from None
        source = csv_path
    else:
        source = csv_path.with_suffix(".parquet")
        try:
            table = pd.read_parquet(source)
        except Exception as error:  # noqa: BLE001 (pyarrow raises many kinds)
            raise BenchError(f"{source} cannot be read: {error}") from None
    check_table(table, schema, source)
    return table.astype({k: v for k, v in dtypes.items() if k in table})


def read_epochs(run: RunDir) -> pd.DataFrame:
    return _read_table(run.epochs_csv, {"trial_id": str, "run_id": str}, EPOCHS_SCHEMA,
                       text=_text_columns(run), never_cut=_never_cut(run, "epochs.csv"))


def read_trials(run: RunDir) -> pd.DataFrame:
    table = _read_table(run.trials_csv, {"trial_id": str, "error": str}, TRIALS_SCHEMA,
                        text=_text_columns(run), never_cut=_never_cut(run, "trials.csv"))
    table["error"] = table["error"].fillna("").replace("nan", "")
    return table


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet_copies(run: RunDir) -> list[Path]:
    """Writes ``epochs.parquet`` and ``trials.parquet`` beside the CSVs, if pyarrow is
    installed; the CSVs stay the tables rows are appended to."""
    if not parquet_available():
        return []
    written = []
    for path, reader in ((run.epochs_csv, read_epochs), (run.trials_csv, read_trials)):
        if path.exists():
            # Read (and so checked) before anything is written: a bad CSV never replaces
            # a good Parquet copy.
            table = reader(run)
            target = path.with_suffix(".parquet")
            _replace_atomically(target, lambda partial, t=table: t.to_parquet(partial,
                                                                               index=False))
            written.append(target)
    return written


def summarise_trials(epochs: pd.DataFrame, trials: list[dict],
                     hyperparameters: list[str]) -> pd.DataFrame:
    """Builds ``trials.csv``: one row per trial, its metrics computed from its epochs.

    ``best_val_accuracy`` is the mean over repeats of each repeat's best epoch (what
    KerasTuner optimises), ``final_val_accuracy`` the mean over repeats of the last epoch.
    Only a COMPLETED trial has them (and ``test_accuracy``): a failed or unfinished trial
    keeps its rows in ``epochs.csv`` but no score here. ``epochs_completed`` counts the
    epoch rows recorded for the trial, over all its repeats.

    Args:
        epochs: The rows of ``epochs.csv``.
        trials: Dicts with ``trial_id``, ``status``, ``error``, the hyperparameter values,
            and where known ``test_accuracy``, ``seconds``, ``rss_mib`` (the process's
            resident memory after the trial) and ``device_mib`` (accelerator memory in
            use after it; empty on a CPU).
        hyperparameters: The hyperparameter columns, in order.
    """
    rows = []
    for trial in trials:
        mine = epochs[epochs["trial_id"] == trial["trial_id"]]
        best = final = test = float("nan")
        if len(mine) and trial["status"] == "COMPLETED":
            per_repeat = mine.sort_values("epoch").groupby("repeat")["val_accuracy"]
            best = float(per_repeat.max().mean())
            final = float(per_repeat.last().mean())
            test = trial.get("test_accuracy", float("nan"))
        rows.append({
            "trial_id": trial["trial_id"],
            "status": trial["status"],
            **{name: trial.get(name) for name in hyperparameters},
            "best_val_accuracy": best,
            "final_val_accuracy": final,
            "test_accuracy": test,
            "epochs_completed": len(mine),
            "seconds": trial.get("seconds", float("nan")),
            "rss_mib": trial.get("rss_mib", float("nan")),
            "device_mib": trial.get("device_mib", float("nan")),
            "error": trial.get("error", ""),
        })
    columns = ["trial_id", "status", *hyperparameters, *TRIAL_METRICS, "error"]
    table = pd.DataFrame(rows, columns=columns)
    for name in hyperparameters:
        # As declared: a conditional integer stays 4 (not 4.0) beside its empty cells.
        table[name] = pd.Series([row[name] for row in rows], index=table.index, dtype=object)
    return table
