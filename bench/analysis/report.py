"""``report.md`` and ``report.html`` for one or more runs, from their tables alone.

Used at the end of every run and by ``run_bench.py analyze``; it never imports Keras.
Every table is checked and every destination proved writable before anything is written,
and a report is made in a staging folder and moved into place, so a failure leaves the
previous report as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from bench.analysis import numbers
from bench.analysis.figures import figures
from bench.analysis.formatting import (
    as_declared,
    counted,
    format_value,
    format_values,
    score_texts,
    value_labels,
)
from bench.analysis.plots import ordered
from bench.analysis.render import Block, fmt, interval, to_html, to_markdown
from bench.analysis.run_facts import (
    optimizer_used,
    precision,
    trained_batch_size,
    trained_epochs,
    what_ran,
)
from bench.analysis.tables import Tables, load_tables
from bench.errors import BenchError
from bench.results import check_writable, open_run, process_is_here, write_parquet_copies


def summary_table(trials: pd.DataFrame, hyperparameters: list[str], limit: int | None = 10,
                  *, runs: int = 1, among: pd.DataFrame | None = None,
                  ranked: bool = True) -> pd.DataFrame:
    """Completed trials first, best first, then the others: every given hyperparameter,
    validation and test accuracy, epochs, seconds, status. With ``runs`` > 1 (a joint
    report) every row names its run. Values are written with the digits that tell apart
    those of ``among`` (default: ``trials``; the best trials take the whole table's, so
    a score reads the same in both tables). ``limit`` None: every row; ``ranked`` False:
    in the order given (``best_trials``' order: by run, then initialisation)."""
    several = runs > 1 or ("run_id" in trials and trials["run_id"].nunique() > 1)
    lead = ["run_id"] if several and "run_id" in trials else []
    names = [h for h in hyperparameters if h in trials]
    extra = [c for c in ("epochs_completed",) if c in trials]
    columns = [*lead, "trial_id", *names, "best_val_accuracy", "final_val_accuracy",
               "test_accuracy", *extra, "seconds", "status"]
    ordered = trials.assign(_failed=trials["status"] != "COMPLETED").sort_values(
        ["_failed", "best_val_accuracy"], ascending=[True, False], na_position="last"
    ) if ranked else trials
    shown = ordered[[c for c in columns if c in ordered]]
    shown = shown if limit is None else shown.head(limit)
    among = trials if among is None else among
    scores = [c for c in SCORES if c in shown]
    return shown.assign(
        **{name: as_declared(shown[name], among[name]) for name in names},
        **{name: score_texts(shown[name], among[name], tie_rtol=numbers.TIE_RTOL)
           for name in scores})


#: The accuracy columns of trials.csv, written with the digits that keep them apart.
SCORES = ("best_val_accuracy", "final_val_accuracy", "test_accuracy")


def gap_sentence(gap: numbers.Gap) -> str:
    # Two significant digits always: 0.50, not 0.5 beside 0.47 and 0.038.
    p = f", paired t-test p = {gap.p_value:#.2g}" if not pd.isna(gap.p_value) else ""
    scope = gap_scope(gap)
    over = "" if not scope else f"{scope}, " if gap.configurations == 1 else f"{scope} and "
    if gap.pairs == 1:
        spread = "one seed, so no 95% CI; run with --repeats 2 or more for one"
    elif gap.spread == 0:
        spread = (f"{interval(gap.low, gap.high)}; the same difference at all {gap.pairs} "
                  "seeds, so no t-test")
    else:
        spread = (f"{interval(gap.low, gap.high)}; standard deviation over {gap.pairs} "
                  f"seeds {fmt(gap.spread)}{p}")
    reason = earlier_epoch_reason(gap)
    return (f"At epoch {gap.epoch}{f' ({reason})' if reason else ''}, {gap.init} minus "
            f"{gap.baseline} validation accuracy, "
            f"{over}paired by seed, is **{gap.mean:+.3f}** ({spread}): "
            f"{gap.init} {gap.init_accuracy:.3f}, {gap.baseline} {gap.baseline_accuracy:.3f}."
            f"{with_init_sentence(gap)}")


def never_complete_sentence(tables: Tables, run_id: str) -> str | None:
    """Where a hyperparameter of the run took some values only in trials without a
    complete execution (they failed, or the run stopped first), that the gaps are of
    the other values alone: the gap's own scope counts only configurations that ran."""
    said = []
    for name in tables.pair_on(run_id) or []:
        lost = tables.never_complete(name, run_id=run_id)
        if lost.empty:
            continue
        written = value_labels(lost[name].unique())
        values = ", ".join(written(v) for v in ordered(lost[name].unique()))
        said.append(f"The gap leaves out {name}={values}: no execution with it completed "
                    f"(those trials {tables.how_ended(lost)}).")
    return " ".join(said) or None


def earlier_epoch_reason(gap: numbers.Gap) -> str:
    """Why a gap is not at the last epoch run, or "" where it is."""
    if gap.epoch >= gap.last_epoch:
        return ""
    return (f"not at epoch {gap.last_epoch}, the last run: some executions stopped sooner, "
            f"and after epoch {gap.epoch} no configuration has both inits at every seed")


def gap_scope(gap: numbers.Gap) -> str:
    """Which configurations of the other hyperparameters a gap is over, where it matters:
    all of several, or those of them that ran with both inits at every seed and reached
    its epoch in every execution (naming the one where it is one), of how many ran. ""
    where only one configuration ran."""
    paired, ran = gap.configurations, gap.configurations_any_epoch
    if paired >= ran:
        return (f"averaged over {paired} configurations of the other hyperparameters"
                if paired > 1 else "")
    conditions = []
    if gap.configurations_both < ran:
        conditions.append("ran with both inits at every seed")
    if paired < gap.configurations_both:
        # A space's early stopping or Hyperband's first rounds ended them sooner.
        conditions.append(f"reached epoch {gap.epoch} in every execution")
    which = " and ".join(conditions)
    if paired == 1:
        return (f"for the only one of {ran} configurations of the other hyperparameters "
                f"that {which} ({_configuration(gap.paired[0])})")
    left = [_configuration(c) for c in gap.left_out]
    named = "; ".join(left[:3]) + (f"; and {len(left) - 3} more" if len(left) > 3 else "")
    return (f"averaged over the {paired} of {ran} configurations of the other "
            f"hyperparameters that {which}" + (f" (left out: {named})" if named else ""))


def _configuration(values: dict) -> str:
    """A configuration's values as a reader writes them; an inactive conditional
    hyperparameter is left out."""
    return format_values({k: v for k, v in values.items() if v != numbers.INACTIVE})


#: Below this many validation images the report says how coarse accuracy is.
FEW_VALIDATION_IMAGES = 100


def coarse_validation_sentence(run: dict) -> str | None:
    """On a small validation split, that an accuracy moves in steps of 1/N: a gap's
    interval of width 0 there means every seed gave the same difference, not certainty."""
    images = run.get("dataset", {}).get("validation")
    if not images or images >= FEW_VALIDATION_IMAGES:
        return None
    return (f"The validation split has {images} images, so an execution's validation "
            f"accuracy moves in steps of 1/{images} = {1 / images:.3f}: a gap smaller than "
            "that is less than one image per execution, and an interval of width 0 only "
            "means that every seed gave the same difference.")


def with_init_sentence(gap: numbers.Gap) -> str:
    """" body_lr_scale went with init (imagenet 0.100, random 1.000) ...", or ""."""
    return "".join(f" {column} went with init ("
                   + ", ".join(f"{init} {fmt(value)}" for init, value in values.items())
                   + ") and is part of the comparison." for column, values in gap.with_init.items())


def partial_sentence(run: dict, trials: pd.DataFrame, epochs: pd.DataFrame,
                     complete: pd.DataFrame) -> str | None:
    """For a run that did not complete: what it holds, and that only whole executions
    count. None for a completed run."""
    status = run.get("status")
    if status == "completed":
        return None
    counts = trials["status"].value_counts() if not trials.empty else pd.Series(dtype=int)
    listed = set(trials["trial_id"]) if not trials.empty else set()
    # A process killed outright (SIGKILL, power) never listed the trial it was running.
    unlisted = set(epochs["trial_id"]) - listed if not epochs.empty else set()
    # A stopped run's RUNNING trial runs no more: it was cut off.
    named = {"RUNNING": "unfinished when it stopped"} if status != "running" else {}
    held = ", ".join([f"{n} {named.get(s, s.lower())}" for s, n in counts.items()]
                     + ([f"{len(unlisted)} {_unlisted(run)}"] if unlisted else [])
                     ) or "none recorded"
    keys = ["trial_id", "repeat"]
    executions = len(epochs.groupby(keys)) if not epochs.empty else 0
    whole = len(complete.groupby(keys)) if not complete.empty else 0
    why = f" ({run['error']})" if run.get("error") else ""
    trial_count = counted(len(listed | unlisted), "trial")
    return (f"**Partial run**: its status is {status}{why}. It holds {trial_count} ({held}) "
            f"and {counted(executions, 'execution')} with rows, {whole} of them "
            + ("complete; every number below uses the complete executions only." if whole
               else "complete, so no number below is a result."))


def _unlisted(run: dict) -> str:
    """What trials with rows but no trials.csv line are: trials.csv lists a trial when it
    ends, so in a live run they are running (read_run has made a run whose process is gone
    "interrupted")."""
    if run.get("status") != "running":
        return "cut off when its process stopped, with rows but no trials.csv line"
    process = run.get("process") or {}
    if process_is_here(process):
        return "running, with rows so far (trials.csv lists a trial when it ends)"
    return (f"running, or cut off if its process on {process.get('host', 'another machine')} "
            "stopped, with rows but no trials.csv line")


def different_data_sentence(runs: list[dict]) -> str | None:
    """For a joint report whose runs did not read the same data: which data each read.
    None when they did, or when only the image size differs (the same pictures resized
    have other arrays, so their checksums cannot be compared)."""
    def data(run: dict) -> dict:
        return run.get("dataset", {})

    described = {(data(r).get("name"), data(r).get("train"), data(r).get("validation"),
                  data(r).get("test"), tuple(data(r).get("classes", []))) for r in runs}
    by_size: dict = {}
    for run in runs:
        by_size.setdefault(run.get("settings", {}).get("image_size"), set()).add(
            data(run).get("sha256"))
    if len(runs) < 2 or (len(described) == 1 and all(len(s) == 1 for s in by_size.values())):
        return None
    each = "; ".join(f"{r['run_id']}: `{data(r).get('name')}`, {data(r).get('train', '?')} "
                     f"training / {data(r).get('validation', '?')} validation / "
                     f"{data(r).get('test', '?')} test images, sha256 "
                     f"{str(data(r).get('sha256'))[:12]}" for r in runs)
    return ("**Different data**: these runs did not read the same training, validation "
            f"and test images ({each}). Within a run the "
            "configurations share their data; between runs the data differ as well, so a "
            "difference between runs is not the hyperparameters' doing alone.")


def different_backends_sentence(runs: list[dict]) -> str | None:
    """For a joint report whose runs ran on other Keras backends or at another precision:
    which each ran on. One seed draws other initial weights on each backend (Keras's
    initialisers are the backend's random ops), so their numbers are other draws, not
    roundings. None when every run ran alike, or there is one run."""
    def setup(run: dict) -> str:
        policy = precision(run)
        return f"`{run.get('backend')}`" + ("" if policy == "float32" else f" {policy}")

    if len(runs) < 2 or len({setup(run) for run in runs}) == 1:
        return None
    each = "; ".join(f"{run['run_id']}: {setup(run)}" for run in runs)
    return ("**Different backends**: these runs did not run on the same Keras backend and "
            f"precision ({each}). One seed gives other initial weights on another backend, "
            "and other roundings at another precision, so a difference between these runs "
            "is not the hyperparameters' doing alone (README, \"Under JAX the numbers are "
            "another draw\").")


#: The settings that make a configuration train otherwise, beside its hyperparameters
#: (the tables' columns): a joint report says where its runs differ in them.
TRAINING_SETTINGS = {"backbone": "backbone", "image_size": "image size",
                     "batch_size": "batch size", "optimizer": "optimizer"}


def different_settings_sentence(runs: list[dict]) -> str | None:
    """For a joint report whose runs trained with other backbones, image sizes, batch
    sizes or optimizers (``run.json`` settings): which each used. None when they agree,
    or there is one run."""
    def value(run: dict, key: str) -> str | None:
        settings = run.get("settings", {})
        if key == "optimizer":
            return optimizer_used(run)
        return None if settings.get(key) is None else str(settings[key])

    def trained_as(run: dict, key: str):
        return trained_batch_size(run) if key == "batch_size" else value(run, key)

    # A setting a run.json does not record (an older one) is no known difference.
    differing = [key for key in TRAINING_SETTINGS
                 if len({trained_as(run, key) for run in runs} - {None}) > 1]
    if len(runs) < 2 or not differing:
        return None
    each = "; ".join(f"{TRAINING_SETTINGS[key]}: " + ", ".join(
        f"{run['run_id']} {value(run, key)}" for run in runs) for key in differing)
    return ("**Different settings**: these runs did not train with the same settings "
            f"({each}), so a difference between runs is not the hyperparameters' doing "
            "alone.")


def different_space_files_sentence(runs: list[dict]) -> str | None:
    """For a joint report with runs of one space name and version from files that differ
    (their SHA-256): the space was edited without a new version. None otherwise."""
    by_space: dict = {}
    for run in runs:
        space = run.get("space", {})
        if space.get("sha256"):
            by_space.setdefault((space.get("name"), space.get("version")), []).append(run)
    edited = [(key, group) for key, group in by_space.items()
              if len({run["space"]["sha256"] for run in group}) > 1]
    if not edited:
        return None
    each = "; ".join(f"space `{name}` version {version}: " + ", ".join(
        f"{run['run_id']} {run['space']['sha256'][:12]}" for run in group)
        for (name, version), group in edited)
    return ("**Different space files**: these runs name the same space and version, but "
            f"their files differ (SHA-256 {each}): the space was edited without raising its "
            "`version`, so the same hyperparameter values may not build the same model. "
            "Compare the files (run.json `space.file`) before comparing the runs.")


def _opening_blocks(tables: Tables) -> list[Block]:
    """The title, and what is partial or joined across different data."""
    ids = ", ".join(r["run_id"] for r in tables.runs)
    partial = [r["run_id"] for r in tables.runs if r.get("status") != "completed"]
    title = f"Run {ids}" if len(tables.runs) == 1 else f"Runs {ids}"
    if partial:
        title += f" (partial: {', '.join(partial)} did not complete)" if len(tables.runs) > 1 \
            else f" (partial: status {tables.runs[0].get('status')})"
    blocks = [Block("h1", title)]
    for different in (different_data_sentence(tables.runs),
                      different_backends_sentence(tables.runs),
                      different_settings_sentence(tables.runs),
                      different_space_files_sentence(tables.runs)):
        if different:
            blocks.append(Block("p", different))
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
                                               else "")),
                   Block("list", what_ran(run) + trained_epochs(
                       run, tables.epochs[tables.epochs["run_id"] == run["run_id"]])
                       + held_fixed(run, tables.epochs[tables.epochs["run_id"] == run["run_id"]]))]
    return blocks


