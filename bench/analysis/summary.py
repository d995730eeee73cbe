"""The table printed when a run ends: best trials, the headline gaps, where the files are."""

from __future__ import annotations

from pathlib import Path

from bench.analysis import numbers
from bench.analysis.formatting import counted
from bench.analysis.render import interval
from bench.analysis.report import (
    coarse_validation_sentence,
    earlier_epoch_reason,
    gap_scope,
    never_complete_sentence,
    partial_sentence,
    summary_table,
    with_init_sentence,
)
from bench.analysis.tables import load_tables


def print_summary(path: Path, *, limit: int = 10) -> None:
    tables = load_tables([path])
    run, trials = tables.runs[0], tables.trials
    print()
    partial = partial_sentence(run, trials, tables.epochs, tables.complete)
    if partial:
        print(partial.replace("**", ""))
    if trials.empty:
        print("No trial was recorded.")
    else:
        table = summary_table(trials, tables.varied, limit=limit)
        if (trials["status"] == "COMPLETED").any():
            print(f"Top {min(limit, len(trials))} of {counted(len(trials), 'trial')} by best "
                  "validation accuracy (mean over repeats; trials that did not complete "
                  "last):")
        else:
            print(f"{'The' if len(trials) <= limit else f'{limit} of the'} "
                  f"{counted(len(trials), 'trial')}: none completed, so none has a score:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    gaps = numbers.init_gaps(tables.complete, pair_on=tables.pair_on(run["run_id"]))
    for gap in gaps:
        seeds = f"{gap.pairs} seeds" if gap.pairs > 1 else "one seed"
        if gap.configurations < gap.configurations_any_epoch:
            seeds += f"; {gap_scope(gap)}"
        reason = earlier_epoch_reason(gap)
        if reason:
            seeds += f"; {reason}"
        same = " (the same difference at every seed)" if gap.spread == 0 else ""
        print(f"\n{gap.init} - {gap.baseline} at epoch {gap.epoch} (paired over {seeds}): "
              f"{gap.mean:+.3f}, {interval(gap.low, gap.high)}{same}."
              f"{with_init_sentence(gap)}")
    lost = never_complete_sentence(tables, run["run_id"]) if gaps else None
    if lost:
        print(lost)
    # Found by a new user: the report said how coarse a small validation split is, and
    # the console's headline did not.
    coarse = coarse_validation_sentence(run) if gaps else None
    if coarse:
        print(coarse)
    if not gaps and "init" in tables.varied:
        why = numbers.why_no_gap(tables.complete, pair_on=tables.pair_on(run["run_id"]))
        print(f"\n{why[:1].upper()}{why[1:]}")
    print(f"\nrun directory: {path}  (report.md, epochs.csv, trials.csv, plots/)")
