"""`run --resume`: a run killed with SIGKILL mid-trial continues, and its tables equal an
uninterrupted run's (same trials, hyperparameters and numbers), grid search included."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from test_cli import run_bench

from bench.results import RunDir

THREE_TRIALS = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class Three(SearchSpace):
        description = "three head learning rates from random init"
        version = 1
        settings = SpaceSettings(init="random", epochs=3, repeats=2)

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [1e-3, 3e-3, 1e-2])
            hp.Choice("frozen_blocks", [0, 2])
''')


def _assert_best_so_far_counts_kept_trials(stdout: str, run) -> None:
    """Every "best so far" a resumed run prints is the best of trials.csv up to that
    trial, the trials kept from before the resume included."""
    trials = pd.read_csv(run / "trials.csv", dtype={"trial_id": str}).set_index("trial_id")
    lines = re.findall(r"-> trial (\d+) \w+.*best so far ([\d.]+) \(trial (\d+)\)", stdout)
    assert lines, stdout[-2000:]
    for trial_id, shown, best_id in lines:
        so_far = trials.loc[:trial_id, "best_val_accuracy"]
        assert (best_id, shown) == (so_far.idxmax(), f"{so_far.max():.3f}"), (trial_id, stdout)
    # Each trial's values in the tables' order (frozen_blocks before head_lr), not the
    # order the space declared them in, nor the reverse a worker's trial arrives in.
    shown = re.findall(r"\(id \d+\) \[([^\]]*)\]", stdout)
    assert shown and all(re.fullmatch(r"frozen_blocks=\d+ head_lr=[\d.e-]+", values)
                         for values in shown), shown
    # The summary's columns, and the report's, in that order too.
    header = stdout.split("trials that did not complete last):\n")[1].splitlines()[0]
    assert header.split()[:3] == ["trial_id", "frozen_blocks", "head_lr"], header
    report = (run / "report.md").read_text()
    assert "| trial_id | frozen_blocks | head_lr |" in report.split("## Trials")[1]


def _command(tmp_path, name, tuner):
    return [sys.executable, str(ROOT / "run_bench.py"), "run", "--space", "three",
            "--spaces-dir", str(tmp_path / "spaces"), "--image-size", "16",
            "--train-per-class", "6", "--tuner", tuner, "--max-trials", "4",
            *(["--initial-points", "2"] if tuner == "bayesian" else []),
            "--results-dir", str(tmp_path / "results"), "--name", name]


def _tables(run):
    epochs = pd.read_csv(run / "epochs.csv", dtype={"trial_id": str})
    trials = pd.read_csv(run / "trials.csv", dtype={"trial_id": str})
    return (epochs.drop(columns=["run_id", "epoch_seconds"]),
            trials.drop(columns=["seconds", "rss_mib"]))


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["grid", "random", "bayesian"])
def test_a_killed_run_resumes_to_the_tables_of_an_uninterrupted_one(tmp_path, tuner):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "three.py").write_text(THREE_TRIALS)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    reference = subprocess.run(_command(tmp_path, "whole", tuner), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]

    process = subprocess.Popen(_command(tmp_path, "killed", tuner), cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        finished = 0
        for line in process.stdout:
            finished += "-> trial" in line
            if finished == 2 and "repeat 1/2" in line:  # inside the third trial
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        process.kill()
    killed = tmp_path / "results" / "killed"
    assert json.loads((killed / "run.json").read_text())["status"] == "running"

    result = run_bench("run", "--resume", str(killed), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    again = re.search(r"resuming killed: 2 trial\(s\) ended and kept; [3-5] row\(s\) of "
                      r"unfinished work removed; trial (\d+), started and not ended, runs "
                      r"again from the first epoch\n", result.stdout)
    assert again, result.stdout[:2000]
    record = json.loads((killed / "run.json").read_text())
    assert record["status"] == "completed" and len(record["resumed"]) == 1
    # Found by a new user: only the console said which trial ran again.
    assert record["run_again"] == [[again.group(1)]]
    assert (f"Resumed 1 time; trial {again.group(1)} had started and not ended when a process "
            "stopped, and ran again from the first epoch") in (killed / "report.md").read_text()
    _assert_best_so_far_counts_kept_trials(result.stdout, killed)
    # Found by a new user: "elapsed" began again from 0 with no word of the resume.
    trials = pd.read_csv(killed / "trials.csv", dtype={"trial_id": str})
    ran_here = re.findall(r"-> trial (\d+) ", result.stdout)
    kept = trials[~trials["trial_id"].isin(ran_here)]
    assert len(kept) == 2 and len(ran_here) == 2
    said = re.findall(r"; \d+ s elapsed since the resume \(the 2 trial\(s\) kept took "
                      r"(\d+) s\)\n", result.stdout)
    assert said == [f"{kept['seconds'].sum():.0f}"] * 2, result.stdout[-2000:]
    # The killed process never recorded its search time; the report says so.
    assert record["earlier_processes"][0]["search_seconds"] is None
    assert ("in the last of 2 processes (resumed); before it: not recorded (that process "
            "was stopped before it wrote its time)") in (killed / "report.md").read_text()
    epochs, trials = _tables(killed)
    whole_epochs, whole_trials = _tables(tmp_path / "results" / "whole")
    assert not epochs.duplicated(["trial_id", "repeat", "epoch"]).any()
    pd.testing.assert_frame_equal(epochs, whole_epochs)
    pd.testing.assert_frame_equal(trials, whole_trials)
    assert not list(killed.rglob("*.partial"))


def test_the_bayesian_oracle_s_proposal_generator_survives_its_saved_state(tmp_path):
    """KerasTuner does not save it: a reloaded oracle drew its proposals' starting points
    from the seed again."""
    import keras_tuner

    from bench.tuning.algorithms import make_oracle

    hp = keras_tuner.HyperParameters()
    hp.Float("head_lr", 1e-4, 1e-1, sampling="log")

    def oracle():
        made = make_oracle("bayesian", hyperparameters=hp, max_trials=5, seed=3,
                           max_epochs=1, initial_points=2)
        made._set_project_dir(str(tmp_path), "tuner")
        return made

    first = oracle()
    first._random_state.uniform(size=7)  # as a proposal draws its starting points
    state = json.loads(json.dumps(first.get_state()))
    expected = first._random_state.uniform(size=5)
    reloaded = oracle()
    reloaded.set_state(state)
    assert np.array_equal(reloaded._random_state.uniform(size=5), expected)
    assert not np.array_equal(oracle()._random_state.uniform(size=5), expected)


def test_resume_refuses_a_conflicting_option_and_a_completed_run(tiny_run, tmp_path):
    import shutil

    result = run_bench("run", "--resume", str(tiny_run))
    assert result.returncode == 2 and "has completed" in result.stderr
    stopped = tmp_path / "stopped"
    shutil.copytree(tiny_run, stopped)
    record = json.loads((stopped / "run.json").read_text())
    record["status"] = "interrupted"
    (stopped / "run.json").write_text(json.dumps(record))
    result = run_bench("run", "--resume", str(stopped), "--epochs", "5")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--epochs 5 conflicts with the run, which had no --epochs" in result.stderr
    result = run_bench("run", "--resume", str(stopped), "--precision", "mixed_bfloat16")
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("--precision mixed_bfloat16 conflicts with the run, which had --precision "
            "float32") in result.stderr
    # Options are named as typed (a new user was told to drop --reuse-models).
    for typed, said in ((["--no-reuse"], "--no-reuse conflicts with the run, which ran "
                                         "without it; a resumed run keeps its settings: "
                                         "drop --no-reuse"),
                        (["--cache-memory", "64"], "--cache-memory 64 conflicts with the run, "
                                                   "which had --cache-memory 2048")):
        result = run_bench("run", "--resume", str(stopped), *typed)
        assert result.returncode == 2 and said in result.stderr, result.stderr[-2000:]


def _stopped_copy(tiny_run, path, **changes):
    import shutil

    shutil.copytree(tiny_run, path)
    record = json.loads((path / "run.json").read_text())
    record["status"] = "interrupted"
    for dotted, value in changes.items():
        *parents, name = dotted.split("__")
        node = record
        for parent in parents:
            node = node[parent]
        node[name] = value
    (path / "run.json").write_text(json.dumps(record))
    return path


def test_an_option_newer_than_the_run_is_compared_with_its_default(tiny_run, tmp_path):
    """A run recorded before --precision existed ran in float32: resuming it with
    --precision float32 continues it; mixed_bfloat16 is refused."""
    from bench.errors import BenchError
    from bench.tuning.resume import resume_spec

    stopped = _stopped_copy(tiny_run, tmp_path / "older")
    record = json.loads((stopped / "run.json").read_text())
    del record["arguments"]["precision"]
    (stopped / "run.json").write_text(json.dumps(record))
    assert resume_spec(stopped, given={"precision": "float32"}).precision == "float32"
    with pytest.raises(BenchError, match="--precision mixed_bfloat16 conflicts with the run, "
                                         "which had --precision float32"):
        resume_spec(stopped, given={"precision": "mixed_bfloat16"})


def test_an_option_given_as_the_run_resolved_it_continues_the_run(tiny_run, tmp_path):
    """Found by a new user: '--resume RUN --tuner grid' on a run that took grid by default
    was refused as a conflict with "no --tuner"."""
    from bench.errors import BenchError
    from bench.tuning.resume import resume_spec

    stopped = _stopped_copy(tiny_run, tmp_path / "stopped")
    record = json.loads((stopped / "run.json").read_text())
    assert record["arguments"]["tuner"] is None and record["arguments"]["epochs"] is None
    # The tiny space: a finite grid, 2 epochs and 2 repeats in its settings.
    resume_spec(stopped, given={"tuner": "grid", "epochs": 2, "repeats": 2})
    limited = _stopped_copy(tiny_run, tmp_path / "limited", settings__max_trials=2)
    resume_spec(limited, given={"max_trials": 2})  # a space's max_trials, given again
    with pytest.raises(BenchError, match=re.escape(
            "--tuner random conflicts with the run, which had no --tuner (so grid)")):
        resume_spec(stopped, given={"tuner": "random"})
    with pytest.raises(BenchError, match=re.escape(
            "--epochs 3 conflicts with the run, which had no --epochs (so 2)")):
        resume_spec(stopped, given={"epochs": 3})


def test_a_completed_run_without_its_report_is_pointed_to_analyze(tiny_run, tmp_path):
    # Killed while the report was written: run.json said completed, report.md was missing,
    # and --resume said only that there was nothing to resume.
    import shutil

    from bench.errors import BenchError
    from bench.tuning.resume import resume_spec

    unreported = tmp_path / "unreported"
    shutil.copytree(tiny_run, unreported)
    (unreported / "report.md").unlink()
    with pytest.raises(BenchError, match=re.escape(
            f"{unreported} has completed; there is nothing to resume; its report was not "
            "written (stopped after the tables): '") + ".*analyze " + re.escape(
            f"{unreported}' writes it")):
        resume_spec(unreported, given={})


def test_resume_refuses_a_run_made_with_other_versions_weights_or_data(tiny_run, tmp_path):
    record = json.loads((tiny_run / "run.json").read_text())
    keras_now = record["versions"]["keras"]
    for name, edits, said in (
            # Another version: refused before the data is read or anything pretrains.
            ("versions", {"versions__keras": "3.0.0"}, f"keras 3.0.0 -> {keras_now}"),
            ("weights", {"pretraining__weights_sha256": "0" * 64},
             "pretrained weights (SHA-256) 00000000... ->")):
        stopped = _stopped_copy(tiny_run, tmp_path / name, **edits)
        message, stdout = _refused_resume(stopped)
        assert said in message
        assert ("data:" in stdout) == (name == "weights")
        assert json.loads((stopped / "run.json").read_text())["status"] == "interrupted"


def _refused_resume(stopped) -> tuple[str, str]:
    """Resumes ``stopped``, which must be refused in one line with its tables untouched;
    returns that line and what the command printed on stdout."""
    before = (stopped / "epochs.csv").read_bytes()
    result = run_bench("run", "--resume", str(stopped))
    assert result.returncode == 2, result.stderr[-2000:]
    message = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "Traceback" not in result.stderr
    assert (stopped / "epochs.csv").read_bytes() == before
    return message[0], result.stdout


def test_resume_refuses_an_edited_space_file_and_a_run_whose_process_still_runs(
        tiny_run, tiny_spaces_dir, tmp_path):
    """Found by a new user: a space file edited without a new version resumed, and mixed
    trials of the old and new code in one table; a resume of a live run wrote its tables
    while the first process went on writing them."""
    import shutil
    import socket

    from conftest import TINY_SPACE

    spaces = tmp_path / "spaces"
    shutil.copytree(tiny_spaces_dir, spaces)
    (spaces / "tiny.py").write_text(TINY_SPACE.replace("head_lr=3e-3", "head_lr=2e-3"))
    assert "head_lr=2e-3" in (spaces / "tiny.py").read_text()  # the edit took
    edited = _stopped_copy(tiny_run, tmp_path / "edited", arguments__spaces_dir=str(spaces))
    live = _stopped_copy(tiny_run, tmp_path / "live", status="running",
                         process={"pid": os.getpid(), "host": socket.gethostname()})
    for stopped, said in (
            (edited, f"ran space tiny from a file other than {spaces / 'tiny.py'} here "
                     "(SHA-256 "),
            (live, f"is still running (process {os.getpid()} on this machine); stop it first "
                   f"(kill {os.getpid()}: it keeps what finished), then resume")):
        message, stdout = _refused_resume(stopped)
        assert said in message
        # Refused before the run's first line (found by a new user: two lines came first).
        assert stdout == "", stdout


def test_a_space_is_the_same_by_name_version_and_the_file_s_sha256():
    from bench.tuning.resume import space_change

    now = {"name": "tiny", "version": 1, "file": "/s/tiny.py", "sha256": "ab" * 32}
    assert space_change(now, now) is None
    assert space_change({"name": "tiny", "version": 1}, now) is None  # older: no SHA-256
    assert space_change(now | {"version": 2}, now) == ("space tiny version 2, but tiny is "
                                                        "now version 1")
    assert space_change(now | {"sha256": "cd" * 32}, now) == (
        "space tiny from a file other than /s/tiny.py here (SHA-256 cdcdcdcd... in the run, "
        "abababab... here)")


def test_inputs_a_result_depends_on_are_compared_field_by_field():
    from bench.tuning.resume import changed_inputs

    ran = {"backend": "tensorflow", "versions": {"keras": "3.15.1", "numpy": "2.4.6"},
           "pretraining": {"weights_sha256": "ab" * 32},
           "dataset": {"sha256": "cd" * 32, "classes": ["5", "6"]}}
    assert changed_inputs(ran, ran) == []
    assert changed_inputs({}, ran) == []  # an older run.json without the fields
    assert changed_inputs(ran, {"dataset": ran["dataset"]}) == []  # only what both have
    # A library an older run.json did not list (Pillow before 12-02) is not compared.
    older = ran | {"versions": {"keras": "3.15.1", "numpy": "2.4.6"}}
    assert changed_inputs(older, ran | {"versions": ran["versions"] | {"pillow": "13.0.0"}}) == []
    # A library that computes no number (pandas) or another backend's framework may change.
    assert changed_inputs(ran, ran | {"versions": ran["versions"] | {"pandas": "3.0.0",
                                                                     "torch": "2.9.0"}}) == []
    now = {"backend": "jax", "versions": {"keras": "3.15.1", "jax": "0.8.0"},
           "pretraining": {"weights_sha256": "ab" * 32},
           "dataset": {"sha256": "ef" * 32, "classes": ["5", "6"]}}
    assert changed_inputs(ran, now) == [
        "Keras backend tensorflow -> jax", "jax not installed -> 0.8.0",
        "the data (images and labels differ)"]


def test_a_run_started_with_relative_folders_resumes_from_anywhere(tmp_path):
    """Found by a new user: run.json kept --cache-dir as typed, so a resume from another
    folder pretrained again into a new cache there. Folders are recorded absolute."""
    # Resolved: the run records resolved folders (tmp_path may pass through a link).
    started, elsewhere = tmp_path.resolve() / "started", tmp_path.resolve() / "elsewhere"
    (started / "spaces").mkdir(parents=True)
    elsewhere.mkdir()
    (started / "spaces" / "one.py").write_text(textwrap.dedent('''
        from bench.space import SearchSpace, SpaceSettings


        class One(SearchSpace):
            description = "one pretrained trial"
            settings = SpaceSettings(init="pretrained", epochs=1, repeats=1)

            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [1e-3])
    '''))
    result = run_bench("run", "--space", "one", "--spaces-dir", "spaces", "--cache-dir",
                       "cache", "--results-dir", "results", "--name", "run", "--image-size",
                       "16", "--train-per-class", "4", "--pretrain-epochs", "1", cwd=started)
    assert result.returncode == 0, result.stderr[-2000:]
    run = started / "results" / "run"
    record = json.loads((run / "run.json").read_text())
    for name, folder in (("spaces_dir", "spaces"), ("cache_dir", "cache"),
                         ("results_dir", "results")):
        assert record["arguments"][name] == str(started / folder)
    assert record["pretraining"]["weights_path"].startswith(str(started / "cache") + "/")
    record["status"] = "interrupted"
    (run / "run.json").write_text(json.dumps(record))
    # The same folder named relative to here is the run's own: no conflict.
    result = run_bench("run", "--resume", str(run), "--cache-dir", "../started/cache",
                       cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"pretrained weights reused from {started / 'cache'}" in result.stdout
    assert not (elsewhere / "cache").exists() and list(elsewhere.iterdir()) == []
    assert record["space"]["file"] == str(started / "spaces" / "one.py")

    # A run recorded before folders were made absolute kept them as typed: its relative
    # results folder, the end of where it is now, tells where it started.
    record = json.loads((run / "run.json").read_text())
    record["status"] = "interrupted"
    record["arguments"] |= {"spaces_dir": "spaces", "cache_dir": "cache",
                            "results_dir": "results"}
    (run / "run.json").write_text(json.dumps(record))
    result = run_bench("run", "--resume", str(run), cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"pretrained weights reused from {started / 'cache'}" in result.stdout
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("recorded, start", [
    ("results", "work"), ("work/results", "."), (".", "work/results"),
    ("elsewhere", None), ("/abs/results", None), ("../results", None)])
def test_an_older_run_s_relative_folders_are_found_from_where_it_started(tmp_path, recorded,
                                                                         start):
    """An older run.json kept its folders as typed; the results folder it recorded, when
    it is the end of where the run is now, says which folder the others were relative
    to; otherwise they are read from the current folder, as they were then."""
    from bench.tuning.resume import started_in

    run = RunDir(tmp_path.resolve() / "work" / "results" / "run")
    found = started_in(run, {"results_dir": recorded})
    assert found == (tmp_path.resolve() / start if start else Path.cwd())


def test_a_resume_keeps_the_run_s_warnings_and_adds_those_its_process_found(tiny_run,
                                                                           tmp_path):
    """A process that finds something new (a weak source model, say) says it in run.json
    even when the run started before it was found; nothing is said twice."""
    from bench.results import read_run
    from bench.tuning.resume import continue_run

    stopped = _stopped_copy(tiny_run, tmp_path / "stopped", warnings=["said before"])
    fresh = read_run(RunDir(stopped)) | {"warnings": ["said before", "found now"]}
    _, updated, _ = continue_run(stopped, fresh, log=lambda *_: None)
    assert updated["warnings"] == ["said before", "found now"]


def test_a_row_in_the_merged_table_and_a_worker_s_is_removed_once(tiny_run, tmp_path):
    """A workers' run keeps each row in its worker's table and, once merged, in the run's:
    the rows of a trial that runs again are counted once, a torn row once per table."""
    from bench.results import read_run
    from bench.tuning.resume import continue_run

    stopped = _stopped_copy(tiny_run, tmp_path / "workers-run")
    lines = (stopped / "epochs.csv").read_text().splitlines(keepends=True)
    unfinished = [line.replace(line.split(",")[1], "0009", 1) for line in lines[1:3]]
    assert all(line.split(",")[1] == "0009" for line in unfinished)  # trial_id is column 2
    (stopped / "epochs.csv").write_text("".join(lines + unfinished))
    worker = stopped / "workers" / "tuner0"
    worker.mkdir(parents=True)
    (worker / "epochs.csv").write_text("".join([lines[0], *unfinished, "0009,torn"]))
    said = []
    _, _, resumed = continue_run(stopped, read_run(RunDir(stopped)), log=said.append)
    assert resumed.removed_rows == 3 and "; 3 row(s) of unfinished work removed" in said[0]
    assert (stopped / "epochs.csv").read_text() == "".join(lines)
    assert (worker / "epochs.csv").read_text() == lines[0]


def test_resumed_on_another_processor_the_run_says_so(tiny_run, tmp_path):
    stopped = _stopped_copy(tiny_run, tmp_path / "moved", device="CPU (another, 64 cores)")
    result = run_bench("run", "--resume", str(stopped))
    assert result.returncode == 0, result.stderr[-2000:]
    # Every trial had ended: none was running to start again, and none is said to be.
    ended = len(list((stopped / "tuner").glob("trial_*/trial.json")))
    assert (f"resuming moved: {ended} trial(s) ended and kept; 0 row(s) of unfinished work "
            "removed\n") in result.stdout
    record = json.loads((stopped / "run.json").read_text())
    assert record["status"] == "completed"
    warning = [w for w in record["warnings"] if w.startswith("resumed on ")]
    assert warning == [f"resumed on {json.loads((tiny_run / 'run.json').read_text())['device']}"
                       " after running on CPU (another, 64 cores): numbers can differ between"
                       " processors in the last digits"]
    assert f"Warning: {warning[0]}" in (stopped / "report.md").read_text()
    assert ("Resumed 1 time; every trial that had started had ended, and was kept"
            in (stopped / "report.md").read_text())
    # Resumed again on the same machine: the run now records it, and no second warning.
    record["status"] = "interrupted"
    (stopped / "run.json").write_text(json.dumps(record))
    assert run_bench("run", "--resume", str(stopped)).returncode == 0
    again = json.loads((stopped / "run.json").read_text())
    assert [w for w in again["warnings"] if w.startswith("resumed on ")] == warning
    assert again["device"] == json.loads((tiny_run / "run.json").read_text())["device"]
    # Each process's search time and counts are kept, not written over by the last one's.
    first = json.loads((tiny_run / "run.json").read_text())
    # And the process, so that a copy of the run resumed elsewhere is known as this run.
    per_process = ("search_seconds", "preflight_seconds", "models", "together", "prefix_cache",
                   "evaluation", "device_data", "distributed", "process")
    assert again["earlier_processes"] == [{k: first.get(k) for k in per_process},
                                          {k: record.get(k) for k in per_process}]
    assert again["search_seconds"] >= 0 and again["models"]["compiled"] == 0  # nothing left
    # A copy resumed in its own folder is still the run it was copied from.
    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="are one run .*one is a copy of the other"):
        load_tables([tiny_run, stopped])
    assert (f"search {again['search_seconds']} s in the last of 3 processes (resumed); before "
            f"it: {first['search_seconds']} s, {record['search_seconds']} s"
            in (stopped / "report.md").read_text())


def test_every_ended_trial_keeps_what_trials_csv_adds_beside_its_trial_json(tiny_run):
    # A kill after KerasTuner marked a trial ended but before trials.csv was rewritten must
    # not lose the trial's test accuracy: it is kept in the trial's own folder first.
    trials = pd.read_csv(tiny_run / "trials.csv", dtype={"trial_id": str})
    assert len(trials) > 0
    for row in trials.itertuples():
        kept = json.loads((tiny_run / "tuner" / f"trial_{row.trial_id}"
                           / "bench_extras.json").read_text())
        assert kept["test_accuracy"] == pytest.approx(row.test_accuracy, abs=1e-6)
        assert kept["seconds"] == pytest.approx(row.seconds, abs=1e-3)


def _kill_when(process, predicate):
    try:
        for line in process.stdout:
            if predicate(line):
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        process.kill()


@pytest.mark.slow
def test_killed_between_trials_and_mid_write_then_resumed_equals_a_whole_run(tmp_path):
    # A kill right after a trial ended, plus the half row a kill during an epochs.csv
    # append leaves behind: the resumed tables still equal an uninterrupted run's.
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "three.py").write_text(THREE_TRIALS)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    reference = subprocess.run(_command(tmp_path, "whole", "grid"), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    process = subprocess.Popen(_command(tmp_path, "killed", "grid"), cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _kill_when(process, lambda line: line.lstrip().startswith("-> trial"))
    with open(tmp_path / "results" / "killed" / "epochs.csv", "a", encoding="utf-8") as torn:
        torn.write("killed,0001,1,1,1,0.5")  # no newline, too few fields
    # Resumed in a copy (a new user's backup): the copy's tables keep the run's one id.
    killed = tmp_path / "results" / "copy"
    shutil.copytree(tmp_path / "results" / "killed", killed)
    result = run_bench("run", "--resume", str(killed), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_best_so_far_counts_kept_trials(result.stdout, killed)
    assert set(pd.read_csv(killed / "epochs.csv")["run_id"]) == {"killed"}
    epochs, trials = _tables(killed)
    whole_epochs, whole_trials = _tables(tmp_path / "results" / "whole")
    pd.testing.assert_frame_equal(epochs, whole_epochs)
    pd.testing.assert_frame_equal(trials, whole_trials)


@pytest.mark.slow
def test_killed_during_pretraining_the_same_command_runs_again_from_a_whole_cache(tmp_path):
    # Killed while the source model trains: no run exists yet to resume, the weight cache
    # holds nothing torn, and the same command then runs the study to the end.
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "three.py").write_text(
        THREE_TRIALS.replace('init="random"', 'init="pretrained"'))
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    command = [*_command(tmp_path, "study", "grid"), "--max-trials", "1"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    _kill_when(process, lambda line: line.startswith("pretraining"))
    assert not list((tmp_path / "cache").rglob("*.weights.h5"))
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pretraining" in again.stdout
    record = json.loads((tmp_path / "results" / "study" / "run.json").read_text())
    assert record["status"] == "completed"


def test_an_ended_trial_the_oracle_still_lists_as_running_is_not_trained_again(tiny_run,
                                                                             tmp_path):
    """KerasTuner saves oracle.json before dropping an ended trial from its ongoing ones:
    killed in between, a resumed (distributed) run trained it again beside its kept rows."""
    from bench.tuning.resume import ended_trials, forget_ended_as_ongoing

    stopped = _stopped_copy(tiny_run, tmp_path / "stopped")
    run = RunDir(stopped)
    oracle_json = run.tuner / "oracle.json"
    state = json.loads(oracle_json.read_text())
    ended = ended_trials(run)
    last = sorted(ended)[-1]
    state["ongoing_trials"] = {"tuner0": last, "tuner1": "not-ended"}
    oracle_json.write_text(json.dumps(state))
    forget_ended_as_ongoing(run, ended=set(ended))
    assert json.loads(oracle_json.read_text())["ongoing_trials"] == {"tuner1": "not-ended"}


def test_a_grid_killed_after_saving_an_ended_trial_resumes_to_its_next_combination(tmp_path):
    """KerasTuner's grid oracle queues an ended trial (to walk on to its next combination)
    after the save in end_trial: a chief killed in between left oracle.json with nothing
    queued, and the resumed grid stopped after 2 of 4 trials (CI, 2026-12-05)."""
    import keras_tuner

    from bench.tuning.algorithms import resumable_grid_oracle
    from bench.tuning.resume import forget_ended_as_ongoing

    def oracle():
        hp = keras_tuner.HyperParameters()
        hp.Choice("head_lr", [1e-3, 3e-3, 1e-2])
        hp.Choice("frozen_blocks", [0, 2])
        made = resumable_grid_oracle()(objective=keras_tuner.Objective("score", "max"),
                                       max_trials=4, hyperparameters=hp)
        made._set_project_dir(str(tmp_path), "tuner")
        return made

    first = oracle()
    trials = [first.create_trial("tuner1"), first.create_trial("tuner0")]
    for trial in reversed(trials):
        first.update_trial(trial.trial_id, {"score": 0.5})
        trial.status = "COMPLETED"
        first.end_trial(trial)
    path = tmp_path / "tuner" / "oracle.json"
    # What the killed chief's disk held: the second end saved, not yet queued or dropped.
    state = json.loads(path.read_text()) | {
        "ongoing_trials": {"tuner1": trials[0].trial_id}, "grid_populate_next": []}
    path.write_text(json.dumps(state))
    forget_ended_as_ongoing(RunDir(tmp_path), ended={t.trial_id for t in trials})
    resumed = oracle()
    resumed.reload()
    following = resumed.create_trial("tuner0")
    # The grid walks (1e-3, 0), (1e-3, 2), then (3e-3, 0): not STOPPED after two.
    assert (following.status, following.hyperparameters.values) == (
        "RUNNING", {"head_lr": 3e-3, "frozen_blocks": 0})


def test_a_trial_the_oracle_never_recorded_is_handed_out_again_under_its_id(tmp_path):
    # Found in review: killed between create_trial's trial.json and oracle.json, a trial
    # stayed RUNNING for good and its combination ran again under the next id.
    import keras_tuner

    from bench.results import RunDir
    from bench.tuning.algorithms import make_oracle
    from bench.tuning.resume import (
        ended_trials,
        forget_ended_as_ongoing,
        forget_unrecorded_trials,
    )

    def oracle():
        hp = keras_tuner.HyperParameters()
        hp.Choice("x", [1, 2, 3, 4])
        made = make_oracle("grid", hyperparameters=hp, max_trials=None, seed=1, max_epochs=1)
        made._set_project_dir(str(tmp_path), "tuner")
        return made

    first = oracle()
    trial = first.create_trial("tuner0")
    first.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    trial.status = "COMPLETED"
    first.end_trial(trial)
    saved = (tmp_path / "tuner" / "oracle.json").read_text()
    orphan = first.create_trial("tuner0")
    (tmp_path / "tuner" / "oracle.json").write_text(saved)  # the kill, before its save
    assert (tmp_path / "tuner" / f"trial_{orphan.trial_id}" / "trial.json").exists()
    run = RunDir(tmp_path)
    assert forget_unrecorded_trials(run) == [orphan.trial_id]
    forget_ended_as_ongoing(run, ended=set(ended_trials(run)))
    resumed = oracle()
    resumed.reload()
    again = resumed.create_trial("tuner0")
    assert (again.trial_id, again.hyperparameters.values) == (orphan.trial_id,
                                                              orphan.hyperparameters.values)
    assert sorted(p.name for p in (tmp_path / "tuner").glob("trial_*")) == [
        f"trial_{trial.trial_id}", f"trial_{orphan.trial_id}"]
    assert forget_unrecorded_trials(run) == []  # a recorded trial is never removed


def test_a_reloaded_oracle_proposes_what_the_uninterrupted_one_does_in_any_folder_order(
        tmp_path, monkeypatch):
    """Found by a new user: KerasTuner reloads a run's trials in the order the file system
    lists their folders, and the Bayesian oracle fitted its Gaussian process to them in
    that order: a resumed run proposed head_lr 0.004297719444 where the uninterrupted one
    proposed 0.004297719104, so its tables differed. The folders are listed here in
    reverse, as a file system may."""
    import shutil

    import keras_tuner

    from bench.tuning.algorithms import OBJECTIVE, make_oracle
    from bench.tuning.resume import forget_ended_as_ongoing

    hp = keras_tuner.HyperParameters()
    hp.Float("head_lr", 1e-4, 1e-1, sampling="log")
    hp.Int("frozen_blocks", 0, 4)

    def oracle(folder):
        made = make_oracle("bayesian", hyperparameters=hp, max_trials=9, seed=3,
                           max_epochs=1, initial_points=2)
        made._set_project_dir(str(tmp_path / folder), "tuner")
        return made

    whole = oracle("whole")
    for index in range(6):
        trial = whole.create_trial("tuner0")
        values = trial.hyperparameters.values
        whole.update_trial(trial.trial_id, {OBJECTIVE: 0.5 + 0.1 * np.sin(
            7 * np.log(values["head_lr"]) + values["frozen_blocks"] + index)})
        trial.status = "COMPLETED"
        whole.end_trial(trial)
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    proposed = [whole.create_trial(f"tuner{i}").hyperparameters.values for i in (1, 2)]

    folders = keras_tuner.src.backend.io.glob
    monkeypatch.setattr(keras_tuner.src.backend.io, "glob",
                        lambda pattern: sorted(folders(pattern), reverse=True))
    # As a resumed run reloads it (the last ended trial is not taken for a running one).
    forget_ended_as_ongoing(RunDir(tmp_path / "resumed"), ended=set(whole.trials))
    resumed = oracle("resumed")
    resumed.reload()
    assert list(resumed.trials) == sorted(resumed.trials) and len(resumed.trials) == 6
    assert [resumed.create_trial(f"tuner{i}").hyperparameters.values
            for i in (1, 2)] == proposed