def _headline_blocks(tables: Tables) -> list[Block]:
    """Each run's pretrained - random gap, or why it has none."""
    blocks = [Block("h2", "Headline")]
    for run in tables.runs:
        run_id = run["run_id"]
        complete = tables.complete[tables.complete["run_id"] == run_id]
        prefix = f"{run_id}: " if len(tables.runs) > 1 else ""
        if complete.empty:
            blocks.append(Block("p", prefix + "No execution completed, so there are no final "
                                              "numbers."))
            continue
        gaps = numbers.init_gaps(complete, pair_on=tables.pair_on(run_id))
        for gap in gaps:
            blocks.append(Block("p", prefix + gap_sentence(gap)))
        lost = never_complete_sentence(tables, run_id) if gaps else None
        if lost:
            blocks.append(Block("p", prefix + lost))
        coarse = coarse_validation_sentence(run) if gaps else None
        if coarse:
            blocks.append(Block("p", prefix + coarse))
        if not gaps:
            why = numbers.why_no_gap(complete, pair_on=tables.pair_on(run_id))
            blocks.append(Block("p", prefix + why[:1].upper() + why[1:]))
    return blocks


def _best_blocks(tables: Tables) -> list[Block]:
    """The best configuration per init (and run), its ties, and published references."""
    blocks = []
    trials = tables.trials
    best = numbers.best_trials(trials, by="init") if not trials.empty else pd.DataFrame()
    if not best.empty:
        per = "run and initialisation" if len(tables.runs) > 1 else "initialisation"
        blocks += [Block("p", "Best configuration (by validation accuracy, the mean "
                              f"over repeats of each repeat's best epoch) per {per}, "
                              "with its accuracy on the held-out test "
                              "split after the last epoch (mean over repeats):"),
                   # Every row: the tie lines below say each tied trial is listed.
                   Block("table", tables.mark_not_in_space(summary_table(
                       best, tables.varied, limit=None, runs=len(tables.runs),
                       among=trials, ranked=False)))]
        blocks += [Block("p", line) for line in tie_lines(best)]
    for run in tables.runs:
        for reference in run.get("references", []):
            changed = (f" Not measured like this run, which changed {reference['changed']}."
                       if reference.get("changed") else "")
            blocks.append(Block("p", f"Published reference ({reference['source']}): "
                                     f"{reference['text']}.{changed}"))
    return blocks


