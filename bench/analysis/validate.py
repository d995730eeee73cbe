"""Checks that a run's tables are whole and well-typed before anything is computed from them.

A row cut short by a kill or a full disk, a cell that is not a number where a metric
belongs, or a missing column would otherwise flow into the means and figures as NaN or
as a wrong dtype. Each problem is one BenchError naming the file, the line and what to do.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.formatting import distinguishing
from bench.analysis.numbers import ACCURACY_BOUNDS, NOT_HYPERPARAMETERS
from bench.errors import BenchError


@dataclass(frozen=True)
class TableFiles:
    """The files a run's two tables were read from: each CSV, or its Parquet copy where
    only that is there, so that a message names the file the user has."""

    epochs: Path
    trials: Path

    @property
    def run(self) -> Path:
        return self.epochs.parent

    @classmethod
    def of(cls, run_dir: Path) -> TableFiles:
        def read(name: str) -> Path:
            csv_path = run_dir / f"{name}.csv"
            parquet = csv_path.with_suffix(".parquet")
            return parquet if parquet.exists() and not csv_path.exists() else csv_path

        return cls(epochs=read("epochs"), trials=read("trials"))


@dataclass(frozen=True)
class TableSchema:
    """The columns a table must have, and those that must hold numbers (or be empty)."""

    required: tuple[str, ...]
    numeric: tuple[str, ...]


EPOCHS_SCHEMA = TableSchema(
    required=("run_id", "trial_id", "repeat", "seed", "epoch", "loss", "accuracy", "val_loss",
              "val_accuracy"),
    numeric=("repeat", "seed", "epoch", "frozen_layers", "trainable_params", "loss", "accuracy",
             "val_loss", "val_accuracy", "epoch_seconds"),
)
TRIALS_SCHEMA = TableSchema(
    required=("trial_id", "status", "best_val_accuracy", "final_val_accuracy"),
    numeric=("best_val_accuracy", "final_val_accuracy", "test_accuracy", "seconds", "rss_mib",
             "device_mib", "epochs_completed"),
)


def check_csv_rows(path: Path, *, never_cut: str | None = None) -> None:
    """Every line has as many fields as the header, and the last line is complete.
    ``never_cut``: why no stop can have cut the last line short (so it is damage)."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}") from None
    if not text:
        raise BenchError(f"{path} is empty (not even a header); the run wrote no table")
    if not text.endswith("\n"):
        line = text.count("\n") + 1
        if never_cut:  # deleting the line would leave a trial without all its rows
            raise BenchError(f"{path}: line {line}, the last, is cut short, though "
                             f"{never_cut}: the file was damaged; restore it from a copy")
        raise BenchError(f"{path}: line {line}, the last, is cut short (the run was stopped "
                         "while writing it); delete that line to analyse the rest")
    reader = csv.reader(text.splitlines())
    header = next(reader)
    blank = None  # the first blank line: an editor's trailing newlines hold no row
    for number, fields in enumerate(reader, start=2):
        if not fields:
            blank = blank or number
            continue
        if blank:
            # pandas skips it, so a later message would name a line by the wrong number.
            raise BenchError(f"{path}: line {blank} is blank, between rows; delete it")
        if len(fields) != len(header):
            raise BenchError(f"{path}: line {number} has {len(fields)} fields where the header "
                             f"has {len(header)}; the row is torn or edited by hand: "
                             "delete or repair that line")


def check_table(table: pd.DataFrame, schema: TableSchema, path: Path) -> None:
    """Required columns are present and numeric columns hold numbers."""
    missing = [c for c in schema.required if c not in table]
    if missing:
        raise BenchError(f"{path} lacks the column(s) {', '.join(missing)}; it is not a table "
                         "this suite wrote, or it was edited: restore it from a copy")
    for column in schema.numeric:
        if column not in table or pd.api.types.is_numeric_dtype(table[column]):
            continue
        values = table[column]
        bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise BenchError(f"{path}: column {column!r} holds {values.iloc[row]!r} on line "
                             f"{row + 2}, not a number; repair or delete that row")
        table[column] = pd.to_numeric(values)


