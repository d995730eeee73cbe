"""The table printed when a run ends: best trials, the headline gap, where the files are."""

from __future__ import annotations

from pathlib import Path

from bench import analysis
from bench.report import hyperparameter_columns, summary_table
from bench.results import open_run, read_epochs, read_run, read_trials


def print_summary(path: Path, *, limit: int = 10) -> None:
    run_dir = open_run(path)
    run = read_run(run_dir)
    epochs = read_epochs(run_dir)
    trials = read_trials(run_dir)
    table = summary_table(trials, hyperparameter_columns(run, epochs), limit=limit)
    print()
    print(f"Top {min(limit, len(trials))} of {len(trials)} trials by best validation accuracy "
          "(mean over repeats):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    gap = analysis.init_gap(epochs)
    if gap is not None:
        print(f"\npretrained - random at epoch {gap.epoch} (paired over {gap.pairs} seeds): "
              f"{gap.mean:+.3f}, 95% CI [{gap.low:+.3f}, {gap.high:+.3f}]")
    print(f"\nrun directory: {run_dir.path}  (report.md, epochs.csv, trials.csv, plots/)")
