"""Figures, ``report.md`` and ``report.html`` for one or more runs, from their tables alone.

Used at the end of every run and by ``run_bench.py analyze``; it never imports Keras.
A report is a list of blocks (headings, paragraphs, tables, figures) rendered twice: as
Markdown next to the PNGs, and as one self-contained HTML page with the images inside.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import analysis, plots
from bench.errors import BenchError
from bench.progress import format_value
from bench.results import (
    open_run,
    read_epochs,
    read_run,
    read_trials,
    write_parquet_copies,
)

HYPERPARAMETER_ORDER = ["init", "frozen_blocks", "head_lr", "body_lr_scale"]


@dataclass(frozen=True)
class Block:
    kind: str  # "h1", "h2", "p", "table", "figure", "list"
    content: object
    caption: str = ""


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


def varied_columns(run: dict, table: pd.DataFrame) -> list[str]:
    """The hyperparameters the space declared (``run.json`` columns.varied), in order."""
    columns = run.get("columns", {})
    names = columns.get("varied")
    if names is None:
        names = analysis.varied(table, columns.get("hyperparameters", HYPERPARAMETER_ORDER))
    return [n for n in names if n in table]


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


def summary_table(trials: pd.DataFrame, hyperparameters: list[str], limit: int = 10
                  ) -> pd.DataFrame:
    """Completed trials first, best first, then the others: every given hyperparameter,
    validation and test accuracy, epochs, seconds, status."""
    lead = ["run_id"] if "run_id" in trials and trials["run_id"].nunique() > 1 else []
    names = [h for h in hyperparameters if h in trials]
    extra = [c for c in ("epochs_completed",) if c in trials]
    columns = [*lead, "trial_id", *names, "best_val_accuracy", "final_val_accuracy",
               "test_accuracy", *extra, "seconds", "status"]
    ordered = trials.assign(_failed=trials["status"] != "COMPLETED").sort_values(
        ["_failed", "best_val_accuracy"], ascending=[True, False], na_position="last")
    return ordered[columns].head(limit)


def gap_sentence(gap: analysis.Gap) -> str:
    p = f", paired t-test p = {gap.p_value:.2g}" if not pd.isna(gap.p_value) else ""
    over = (f"averaged over {gap.configurations} configurations of the other hyperparameters "
            "and " if gap.configurations > 1 else "")
    return (f"At epoch {gap.epoch}, {gap.init} minus {gap.baseline} validation accuracy, "
            f"{over}paired by seed, is **{gap.mean:+.3f}** "
            f"(95% CI [{gap.low:+.3f}, {gap.high:+.3f}]; standard deviation over "
            f"{gap.pairs} seeds {_fmt(gap.spread)}{p}): {gap.init} {gap.init_accuracy:.3f}, "
            f"{gap.baseline} {gap.baseline_accuracy:.3f}.")


def partial_sentence(run: dict, trials: pd.DataFrame, epochs: pd.DataFrame,
                     complete: pd.DataFrame) -> str | None:
    """For a run that did not complete: what it holds, and that only whole executions
    count. None for a completed run."""
    status = run.get("status")
    if status == "completed":
        return None
    counts = trials["status"].value_counts() if not trials.empty else pd.Series(dtype=int)
    held = ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) or "none recorded"
    keys = ["trial_id", "repeat"]
    executions = len(epochs.groupby(keys)) if not epochs.empty else 0
    whole = len(complete.groupby(keys)) if not complete.empty else 0
    why = f" ({run['error']})" if run.get("error") else ""
    return (f"**Partial run**: its status is {status}{why}. It holds {len(trials)} trials "
            f"({held}) and {executions} executions with rows, {whole} of them complete; "
            "every number below uses the complete executions only.")


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

    @property
    def hyperparameters(self) -> list[str]:
        names = []
        for run in self.runs:
            names += [n for n in hyperparameter_columns(run, self.epochs) if n not in names]
        return names

    @property
    def varied(self) -> list[str]:
        names = []
        for run in self.runs:
            names += [n for n in varied_columns(run, self.epochs) if n not in names]
        return names

    def log_scaled(self, name: str) -> bool:
        return any(p.get("name") == name and p.get("sampling") == "log"
                   for run in self.runs for p in run.get("space", {}).get("hyperparameters", []))


def load_tables(paths: list[Path]) -> Tables:
    """Reads and checks every table of ``paths``; a bad table is a BenchError naming it."""
    runs, epochs, trials = [], [], []
    for path in paths:
        run_dir = open_run(path)
        run = read_run(run_dir)
        run.setdefault("run_id", run_dir.path.name)
        runs.append(run)
        rows = read_epochs(run_dir)
        rows["run_id"] = run["run_id"]
        epochs.append(rows)
        if run_dir.trials_csv.exists() or run_dir.path.joinpath("trials.parquet").exists():
            trials.append(read_trials(run_dir).assign(run_id=run["run_id"]))
    epochs = pd.concat(epochs, ignore_index=True)
    trials = pd.concat(trials, ignore_index=True) if trials else pd.DataFrame(
        columns=["run_id", "trial_id", "status", "best_val_accuracy"])
    return Tables(runs=runs, epochs=epochs, trials=trials,
                  complete=analysis.complete_rows(epochs, trials))


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


def build_report(tables: Tables, figure_blocks: list[Block]) -> list[Block]:
    blocks: list[Block] = []
    ids = ", ".join(r["run_id"] for r in tables.runs)
    partial = [r["run_id"] for r in tables.runs if r.get("status") != "completed"]
    title = f"Run {ids}" if len(tables.runs) == 1 else f"Runs {ids}"
    if partial:
        title += f" (partial: {', '.join(partial)} did not complete)" if len(tables.runs) > 1 \
            else f" (partial: status {tables.runs[0].get('status')})"
    blocks.append(Block("h1", title))
    for run in tables.runs:
        sentence = partial_sentence(run, tables.trials[tables.trials["run_id"] == run["run_id"]]
                                    if not tables.trials.empty else tables.trials,
                                    tables.epochs[tables.epochs["run_id"] == run["run_id"]],
                                    tables.complete[tables.complete["run_id"] == run["run_id"]])
        if sentence:
            prefix = f"{run['run_id']}: " if len(tables.runs) > 1 else ""
            blocks.append(Block("p", prefix + sentence))
    for run in tables.runs:
        blocks += [Block("h2", "What ran" + (f": {run['run_id']}" if len(tables.runs) > 1
                                               else "")), Block("list", what_ran(run))]
    blocks.append(Block("h2", "Headline"))
    for run in tables.runs:
        run_id = run["run_id"]
        complete = tables.complete[tables.complete["run_id"] == run_id]
        prefix = f"{run_id}: " if len(tables.runs) > 1 else ""
        if complete.empty:
            blocks.append(Block("p", prefix + "no execution completed, so there are no final "
                                              "numbers."))
            continue
        gaps = analysis.init_gaps(complete)
        for gap in gaps:
            blocks.append(Block("p", prefix + gap_sentence(gap)))
        if not gaps:
            blocks.append(Block("p", prefix + analysis.why_no_gap(complete)))
    trials = tables.trials
    if not trials.empty:
        best = analysis.best_trials(trials, by="init")
        if not best.empty:
            blocks += [Block("p", "Best configuration (by validation accuracy) per "
                                  "initialisation, with its accuracy on the held-out test "
                                  "split:"),
                       Block("table", summary_table(best, tables.varied))]
    for run in tables.runs:
        for reference in run.get("references", []):
            blocks.append(Block("p", f"Published reference ({reference['source']}): "
                                     f"{reference['text']}"))
    blocks += figure_blocks
    if not trials.empty:
        blocks += [Block("h2", "Trials"),
                   Block("table", summary_table(trials, tables.varied, limit=len(trials)))]
        failed = trials[trials["status"] != "COMPLETED"]
        if not failed.empty:
            blocks += [Block("h2", "Failed and skipped trials"),
                       Block("p", "They have no score and are left out of every figure and "
                                  "number above; each failed trial's whole traceback is in "
                                  "`tuner/trial_<id>/trial.json`."),
                       Block("list", [f"trial {row.trial_id}: {row.status}: {row.error}"
                                      for row in failed.itertuples()])]
    return blocks


def what_ran(run: dict) -> list[str]:
    settings = run.get("settings", {})
    space = run.get("space", {})
    data = run.get("dataset", {})
    versions = run.get("versions", {})
    lines = [
        f"Search space `{space.get('name')}` version {space.get('version')}: "
        f"{space.get('description', '')}",
        f"Dataset `{settings.get('dataset')}`: {data.get('train', '?')} training, "
        f"{data.get('validation', '?')} validation, {data.get('test', '?')} test images, "
        f"classes {', '.join(str(c) for c in data.get('classes', []))}",
        f"Backbone `{settings.get('backbone')}` ({run.get('backbone', {}).get('blocks')} "
        f"blocks) at {settings.get('image_size')} px; tuner `{run.get('tuner')}`; "
        f"{settings.get('epochs')} epochs, {settings.get('repeats')} repeats per "
        f"configuration (seeds {run.get('seeds', {}).get('repeats')}), batch "
        f"{settings.get('batch_size')}",
        f"Keras backend `{run.get('backend')}` on {run.get('device')}; Keras "
        f"{versions.get('keras')}, KerasTuner {versions.get('keras-tuner')}",
        f"Status {run.get('status')}; started {run.get('started')}, ended {run.get('ended')}; "
        f"search {run.get('search_seconds', '?')} s",
    ]
    pre = run.get("pretraining")
    if pre and "source_accuracy" in pre:
        lines.append(f"Source pretraining: {pre.get('epochs')} epochs, source accuracy in "
                     f"inference mode {pre['source_accuracy']:.3f}"
                     f"{' (reused from cache)' if pre.get('reused') else ''}")
    lines += [f"Note: {note}" for note in run.get("notes", [])]
    lines += [f"Warning: {warning}" for warning in run.get("warnings", [])]
    return lines


def to_markdown(blocks: list[Block], base: Path) -> str:
    out = []
    for block in blocks:
        if block.kind == "h1":
            out.append(f"# {block.content}")
        elif block.kind == "h2":
            out.append(f"## {block.content}")
        elif block.kind == "p":
            out.append(str(block.content))
        elif block.kind == "list":
            out.append("\n".join(f"- {item}" for item in block.content))
        elif block.kind == "table":
            out.append(markdown_table(block.content))
        elif block.kind == "figure":
            rel = Path(block.content).relative_to(base)
            out.append(f"{block.caption}\n\n![{Path(block.content).stem}]({rel.as_posix()})")
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(blocks: list[Block]) -> str:
    body = []
    for block in blocks:
        if block.kind in ("h1", "h2"):
            body.append(f"<{block.kind}>{_inline(str(block.content))}</{block.kind}>")
        elif block.kind == "p":
            body.append(f"<p>{_inline(str(block.content))}</p>")
        elif block.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.content)
                        + "</ul>")
        elif block.kind == "table":
            table = block.content
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
                           + "</tr>" for row in table.itertuples(index=False))
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "figure":
            data = base64.b64encode(Path(block.content).read_bytes()).decode("ascii")
            body.append(f"<figure><img alt='{html.escape(Path(block.content).stem)}' "
                        f"src='data:image/png;base64,{data}'><figcaption>"
                        f"{_inline(block.caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>finetune-bench report"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _check_writable(folder: Path) -> None:
    """Creates ``folder`` if needed and proves a file can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise BenchError(f"cannot write the report to {folder}: "
                         f"{error.strerror or error}; pass a writable folder (--out for "
                         "several runs)") from None