def check_trials_agree(epochs: pd.DataFrame, trials: pd.DataFrame,
                       files: TableFiles) -> None:
    """Every COMPLETED trial's scores in ``trials.csv`` follow from its rows in
    ``epochs.csv``: the best trial is read from one table and the curves, means and gaps
    from the other, so a report built from two tables that disagree would contradict
    itself. They disagree only when one was edited by hand or copied from another run."""
    done = trials[trials["status"] == "COMPLETED"]
    for trial in done.itertuples(index=False):
        mine = epochs[epochs["trial_id"] == trial.trial_id]
        if mine.empty:
            raise BenchError(f"{files.run}: trial {trial.trial_id} is COMPLETED in "
                             f"{files.trials.name} but has no rows in {files.epochs.name}; the "
                             "tables are not from one run: restore them from a copy")
        if mine["val_accuracy"].isna().any():
            continue  # a row of no accuracy: check_rows_agree names that row itself
        per_repeat = mine.sort_values("epoch").groupby("repeat")["val_accuracy"]
        for column, value in (("best_val_accuracy", per_repeat.max().mean()),
                              ("final_val_accuracy", per_repeat.last().mean())):
            recorded = getattr(trial, column)
            if not np.isclose(recorded, value, rtol=1e-9, atol=1e-12, equal_nan=True):
                # Digits enough to show the difference (an edit 1e-9 apart read "0.190596
                # in trials.csv but 0.190596 from its rows", to a new user).
                shown = distinguishing([float(recorded), float(value)])
                raise BenchError(
                    f"{files.run}: trial {trial.trial_id}'s {column} is "
                    f"{shown[float(recorded)]} in {files.trials.name} but "
                    f"{shown[float(value)]} from its rows in "
                    f"{files.epochs.name}; one of the "
                    "tables was edited or comes from another run: restore both from a copy")


def check_test_accuracies(trials: pd.DataFrame, files: TableFiles, tuner: Path) -> None:
    """Each trial's test accuracy in ``trials.csv`` is the one its trial folder recorded
    (``bench_extras.json``, beside KerasTuner's ``trial.json``), where that is there: the
    best table prints it, and no other table holds it to check it against."""
    from bench.tuning.resume import extras_path  # no Keras: resume reads files only

    for trial in trials.to_dict("records"):
        recorded = trial.get("test_accuracy")
        if recorded is None or pd.isna(recorded):
            continue
        path = extras_path(tuner / f"trial_{trial['trial_id']}")
        try:
            kept = json.loads(path.read_text()).get("test_accuracy")
        except (OSError, ValueError, AttributeError):
            continue  # no trial folder (copied without tuner/): nothing to check against
        if isinstance(kept, (int, float)) and not np.isclose(recorded, kept, rtol=1e-9,
                                                             atol=1e-12):
            shown = distinguishing([float(recorded), float(kept)])
            raise BenchError(f"{files.trials}: trial {trial['trial_id']}'s test_accuracy is "
                             f"{shown[float(recorded)]} but {shown[float(kept)]} in {path}; "
                             "one of them was edited: restore both from a copy")


def check_trials_listed(epochs: pd.DataFrame, trials: pd.DataFrame | None, *, status: str,
                        files: TableFiles) -> None:
    """A finished run's ``trials.csv`` lists every trial with rows in ``epochs.csv``.

    The suite rewrites ``trials.csv`` as each trial ends, so only a run stopped in the
    middle of a trial has rows of trials it does not list. In a completed run, a missing
    table or row means the tables were edited or lost, and without it a trial's rows would
    silently leave every number (no completed status, no final numbers)."""
    if status != "completed" or epochs.empty:
        return
    if trials is None:
        raise BenchError(f"{files.run}: trials.csv is missing, but the run completed and "
                         f"{files.epochs.name} holds rows of {epochs['trial_id'].nunique()} "
                         "trial(s); restore trials.csv from a copy of the run")
    unlisted = sorted(set(epochs["trial_id"]) - set(trials["trial_id"]))
    if unlisted:
        raise BenchError(f"{files.run}: trial {unlisted[0]} has rows in {files.epochs.name} "
                         f"but no row in {files.trials.name} ({len(unlisted)} such "
                         f"trial(s)), in a run that completed; {files.trials.name} was edited "
                         "or comes from another run: restore it from a copy")


#: What trials.csv calls a trial: KerasTuner's TrialStatus, and the suite's DUPLICATE (a
#: configuration the Bayesian tuner proposed again, not trained twice).
TRIAL_STATUSES = ("COMPLETED", "FAILED", "DUPLICATE", "RUNNING", "IDLE", "INVALID",
                  "STOPPED")
#: The statuses of trials that run no more.
ENDED = ("COMPLETED", "FAILED", "DUPLICATE", "INVALID", "STOPPED")
#: Columns of ``epochs.csv`` that a completed execution has in [0, 1] on every row.
ACCURACIES = ("accuracy", "val_accuracy")
#: Columns that a completed execution has finite on every row (a trial whose loss stops
#: being finite is failed, never completed).
LOSSES = ("loss", "val_loss")

#: Columns of either table that count or time something: never below 0.
COUNTS = ("epoch_seconds", "seconds", "rss_mib", "device_mib", "epochs_completed",
          "frozen_layers", "trainable_params")