def _trial_blocks(tables: Tables) -> list[Block]:
    """Every trial, the failed ones again with why, and executions counted once."""
    trials, blocks = tables.trials, []
    if not trials.empty:
        blocks += [Block("h2", "Trials"),
                   Block("table", tables.mark_not_in_space(summary_table(
                       trials, tables.varied, limit=len(trials), runs=len(tables.runs))))]
        failed = trials[trials["status"] != "COMPLETED"]
        if not failed.empty:
            blocks += [Block("h2", "Failed and skipped trials"),
                       Block("p", "They have no score and are left out of every figure and "
                                  "number above; each failed trial's whole traceback is in "
                                  "`tuner/trial_<id>/trial.json`."),
                       Block("list", [f"{row.run_id + ': ' if len(tables.runs) > 1 else ''}"
                                      f"trial {row.trial_id}: {row.status}: {row.error}"
                                      for row in failed.itertuples()])]
    if not tables.superseded.empty:
        several = len(tables.runs) > 1
        blocks += [Block("h2", "Executions counted at their longest run"),
                   Block("p", "These trials ran a configuration that a later trial trained "
                              "again from scratch, with the same seeds, for more epochs "
                              "(Hyperband's promotions): the same execution twice. Each "
                              "counts once, as the longer one, in every curve, interval and "
                              "gap; the trial tables list both trials."),
                   Block("list", [f"{row.run_id + ': ' if several else ''}trial "
                                  f"{row.trial_id} (seed {row.seed}, "
                                  f"{counted(int(row.epochs), 'epoch')}): counted as trial "
                                  f"{row.by_trial_id} ({counted(int(row.by_epochs), 'epoch')})"
                                  for row in tables.superseded.itertuples()])]
    return blocks


