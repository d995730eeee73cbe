"""Which figures a study gets, and the data each one is drawn from.

Every interval is over the repeats (seeds) of one configuration: a figure that cannot
show every varied hyperparameter keeps, per line or point, the configuration that is best
over the hidden ones, and its caption says so. A figure that does not apply, or would be
a single point, is skipped with one line saying why.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import analysis, plots
from bench.progress import format_value
from bench.render import Block
from bench.tables import Tables


def curve_facets(epochs: pd.DataFrame, hyperparameters: list[str]) -> dict:
    """Which varied hyperparameter goes to columns, colours and line styles; the rest are
    ``best_of``: each line keeps the configuration that is best over them."""
    moving = analysis.varied(epochs, hyperparameters)
    col = "init" if "init" in moving else None
    if col is None and epochs["run_id"].nunique() > 1:
        col = "run_id"
    hue = "frozen_blocks" if "frozen_blocks" in moving else None
    rest = [n for n in moving if n not in (col, hue)]
    if hue is None and rest:
        hue = rest.pop(0)
    style = rest.pop(0) if rest else None
    if epochs["run_id"].nunique() > 1 and col != "run_id":
        style, rest = "run_id", ([style] if style else []) + rest
    return {"col": col, "hue": hue, "style": style, "best_of": rest}


def _shown(facets: dict) -> list[str]:
    return [k for k in (facets["col"], facets["hue"], facets["style"]) if k]


def curve_rows(epochs: pd.DataFrame, facets: dict) -> pd.DataFrame:
    """The rows each line of the accuracy figure is drawn from: one configuration per
    line (the best over ``best_of`` by final validation accuracy)."""
    keep = _shown(facets)
    if "run_id" not in keep and epochs["run_id"].nunique() > 1:
        keep = ["run_id", *keep]
    return analysis.best_configurations(epochs, keep=keep, over=facets["best_of"])


def accuracy_curves(epochs: pd.DataFrame, facets: dict) -> pd.DataFrame:
    """Validation and training accuracy curves per line, long format with ``metric``;
    every band is over the repeats of one configuration."""
    rows = curve_rows(epochs, facets)
    parts = []
    for metric in ("val_accuracy", "accuracy"):
        curve = analysis.mean_curves(rows, by=_shown(facets), metric=metric)
        curve.insert(0, "metric", metric)
        parts.append(curve)
    return pd.concat(parts, ignore_index=True)


def chosen_configurations(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The distinct configurations in ``rows`` (what a best-of figure drew)."""
    return rows[columns].drop_duplicates().sort_values(columns, na_position="last")