def _check_not_negative(table: pd.DataFrame, columns, path: Path) -> None:
    for column in columns:
        if column not in table:
            continue
        bad = table[table[column] < 0]
        if not bad.empty:
            first = bad.iloc[0]
            where = (f"trial {first['trial_id']}, {_where(first)}" if "epoch" in table
                     else f"trial {first['trial_id']}")
            raise BenchError(f"{path}: {column} is {_whole(float(first[column]))} at {where}, "
                             "where it counts or times something and is 0 or more; the "
                             "table was edited: restore it from a copy")


def check_rows_agree(epochs: pd.DataFrame, trials: pd.DataFrame | None, run: dict,
                     files: TableFiles) -> None:
    """What the suite writes holds in ``epochs.csv`` and ``trials.csv``: known statuses,
    scores only for completed trials, accuracies in [0, 1] and finite losses in completed
    executions, each repeat's epochs 1..n with its recorded seed, numbers where the space
    declared numbers, and each trial's hyperparameters the same in both tables. A table
    that breaks one was edited by hand or damaged, and would change the report's numbers
    without a word (a lower-case status dropped a trial; a hyperparameter written as
    text made another configuration)."""
    _check_declared_numbers(epochs, run, files.epochs)
    _check_not_negative(epochs, COUNTS, files.epochs)
    if trials is None:
        return
    text = set(text_hyperparameters(run))
    _check_declared_numbers(trials, run, files.trials)
    _check_not_negative(trials, COUNTS, files.trials)
    unknown = trials[~trials["status"].isin(TRIAL_STATUSES)]
    if not unknown.empty:
        first = unknown.iloc[0]
        raise BenchError(f"{files.trials}: trial {first.trial_id}'s status is "
                         f"{first.status!r}, not one the suite writes "
                         f"({', '.join(TRIAL_STATUSES)}); the table was edited: restore it "
                         "from a copy")
    scores = [c for c in ("best_val_accuracy", "final_val_accuracy", "test_accuracy")
              if c in trials]
    unscored = trials[(trials["status"] != "COMPLETED") & trials[scores].notna().any(axis=1)]
    if not unscored.empty:
        first = unscored.iloc[0]
        raise BenchError(f"{files.trials}: trial {first.trial_id} is {first.status} but "
                         "has scores, which only a COMPLETED trial has; the table was edited: "
                         "restore it from a copy")
    low, high = ACCURACY_BOUNDS
    for column in scores:
        outside = trials[(trials[column] < low) | (trials[column] > high)]
        if not outside.empty:
            raise BenchError(f"{files.trials}: trial {outside.iloc[0].trial_id}'s "
                             f"{column} is {outside.iloc[0][column]}, outside 0 to 1; the "
                             "table was edited: restore it from a copy")
    for trial in trials.to_dict("records"):  # not itertuples: it renames odd names
        trial_id = trial["trial_id"]
        mine = epochs[epochs["trial_id"] == trial_id]
        counted = trial.get("epochs_completed", float("nan"))
        # A trial that will run again (RUNNING at a stop) loses its rows when the run is
        # resumed, before trials.csv is next written: only an ended trial's count holds.
        if trial["status"] in ENDED and not pd.isna(counted) and counted != len(mine):
            raise BenchError(f"{files.trials}: trial {trial_id} has epochs_completed "
                             f"{counted:g} but {len(mine)} rows in {files.epochs.name}; one of the "
                             "tables was edited: restore both from a copy")
        if trial["status"] == "COMPLETED":
            _check_completed_rows(mine, trial_id, run, files.epochs)
        _check_same_hyperparameters(mine, trial, files, text=text)