def build_report(tables: Tables, figure_blocks: list[Block]) -> list[Block]:
    """The report's blocks, in order, from the tables alone and the figures' blocks."""
    return (_opening_blocks(tables) + _headline_blocks(tables) + _best_blocks(tables)
            + figure_blocks + _trial_blocks(tables))


def _declared_choices(run: dict, name: str) -> int | None:
    """How many values the space declared for ``name`` (None: a range, or not declared)."""
    for parameter in run.get("space", {}).get("hyperparameters", []):
        if parameter.get("name") == name:
            if parameter.get("type") == "Fixed":
                return 1
            values = parameter.get("values")
            return len(values) if values is not None else None
    return None


def tie_lines(best: pd.DataFrame) -> list[str]:
    """One line for each initialisation (and run) whose best score several trials share:
    the table lists them all, and none of them is the best alone."""
    keys = [k for k in ("run_id", "init") if k in best]
    groups = best.groupby(keys, dropna=False, sort=False) if keys else [((), best)]
    lines = []
    for _, group in groups:
        if len(group) > 1:
            where = f" for {format_value(group['init'].iloc[0])}" if "init" in group else ""
            # A joint report's trial ids repeat across runs: say whose they are.
            whose = (f"{group['run_id'].iloc[0]}: "
                     if "run_id" in best and best["run_id"].nunique() > 1 else "")
            lines.append(f"{whose}Trials {', '.join(map(str, group['trial_id']))} tie{where} at "
                         f"best_val_accuracy {group['best_val_accuracy'].iloc[0]:.6g}: all "
                         "are listed, since none scores higher than the others.")
    return lines