def write_report(tables: Tables, out: Path, *, log=print) -> Path:
    """Draws the figures of ``tables`` into ``out/plots`` and writes ``out/report.md`` and
    ``out/report.html``; returns the Markdown report's path.

    Everything is made in a staging folder inside ``out`` and moved into place at the end,
    so a failure half-way leaves the previous figures and report as they were.
    """
    out = Path(out)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        plots_dir = staging / "plots"
        plots_dir.mkdir()
        blocks = build_report(tables, figures(tables, plots_dir, log=log))
        (staging / "report.md").write_text(to_markdown(blocks, staging))
        (staging / "report.html").write_text(to_html(blocks))
        if (out / "plots").exists():
            os.replace(out / "plots", staging / "plots.previous")
        os.replace(plots_dir, out / "plots")
        for name in ("report.md", "report.html"):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"report: {out / 'report.md'} (and report.html)")
    return out / "report.md"


def write_outputs(run_paths: list[Path], *, out: Path | None = None, log=print) -> list[Path]:
    """Rebuilds each run's figures and report; several runs are also reported together
    in ``out`` (default: ``compare-<first>-<last>`` beside the first run).

    Every table is read and checked, and every destination proved writable, before
    anything is written: a bad table or folder is one BenchError and no file changes.
    """
    per_run = [load_tables([path]) for path in run_paths]
    destinations = [Path(path) for path in run_paths]
    if len(run_paths) > 1:
        first, last = Path(run_paths[0]), Path(run_paths[-1])
        out = Path(out or first.parent / f"compare-{first.name}-{last.name}")
        destinations.append(out)
    for folder in destinations:
        _check_writable(folder)
    reports = []
    for path, tables in zip(run_paths, per_run):
        write_parquet_copies(open_run(path))
        reports.append(write_report(tables, path, log=log))
    if len(run_paths) > 1:
        reports.append(write_report(load_tables(run_paths), out, log=log))
    return reports