def _check_completed_rows(rows: pd.DataFrame, trial_id: str, run: dict, path: Path) -> None:
    for column in ACCURACIES:
        bad = rows[~rows[column].between(*ACCURACY_BOUNDS)]
        if not bad.empty:
            raise BenchError(f"{path}: trial {trial_id} is COMPLETED but its {column} is "
                             f"{bad.iloc[0][column]} at {_where(bad.iloc[0])}, where it is a "
                             "number from 0 to 1; the table was edited: restore it from a "
                             "copy")
    for column in LOSSES:
        bad = rows[~np.isfinite(rows[column].astype(float))]
        if not bad.empty:
            raise BenchError(f"{path}: trial {trial_id} is COMPLETED but its {column} is "
                             f"{bad.iloc[0][column]} at {_where(bad.iloc[0])} (a trial whose "
                             "loss is not finite fails); the table was edited: restore it from "
                             "a copy")
    seeds = run.get("seeds", {}).get("repeats")
    repeats = sorted(rows["repeat"].unique())
    # Repeats may differ in length (a space's EarlyStopping callback stops each at its own
    # epoch); each runs from epoch 1 without a gap.
    for repeat in repeats:
        mine = rows[rows["repeat"] == repeat]
        epochs = sorted(mine["epoch"])
        said, edited = None, "the table was edited: restore it from a copy"
        if epochs != list(range(1, len(epochs) + 1)):
            said = f"epochs {_numbers(epochs)}, where it has 1 to n once each"
        elif seeds and 1 <= repeat <= len(seeds) and set(mine["seed"]) != {seeds[int(repeat) - 1]}:
            said = (f"seed {_numbers(sorted(set(mine['seed'])))} where run.json gives repeat "
                    f"{repeat:g} the seed {seeds[int(repeat) - 1]}")
            edited = f"{path.name} or run.json was edited: restore both from a copy"
        if said:
            raise BenchError(f"{path}: trial {trial_id}'s repeat {repeat:g} has {said}; "
                             f"{edited}")
    if repeats != list(range(1, len(repeats) + 1)):
        raise BenchError(f"{path}: trial {trial_id} is COMPLETED but its repeats are "
                         f"{_numbers(repeats)}, not 1 to n; the table was edited: restore it "
                         "from a copy")
    if seeds and len(repeats) != len(seeds):
        # Its mean would be over fewer seeds than the report says every trial ran.
        raise BenchError(f"{path}: trial {trial_id} is COMPLETED but has "
                         f"{len(repeats)} repeat(s), where run.json gives every trial "
                         f"{len(seeds)}; the table was edited: restore it from a copy")


def _numbers(values) -> str:
    """Whole numbers as integers (a seed of 20261206, not 2.02612e+07)."""
    return ", ".join(str(_whole(float(v))) for v in values)


def _whole(number: float):
    """An int where ``number`` is whole (and exact as a float), else ``number``."""
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _where(row: pd.Series) -> str:
    return f"repeat {row['repeat']:g}, epoch {row['epoch']:g}"


def _cell(value):
    """A table cell to compare across tables: None for empty, a number for a number (an
    int where it is whole, so a message reads 4, not 4.0)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    if isinstance(value, (bool, np.bool_)):  # as a column with empty cells reads it: text
        return str(bool(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return _whole(number)


def _text_cell(value):
    """A cell of a text column: None for empty, else the text as written."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) \
        or value == "" else str(value)


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        a, b = float(a), float(b)  # 1e38 is no int numpy can compare
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9)
    return a == b


def _check_same_hyperparameters(rows: pd.DataFrame, trial: dict, files: TableFiles, *,
                                text: set[str]) -> None:
    """``text``: the columns declared with text values, compared as written ("01" is
    not "1")."""
    shared = [c for c in rows.columns if c in trial and c not in NOT_HYPERPARAMETERS
              and c not in TRIALS_SCHEMA.numeric and c not in ("status", "error")]
    for column in shared:
        cell = _text_cell if column in text else _cell
        recorded = cell(trial[column])
        for value in {cell(v) for v in rows[column]}:
            if not _same(value, recorded):
                raise BenchError(f"{files.run}: trial {trial['trial_id']}'s {column} is "
                                 f"{recorded} in {files.trials.name} but {value} in "
                                 f"{files.epochs.name}; one of the tables was edited: restore "
                                 "both from a copy")


def declared_values(run: dict) -> dict[str, list]:
    """The values each hyperparameter ``run.json`` declares, by name: a Choice's values,
    a Fixed one's value ([None] for Int, Float and Boolean, which list none)."""
    return {declared.get("name"): declared.get("values", [declared.get("value")])
            for declared in run.get("space", {}).get("hyperparameters", [])}


def text_hyperparameters(run: dict) -> list[str]:
    """The hyperparameters ``run`` declared with text values (a Choice of strings, a
    Fixed string): their columns are read as text, since a value such as "01" or "1.0"
    would otherwise read as a number, equal to another value "1"."""
    return [name for name, values in declared_values(run).items()
            if isinstance(name, str) and values
            and all(isinstance(value, str) for value in values)]


def _check_declared_numbers(table: pd.DataFrame, run: dict, path: Path) -> None:
    """Where the space declared a hyperparameter of numbers, its column holds numbers
    (or is empty: inactive), as check_table does for the metrics."""
    for declared in run.get("space", {}).get("hyperparameters", []):
        name = declared.get("name")
        values = declared.get("values", [declared.get("value")])
        numeric = declared.get("type") in ("Int", "Float") or (
            declared.get("type") in ("Choice", "Fixed") and values and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values))
        if numeric and name in table:
            check_table(table, TableSchema(required=(), numeric=(name,)), path)
