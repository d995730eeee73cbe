"""Which figures a study gets, and the data each one is drawn from.

Every interval is over the repeats (seeds) of one configuration: a figure that cannot
show every varied hyperparameter keeps, per line or point, the configuration that is best
over the hidden ones, and its caption says so. A figure that does not apply, or would be
a single point, is skipped with one line saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import captions, numbers, plots
from bench.analysis.formatting import as_declared, format_value, value_labels
from bench.analysis.render import Block
from bench.analysis.tables import Tables

#: Line styles one figure can tell apart, and colours on its viridis scale. A varied
#: hyperparameter with more values (a continuous one sampled by a random or Bayesian
#: search) is not drawn as lines of its own: each line keeps its best value instead.
MAX_STYLES = 4
MAX_HUES = 12


def curve_facets(epochs: pd.DataFrame, hyperparameters: list[str]) -> dict:
    """Which varied hyperparameter goes to columns, colours and line styles; the rest are
    ``best_of``: each line keeps the configuration that is best over them."""
    moving = numbers.varied(epochs, hyperparameters)
    distinct = {name: epochs[name].nunique() for name in moving}
    col = "init" if "init" in moving else None
    if col is None and epochs["run_id"].nunique() > 1:
        col = "run_id"
    hue = "frozen_blocks" if distinct.get("frozen_blocks", 0) <= MAX_HUES else None
    hue = hue if hue in moving else None
    rest = [n for n in moving if n not in (col, hue)]
    if hue is None:
        hue = next((n for n in rest if distinct[n] <= MAX_HUES), None)
        rest = [n for n in rest if n != hue]
    style = next((n for n in rest if distinct[n] <= MAX_STYLES), None)
    rest = [n for n in rest if n != style]
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
    return numbers.best_configurations(epochs, keep=keep, over=facets["best_of"])


def accuracy_curves(epochs: pd.DataFrame, facets: dict) -> pd.DataFrame:
    """Validation and training accuracy curves per line, long format with ``metric``;
    every band is over the repeats of one configuration."""
    rows = curve_rows(epochs, facets)
    parts = []
    for metric in ("val_accuracy", "accuracy"):
        curve = numbers.mean_curves(rows, by=_shown(facets), metric=metric)
        curve.insert(0, "metric", metric)
        parts.append(curve)
    return pd.concat(parts, ignore_index=True)


def chosen_configurations(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The distinct configurations in ``rows`` (what a best-of figure drew), each value
    written as the space declared it (``as_declared``)."""
    chosen = rows[columns].drop_duplicates().sort_values(columns, na_position="last")
    return chosen.assign(**{c: as_declared(chosen[c], chosen[c]) for c in columns
                            if c != "run_id"})


