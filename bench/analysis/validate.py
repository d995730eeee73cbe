"""Checks that a run's tables are whole and well-typed before anything is computed from them.

A row cut short by a kill or a full disk, a cell that is not a number where a metric
belongs, or a missing column would otherwise flow into the means and figures as NaN or
as a wrong dtype. Each problem is one BenchError naming the file, the line and what to do.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError


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


def check_csv_rows(path: Path) -> None:
    """Every line has as many fields as the header, and the last line is complete."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}") from None
    if not text:
        raise BenchError(f"{path} is empty (not even a header); the run wrote no table")
    if not text.endswith("\n"):
        line = text.count("\n") + 1
        raise BenchError(f"{path}: line {line}, the last, is cut short (the run was stopped "
                         "while writing it); delete that line to analyse the rest")
    reader = csv.reader(text.splitlines())
    header = next(reader)
    for number, fields in enumerate(reader, start=2):
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


def check_trials_agree(epochs: pd.DataFrame, trials: pd.DataFrame, path: Path) -> None:
    """Every COMPLETED trial's scores in ``trials.csv`` follow from its rows in
    ``epochs.csv``: the best trial is read from one table and the curves, means and gaps
    from the other, so a report built from two tables that disagree would contradict
    itself. They disagree only when one was edited by hand or copied from another run."""
    done = trials[trials["status"] == "COMPLETED"]
    for trial in done.itertuples(index=False):
        mine = epochs[epochs["trial_id"] == trial.trial_id]
        if mine.empty:
            raise BenchError(f"{path}: trial {trial.trial_id} is COMPLETED in trials.csv but "
                             "has no rows in epochs.csv; the tables are not from one run: "
                             "restore them from a copy")
        per_repeat = mine.sort_values("epoch").groupby("repeat")["val_accuracy"]
        for column, value in (("best_val_accuracy", per_repeat.max().mean()),
                              ("final_val_accuracy", per_repeat.last().mean())):
            recorded = getattr(trial, column)
            if not np.isclose(recorded, value, rtol=1e-9, atol=1e-12, equal_nan=True):
                raise BenchError(
                    f"{path}: trial {trial.trial_id}'s {column} is {recorded:.6g} in "
                    f"trials.csv but {value:.6g} from its rows in epochs.csv; one of the "
                    "tables was edited or comes from another run: restore both from a copy")


def check_trials_listed(epochs: pd.DataFrame, trials: pd.DataFrame | None, *, status: str,
                        path: Path) -> None:
    """A finished run's ``trials.csv`` lists every trial with rows in ``epochs.csv``.

    The suite rewrites ``trials.csv`` as each trial ends, so only a run stopped in the
    middle of a trial has rows of trials it does not list. In a completed run, a missing
    table or row means the tables were edited or lost, and without it a trial's rows would
    silently leave every number (no completed status, no final numbers)."""
    if status != "completed" or epochs.empty:
        return
    if trials is None:
        raise BenchError(f"{path}: trials.csv is missing, but the run completed and "
                         f"epochs.csv holds rows of {epochs['trial_id'].nunique()} trial(s); "
                         "restore trials.csv from a copy of the run")
    unlisted = sorted(set(epochs["trial_id"]) - set(trials["trial_id"]))
    if unlisted:
        raise BenchError(f"{path}: trial {unlisted[0]} has rows in epochs.csv but no row in "
                         f"trials.csv ({len(unlisted)} such trial(s)), in a run that "
                         "completed; trials.csv was edited or comes from another run: "
                         "restore it from a copy")
