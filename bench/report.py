"""Figures and ``report.md`` for one or more run directories, from their tables alone.

Used at the end of every run and by ``run_bench.py analyze``; it never imports Keras.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import analysis, plots
from bench.results import open_run, read_epochs, read_run, read_trials

HYPERPARAMETER_ORDER = ["init", "frozen_blocks", "head_lr", "body_lr_scale"]


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (no extra dependency)."""
    head = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def hyperparameter_columns(run: dict, epochs: pd.DataFrame) -> list[str]:
    names = run.get("columns", {}).get("hyperparameters", HYPERPARAMETER_ORDER)
    return [n for n in names if n in epochs]


def curve_facets(epochs: pd.DataFrame, hyperparameters: list[str]) -> dict:
    """Which varied hyperparameter goes to columns, colours and line styles."""
    moving = analysis.varied(epochs, hyperparameters)
    col = "init" if "init" in moving else None
    hue = "frozen_blocks" if "frozen_blocks" in moving else None
    rest = [n for n in moving if n not in (col, hue)]
    if hue is None and rest:
        hue = rest.pop(0)
    style = rest.pop(0) if rest else None
    return {"col": col, "hue": hue, "style": style, "averaged": rest}


def accuracy_curves(epochs: pd.DataFrame, facets: dict) -> pd.DataFrame:
    """Validation and training accuracy curves per facet, long format with ``metric``."""
    by = [k for k in (facets["col"], facets["hue"], facets["style"]) if k]
    parts = []
    for metric in ("val_accuracy", "accuracy"):
        curve = analysis.mean_curves(epochs, by=by, metric=metric)
        curve.insert(0, "metric", metric)
        parts.append(curve)
    return pd.concat(parts, ignore_index=True)


def summary_table(trials: pd.DataFrame, hyperparameters: list[str], limit: int = 10
                  ) -> pd.DataFrame:
    """The best trials first: hyperparameters, validation and test accuracy, seconds."""
    moving = [h for h in hyperparameters if h in trials and trials[h].nunique() > 1]
    columns = ["trial_id", *moving, "best_val_accuracy", "final_val_accuracy",
               "test_accuracy", "seconds", "status"]
    return (trials.sort_values("best_val_accuracy", ascending=False, na_position="last")
            [columns].head(limit))


def _gap_sentence(gap: analysis.Gap) -> str:
    p = f", paired t-test p = {gap.p_value:.2g}" if not pd.isna(gap.p_value) else ""
    return (f"At epoch {gap.epoch}, pretrained minus random validation accuracy, averaged over "
            f"the other hyperparameters and paired by seed, is **{gap.mean:+.3f}** "
            f"(95% CI [{gap.low:+.3f}, {gap.high:+.3f}]; standard deviation over "
            f"{gap.pairs} seeds {_fmt(gap.spread)}{p}): pretrained {gap.pretrained:.3f}, "
            f"random {gap.random:.3f}.")


def write_outputs(run_paths: list[Path], *, log=print) -> list[Path]:
    """Rebuilds ``plots/`` and ``report.md`` in each run directory; returns the reports."""
    reports = []
    for path in run_paths:
        run_dir = open_run(path)
        run = read_run(run_dir)
        epochs = read_epochs(run_dir)
        trials = read_trials(run_dir) if run_dir.trials_csv.exists() else pd.DataFrame()
        hyperparameters = hyperparameter_columns(run, epochs)
        run_dir.plots.mkdir(exist_ok=True)
        lines = [f"# Run {run.get('run_id', run_dir.path.name)}", ""]
        lines += _what_ran(run, epochs)
        gap = analysis.init_gap(epochs)
        lines += ["## Headline", ""]
        if gap is not None:
            lines += [_gap_sentence(gap), ""]
        else:
            lines += ["This run did not vary `init`, so there is no pretrained-vs-random gap.",
                      ""]
        if not trials.empty:
            best = analysis.best_trials(trials, by="init")
            if not best.empty:
                lines += ["Best configuration (by validation accuracy) per initialisation, "
                          "with its accuracy on the held-out test split:", "",
                          markdown_table(summary_table(best, hyperparameters)), ""]
        if not epochs.empty:
            facets = curve_facets(epochs, hyperparameters)
            curves = accuracy_curves(epochs, facets)
            averaged = (f"; averaged over {', '.join(facets['averaged'])}"
                        if facets["averaged"] else "")
            figure = plots.accuracy_vs_epochs(
                curves, col=facets["col"], hue=facets["hue"], style=facets["style"],
                title=f"{run['space']['name']} on {run['settings']['dataset']}: accuracy "
                      f"against epochs (mean, 95% CI over repeats{averaged})")
            plots.save(figure, run_dir.plots / "accuracy_vs_epochs")
            lines += ["## Accuracy against epochs", "",
                      "Mean over repeats with 95% confidence bands; validation accuracy on "
                      "top, training accuracy below.", "",
                      "![accuracy against epochs](plots/accuracy_vs_epochs.png)", ""]
        if not trials.empty:
            lines += ["## Trials", "", markdown_table(summary_table(trials, hyperparameters,
                                                                    limit=len(trials))), ""]
            failed = trials[trials["status"] != "COMPLETED"]
            if not failed.empty:
                lines += ["## Failed trials", ""]
                lines += [f"- trial {row.trial_id}: {row.status}: {row.error}"
                          for row in failed.itertuples()]
                lines += [""]
        run_dir.report.write_text("\n".join(lines))
        log(f"report: {run_dir.report}")
        reports.append(run_dir.report)
    return reports


def _what_ran(run: dict, epochs: pd.DataFrame) -> list[str]:
    settings = run.get("settings", {})
    space = run.get("space", {})
    data = run.get("dataset", {})
    lines = [
        "## What ran", "",
        f"- Search space `{space.get('name')}` version {space.get('version')}: "
        f"{space.get('description', '')}",
        f"- Dataset `{settings.get('dataset')}`: {data.get('train', '?')} training, "
        f"{data.get('validation', '?')} validation, {data.get('test', '?')} test images, "
        f"classes {', '.join(data.get('classes', []))}",
        f"- Backbone `{settings.get('backbone')}` ({run.get('backbone', {}).get('blocks')} "
        f"blocks) at {settings.get('image_size')} px; tuner `{run.get('tuner')}`; "
        f"{settings.get('epochs')} epochs, {settings.get('repeats')} repeats per "
        f"configuration (seeds {run.get('seeds', {}).get('repeats')}), batch "
        f"{settings.get('batch_size')}",
        f"- Keras backend `{run.get('backend')}` on {run.get('device')}; Keras "
        f"{run.get('versions', {}).get('keras')}, KerasTuner "
        f"{run.get('versions', {}).get('keras-tuner')}",
        f"- Status {run.get('status')}; started {run.get('started')}, ended {run.get('ended')}"
        f"; search {run.get('search_seconds', '?')} s",
    ]
    pre = run.get("pretraining")
    if pre:
        lines.append(f"- Source pretraining: {pre['epochs']} epochs, source accuracy in "
                     f"inference mode {pre['source_accuracy']:.3f}"
                     f"{' (reused from cache)' if pre.get('reused') else ''}")
    lines.append("")
    return lines