@dataclass
class Study:
    """What every figure function works with: the complete rows, the trials, and where
    figures and report blocks go."""

    tables: Tables
    plots_dir: Path
    log: Callable
    blocks: list[Block] = field(default_factory=list)

    @property
    def epochs(self) -> pd.DataFrame:
        return self.tables.complete

    @property
    def several(self) -> bool:
        return self.tables.epochs["run_id"].nunique() > 1

    @property
    def by_run(self) -> list[str]:
        return ["run_id"] if self.several else []

    @property
    def moving(self) -> list[str]:
        return numbers.varied(self.epochs, self.tables.hyperparameters)

    @property
    def name(self) -> str:
        return " + ".join(sorted({r.get("space", {}).get("name", "?")
                                  for r in self.tables.runs}))

    @property
    def data(self) -> str:
        return " + ".join(sorted({r.get("settings", {}).get("dataset", "?")
                                  for r in self.tables.runs}))

    def save(self, figure, stem: str, heading: str, sentence: str, *,
             intervals: bool = True) -> None:
        """``intervals``: whether the figure draws intervals (one seed has none)."""
        if intervals and self.tables.complete["seed"].nunique() == 1:
            sentence += " With one seed there is no interval: none is drawn."
        elif intervals and plots.draws_unjoined_points(figure):
            # Found in review: unjoined points were called "a line of one point".
            sentence += (" Each point's interval is its error bar"
                         + (", and the points of several lines at one x are drawn side by "
                            "side" if plots.draws_side_by_side(figure) else "") + ".")
        elif intervals and plots.draws_error_bars(figure):
            sentence += (" A point whose neighbours have no interval (a line of one point) "
                         "has no band to draw: its interval is the error bar on that point"
                         + (", and several such at one x are drawn side by side"
                            if plots.draws_side_by_side(figure) else "") + ".")
        plots.save(figure, self.plots_dir / stem)
        self.blocks += [Block("h2", heading),
                        Block("figure", self.plots_dir / f"{stem}.png", sentence)]

    def tried(self, name: str) -> bool:
        """Whether ``name`` took more than one value over every trial, failed ones
        included."""
        trials = self.tables.trials
        source = trials if name in trials else self.tables.epochs
        return name in source and source[name].nunique(dropna=False) > 1

    def unvaried(self, names: list[str], why: str) -> str:
        """Why ``names`` cannot all be drawn: ``why``, unless one of them took other
        values only in trials that failed, which is then said too."""
        lost = [n for n in names if n not in self.moving and self.tried(n)]
        if not lost:
            return why
        never = [n for n in names if n not in self.moving and n not in lost]
        reason = "; ".join(f"{name} was varied, but only one of its values has complete "
                           f"executions (the trials with the others {self._ended(name)})"
                           for name in lost)
        return (f"{' and '.join(never)} {'was' if len(never) == 1 else 'were'} not varied; "
                f"{reason}") if never else reason

    def _ended(self, name: str) -> str:
        """How the trials whose ``name`` took a value without complete executions ended:
        "failed", "did not finish" (a stopped run's) or both."""
        return self.tables.how_ended(self.tables.never_complete(name))

    def final_note(self) -> str:
        """Where executions ran for different numbers of epochs (Hyperband's brackets,
        runs of other lengths), that a "final" accuracy is each one's own last epoch."""
        last = numbers.last_epochs(self.epochs)["epoch"]
        if last.nunique() < 2:
            return ""
        return (f" The executions ran {int(last.min())} to {int(last.max())} epochs: each "
                "one's final accuracy is at its own last epoch, so configurations are "
                "compared at different epochs.")

    def skip(self, heading: str, why: str) -> None:
        self.log(f"figure '{heading}' skipped: {why}")
        self.blocks += [Block("h2", heading), Block("p", f"Not drawn: {why}.")]


def _accuracy_figure(study: Study) -> None:
    epochs = study.epochs
    facets = curve_facets(epochs, study.tables.hyperparameters)
    boundaries = tuple(numbers.phase_boundaries(epochs))
    curves = accuracy_curves(epochs, facets)
    if len(curves[curves["metric"] == "val_accuracy"]) <= 1:
        study.skip("Accuracy against epochs",
                   "one configuration ran for one epoch: a single point")
        return
    rows = curve_rows(epochs, facets)  # what each line is drawn from, for the note and table
    study.save(plots.accuracy_vs_epochs(
        curves, col=facets["col"], hue=facets["hue"], style=facets["style"],
        boundaries=boundaries,
        title=f"{study.name} on {study.data}: accuracy against epochs (mean, 95% CI over "
              "the repeats of each configuration)"),
        "accuracy_vs_epochs", "Accuracy against epochs",
        "Validation (top) and training (bottom) accuracy against epoch, mean over the "
        "repeats (seeds) of each configuration with a 95% confidence band"
        + (", the dashed line marking the start of phase 2" if boundaries else "") + "."
        + captions.cut_note(curves)
        + captions.best_note(facets["best_of"], rows, tables=study.tables)
        + (study.final_note() if facets["best_of"] else "")
        + captions.fewer_executions_note(curves[curves["metric"] == "val_accuracy"],
                                 _shown(facets)))
    if facets["best_of"]:
        shown = list(dict.fromkeys(c for c in ("run_id", *_shown(facets)) if c in epochs))
        study.blocks.append(Block("table", study.tables.mark_not_in_space(
            chosen_configurations(rows, [*shown, *facets["best_of"]]))))


