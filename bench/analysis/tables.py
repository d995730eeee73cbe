"""The tables of one or more runs, read, checked and made ready for analysis.

``Tables.complete`` holds only the rows of complete executions; every number in a figure
or a report is computed from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.analysis import numbers
from bench.analysis.validate import (
    TableFiles,
    check_rows_agree,
    check_test_accuracies,
    check_trials_agree,
    check_trials_listed,
    declared_values,
    text_hyperparameters,
)
from bench.errors import BenchError
from bench.results import open_run, read_epochs, read_run, read_trials

HYPERPARAMETER_ORDER = ["init", "frozen_blocks", "head_lr", "body_lr_scale"]

#: A joint report's cell for a hyperparameter that its row's run never had.
NOT_IN_SPACE = "not in space"


def hyperparameter_columns(run: dict, epochs: pd.DataFrame) -> list[str]:
    names = run.get("columns", {}).get("hyperparameters", HYPERPARAMETER_ORDER)
    return [n for n in names if n in epochs]


def varied_columns(run: dict, table: pd.DataFrame) -> list[str]:
    """The hyperparameters the space declared (``run.json`` columns.varied), in the order
    of the tables' columns, which the progress lines use too."""
    # Found by a new user: the summary listed them in the order declared.
    columns = run.get("columns", {})
    order = columns.get("hyperparameters", HYPERPARAMETER_ORDER)
    names = columns.get("varied")
    if names is None:
        names = numbers.varied(table, order)
    ranked = {name: i for i, name in enumerate(order)}
    return sorted((n for n in names if n in table), key=lambda n: ranked.get(n, len(ranked)))