def held_fixed(run: dict, epochs: pd.DataFrame) -> list[str]:
    """The recorded hyperparameters that took one value in every row (what the space's
    settings fixed, or one value declared), as the tables hold them; one the space
    varies, whose other values have no rows (their trials failed or never ran), is said
    to be varied."""
    names = [n for n in run.get("columns", {}).get("hyperparameters", []) if n in epochs]
    single = [n for n in names if not epochs.empty and epochs[n].nunique(dropna=False) == 1]
    varied = set(run.get("columns", {}).get("varied", []))
    fixed = [n for n in single if n not in varied or _declared_choices(run, n) == 1]

    def value(name: str) -> str:
        return as_declared(epochs[name].iloc[:1], epochs[name]).iloc[0]

    lines = [f"Held fixed in every execution: "
             f"{', '.join(f'{n} {value(n)}' for n in fixed)}"] if fixed else []
    unrun = [n for n in single if n not in fixed]
    if unrun:
        lines.append("Varied by the space, but one value in every execution with rows: "
                     + ", ".join(f"{n} {value(n)}" for n in unrun))
    return lines


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


#: What a joint report's folder holds: ``write_report``'s files and its staging folders.
JOINT_REPORT_FILES = ("report.md", "report.html", "plots")


def refuse_foreign_folder(out: Path, *, default: Path) -> None:
    """Refuses ``out`` for a joint report where it holds files that are not an earlier
    joint report's (that report's files are replaced; a user's own would be lost)."""
    if not out.is_dir():
        return
    # Hidden files (.DS_Store) and the staging folders of a report stopped half-way are
    # not anyone's work.
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if not names:
        return
    report = out / "report.md"
    try:
        ours = report.is_file() and report.read_text().startswith("# Runs ")
    except (OSError, UnicodeDecodeError):
        ours = False
    if ours and set(names) <= set(JOINT_REPORT_FILES):
        return
    named = [f"{name}/" if (out / name).is_dir() else name for name in names]
    shown = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
    raise BenchError(f"--out {out} holds files or folders that are not a joint report of "
                     f"analyze ({shown}), and its report.md, report.html and plots/ would be "
                     f"replaced: give a new or empty folder, such as {default}")