def _transferability_figure(study: Study) -> None:
    if "frozen_blocks" not in study.moving:
        study.skip("Transferability",
                   study.unvaried(["frozen_blocks"], "frozen_blocks was not varied"))
        return
    hue = "init" if "init" in study.moving else None
    keep = [*study.by_run, "frozen_blocks", *([hue] if hue else [])]
    over = [n for n in study.moving if n not in keep]
    rows = numbers.best_configurations(study.epochs, keep=keep, over=over)
    summary = numbers.execution_summary(rows, by=keep)
    # A conditional frozen_blocks is inactive (empty) where its condition is not met:
    # those executions have no place on the axis.
    active = summary[summary["frozen_blocks"].notna()]
    if active["frozen_blocks"].nunique() < 2:
        study.skip("Transferability", "frozen_blocks took one value among the complete "
                                      "executions where it is active: a single point")
        return
    if study.several and active.groupby("run_id")["frozen_blocks"].nunique().max() < 2:
        # Each run's line would be one point; depths of different studies are no curve.
        study.skip("Transferability", "frozen_blocks took one value in each run: "
                   + ", ".join(f"{run} {format_value(group['frozen_blocks'].iloc[0])}"
                               for run, group in active.groupby("run_id", sort=False)))
        return
    lines = [c for c in (*study.by_run, hue) if c]
    left_out = captions.inactive_note(summary, active, lines, ["frozen_blocks"],
                              what="frozen_blocks")
    summary = active
    if study.several:
        summary["run / init"] = summary["run_id"] + (" / " + summary["init"] if hue else "")
        hue = "run / init"
    study.save(plots.transferability(
        summary, hue=hue, title=f"{study.name}: validation accuracy against frozen blocks"),
        "transferability", "Transferability",
        "Final and best validation accuracy against the number of frozen blocks, "
        + {(True, True): "one line per run and initialisation", (True, False): "one line per "
           "run", (False, True): "one line per initialisation", (False, False): "one line"}[
            (study.several, "init" in study.moving)]
        + ", with 95% intervals over the repeats of each configuration "
        "(cf. Yosinski et al. 2014)." + captions.cut_note(summary)
        + captions.best_note(over, rows, tables=study.tables) + left_out
        + study.final_note())


def _heatmap_figure(study: Study) -> None:
    heading = "Head learning rate x frozen depth"
    if not {"head_lr", "frozen_blocks"} <= set(study.moving):
        study.skip(heading, study.unvaried(["head_lr", "frozen_blocks"],
                                           "head_lr and frozen_blocks were not both varied"))
        return
    epochs = study.epochs
    panel_keys = [c for c in ("run_id", "init") if c in epochs and epochs[c].nunique() > 1]
    keep = [*panel_keys, "frozen_blocks", "head_lr"]
    over = [n for n in study.moving if n not in keep]
    rows = numbers.best_configurations(epochs, keep=keep, over=over)
    # Where frozen_blocks or head_lr is conditional, executions with it inactive have no
    # cell; the caption names them, and the panels of only those, left out.
    active = rows[rows["frozen_blocks"].notna() & rows["head_lr"].notna()]
    if active.empty:
        study.skip(heading, "frozen_blocks or head_lr is inactive in every complete "
                            "execution (a conditional hyperparameter whose condition is "
                            "not met)")
        return
    panels = {}
    for key, group in (active.groupby(panel_keys) if panel_keys else [("all", active)]):
        title = " ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        panels[title] = numbers.heatmap_table(group, rows="frozen_blocks", cols="head_lr")
    study.save(plots.heatmaps(panels, rows="frozen_blocks", cols="head_lr",
                              title=f"{study.name}: final validation accuracy"),
               "head_lr_x_frozen_blocks", heading,
               "Mean final validation accuracy over the repeats of each head learning rate "
               "and frozen depth." + captions.best_note(over, rows, tables=study.tables)
               + captions.inactive_note(rows, active, panel_keys, ["frozen_blocks", "head_lr"],
                                what="frozen_blocks or head_lr", sep=" ")
               + study.final_note(),
               intervals=False)


def _on_an_axis(values: pd.Series) -> bool:
    """Numbers, not True/False (pandas counts booleans as numbers: an axis from 0 to 1)."""
    return (pd.api.types.is_numeric_dtype(values)
            and not pd.api.types.is_bool_dtype(values))