@dataclass
class Tables:
    """The tables of one or more runs, with a ``run_id`` on every row.

    ``complete`` holds the rows of complete executions only (trials that COMPLETED);
    every mean, interval and gap is computed from it.
    """

    runs: list[dict]
    epochs: pd.DataFrame
    trials: pd.DataFrame
    complete: pd.DataFrame
    #: Executions left out of ``complete`` because a longer one of the same configuration
    #: and seed ran (Hyperband's promotions): see ``numbers.longest_executions``.
    superseded: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def hyperparameters(self) -> list[str]:
        names = []
        for run in self.runs:
            names += [n for n in hyperparameter_columns(run, self.epochs) if n not in names]
        return names

    @property
    def varied(self) -> list[str]:
        """The hyperparameters the runs' spaces declared, then (in a joint report) any
        other recorded one that takes more than one value over the runs' rows (held
        fixed at different values, or recorded by only some runs): a table without them
        would show two runs' rows as one configuration."""
        names = []
        for run in self.runs:
            names += [n for n in varied_columns(run, self.epochs) if n not in names]
        if len(self.runs) > 1:
            names += [n for n in numbers.varied(self.epochs, self.hyperparameters)
                      if n not in names]
        return names

    def pair_on(self, run_id: str) -> list[str] | None:
        """The hyperparameters a configuration of run ``run_id`` is made of, for pairing
        inits: those its space declared besides init (any other recorded column follows
        from them). None for a run.json that does not say (every column is then used)."""
        for run in self.runs:
            if run["run_id"] == run_id and "varied" in run.get("columns", {}):
                return [n for n in run["columns"]["varied"] if n != "init"]
        return None

    def mark_not_in_space(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (rows with a ``run_id``) with the cells of a hyperparameter that the
        row's run never recorded (its space has no such name) reading "not in space",
        where they would read as a conditional hyperparameter's empty, inactive cell."""
        if "run_id" not in table or len(self.runs) < 2:
            return table
        marked = table.copy()
        for run in self.runs:
            rows = marked["run_id"] == run["run_id"]
            for name in self.hyperparameters:
                if name in marked and rows.any() and self.lacks(run["run_id"], name):
                    marked[name] = marked[name].astype(object)
                    marked.loc[rows, name] = NOT_IN_SPACE
        return marked

    def lacks(self, run_id: str, name: str) -> bool:
        """Whether run ``run_id`` of a joint report never recorded hyperparameter ``name``
        (its space has none), as opposed to recording it inactive in some trials."""
        if len(self.runs) < 2:
            return False
        for run in self.runs:
            recorded = run.get("columns", {}).get("hyperparameters")
            if run["run_id"] == run_id and recorded is not None:  # None: an older run.json
                return name not in recorded
        return False

    def never_complete(self, name: str, *, run_id: str | None = None) -> pd.DataFrame:
        """The trials (of run ``run_id``, or of every run) whose ``name`` took a value
        that no complete execution has."""
        trials, complete = self.trials, self.complete
        if run_id is not None:
            trials = trials[trials["run_id"] == run_id]
            complete = complete[complete["run_id"] == run_id]
        if name not in trials or name not in complete:
            return trials.iloc[:0]
        return trials[~trials[name].isin(complete[name].unique())]

    def how_ended(self, trials: pd.DataFrame) -> str:
        """How ``trials``, none of them complete, ended: "failed", "did not finish" (a
        stopped run's) or both."""
        if "status" not in trials or trials.empty:
            return "failed or did not finish"
        failed = trials["status"].eq("FAILED")
        if failed.all():
            return "failed"
        if not failed.any():
            # The status of the runs these trials are of, not of others in a joint report.
            theirs = set(trials["run_id"]) if "run_id" in trials else None
            if any(run.get("status") == "running" for run in self.runs
                   if theirs is None or run["run_id"] in theirs):
                return "have not finished: the run is still going"
            return "did not finish: the run stopped before they completed"
        return "failed or did not finish"

    def log_scaled(self, name: str) -> bool:
        return any(p.get("name") == name and p.get("sampling") == "log"
                   for run in self.runs for p in run.get("space", {}).get("hyperparameters", []))


def _as_text(table: pd.DataFrame, columns: set[str], run: dict) -> pd.DataFrame:
    """``table`` (of ``run``) with ``columns`` as text: a run that declared a hyperparameter
    with numbers, joined with one that declared it with text, gives each number as its
    tables wrote it (1 as "1", 1.0 as "1.0", whatever pandas read), one value with the
    other run's "1" or "1.0". An empty cell stays missing."""
    declared = declared_values(run)

    def written(value, name: str):
        if isinstance(value, str) or pd.isna(value):
            return value
        for number in declared.get(name, []):
            if isinstance(number, (int, float)) and not isinstance(number, bool) \
                    and float(number) == float(value):
                return str(number)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    table = table.copy()
    for name in columns & set(table.columns):
        table[name] = table[name].map(lambda value, n=name: written(value, n)).astype(object)
    return table


def _start_of(run: dict) -> tuple | None:
    """What no other run shares with ``run``: its id, when and in which process it started
    (a resume moves that process to ``earlier_processes``), or None where it said none."""
    if not run.get("run_id") or not run.get("started"):
        return None
    earlier = run.get("earlier_processes") or [{}]
    process = earlier[0].get("process", {}) if "resumed" in run else run.get("process")
    return run["run_id"], run["started"], json.dumps(process, sort_keys=True)


def load_tables(paths: list[Path]) -> Tables:
    """Reads and checks every table of ``paths``; a bad table is a BenchError naming it."""
    opened, seen, began = [], {}, {}
    for path in paths:
        run_dir = open_run(path)
        where = run_dir.path.resolve()
        if where in seen:
            raise BenchError(f"{path} is the run {seen[where]} again: give each run once")
        seen[where] = path
        run = read_run(run_dir)
        start = _start_of(run)
        if start is not None and start in began:
            raise BenchError(
                f"{path} and {began[start]} are one run (run_id {start[0]}, started "
                f"{start[1]}): one is a copy of the other, perhaps resumed further, and "
                "their trials would count twice; give each run once")
        began.setdefault(start, path)
        run.setdefault("run_id", run_dir.path.name)
        opened.append((path, run_dir, run))
    names = [run["run_id"] for _, _, run in opened]
    runs, epochs, trials = [], [], []
    for path, run_dir, run in opened:
        if names.count(run["run_id"]) > 1:
            # Two runs with one name (the same --name in two results folders): rows are
            # told apart by run_id, so each is named by its path.
            run["run_id"] = str(path)
        runs.append(run)
        rows = read_epochs(run_dir)
        rows["run_id"] = run["run_id"]
        epochs.append(rows)
        table = None
        files = TableFiles.of(run_dir.path)
        if files.trials.exists():
            table = read_trials(run_dir)
            check_trials_agree(rows, table, files)
            trials.append((table.assign(run_id=run["run_id"]), run))
        check_rows_agree(rows, table, run, files)
        check_trials_listed(rows, table, status=run.get("status", ""), files=files)
        if table is not None:
            check_test_accuracies(table, files, run_dir.tuner)
    text = {name for run in runs for name in text_hyperparameters(run)}
    epochs = pd.concat([_as_text(rows, text, run) for rows, run in zip(epochs, runs)],
                       ignore_index=True)
    trials = pd.concat([_as_text(table, text, run) for table, run in trials],
                       ignore_index=True) if trials else pd.DataFrame(
        columns=["run_id", "trial_id", "status", "best_val_accuracy"])
    complete = numbers.complete_rows(epochs, trials)
    kept, superseded = [], []
    for run in runs:
        rows = complete[complete["run_id"] == run["run_id"]]
        declared = run.get("columns", {}).get("varied")
        configuration = declared if declared is not None else [
            c for c in rows.columns if c not in numbers.NOT_HYPERPARAMETERS]
        rows, dropped = numbers.longest_executions(rows, configuration=configuration)
        kept.append(rows)
        superseded.append(dropped)
    return Tables(runs=runs, epochs=epochs, trials=trials,
                  complete=pd.concat(kept, ignore_index=True),
                  superseded=pd.concat(superseded, ignore_index=True))


