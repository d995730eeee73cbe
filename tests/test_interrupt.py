"""A run stopped by SIGTERM, or killed outright, is never mistaken for a whole one."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import ROOT, RUN_BENCH

from bench.results import RunDir, read_epochs, read_run, read_trials

SLOW_SPACE = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class Slow(SearchSpace):
        description = "enough trials to be stopped in the middle"
        version = 1
        settings = SpaceSettings(init="random", epochs=3, repeats=1)

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3])
''')


def _terminated_when(tmp_path, seen: str, *, resume=None) -> str:
    """Runs the slow space (or resumes its run ``resume``) and stops it with SIGTERM at the
    first line containing ``seen``; returns what it printed on stderr."""
    spaces = tmp_path / "spaces"
    spaces.mkdir(exist_ok=True)
    (spaces / "slow.py").write_text(SLOW_SPACE)
    run = ["--resume", str(resume)] if resume else ["--name", "stopped"]
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "run", "--space", "slow", "--spaces-dir",
         str(spaces), "--image-size", "16", "--train-per-class", "10", "--results-dir",
         str(tmp_path / "results"), *run],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in process.stdout:
            if seen in line:
                process.send_signal(signal.SIGTERM)
                break
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    return err


def test_sigterm_marks_the_run_interrupted_and_keeps_what_finished(tmp_path):
    err = _terminated_when(tmp_path, "-> trial")  # one trial has finished
    path = tmp_path / "results" / "stopped"
    # The command it gives can be pasted as it is (run from the folder it ran in).
    assert (f"interrupted: the rows written so far are kept in {path}; continue it with "
            f"'{RUN_BENCH} run --resume {path}'") in err
    run = RunDir(path)
    assert read_run(run)["status"] == "interrupted"
    trials = read_trials(run)
    assert trials["status"].iloc[0] == "COMPLETED"
    assert len(trials) < 6
    # Resumed, and stopped again before its search restarted: the run is as it was.
    rows = run.epochs_csv.read_text()
    err = _terminated_when(tmp_path, "Keras backend", resume=path)
    assert (f"interrupted before the search restarted: {path} can be resumed again with "
            "the same command") in err
    assert read_run(run)["status"] == "interrupted"
    assert run.epochs_csv.read_text() == rows


def test_sigterm_before_the_run_directory_exists_says_no_run_was_written(tmp_path):
    err = _terminated_when(tmp_path, "Keras backend")  # data, pretraining, pre-flight next
    assert "interrupted before the run directory was made: no run was written" in err
    assert "rows written so far" not in err
    assert not (tmp_path / "results" / "stopped").exists()


def test_a_run_whose_process_is_gone_reads_as_interrupted(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "killed"
    shutil.copytree(tiny_run, copy)
    record = json.loads((copy / "run.json").read_text())
    record["status"] = "running"
    # Killed and not yet reaped (a zombie: found by a new user, whose analyze right after a
    # SIGKILL said "running"), then reaped.
    from bench.results import process_identity

    killed = subprocess.Popen(["sleep", "60"])
    try:
        record["process"] = process_identity() | {"pid": killed.pid}
        record["process"].pop("start_ticks")
        (copy / "run.json").write_text(json.dumps(record))
        assert read_run(RunDir(copy))["status"] == "running"
        killed.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{killed.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert read_run(RunDir(copy))["status"] == "interrupted"
    finally:
        killed.kill()
        killed.wait()
    assert read_run(RunDir(copy))["status"] == "interrupted"
    record["process"]["pid"] = os.getpid()  # alive: still running
    record["process"].pop("start_ticks", None)  # as a record from before they were kept
    (copy / "run.json").write_text(json.dumps(record))
    assert read_run(RunDir(copy))["status"] == "running"
    # Alive, but started at another time: its id was reused (found in review).
    ours = process_identity()
    assert "start_ticks" in ours  # Linux
    for ticks, status in ((ours["start_ticks"], "running"),
                          (ours["start_ticks"] + 1, "interrupted")):
        record["process"] = ours | {"start_ticks": ticks}
        (copy / "run.json").write_text(json.dumps(record))
        assert read_run(RunDir(copy))["status"] == status


def test_a_bad_results_folder_or_taken_name_is_refused_before_any_work(tiny_run, tmp_path,
                                                                       tiny_spaces_dir):
    from test_cli import run_bench

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_bench("run", "--results-dir", str(blocker / "results"))
    assert result.returncode == 2 and "cannot write to --results-dir" in result.stderr
    assert f"{blocker} is a file, not a folder; pass a folder" in result.stderr  # not EEXIST
    # The name is taken: refused before the data is loaded or the source model trained.
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--results-dir", str(tiny_run.parent), "--name", tiny_run.name)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert "data:" not in result.stdout and "pretraining" not in result.stdout


SWALLOWING_SPACE = textwrap.dedent('''
    import os
    import signal
    import time

    from bench.space import SearchSpace, SpaceSettings


    class Swallowing(SearchSpace):
        description = "its second trial stops the run inside a bare except, as Keras has"
        version = 1
        settings = SpaceSettings(init="random", epochs=2, repeats=1)

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [1e-3, 2e-3, 3e-3])

        def fit(self, parts, *, hp, run):
            if hp.get("head_lr") == 2e-3:
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)  # the handler raises here
                except:  # noqa: E722
                    print("swallowed", flush=True)
            return [run.fit(parts.model, epochs=run.epochs)]
''')


def test_a_stop_that_a_library_swallows_still_stops_the_run_at_the_next_epoch(tmp_path):
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "swallowing.py").write_text(SWALLOWING_SPACE)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), "run", "--space", "swallowing",
         "--spaces-dir", str(spaces), "--image-size", "16", "--train-per-class", "10",
         "--results-dir", str(tmp_path / "results"), "--name", "stopped"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert "swallowed" in result.stdout  # the first KeyboardInterrupt was caught
    assert result.returncode == 130, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    run = RunDir(tmp_path / "results" / "stopped")
    assert read_run(run)["status"] == "interrupted"
    trials = read_trials(run)
    assert list(trials["status"]) == ["COMPLETED", "RUNNING"]
    epochs = read_epochs(run)
    assert set(epochs["trial_id"]) == set(trials["trial_id"].iloc[:1])  # no epoch after it


def test_a_folder_the_user_may_not_look_into_is_one_line(tmp_path, monkeypatch):
    """Found in review: Path.exists raises PermissionError under a folder without
    execute permission (as a user other than root, which these tests may run as)."""
    from pathlib import Path

    import pytest

    from bench.errors import BenchError
    from bench.results import check_writable

    locked = tmp_path / "locked"
    real_exists = Path.exists

    def exists(path, *args, **kwargs):
        if locked in (path, *path.parents) and path != locked:
            raise PermissionError(13, "Permission denied")
        return real_exists(path, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", exists)
    with pytest.raises(BenchError, match="cannot write to --results-dir .*: Permission denied; "
                                         "pass a writable folder"):
        check_writable(locked / "inner" / "results",
                       what=f"cannot write to --results-dir {locked / 'inner' / 'results'}")


def test_a_swallowed_stop_stops_a_fit_with_only_the_stop_check_at_its_next_epoch():
    """The source pretraining's fit has no recorder: its callback raises the stop again
    (found in review: a stop swallowed there let pretraining run all its epochs)."""
    import keras
    import numpy as np
    import pytest

    from bench import stopping

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    epochs = []
    seen = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))
    try:
        with pytest.raises(KeyboardInterrupt):
            stopping._stop(None, None)  # what the signal handler does...
        # ...and a library's bare except swallowed it: the next epoch raises it again.
        with pytest.raises(KeyboardInterrupt):
            model.fit(np.zeros((4, 2)), np.zeros(4), epochs=3, verbose=0,
                      callbacks=[seen, stopping.stop_check()])
    finally:
        stopping._stopped = False
    assert epochs == [0]


def test_a_stop_that_lands_in_a_garbage_collection_callback_prints_no_traceback():
    """Found by CI: SIGTERM arrived while JAX's garbage-collection callback ran; Python
    swallowed the stop there and printed "Exception ignored in ..." with a traceback. The
    stop is remembered, so the run still ended as interrupted; now it says nothing more."""
    script = textwrap.dedent('''
        import gc, os, signal
        from bench import stopping

        stopping.install_stop_handlers()

        def collecting(phase, info):
            if phase == "start":
                os.kill(os.getpid(), signal.SIGTERM)
                sum(range(1000))  # the handler runs here, inside the callback

        gc.callbacks.append(collecting)
        gc.collect()
        gc.callbacks.remove(collecting)
        print("stopped" if stopping._stopped else "not stopped")
        # A loop that reaches no epoch or trial boundary (a hook's wait, found by CI: a
        # worker waited on past its chief) is stopped too: the stop is delivered again.
        import time
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                time.sleep(0.01)
            print("never raised again")
        except KeyboardInterrupt:
            print("raised again")
        class Broken:
            def __del__(self):
                raise ValueError("another error swallowed by Python")
        Broken()
    ''')
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.split() == ["stopped", "raised", "again"], done.stderr
    # The swallowed stop is quiet; anything else Python swallows is still printed.
    assert "KeyboardInterrupt" not in done.stderr
    assert "ValueError: another error swallowed by Python" in done.stderr


def test_a_stop_while_the_report_is_written_says_the_run_is_whole_and_how_to_report_it(
        tmp_path):
    """Found by a new user: SIGTERM a second after the last trial said "no run was written"
    (or, resumed, "before the search restarted") of a run whose tables were whole. The
    stop is made to land in the report by a report writer that raises it, as the signal
    handler would."""
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "slow.py").write_text(SLOW_SPACE)
    path = tmp_path / "results" / "stopped"
    code = textwrap.dedent(f'''
        import sys

        import bench.analysis.report

        def stopped(*args, **kwargs):
            raise KeyboardInterrupt

        bench.analysis.report.write_outputs = stopped
        from bench.cli import main

        sys.exit(main(["run", "--space", "slow", "--spaces-dir", {str(spaces)!r},
                       "--image-size", "16", "--train-per-class", "10", "--epochs", "1",
                       "--results-dir", {str(tmp_path / "results")!r}, "--name", "stopped"]))
    ''')
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"interrupted while writing the report: the run's tables in {path} are whole (its "
        f"search completed); '{RUN_BENCH} analyze {path}' writes its report")
    run = RunDir(path)
    assert read_run(run)["status"] == "completed"
    assert set(read_trials(run)["status"]) == {"COMPLETED"} and len(read_trials(run)) == 6
    assert not (path / "report.md").exists()
    # What it says to do works.
    analyzed = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "analyze",
                               str(path)], cwd=ROOT, capture_output=True, text=True, env=env,
                              timeout=600)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    assert (path / "report.md").exists()
    # The output closed (a reader such as 'head' ended) while the report was written:
    # not "once there is space", as a full disk is told.
    done = subprocess.run([sys.executable, "-c", code.replace(
        "raise KeyboardInterrupt", "raise BrokenPipeError(32, 'Broken pipe')").replace(
        '"stopped"]', '"pipe"]')], cwd=ROOT, capture_output=True, text=True, env=env,
        timeout=600)
    pipe = tmp_path / "results" / "pipe"
    assert done.returncode == 141, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "error: the program reading this command's output ended, which stopped it; the "
        f"run's tables in {pipe} are whole (its search completed), its report was not "
        f"written: '{RUN_BENCH} analyze {pipe}' writes it")
    assert read_run(RunDir(pipe))["status"] == "completed"
    # Found in review: a study that failed, stopped while its report was written, says
    # why it failed (its reason says what to do), not that its tables are whole.
    (spaces / "slow.py").write_text(SLOW_SPACE.replace(
        "[1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3]", "[1e38, 2e38]"))
    failed = tmp_path / "results" / "failed"
    done = subprocess.run([sys.executable, "-c", code.replace('"stopped"]', '"failed"]')],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the study failed: no trial completed: all 2 failed (why, trial by trial, is in "
        "trials.csv and report.md); the report was not written (stopped): "
        f"'{RUN_BENCH} analyze {failed}' writes it (run directory {failed})"]
    assert read_run(RunDir(failed))["status"] == "failed"
    # Found in review: the reader of a failed study's output ended as its report was
    # written; the summary then met the closed pipe too, and the failure went unsaid.
    closing = code.replace("    raise KeyboardInterrupt\n", textwrap.indent(textwrap.dedent("""
        import os

        sys.stdout.flush()
        reader, writer = os.pipe()
        os.close(reader)
        os.dup2(writer, sys.stdout.fileno())
        raise BrokenPipeError(32, "Broken pipe")
    """), "    ")).replace('"stopped"]', '"failed-pipe"]')
    assert "os.dup2" in closing
    done = subprocess.run([sys.executable, "-c", closing], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=600)
    failed_pipe = tmp_path / "results" / "failed-pipe"
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "error: the study failed: no trial completed: all 2 failed (why, trial by trial, is in "
        "trials.csv and report.md); the report was not written (the output closed): "
        f"'{RUN_BENCH} analyze {failed_pipe}' writes it (run directory {failed_pipe})")
    # Stopped while the summary of a completed run is printed: the run is whole.
    summary = code.replace("bench.analysis.report.write_outputs = stopped",
                           "import bench.analysis.summary\n"
                           "bench.analysis.summary.print_summary = stopped").replace(
        '"stopped"]', '"whole"]')
    (spaces / "slow.py").write_text(SLOW_SPACE)
    done = subprocess.run([sys.executable, "-c", summary], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 130, done.stderr[-2000:]
    whole = tmp_path / "results" / "whole"
    assert done.stderr.strip().splitlines()[-1] == (
        f"interrupted after the run completed: {whole} holds its tables and report")
    assert (whole / "report.md").exists()


def test_a_stop_in_the_middle_of_writing_a_table_leaves_the_old_table_and_no_debris(tmp_path):
    import pandas as pd
    import pytest

    from bench.results import write_csv

    class StopsWhenWritten:
        def __init__(self, i):
            self.i = i

        def __str__(self):
            if self.i == 5000:
                raise KeyboardInterrupt  # as a Ctrl-C or SIGTERM lands mid-write
            return str(self.i)

    path = tmp_path / "epochs.csv"
    write_csv(path, pd.DataFrame({"a": [1, 2]}))
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        write_csv(path, pd.DataFrame({"a": [StopsWhenWritten(i) for i in range(10_000)]}))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs.csv"]


def test_a_live_process_whose_name_is_not_utf8_is_alive_not_an_error():
    # Found in review: a reused pid's process named with bytes that are not UTF-8 made
    # reading /proc/PID/stat raise, and analyze, --resume and worker ended in a traceback.
    from bench.results import _process_gone, process_identity

    named = subprocess.Popen([sys.executable, "-c", (
        "import ctypes, sys, time; ctypes.CDLL(None).prctl(15, b'\\xff\\xfebad', 0, 0, 0); "
        "print('named', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert named.stdout.readline().strip() == "named"
        assert b"\xff\xfebad" in Path(f"/proc/{named.pid}/stat").read_bytes()
        identity = process_identity() | {"pid": named.pid}
        identity.pop("start_ticks")
        assert _process_gone(identity) is False
    finally:
        named.kill()
        named.wait()
