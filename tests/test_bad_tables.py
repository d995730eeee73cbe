"""`analyze` on damaged tables: one line naming the file and the problem, exit status 2,
and nothing written (no half plots/, no Parquet copy overwritten)."""

import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, copy_as_another_run


def _analyze(*args):
    return subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "analyze", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture
def damaged(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    shutil.rmtree(copy / "plots")
    for name in ("report.md", "report.html"):
        (copy / name).unlink()
    return copy


def _nothing_written(run, parquet_before):
    assert not (run / "plots").exists() and not (run / "report.md").exists()
    if parquet_before is not None:
        assert (run / "epochs.parquet").read_bytes() == parquet_before


def _parquet(run):
    path = run / "epochs.parquet"
    return path.read_bytes() if path.exists() else None


def _one_error(result, *words):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


def test_a_row_cut_mid_line(damaged):
    import json

    before = _parquet(damaged)
    text = (damaged / "epochs.csv").read_text()
    (damaged / "epochs.csv").write_text(text[:-25])
    last = text.count("\n")
    # A completed run was not stopped mid-row: deleting the line (found by a new user)
    # only led to "restore both from a copy".
    _one_error(_analyze(damaged), f"epochs.csv: line {last}, the last, is cut short, though "
               "the run completed: the file was damaged; restore it from a copy")
    _nothing_written(damaged, before)
    record = json.loads((damaged / "run.json").read_text())
    (damaged / "run.json").write_text(json.dumps(record | {"status": "interrupted"}))
    _one_error(_analyze(damaged), f"epochs.csv: line {last}, the last, is cut short (the run "
               "was stopped while writing it); delete that line to analyse the rest")
    # trials.csv is replaced whole: deleting its last line would drop a trial unsaid.
    (damaged / "epochs.csv").write_text(text)
    trials = (damaged / "trials.csv").read_text()
    (damaged / "trials.csv").write_text(trials[:-10])
    _one_error(_analyze(damaged), f"trials.csv: line {trials.count(chr(10))}, the last, is cut "
               "short, though trials.csv is written whole, never row by row: the file was "
               "damaged; restore it from a copy")


def test_a_row_with_missing_fields(damaged):
    lines = (damaged / "epochs.csv").read_text().splitlines(keepends=True)
    lines[2] = ",".join(lines[2].split(",")[:5]) + "\n"
    (damaged / "epochs.csv").write_text("".join(lines))
    _one_error(_analyze(damaged), "epochs.csv", "line 3")


def test_a_non_numeric_metric(damaged):
    before = _parquet(damaged)
    lines = (damaged / "epochs.csv").read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    fields = lines[1].rstrip("\n").split(",")
    fields[header.index("val_accuracy")] = "oops"
    lines[1] = ",".join(fields) + "\n"
    (damaged / "epochs.csv").write_text("".join(lines))
    _one_error(_analyze(damaged), "epochs.csv", "val_accuracy", "'oops'", "line 2")
    _nothing_written(damaged, before)


def test_a_missing_column(damaged):
    import pandas as pd

    table = pd.read_csv(damaged / "trials.csv")
    table.drop(columns=["status"]).to_csv(damaged / "trials.csv", index=False)
    _one_error(_analyze(damaged), "trials.csv", "status")


def test_an_invalid_run_json(damaged):
    (damaged / "run.json").write_text('{"run_id": "x", ')
    _one_error(_analyze(damaged), "run.json", "not valid JSON")
    _nothing_written(damaged, None)


def test_an_unwritable_out(tiny_run, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "joint"
    plots_before = sorted(p.name for p in (tiny_run / "plots").iterdir())
    report_before = (tiny_run / "report.md").stat().st_mtime_ns
    second = copy_as_another_run(tiny_run, tmp_path / "second")
    _one_error(_analyze(tiny_run, second, "--out", out), "cannot write the report", str(out))
    # The runs' own reports were not rewritten either: everything is checked first.
    assert (tiny_run / "report.md").stat().st_mtime_ns == report_before
    assert sorted(p.name for p in (tiny_run / "plots").iterdir()) == plots_before


def test_an_out_that_is_a_run_s_folder_is_refused(tiny_run, tmp_path):
    """Found by a new user: --out naming one of the runs (or any run) replaced that run's
    own report and plots with the joint ones."""
    report_before = (tiny_run / "report.md").read_bytes()
    second = copy_as_another_run(tiny_run, tmp_path / "second")
    for out in (tiny_run, second):
        _one_error(_analyze(tiny_run, second, "--out", out), f"--out {out} is a run's folder",
                   f"such as {tiny_run.parent / 'compare-tiny-second'}")
    assert (tiny_run / "report.md").read_bytes() == report_before


def test_a_killed_run_is_reported_as_partial_from_its_complete_executions(damaged):
    import json

    import pandas as pd

    # As a kill mid-trial leaves it: the run still "running", the last trial RUNNING.
    record = json.loads((damaged / "run.json").read_text())
    record["status"] = "running"
    (damaged / "run.json").write_text(json.dumps(record))
    trials = pd.read_csv(damaged / "trials.csv", dtype={"trial_id": str})
    trials.loc[1, "status"] = "RUNNING"
    # As the suite writes a trial still running: no scores.
    trials.loc[1, ["best_val_accuracy", "final_val_accuracy", "test_accuracy"]] = None
    trials.to_csv(damaged / "trials.csv", index=False)
    result = _analyze(damaged)
    assert result.returncode == 0, result.stderr
    report = (damaged / "report.md").read_text()
    assert report.startswith("# Run tiny (partial: status running)")
    assert "It holds 2 trials (1 completed, 1 running) and 4 executions with rows, 2 of them " \
        "complete" in report
    record["status"] = "interrupted"  # stopped: its RUNNING trial runs no more
    (damaged / "run.json").write_text(json.dumps(record))
    assert _analyze(damaged).returncode == 0
    assert "It holds 2 trials (1 completed, 1 unfinished when it stopped) and 4 executions" \
        in (damaged / "report.md").read_text()
    # The unfinished trial (init random) is not paired: no gap is claimed.
    headline = report.split("## Headline")[1].split("Best configuration")[0]
    assert "Every complete execution used init pretrained" in headline
    assert "minus random" not in headline

    # Killed outright, the process never listed the trial it was running: its rows count.
    trials.drop(index=1).to_csv(damaged / "trials.csv", index=False)
    result = _analyze(damaged)
    assert result.returncode == 0, result.stderr
    assert "It holds 2 trials (1 completed, 1 cut off when its process stopped, with rows " \
        "but no trials.csv line) and 4 executions with rows, 2 of them complete" in \
        (damaged / "report.md").read_text()


def test_a_report_that_fails_for_any_reason_leaves_one_line_and_the_way_to_retry(tmp_path):
    # The report step runs after the tables are final; whatever it raises (here: tables
    # that are not there) becomes one line naming 'analyze', never a traceback.
    from bench.errors import StudyFailed
    from bench.runner import _write_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    failure = _write_report(run, None, log=lambda *_: None)
    assert isinstance(failure, StudyFailed)
    assert "the study completed but the report failed" in str(failure)
    assert f"run_bench.py analyze {run}" in str(failure) and "\n" not in str(failure)


def test_tables_that_disagree_are_refused_not_reported(damaged):
    import pandas as pd

    before = _parquet(damaged)
    epochs = pd.read_csv(damaged / "epochs.csv", dtype={"trial_id": str})
    trials = pd.read_csv(damaged / "trials.csv", dtype={"trial_id": str})
    trial = trials.loc[trials["status"] == "COMPLETED", "trial_id"].iloc[0]
    recorded = trials.loc[trials["trial_id"] == trial, "best_val_accuracy"].iloc[0]
    # Raise one epoch of the trial's first repeat to 1.0 and work out by hand what
    # epochs.csv then says: the mean over repeats of each repeat's best epoch.
    mine = epochs[epochs["trial_id"] == trial]
    first = mine["repeat"].min()
    epochs.loc[mine[mine["repeat"] == first].index[0], "val_accuracy"] = 1.0
    bests = [1.0] + [group["val_accuracy"].max() for repeat, group
                     in epochs[epochs["trial_id"] == trial].groupby("repeat") if repeat != first]
    by_hand = sum(bests) / len(bests)
    assert by_hand != recorded
    epochs.to_csv(damaged / "epochs.csv", index=False)
    _one_error(_analyze(damaged), f"trial {trial}'s best_val_accuracy is {recorded:.6g} in "
               f"trials.csv but {by_hand:.6g} from its rows in epochs.csv",
               "restore both from a copy")
    _nothing_written(damaged, before)

    # A COMPLETED trial without rows at all is refused too.
    epochs[epochs["trial_id"] != trial].to_csv(damaged / "epochs.csv", index=False)
    _one_error(_analyze(damaged), f"trial {trial} is COMPLETED in trials.csv but has no rows")


def test_an_edit_below_the_sixth_digit_is_told_with_the_digits_that_show_it(damaged):
    """Found by a new user: a final accuracy edited by 1.5e-9 was refused with "0.190596
    in trials.csv but 0.190596 from its rows", which read as a false alarm."""
    import re

    import pandas as pd

    epochs = pd.read_csv(damaged / "epochs.csv", dtype={"trial_id": str})
    trials = pd.read_csv(damaged / "trials.csv", dtype={"trial_id": str})
    trial = trials.loc[trials["status"] == "COMPLETED", "trial_id"].iloc[0]
    mine = epochs[epochs["trial_id"] == trial]
    last = mine[mine["repeat"] == mine["repeat"].min()]["epoch"].idxmax()
    epochs.loc[last, "val_accuracy"] -= 5e-9
    curves = (epochs[epochs["trial_id"] == trial].sort_values("epoch").groupby("repeat")
              ["val_accuracy"])
    by_hand = {"best_val_accuracy": curves.max().mean(),
               "final_val_accuracy": curves.last().mean()}
    epochs.to_csv(damaged / "epochs.csv", index=False, float_format="%.17g")
    result = _analyze(damaged)
    _one_error(result, f"trial {trial}'s ")
    shown = re.search(r"(\w+_val_accuracy) is (\S+) in trials.csv but (\S+) from its rows",
                      result.stderr)
    column, told, computed = shown.groups()
    recorded = trials.loc[trials["trial_id"] == trial, column].iloc[0]
    assert f"{by_hand[column]:.6g}" == f"{recorded:.6g}"  # six digits cannot tell them
    assert told != computed
    # Each as written lies nearer its own value than the other.
    assert abs(float(told) - recorded) < abs(float(told) - by_hand[column])
    assert abs(float(computed) - by_hand[column]) < abs(float(computed) - recorded)


def test_a_completed_run_without_its_trials_table_is_refused(damaged):
    """Found by a new user: with trials.csv (and its Parquet copy) gone, analyze reported
    "no execution completed" and replaced the figures with none."""
    import pandas as pd

    before = _parquet(damaged)
    trials = pd.read_csv(damaged / "trials.csv", dtype={"trial_id": str})
    listed = sorted(pd.read_csv(damaged / "epochs.csv", dtype={"trial_id": str})["trial_id"]
                    .unique())
    best = trials.sort_values("best_val_accuracy").iloc[-1]["trial_id"]
    # One trial's row taken out (the best one: the report would name another).
    trials[trials["trial_id"] != best].to_csv(damaged / "trials.csv", index=False)
    (damaged / "trials.parquet").unlink(missing_ok=True)
    _one_error(_analyze(damaged), f"trial {best} has rows in epochs.csv but no row in "
               "trials.csv (1 such trial(s)), in a run that completed")
    _nothing_written(damaged, before)

    (damaged / "trials.csv").unlink()
    _one_error(_analyze(damaged), "trials.csv is missing, but the run completed and "
               f"epochs.csv holds rows of {len(listed)} trial(s)")
    _nothing_written(damaged, before)


def _edit(run, *, epochs=None, trials=None):
    """Rewrites the run's tables with ``epochs(table)`` / ``trials(table)`` applied to
    them read as text, as an editor would leave them; the Parquet copies go."""
    import pandas as pd

    for name, change in (("epochs", epochs), ("trials", trials)):
        (run / f"{name}.parquet").unlink(missing_ok=True)
        if change is not None:
            path = run / f"{name}.csv"
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            changed = change(table)  # in place, or a new table
            (changed if isinstance(changed, pd.DataFrame) else table).to_csv(path, index=False)


def _at(table, column, value, **where):
    mask = True
    for key, wanted in where.items():
        mask = mask & (table[key] == wanted)
    table.loc[mask, column] = value


#: Edits that change what the report would say without a word, each found by a new user
#: (exit 0 before); the tiny run has trials 0000 (pretrained) and 0001 (random), 2
#: repeats (seeds 1 and 2) of 2 epochs each.
EDITS = {
    "status-case": (dict(trials=lambda t: _at(t, "status", "completed", trial_id="0000")),
                    "trial 0000's status is 'completed', not one the suite writes (COMPLETED, "
                    "FAILED, DUPLICATE"),
    "failed-with-scores": (dict(trials=lambda t: _at(t, "status", "FAILED", trial_id="0000")),
                           "trial 0000 is FAILED but has scores"),
    "hyperparameter-in-one-table": (
        dict(trials=lambda t: _at(t, "head_lr", "0.01", trial_id="0000")),
        "trial 0000's head_lr is 0.01 in trials.csv but 0.003 in epochs.csv"),
    "nan-accuracy": (dict(epochs=lambda e: _at(e, "accuracy", "nan", trial_id="0000",
                                               repeat="1", epoch="1")),
                     "trial 0000 is COMPLETED but its accuracy is nan at repeat 1, epoch 1"),
    "nan-val-accuracy": (dict(epochs=lambda e: _at(e, "val_accuracy", "nan", trial_id="0001",
                                                   repeat="2", epoch="2")),
                         "trial 0001 is COMPLETED but its val_accuracy is nan at repeat 2, "
                         "epoch 2"),
    "train-accuracy-3": (dict(epochs=lambda e: _at(e, "accuracy", "3", trial_id="0001",
                                                   repeat="2", epoch="2")),
                         "its accuracy is 3.0 at repeat 2, epoch 2, where it is a number "
                         "from 0 to 1"),
    "inf-loss": (dict(epochs=lambda e: _at(e, "val_loss", "inf", trial_id="0000",
                                           repeat="1", epoch="2")),
                 "its val_loss is inf at repeat 1, epoch 2 (a trial whose loss is not "
                 "finite fails)"),
    "test-accuracy-1.7": (dict(trials=lambda t: _at(t, "test_accuracy", "1.7",
                                                    trial_id="0001")),
                          "trial 0001's test_accuracy is 1.7, outside 0 to 1"),
    "test-accuracy-0.99": (dict(trials=lambda t: _at(t, "test_accuracy", "0.99",
                                                     trial_id="0001")),
                           "trial 0001's test_accuracy is 0.99 but "),
    "epochs-completed": (dict(trials=lambda t: _at(t, "epochs_completed", "99",
                                                   trial_id="0000")),
                         "trial 0000 has epochs_completed 99 but 4 rows in epochs.csv"),
    "epoch-renumbered": (dict(epochs=lambda e: _at(e, "epoch", "0", trial_id="0000",
                                                   repeat="1", epoch="1")),
                         "trial 0000's repeat 1 has epochs 0, 2, where it has 1 to n once"),
    "seed": (dict(epochs=lambda e: _at(e, "seed", "99", trial_id="0001", repeat="1")),
             "trial 0001's repeat 1 has seed 99 where run.json gives repeat 1 the seed 1; "
             "epochs.csv or run.json was edited: restore both from a copy"),
    "repeat-renumbered": (dict(epochs=lambda e: _at(e, "repeat", "5", trial_id="0000",
                                                    repeat="2")),
                          "trial 0000 is COMPLETED but its repeats are 1, 5, not 1 to n"),
    "negative-epoch-seconds": (dict(epochs=lambda e: _at(e, "epoch_seconds", "-3",
                                                         trial_id="0001", repeat="2",
                                                         epoch="1")),
                               "epochs.csv: epoch_seconds is -3 at trial 0001, repeat 2, "
                               "epoch 1, where it counts or times something and is 0 or "
                               "more"),
    "negative-seconds": (dict(trials=lambda t: _at(t, "seconds", "-0.5", trial_id="0000")),
                         "trials.csv: seconds is -0.5 at trial 0000, where it counts"),
}


def test_a_completed_trial_with_fewer_repeats_than_the_run_gives_every_trial_is_refused(
        damaged):
    # Found by an audit: trial 0000 left with one of its 2 repeats, its scores edited to
    # agree, was named best over one seed under "2 repeats per configuration".
    import pandas as pd

    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    def one_repeat(epochs):
        return epochs[~((epochs["trial_id"] == "0000") & (epochs["repeat"] == "2"))]

    _edit(damaged, epochs=one_repeat)
    left = pd.read_csv(damaged / "epochs.csv", dtype={"trial_id": str})
    left = left[left["trial_id"] == "0000"].sort_values("epoch")

    def agreeing(trials):
        _at(trials, "epochs_completed", str(len(left)), trial_id="0000")
        _at(trials, "best_val_accuracy", repr(float(left["val_accuracy"].max())),
            trial_id="0000")
        _at(trials, "final_val_accuracy", repr(float(left["val_accuracy"].iloc[-1])),
            trial_id="0000")

    _edit(damaged, trials=agreeing)
    with pytest.raises(BenchError, match=re.escape(
            "trial 0000 is COMPLETED but has 1 repeat(s), where run.json gives every "
            "trial 2; the table was edited")):
        load_tables([damaged])


@pytest.mark.parametrize("name", sorted(EDITS))
def test_a_table_edited_so_that_the_report_would_change_is_refused(damaged, name):
    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    load_tables([damaged])  # as the run wrote them: accepted
    edits, message = EDITS[name]
    _edit(damaged, **edits)
    with pytest.raises(BenchError, match=re.escape(message)):
        load_tables([damaged])


def test_a_test_accuracy_edited_is_told_from_its_trial_folder_by_hand(damaged):
    # Found by a new user: trials.csv's test accuracy, edited, printed in the best table
    # without a word; the trial's folder keeps each execution's test accuracy.
    import json

    import pandas as pd

    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    extras = json.loads((damaged / "tuner" / "trial_0001" / "bench_extras.json").read_text())
    by_hand = sum(extras["test_accuracies"]) / len(extras["test_accuracies"])
    trials = pd.read_csv(damaged / "trials.csv", dtype={"trial_id": str})
    assert trials.set_index("trial_id").loc["0001", "test_accuracy"] == pytest.approx(by_hand)
    _edit(damaged, trials=lambda t: _at(t, "test_accuracy", "0.99", trial_id="0001"))
    with pytest.raises(BenchError) as caught:
        load_tables([damaged])
    assert str(caught.value) == (
        f"{damaged / 'trials.csv'}: trial 0001's test_accuracy is 0.99 but {by_hand:.6g} in "
        f"{damaged / 'tuner' / 'trial_0001' / 'bench_extras.json'}; one of them was edited: "
        "restore both from a copy")
    # A run copied without its tuner/ folder has nothing to check it against.
    shutil.rmtree(damaged / "tuner")
    load_tables([damaged])


def test_text_where_the_space_declared_numbers_is_refused(damaged):
    import json

    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    # As a space declaring frozen_blocks as Int would record it; both tables agree.
    record = json.loads((damaged / "run.json").read_text())
    record["space"]["hyperparameters"].append(
        {"name": "frozen_blocks", "type": "Int", "min_value": 0, "max_value": 4, "step": 2})
    (damaged / "run.json").write_text(json.dumps(record))
    load_tables([damaged])
    _edit(damaged, epochs=lambda e: _at(e, "frozen_blocks", "zero", trial_id="0001"),
          trials=lambda t: _at(t, "frozen_blocks", "zero", trial_id="0001"))
    with pytest.raises(BenchError, match="column 'frozen_blocks' holds 'zero' on line 6, not "
                                         "a number"):
        load_tables([damaged])
    _one_error(_analyze(damaged), "frozen_blocks", "not a number")


def test_trailing_blank_lines_are_no_rows_and_one_between_rows_is_named(damaged):
    # Found by a new user: an editor's trailing blank lines made analyze refuse the run.
    import pandas as pd

    from bench.analysis.tables import load_tables

    before = load_tables([damaged])
    path = damaged / "epochs.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + "\n\n")
    after = load_tables([damaged])
    pd.testing.assert_frame_equal(after.epochs, before.epochs)
    pd.testing.assert_frame_equal(after.trials, before.trials)
    # Between rows, a blank line is named: pandas would skip it, and any later message
    # would name its line off by one.
    path.write_text("".join(lines[:3]) + "\n" + "".join(lines[3:]))
    _one_error(_analyze(damaged), "epochs.csv: line 4 is blank, between rows; delete it")
    # A row of too few fields is still one.
    path.write_text("".join(lines) + "0000,1\n")
    _one_error(_analyze(damaged), f"line {len(lines) + 1} has 2 fields where the header has")


def test_what_the_suite_writes_off_the_default_path_is_accepted(damaged):
    """A reviewer's two cases that the checks above must not refuse."""
    import pandas as pd

    from bench.analysis.tables import load_tables

    # A resume drops the rows of the trial that was RUNNING before trials.csv is written
    # again: its epochs_completed counts rows that are gone.
    def running(t):
        _at(t, "status", "RUNNING", trial_id="0001")
        for column in ("best_val_accuracy", "final_val_accuracy", "test_accuracy"):
            _at(t, column, "", trial_id="0001")

    _edit(damaged, trials=running,
          epochs=lambda e: e.drop(e[(e.trial_id == "0001") & (e.repeat == "2")].index))
    load_tables([damaged])
    # A space's EarlyStopping stops repeats at different epochs: repeat 2 of trial 0000
    # ends after epoch 1; its scores are then those of the rows left.
    _edit(damaged, epochs=lambda e: e.drop(
        e[(e.trial_id == "0000") & (e.repeat == "2") & (e.epoch == "2")].index))
    rows = pd.read_csv(damaged / "epochs.csv", dtype={"trial_id": str})
    mine = rows[rows.trial_id == "0000"].groupby("repeat")["val_accuracy"]
    best, final = float(mine.max().mean()), float(mine.last().mean())
    _edit(damaged, trials=lambda t: [_at(t, "best_val_accuracy", repr(best), trial_id="0000"),
                                     _at(t, "final_val_accuracy", repr(final), trial_id="0000"),
                                     _at(t, "epochs_completed", "3", trial_id="0000")])
    load_tables([damaged])


def test_a_message_names_the_parquet_copy_where_only_that_is_left(damaged):
    # A run kept as Parquet alone was told its "trials.csv" was edited: a file it lacks.
    import pandas as pd

    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    pytest.importorskip("pyarrow")
    for name in ("epochs", "trials"):
        table = pd.read_csv(damaged / f"{name}.csv", dtype={"trial_id": str})
        if name == "trials":
            table.loc[table["trial_id"] == "0000", "epochs_completed"] = 99
        table.to_parquet(damaged / f"{name}.parquet")
        (damaged / f"{name}.csv").unlink()
    with pytest.raises(BenchError, match=re.escape(
            f"{damaged / 'trials.parquet'}: trial 0000 has epochs_completed 99 but 4 rows in "
            "epochs.parquet")):
        load_tables([damaged])
