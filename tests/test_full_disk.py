"""A full disk (here: a file-size limit) mid-run leaves every table readable and says so in
one line; nothing torn, no .partial debris."""

import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from conftest import ROOT, RUN_BENCH
from test_resume import THREE_TRIALS

from bench.analysis.validate import check_csv_rows

LONG_SPACE = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class Long(SearchSpace):
        description = "one configuration, many epochs"
        version = 1
        settings = SpaceSettings(init="random", epochs=120, repeats=1)

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [1e-3])
''')


def _long_study(tmp_path, command: str, name: str, *extra) -> tuple[list[str], dict]:
    """``(command line, environment)`` of a run of the long space (many small rows) in
    ``tmp_path``, named ``name``."""
    spaces = tmp_path / "spaces"
    spaces.mkdir(exist_ok=True)
    (spaces / "long.py").write_text(LONG_SPACE)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    return [sys.executable, str(ROOT / "run_bench.py"), command, "--space", "long",
            "--spaces-dir", str(spaces), "--image-size", "16", "--train-per-class", "4",
            *extra, "--results-dir", str(tmp_path / "results"), "--name", name], env


def _failed_in_one_line(result) -> str:
    """The one error line of a run that failed (exit status 1) without a traceback."""
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return error


def _limited(limit: int, command: list[str]) -> list[str]:
    """``command`` under a file-size limit, set by a small Python that then execs it.

    Not through ``preexec_fn``: Python code between fork and exec in this process, which
    has imported gRPC (KerasTuner does), runs gRPC's fork handlers in the child, and one
    run in several died of SIGABRT before it ran (gRPC's poller: "epoll_wait error: Bad
    file descriptor"; grpc/grpc#43157). An ignored SIGXFSZ stays ignored across exec, so
    a write past the limit fails instead of killing the run."""
    setup = ("import os, resource, signal, sys; "
             "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
             "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", setup, *command]


@pytest.mark.slow
def test_a_full_disk_during_an_append_keeps_whole_rows_and_says_so(tmp_path):
    command, env = _long_study(tmp_path, "run", "full")
    result = subprocess.run(_limited(7000, command), cwd=ROOT, capture_output=True, text=True,
                            env=env, timeout=600)
    run = tmp_path / "results" / "full"
    error = _failed_in_one_line(result)
    assert f"cannot write {run / 'epochs.csv'}" in error
    assert any(words in error for words in ("File too large", "No space", "bytes written"))
    check_csv_rows(run / "epochs.csv")  # every line whole
    rows = (run / "epochs.csv").read_text().splitlines()
    assert 10 < len(rows) < 121
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "epochs.csv" in record["error"]
    assert not list(run.rglob("*.partial"))
    # The advice, followed once the limit is gone, finishes the same run.
    advice = f", then continue the run with '{RUN_BENCH} run --resume {run}'"
    assert error.endswith(f"free some space{advice} (run directory {run})"), error
    # Followed too soon (the disk still full: run.json cannot be written as the run is
    # reopened), the same line again, not a traceback.
    early = subprocess.run(_limited(3000, _advised(error)), cwd=ROOT, capture_output=True,
                           text=True, env=env, timeout=600)
    again = _failed_in_one_line(early)
    assert again.startswith(f"error: the study failed: cannot write {run / 'run.json'} (")
    assert again.endswith(f"free some space{advice} (run directory {run})"), again
    resumed = subprocess.run(_advised(error), cwd=ROOT, capture_output=True, text=True,
                             env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_csv_rows(run / "epochs.csv")
    epochs = pd.read_csv(run / "epochs.csv")
    assert sorted(epochs["epoch"]) == list(range(1, 121))
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_a_run_that_cannot_write_its_record_says_what_to_do_at_the_start_and_at_the_end(
        tmp_path):
    command, env = _long_study(tmp_path, "run", "new", "--epochs", "1")
    # 1000 bytes: the decoded data is cached first (no limit), run.json does not fit.
    warm = subprocess.run([*command[:-1], "warm"], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=600)
    assert warm.returncode == 0, warm.stderr[-2000:]
    result = subprocess.run(_limited(1000, command), cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=600)
    error = _failed_in_one_line(result)
    run = tmp_path / "results" / "new"
    assert error.startswith(f"error: the study failed: cannot write {run / 'run.json'} (")
    assert error.endswith("full or a file-size limit was reached; any earlier version of "
                          "the file is kept: free some space; nothing ran: run the same command "
                          "again"), error
    assert not run.exists()
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    # A limit that the run's first run.json fits under and its last (which adds how the
    # search went) does not: the search completes, and the run still says so, with the
    # command that finishes it (it exited 0 with run.json saying running).
    last = len((tmp_path / "results" / "warm" / "run.json").read_bytes())
    ends = tmp_path / "results" / "ends"  # a name as long as "warm": the same paths' length
    result = subprocess.run(_limited(last - 150, [*command[:-1], "ends"]), cwd=ROOT,
                            capture_output=True, text=True, env=env, timeout=600)
    error = _failed_in_one_line(result)
    assert error.startswith(f"error: the study failed: cannot write {ends / 'run.json'} (")
    assert error.endswith(f"free some space, then continue the run with '{RUN_BENCH} "
                          f"run --resume {ends}' (run directory {ends})"), error
    assert json.loads((ends / "run.json").read_text())["status"] == "running"
    finished = subprocess.run(_advised(error), cwd=ROOT, capture_output=True, text=True,
                              env=env, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads((ends / "run.json").read_text())["status"] == "completed"
    assert (ends / "report.md").exists()


def test_a_failure_with_more_added_keeps_its_advice_after_its_own_words():
    # Found in review: a full disk whose report then failed lost the command that
    # continues the run (the message was rebuilt, not resumable any more).
    import errno
    from pathlib import Path

    from bench.errors import DiskFull, StudyFailed

    full = DiskFull(Path("/r/epochs.csv"), rows=3,
                    error=OSError(errno.ENOSPC, "No space left on device"))
    wrapped = full.also("the report failed (ValueError: boom)").also("and more")
    assert wrapped.resumable
    assert wrapped.advised(", then continue the run with 'X'") == (
        "cannot write /r/epochs.csv (No space left on device) after 3 row(s): the disk "
        "holding /r is full or a file-size limit was reached; every complete row is kept: "
        "free some space, then continue the run with 'X'; the report failed (ValueError: "
        "boom); and more")
    plain = StudyFailed("no trial completed").also("the report failed")
    assert not plain.resumable and plain.advised("") == "no trial completed; the report failed"


def _advised(line: str) -> list[str]:
    """The command an error line quotes last ('python run_bench.py ...'), to run."""
    quoted = line.rsplit("'", 2)[-2]
    assert quoted.startswith(f"{RUN_BENCH} "), quoted
    return [sys.executable, str(ROOT / "run_bench.py"), *shlex.split(quoted[len(RUN_BENCH):])]


def test_a_full_disk_while_the_report_is_written_keeps_the_tables_and_says_analyze(tmp_path):
    # A size limit that the tables and run.json fit under but a figure does not.
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "three.py").write_text(THREE_TRIALS)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))

    def run(name, limit=None):
        command = [sys.executable, str(ROOT / "run_bench.py"), "run", "--space", "three",
                   "--spaces-dir", str(spaces), "--image-size", "16", "--train-per-class",
                   "6", "--max-trials", "2", "--results-dir", str(tmp_path / "results"),
                   "--name", name]
        return subprocess.run(command if limit is None else _limited(limit, command),
                              cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)

    warm = run("warm")  # fills the decode cache, so the limited run writes only the run
    assert warm.returncode == 0, warm.stderr[-2000:]
    result = run("report", limit=30_000)
    path = tmp_path / "results" / "report"
    error = _failed_in_one_line(result)
    assert "the study completed but the report could not be written" in error
    assert f"'{RUN_BENCH} analyze {path}' makes it from the tables" in error
    assert json.loads((path / "run.json").read_text())["status"] == "completed"
    check_csv_rows(path / "epochs.csv")
    check_csv_rows(path / "trials.csv")
    assert not (path / "report.md").exists()
    assert not list(path.rglob("*.partial")) and not list(path.glob(".report-*"))
    again = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "analyze", str(path)],
                           cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (path / "report.md").exists() and (path / "plots").is_dir()


@pytest.mark.slow
def test_a_worker_on_a_full_disk_says_how_to_start_it_again_and_that_finishes_the_run(
        tmp_path):
    # A worker on another machine: its own table fills the disk; the chief keeps its trial
    # for that --id, and the worker started again as told finishes the run.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command, env = _long_study(tmp_path, "chief", "served", "--port", str(port), "--host",
                               "127.0.0.1")
    run = tmp_path / "results" / "served"
    # Into a file: a pipe read only at the end could fill and stop the chief.
    chief_output = open(tmp_path / "chief.txt", "w")  # noqa: SIM115 (closed below)
    chief = subprocess.Popen(command, cwd=ROOT, env=env, stdout=chief_output,
                             stderr=subprocess.STDOUT)
    worker = [sys.executable, str(ROOT / "run_bench.py"), "worker", "--chief",
              f"127.0.0.1:{port}", "--run", str(run), "--id", "w0", "--wait", "300"]
    try:
        full = subprocess.run(_limited(7000, worker), cwd=ROOT, capture_output=True, text=True,
                              env=env, timeout=600)
        error = _failed_in_one_line(full)
        table = run / "workers" / "w0" / "epochs.csv"
        assert error.startswith(
            f"error: worker w0 stopped: cannot write {table} ("), error
        assert error.endswith(
            f"free some space, then start this worker again: '{RUN_BENCH} worker "
            f"--chief 127.0.0.1:{port} --run {run} --id w0'"), error
        check_csv_rows(table)
        assert 10 < len(table.read_text().splitlines()) < 121
        again = subprocess.run(_advised(error), cwd=ROOT, capture_output=True, text=True,
                               env=env, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        chief.wait(timeout=300)
        assert chief.returncode == 0, (tmp_path / "chief.txt").read_text()[-3000:]
    finally:
        if chief.poll() is None:
            chief.kill()
        chief.wait(timeout=60)
        chief_output.close()
    epochs = pd.read_csv(run / "epochs.csv")
    assert sorted(epochs["epoch"]) == list(range(1, 121))
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_a_local_worker_on_a_full_disk_stops_the_run_which_resumes_as_told(tmp_path):
    command, env = _long_study(tmp_path, "run", "local", "--workers", "1")
    result = subprocess.run(_limited(7000, command), cwd=ROOT, capture_output=True, text=True,
                            env=env, timeout=600)
    run = tmp_path / "results" / "local"
    error = _failed_in_one_line(result)
    table = run / "workers" / "tuner0" / "epochs.csv"
    assert error.count("worker tuner0 stopped") == 1, error
    assert f"cannot write {table} (" in error
    # The run's own advice (not 'run --resume' of the worker's folder).
    assert error.endswith(
        f"free some space, then continue the run with '{RUN_BENCH} run --resume "
        f"{run}' (run directory {run})"), error
    # What the worker wrote is in the run's table and its report, not "0 executions".
    written = len(table.read_text().splitlines()) - 1
    assert 10 < written < 120
    assert len(pd.read_csv(run / "epochs.csv")) == written
    assert "and 1 execution with rows, 0 of them complete" in result.stdout
    resumed = subprocess.run(_advised(error), cwd=ROOT, capture_output=True, text=True,
                             env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = pd.read_csv(run / "epochs.csv")
    assert sorted(epochs["epoch"]) == list(range(1, 121))