def figures(tables: Tables, plots_dir: Path, log=print) -> list[Block]:
    """Draws every figure that applies; says in one line why any other is skipped."""
    epochs, trials = tables.complete, tables.trials
    several = tables.epochs["run_id"].nunique() > 1
    moving = analysis.varied(epochs, tables.hyperparameters)
    name = " + ".join(sorted({r.get("space", {}).get("name", "?") for r in tables.runs}))
    data = " + ".join(sorted({r.get("settings", {}).get("dataset", "?") for r in tables.runs}))
    by_run = ["run_id"] if several else []
    blocks: list[Block] = []

    def save(figure, stem, heading, sentence):
        plots.save(figure, plots_dir / stem)
        blocks.extend([Block("h2", heading), Block("figure", plots_dir / f"{stem}.png",
                                                    sentence)])

    def skip(heading, why):
        log(f"figure '{heading}' skipped: {why}")
        blocks.extend([Block("h2", heading), Block("p", f"Not drawn: {why}.")])

    def best_note(over: list[str]) -> str:
        if not over:
            return ""
        return (f" Where {', '.join(over)} also varied, each line or point is the value(s) "
                "with the best final validation accuracy, so every interval is over the "
                "repeats of one configuration.")

    if epochs.empty:
        skip("Accuracy against epochs", "no execution completed")
        return blocks

    facets = curve_facets(epochs, tables.hyperparameters)
    boundaries = tuple(analysis.phase_boundaries(epochs))
    curves = accuracy_curves(epochs, facets)
    if len(curves[curves["metric"] == "val_accuracy"]) <= 1:
        skip("Accuracy against epochs", "one configuration ran for one epoch: a single point")
    else:
        save(plots.accuracy_vs_epochs(
            curves, col=facets["col"], hue=facets["hue"], style=facets["style"],
            boundaries=boundaries,
            title=f"{name} on {data}: accuracy against epochs (mean, 95% CI over the repeats "
                  "of each configuration)"),
            "accuracy_vs_epochs", "Accuracy against epochs",
            "Validation (top) and training (bottom) accuracy against epoch, mean over the "
            "repeats (seeds) of each configuration with a 95% confidence band"
            + (", the dashed line marking the start of phase 2" if boundaries else "") + "."
            + best_note(facets["best_of"]))
        if facets["best_of"]:
            shown = [c for c in ("run_id", *_shown(facets)) if c in epochs]
            shown = list(dict.fromkeys(shown))
            blocks.append(Block("table", chosen_configurations(
                curve_rows(epochs, facets), [*shown, *facets["best_of"]])))

    if "frozen_blocks" in moving:
        hue = "init" if "init" in moving else None
        keep = [*by_run, "frozen_blocks", *([hue] if hue else [])]
        over = [n for n in moving if n not in keep]
        rows = analysis.best_configurations(epochs, keep=keep, over=over)
        summary = analysis.execution_summary(rows, by=keep)
        if several:
            summary["run / init"] = summary["run_id"] + (" / " + summary["init"] if hue
                                                         else "")
            hue = "run / init"
        save(plots.transferability(summary, hue=hue,
                                   title=f"{name}: validation accuracy against frozen blocks"),
             "transferability", "Transferability",
             "Final and best validation accuracy against the number of frozen blocks, one "
             "line per initialisation, with 95% intervals over the repeats of each "
             "configuration (cf. Yosinski et al. 2014)." + best_note(over))
    else:
        skip("Transferability", "frozen_blocks was not varied")

    if {"head_lr", "frozen_blocks"} <= set(moving):
        panel_keys = [c for c in ("run_id", "init") if c in epochs and epochs[c].nunique() > 1]
        keep = [*panel_keys, "frozen_blocks", "head_lr"]
        over = [n for n in moving if n not in keep]
        rows = analysis.best_configurations(epochs, keep=keep, over=over)
        panels = {}
        for key, group in (rows.groupby(panel_keys) if panel_keys else [("all", rows)]):
            title = " ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            panels[title] = analysis.heatmap_table(group, rows="frozen_blocks", cols="head_lr")
        save(plots.heatmaps(panels, rows="frozen_blocks", cols="head_lr",
                            title=f"{name}: final validation accuracy"),
             "head_lr_x_frozen_blocks", "Head learning rate x frozen depth",
             "Mean final validation accuracy over the repeats of each head learning rate "
             "and frozen depth." + best_note(over))
    else:
        skip("Head learning rate x frozen depth", "head_lr and frozen_blocks were not both "
             "varied")

    for parameter in [n for n in moving if n != "frozen_blocks"
                      and pd.api.types.is_numeric_dtype(epochs[n])]:
        col = "init" if "init" in moving else None
        hue = next((n for n in moving if n not in (parameter, col)), None)
        keep = [k for k in (*by_run, col, hue, parameter) if k]
        over = [n for n in moving if n not in keep]
        rows = analysis.best_configurations(epochs, keep=keep, over=over)
        summary = analysis.execution_summary(rows, by=keep)
        summary = summary[summary["measure"] == "final"]
        heading = f"Validation accuracy against {plots.label(parameter)}"
        if summary[parameter].nunique() < 2:
            skip(heading, f"{parameter} took one value among the complete executions: a "
                          "single point")
            continue
        save(plots.objective_vs(summary, x=parameter, col=col, hue=hue,
                                log=tables.log_scaled(parameter),
                                title=f"{name}: final validation accuracy against "
                                      f"{plots.label(parameter)}"),
             f"objective_vs_{parameter}", heading,
             f"Final validation accuracy against {plots.label(parameter)}, mean with a 95% "
             "interval over the repeats of each configuration"
             + (" (log axis)" if tables.log_scaled(parameter) else "") + "."
             + best_note(over))

    gains = []
    for run_id, group in epochs.groupby("run_id", sort=False):
        gain = analysis.transfer_gain(group)
        if not gain.empty:
            gains.append(gain.assign(run_id=run_id))
    if gains:
        gain = pd.concat(gains, ignore_index=True)
        hue = "comparison"
        if several:
            gain["run / comparison"] = gain["run_id"] + " / " + gain["comparison"]
            hue = "run / comparison"
        save(plots.transfer_gain(gain, hue=hue, title=f"{name}: transfer gain (paired by seed)"),
             "transfer_gain", "Transfer gain",
             "Each initialisation minus random validation accuracy against epoch, paired by "
             "seed over the configurations run with both and averaged over them, with a 95% "
             "interval over seeds; above the line the initialisation helps.")
    else:
        reasons = {analysis.why_no_gap(group) for _, group in epochs.groupby("run_id")}
        skip("Transfer gain", " ".join(sorted(reasons)).rstrip("."))

    if not trials.empty:
        progress = analysis.best_so_far(trials)
        save(plots.tuner_progress(progress, hue="run_id" if several else None,
                                  title=f"{name}: tuner progress"),
             "tuner_progress", "Tuner progress",
             "Best objective (mean best-epoch validation accuracy) so far against trial "
             "number and against the summed trial time; failed trials add time but no score.")
        done = trials[trials["status"] == "COMPLETED"]
        best = done.sort_values("best_val_accuracy", ascending=False).head(3)
        if not best.empty and not several:
            names = [n for n in tables.varied if n in best]
            labels = {row.trial_id: ", ".join(f"{plots.label(n)}={format_value(getattr(row, n))}"
                                              for n in names) or f"trial {row.trial_id}"
                      for row in best.itertuples()}
            gap = analysis.generalisation_gap(epochs, best["trial_id"].tolist())
            gap["configuration"] = gap["trial_id"].map(labels)
            save(plots.overfitting(gap, title=f"{name}: overfitting of the best "
                                              f"{len(best)} trials"),
                 "overfitting", "Overfitting",
                 "Training minus validation accuracy against epoch for the best "
                 "configurations, 95% band over the repeats of each.")
    return blocks