def _objective_figures(study: Study) -> None:
    """Final validation accuracy against each numeric hyperparameter but frozen depth."""
    epochs, moving = study.epochs, study.moving
    for parameter in [n for n in study.tables.hyperparameters
                      if n not in moving and n != "frozen_blocks" and study.tried(n)
                      and _on_an_axis(study.tables.epochs[n])]:
        study.skip(f"Validation accuracy against {plots.label(parameter)}",
                   study.unvaried([parameter], ""))
    for parameter in [n for n in moving if n != "frozen_blocks" and _on_an_axis(epochs[n])]:
        col = "init" if "init" in moving else None
        hue = next((n for n in moving if n not in (parameter, col)), None)
        keep = [k for k in (*study.by_run, col, hue, parameter) if k]
        over = [n for n in moving if n not in keep]
        # A run whose space has no such parameter (a joint report) is not "inactive": it
        # is left out whole (its ties too), and the caption says so.
        lacking = [run["run_id"] for run in study.tables.runs
                   if study.tables.lacks(run["run_id"], parameter)]
        recorded = epochs[~epochs["run_id"].isin(lacking)] if lacking else epochs
        rows = numbers.best_configurations(recorded, keep=keep, over=over)
        final = numbers.execution_summary(rows, by=keep)
        recorded = final[final["measure"] == "final"]
        # Configurations where the parameter is inactive (conditional) have no x; the
        # caption names them.
        summary = recorded[recorded[parameter].notna()]
        groups = [col] if col else []
        inactive = captions.inactive_note(recorded, summary, groups,
                                  [k for k in keep if k not in groups], what=parameter)
        if lacking:
            inactive += (f" Not drawn: {', '.join(lacking)}, whose space has no "
                         f"{parameter}.")
        heading = f"Validation accuracy against {plots.label(parameter)}"
        if summary[parameter].nunique() < 2:
            study.skip(heading, f"{parameter} took one value among the complete executions: "
                                "a single point")
            continue
        log = study.tables.log_scaled(parameter)
        # Several runs: a line style each, or their points would join into one line.
        style = "run_id" if study.several and summary["run_id"].nunique() > 1 else None
        changing = _changing_along(rows[rows[parameter].notna()], over=over,
                                   line=[k for k in keep if k != parameter])
        study.save(plots.objective_vs(summary, x=parameter, col=col, hue=hue, style=style,
                                      log=log, joined=not changing,
                                      title=f"{study.name}: final validation accuracy "
                                            f"against {plots.label(parameter)}"),
                   f"objective_vs_{parameter}", heading,
                   f"Final validation accuracy against {plots.label(parameter)}, mean with a "
                   "95% interval over the repeats of each configuration"
                   + (" (log axis)" if log else "") + "."
                   + ((" One line style per run." if not changing else " One marker per "
                       "run.") if style else "")
                   + captions.cut_note(summary)
                   + captions.best_note(over, rows, tables=study.tables)
                   + (f" The points are not joined: {', '.join(changing)} "
                      f"{'changes' if len(changing) == 1 else 'change'} from one "
                      f"{plots.label(parameter)} to the next, so they are no curve of "
                      f"{plots.label(parameter)} alone." if changing else "")
                   + inactive + study.final_note())


def _changing_along(rows: pd.DataFrame, *, over: list[str], line: list[str]) -> list[str]:
    """Those of ``over`` whose best value (``rows``: one configuration per point) differs
    between two points of one line (the rows sharing ``line``'s values)."""
    present = [name for name in over if name in rows]
    if not present or rows.empty:
        return []
    groups = rows.groupby(line, dropna=False, sort=False) if line else [((), rows)]
    return [name for name in present
            if any(group[name].nunique(dropna=False) > 1 for _, group in groups)]


def _gain_figure(study: Study) -> None:
    gains = []
    for run_id, group in study.epochs.groupby("run_id", sort=False):
        gain = numbers.transfer_gain(group, pair_on=study.tables.pair_on(run_id))
        if not gain.empty:
            gains.append(gain.assign(run_id=run_id))
    if not gains:
        reasons = {numbers.why_no_gap(group, pair_on=study.tables.pair_on(run_id))
                   for run_id, group in study.epochs.groupby("run_id")}
        study.skip("Transfer gain", "; ".join(r.rstrip(".") for r in sorted(reasons)))
        return
    gain = pd.concat(gains, ignore_index=True)
    hue = "comparison"
    if study.several:
        gain["run / comparison"] = gain["run_id"] + " / " + gain["comparison"]
        hue = "run / comparison"
    study.save(plots.transfer_gain(gain, hue=hue,
                                   title=f"{study.name}: transfer gain (paired by seed)"),
               "transfer_gain", "Transfer gain",
               "Each initialisation minus random validation accuracy against epoch, paired "
               "by seed over the configurations run with both at every seed at that epoch and "
               "averaged over them, with a 95% interval over seeds: above the line the "
               "initialisation is ahead of random at that epoch, and where the band crosses "
               "the line these seeds do not tell them apart.")