def write_outputs(run_paths: list[Path], *, out: Path | None = None, log=print) -> list[Path]:
    """Rebuilds each run's figures and report; several runs are also reported together
    in ``out`` (default: ``compare-<first>-<last>`` beside the first run).

    Every table is read and checked, and every destination proved writable, before
    anything is written: a bad table or folder is one BenchError and no file changes.
    """
    if out is not None and len(run_paths) == 1:
        raise BenchError("--out is where the joint report of several runs goes; one run's "
                         f"report is rebuilt in its own folder ({run_paths[0]}): drop --out")
    per_run = [load_tables([path]) for path in run_paths]
    joint = load_tables(run_paths) if len(run_paths) > 1 else None
    destinations = [Path(path) for path in run_paths]
    if joint is not None:
        first, last = Path(run_paths[0]), Path(run_paths[-1])
        default = first.parent / f"compare-{first.name}-{last.name}"
        if out is not None and any((Path(out) / name).exists()
                                   for name in ("run.json", "perf.json")):
            raise BenchError(f"--out {out} is a run's folder: the joint report would replace "
                             f"its own; give another folder, such as {default}")
        out = Path(out or default)
        refuse_foreign_folder(out, default=default)
        destinations.append(out)
    for folder in destinations:
        check_writable(folder, what=f"cannot write the report to {folder} (--out for "
                                    "several runs)")
    reports = []
    for path, tables in zip(run_paths, per_run):
        write_parquet_copies(open_run(path))
        reports.append(write_report(tables, path, log=log))
    if joint is not None:
        reports.append(write_report(joint, out, log=log))
    return reports
