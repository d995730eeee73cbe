"""Figures, ``report.md`` and ``report.html`` for one or more runs, from their tables alone.

Used at the end of every run and by ``run_bench.py analyze``; it never imports Keras.
A report is a list of blocks (headings, paragraphs, tables, figures) rendered twice: as
Markdown next to the PNGs, and as one self-contained HTML page with the images inside.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import analysis, plots
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


def curve_facets(epochs: pd.DataFrame, hyperparameters: list[str]) -> dict:
    """Which varied hyperparameter goes to columns, colours and line styles."""
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
    lead = ["run_id"] if "run_id" in trials and trials["run_id"].nunique() > 1 else []
    columns = [*lead, "trial_id", *moving, "best_val_accuracy", "final_val_accuracy",
               "test_accuracy", "seconds", "status"]
    return (trials.sort_values("best_val_accuracy", ascending=False, na_position="last")
            [columns].head(limit))


def gap_sentence(gap: analysis.Gap) -> str:
    p = f", paired t-test p = {gap.p_value:.2g}" if not pd.isna(gap.p_value) else ""
    return (f"At epoch {gap.epoch}, pretrained minus random validation accuracy, averaged over "
            f"the other hyperparameters and paired by seed, is **{gap.mean:+.3f}** "
            f"(95% CI [{gap.low:+.3f}, {gap.high:+.3f}]; standard deviation over "
            f"{gap.pairs} seeds {_fmt(gap.spread)}{p}): pretrained {gap.pretrained:.3f}, "
            f"random {gap.random:.3f}.")


@dataclass
class Tables:
    """The tables of one or more runs, with a ``run_id`` on every row."""

    runs: list[dict]
    epochs: pd.DataFrame
    trials: pd.DataFrame

    @property
    def hyperparameters(self) -> list[str]:
        names = []
        for run in self.runs:
            names += [n for n in hyperparameter_columns(run, self.epochs) if n not in names]
        return names


def load_tables(paths: list[Path]) -> Tables:
    runs, epochs, trials = [], [], []
    for path in paths:
        run_dir = open_run(path)
        run = read_run(run_dir)
        runs.append(run)
        epochs.append(read_epochs(run_dir))
        if run_dir.trials_csv.exists() or run_dir.path.joinpath("trials.parquet").exists():
            trials.append(read_trials(run_dir).assign(run_id=run["run_id"]))
    return Tables(runs=runs, epochs=pd.concat(epochs, ignore_index=True),
                  trials=pd.concat(trials, ignore_index=True) if trials else pd.DataFrame())


def figures(tables: Tables, plots_dir: Path, log=print) -> list[Block]:
    """Draws every figure that applies; says in one line why any other is skipped."""
    epochs, trials = tables.epochs, tables.trials
    several = epochs["run_id"].nunique() > 1
    moving = analysis.varied(epochs, tables.hyperparameters)
    name = " + ".join(sorted({r["space"]["name"] for r in tables.runs}))
    data = " + ".join(sorted({r["settings"]["dataset"] for r in tables.runs}))
    blocks: list[Block] = []

    def save(figure, stem, heading, sentence):
        plots.save(figure, plots_dir / stem)
        blocks.extend([Block("h2", heading), Block("figure", plots_dir / f"{stem}.png",
                                                    sentence)])

    def skip(heading, why):
        log(f"figure '{heading}' skipped: {why}")
        blocks.extend([Block("h2", heading), Block("p", f"Not drawn: {why}.")])

    facets = curve_facets(epochs, tables.hyperparameters)
    averaged = f"; averaged over {', '.join(facets['averaged'])}" if facets["averaged"] else ""
    boundaries = tuple(analysis.phase_boundaries(epochs))
    save(plots.accuracy_vs_epochs(
        accuracy_curves(epochs, facets), col=facets["col"], hue=facets["hue"],
        style=facets["style"], boundaries=boundaries,
        title=f"{name} on {data}: accuracy against epochs (mean, 95% CI over repeats"
              f"{averaged})"),
        "accuracy_vs_epochs", "Accuracy against epochs",
        "Validation (top) and training (bottom) accuracy against epoch, mean over repeats "
        "with 95% confidence bands" + (", the dashed line marking the start of phase 2"
                                       if boundaries else "") + ".")

    by_run = ["run_id"] if several else []
    if "frozen_blocks" in moving:
        hue = "init" if "init" in epochs else None
        summary = analysis.execution_summary(epochs, by=[*by_run, "frozen_blocks",
                                                         *([hue] if hue else [])])
        if several:
            summary["run / init"] = summary["run_id"] + (" / " + summary["init"] if hue
                                                         else "")
            hue = "run / init"
        save(plots.transferability(summary, hue=hue,
                                   title=f"{name}: validation accuracy against frozen blocks"),
             "transferability", "Transferability",
             "Final and best validation accuracy against the number of frozen blocks, one "
             "line per initialisation, with 95% intervals over repeats (cf. Yosinski et al. "
             "2014).")
    else:
        skip("Transferability", "frozen_blocks was not varied")

    if {"head_lr", "frozen_blocks"} <= set(moving):
        panels = {}
        keys = [c for c in ("run_id", "init") if c in epochs and epochs[c].nunique() > 1]
        groups = epochs.groupby(keys) if keys else [("all", epochs)]
        for key, group in groups:
            title = " ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            panels[title] = analysis.heatmap_table(group, rows="frozen_blocks", cols="head_lr")
        save(plots.heatmaps(panels, rows="frozen_blocks", cols="head_lr",
                            title=f"{name}: final validation accuracy"),
             "head_lr_x_frozen_blocks", "Head learning rate x frozen depth",
             "Mean final validation accuracy for each head learning rate and frozen depth.")
    else:
        skip("Head learning rate x frozen depth", "head_lr and frozen_blocks were not both "
             "varied")

    gains = []
    for run_id, group in epochs.groupby("run_id", sort=False):
        gain = analysis.transfer_gain(group)
        if not gain.empty:
            gains.append(gain.assign(run_id=run_id))
    if gains:
        save(plots.transfer_gain(pd.concat(gains, ignore_index=True),
                                 hue="run_id" if several else None,
                                 title=f"{name}: transfer gain (paired by seed)"),
             "transfer_gain", "Transfer gain",
             "Pretrained minus random validation accuracy against epoch, paired by seed and "
             "averaged over the other hyperparameters, with a 95% interval; above the line "
             "pretraining helps.")
    else:
        skip("Transfer gain", "no run has both pretrained and random init")

    if not trials.empty:
        progress = analysis.best_so_far(trials)
        save(plots.tuner_progress(progress, hue="run_id" if several else None,
                                  title=f"{name}: tuner progress"),
             "tuner_progress", "Tuner progress",
             "Best objective (mean best-epoch validation accuracy) so far against trial "
             "number and against the summed trial time.")
        done = trials[trials["status"] == "COMPLETED"]
        best = done.sort_values("best_val_accuracy", ascending=False).head(3)
        if not best.empty and not several:
            gap = analysis.generalisation_gap(epochs, best["trial_id"].tolist())
            save(plots.overfitting(gap, title=f"{name}: overfitting of the best "
                                              f"{len(best)} trials"),
                 "overfitting", "Overfitting",
                 "Training minus validation accuracy against epoch for the best "
                 "configurations, 95% band over repeats.")
    return blocks


def build_report(tables: Tables, figure_blocks: list[Block]) -> list[Block]:
    blocks: list[Block] = []
    ids = ", ".join(r["run_id"] for r in tables.runs)
    blocks.append(Block("h1", f"Run {ids}" if len(tables.runs) == 1 else f"Runs {ids}"))
    for run in tables.runs:
        blocks += [Block("h2", "What ran" + (f": {run['run_id']}" if len(tables.runs) > 1
                                               else "")), Block("list", what_ran(run))]
    blocks.append(Block("h2", "Headline"))
    for run_id, group in tables.epochs.groupby("run_id", sort=False):
        gap = analysis.init_gap(group)
        prefix = f"{run_id}: " if len(tables.runs) > 1 else ""
        blocks.append(Block("p", prefix + (gap_sentence(gap) if gap else
                                           "init was not varied, so there is no "
                                           "pretrained-vs-random gap.")))
    trials = tables.trials
    if not trials.empty:
        best = analysis.best_trials(trials, by="init")
        if not best.empty:
            blocks += [Block("p", "Best configuration (by validation accuracy) per "
                                  "initialisation, with its accuracy on the held-out test "
                                  "split:"),
                       Block("table", summary_table(best, tables.hyperparameters))]
    for run in tables.runs:
        for reference in run.get("references", []):
            blocks.append(Block("p", f"Published reference ({reference['source']}): "
                                     f"{reference['text']}"))
    blocks += figure_blocks
    if not trials.empty:
        blocks += [Block("h2", "Trials"),
                   Block("table", summary_table(trials, tables.hyperparameters,
                                                limit=len(trials)))]
        failed = trials[trials["status"] != "COMPLETED"]
        if not failed.empty:
            blocks += [Block("h2", "Failed trials"),
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
        f"classes {', '.join(data.get('classes', []))}",
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
    if pre:
        lines.append(f"Source pretraining: {pre['epochs']} epochs, source accuracy in "
                     f"inference mode {pre['source_accuracy']:.3f}"
                     f"{' (reused from cache)' if pre.get('reused') else ''}")
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


def write_report(paths: list[Path], out: Path, *, log=print) -> Path:
    """Draws the figures of ``paths`` into ``out/plots`` and writes ``out/report.md`` and
    ``out/report.html``; returns the Markdown report's path."""
    tables = load_tables(paths)
    plots_dir = Path(out) / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_report(tables, figures(tables, plots_dir, log=log))
    (Path(out) / "report.md").write_text(to_markdown(blocks, Path(out)))
    (Path(out) / "report.html").write_text(to_html(blocks))
    log(f"report: {Path(out) / 'report.md'} (and report.html)")
    return Path(out) / "report.md"


def write_outputs(run_paths: list[Path], *, out: Path | None = None, log=print) -> list[Path]:
    """Rebuilds each run's figures and report; several runs are also reported together
    in ``out`` (default: ``compare-<first>-<last>`` beside the first run)."""
    reports = []
    for path in run_paths:
        write_parquet_copies(open_run(path))
        reports.append(write_report([path], path, log=log))
    if len(run_paths) > 1:
        first, last = Path(run_paths[0]), Path(run_paths[-1])
        out = out or first.parent / f"compare-{first.name}-{last.name}"
        reports.append(write_report(run_paths, out, log=log))
    return reports