def _trial_figures(study: Study) -> None:
    trials = study.tables.trials
    if trials.empty:
        return
    study.save(plots.tuner_progress(numbers.best_so_far(trials),
                                    hue="run_id" if study.several else None,
                                    title=f"{study.name}: tuner progress"),
               "tuner_progress", "Tuner progress",
               "Best objective (mean best-epoch validation accuracy) so far against trial "
               "number and against the summed trial time; failed trials add time but no "
               "score.", intervals=False)
    done = trials[trials["status"] == "COMPLETED"].dropna(subset=["best_val_accuracy"])
    # A trial whose executions ran again for longer in a later one (Hyperband) has no
    # rows of its own to draw: it counts as that run.
    longer = done[~done["trial_id"].isin(study.epochs["trial_id"])]
    done = done[done["trial_id"].isin(study.epochs["trial_id"])]
    ranked = done.sort_values(["best_val_accuracy", "trial_id"], ascending=[False, True])
    best = ranked.head(3)
    if best.empty:
        study.skip("Overfitting", "no trial completed (some executions did, in trials that "
                                  "failed later), so there are no best trials to draw")
        return
    if study.several:
        study.skip("Overfitting", "a joint report compares runs, and the best trials of one "
                                  "run say nothing of another's; each run's own report "
                                  "draws its best trials (analyze RUN)")
        return
    # A tie at the last place drawn is broken by trial id, and the caption names who
    # lost it.
    third = best["best_val_accuracy"].iloc[-1]
    longer = longer[longer["best_val_accuracy"] >= third]
    tied_out = ranked.iloc[len(best):]
    tied_out = tied_out[np.isclose(tied_out["best_val_accuracy"], third,
                                   rtol=numbers.TIE_RTOL, atol=0)]
    names = [n for n in study.tables.varied if n in best]
    # Records, not itertuples: a hyperparameter named "dropout-rate" is no attribute.
    written = {n: value_labels(best[n].unique()) for n in names}
    labels = {row["trial_id"]: ", ".join(f"{plots.label(n)}={written[n](row[n])}"
                                         for n in names) or f"trial {row['trial_id']}"
              for row in best.to_dict("records")}
    gap = numbers.generalisation_gap(study.epochs, best["trial_id"].tolist())
    gap["configuration"] = gap["trial_id"].map(labels)
    study.save(plots.overfitting(gap, title=f"{study.name}: overfitting of the best "
                                            f"{len(best)} trials"),
               "overfitting", "Overfitting",
               "Training minus validation accuracy against epoch for the best "
               "configurations, 95% band over the repeats of each. " + TRAINING_ACCURACY
               + captions.fewer_executions_note(gap, ["configuration"], label=lambda key:
                                        key["configuration"])
               + (f" Not drawn: {captions.trial_list(tied_out['trial_id'])}, tied at "
                  f"{third:.4f} with trial {best['trial_id'].iloc[-1]}, the last drawn (of "
                  "trials with one score, the lowest ids are drawn)." if len(tied_out) else "")
               + (f" Not drawn: {captions.trial_list(longer['trial_id'])}, whose executions ran "
                  "again for more epochs in a later trial and count as that one (see "
                  "'Executions counted at their longest run')." if len(longer) else ""))


#: What the training accuracy of epochs.csv is, for a caption that subtracts it.
TRAINING_ACCURACY = (
    "Training accuracy is Keras's mean over the epoch's batches, in training mode (Dropout "
    "on, the weights still changing), and validation accuracy is measured after the epoch: "
    "the difference is not one model's train-validation gap, and it reads low, most at the "
    "first epochs (below zero is common there).")


def figures(tables: Tables, plots_dir: Path, log=print) -> list[Block]:
    """Draws every figure that applies; says in one line why any other is skipped."""
    study = Study(tables=tables, plots_dir=plots_dir, log=log)
    if study.epochs.empty:
        study.skip("Accuracy against epochs", "no execution completed")
        return study.blocks
    for draw in (_accuracy_figure, _transferability_figure, _heatmap_figure,
                 _objective_figures, _gain_figure, _trial_figures):
        draw(study)
    return study.blocks
