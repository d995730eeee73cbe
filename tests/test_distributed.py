"""Scale-out on KerasTuner's chief/worker mode: real processes on 127.0.0.1, no mocks.

The reference for every distributed run is the same study run in one process: each
execution sets its own seed, so whichever worker runs a trial, its rows must be the same.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, RUN_BENCH
from test_resume import THREE_TRIALS, _tables

from bench.errors import BenchError as BenchErrorType
from bench.tuning.distributed import (
    LocalWorker,
    study_fingerprint,
    visible_gpus,
    worker_environment,
)
from bench.tuning.worker_link import CHIEF_SILENCE_SECONDS

DYING = THREE_TRIALS.replace("class Three", "class Dying").replace(
    "from bench.space import SearchSpace, SpaceSettings",
    "import os\nimport signal\n\nfrom bench.space import SearchSpace, SpaceSettings",
) + '''
    def fit(self, parts, *, hp, run):
        # A process that dies (as out of memory would) whenever it runs this trial.
        if hp.get("head_lr") == 3e-3 and hp.get("frozen_blocks") == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(parts, hp=hp, run=run)
'''

#: The three-trial space with a hook that waits while the file named by BENCH_TEST_HOLD
#: exists, so that a kill lands mid-study however fast or slow the machine. The file says
#: what waits: "trial" (the last grid trial), or "WORKER TABLE" (that worker, from its
#: second repeat on: once TABLE has a repeat's rows). It changes no number.
HOLDING = THREE_TRIALS.replace("class Three", "class Holding").replace(
    "from bench.space import SearchSpace, SpaceSettings",
    "import os\nimport time\n\nfrom bench.space import SearchSpace, SpaceSettings",
) + '''
    def optimizer(self, hp):
        while _held(hp):
            time.sleep(0.2)
        return super().optimizer(hp)


def _held(hp):
    try:
        with open(os.environ["BENCH_TEST_HOLD"]) as file:
            what = file.read().split()
        if what == ["trial"]:
            return hp.get("head_lr") == 3e-3 and hp.get("frozen_blocks") == 2
        worker, table = what
        if os.environ.get("KERASTUNER_TUNER_ID", "").split("@")[0] != worker:
            return False
        with open(table) as file:
            return len(file.readlines()) > 3  # the header and one repeat's three epochs
    except (KeyError, OSError, ValueError):
        return False
'''


#: The three-trial space with a Monte-Carlo dropout head (random at inference too): each
#: execution evaluates at the training batch size and the run must say so, whichever
#: process ran it.
MC_THREE = THREE_TRIALS.replace("class Three", "class McThree").replace(
    "from bench.space import SearchSpace, SpaceSettings",
    "import keras\n\nfrom bench.space import SearchSpace, SpaceSettings",
) + '''
    def build_head(self, features, *, num_classes, hp):
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        return keras.layers.Dense(num_classes, activation="softmax")(AlwaysDropout(0.5)(pooled))


class AlwaysDropout(keras.layers.Dropout):
    def call(self, inputs, training=None):
        return super().call(inputs, training=True)
'''


def _start_holding(study, name, *extra, hold: Path):
    """A run of the holding space, read as it comes; ``hold`` exists until the test
    removes it."""
    return subprocess.Popen(
        _run_command(study, name, *extra, space="holding"), cwd=ROOT,
        env=_env(study) | {"BENCH_TEST_HOLD": str(hold)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def _run_command(tmp_path, name, *extra, space="three", command="run"):
    return [sys.executable, str(ROOT / "run_bench.py"), command, "--space", space,
            "--spaces-dir", str(tmp_path / "spaces"), "--image-size", "16",
            "--train-per-class", "6", "--tuner", "grid", "--max-trials", "4",
            "--results-dir", str(tmp_path / "results"), "--name", name, *extra]


def _env(tmp_path):
    return dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A folder with the three-trial space, a warm cache and the one-process reference."""
    tmp_path = tmp_path_factory.mktemp("distributed")
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "three.py").write_text(THREE_TRIALS)
    (tmp_path / "spaces" / "dying.py").write_text(DYING)
    (tmp_path / "spaces" / "holding.py").write_text(HOLDING)
    reference = subprocess.run(_run_command(tmp_path, "reference"), cwd=ROOT,
                               env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    return tmp_path


def _worker_pid(run: Path, name: str) -> int | None:
    """The pid of the local worker ``name`` of ``run`` (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "worker" in words and str(run) in words and name in words:
            return int(entry.name)
    return None


def _start(study, name, *extra):
    """A run whose output (workers' lines included) the test reads as it comes."""
    return subprocess.Popen(_run_command(study, name, *extra), cwd=ROOT, env=_env(study),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(process):
    if process.poll() is None:
        process.kill()
    process.wait(timeout=60)


def _assert_same_tables(run: Path, reference: Path):
    epochs, trials = _tables(run)
    whole_epochs, whole_trials = _tables(reference)
    assert not epochs.duplicated(["trial_id", "repeat", "epoch"]).any()
    pd.testing.assert_frame_equal(epochs, whole_epochs)
    pd.testing.assert_frame_equal(trials, whole_trials)


@pytest.mark.slow
def test_two_workers_write_the_tables_of_one_process(study):
    result = subprocess.run(_run_command(study, "two", "--workers", "2"), cwd=ROOT,
                            env=_env(study), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    run = study / "results" / "two"
    _assert_same_tables(run, study / "results" / "reference")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["distributed"]["workers"] == 2
    assert not record["distributed"].get("restarts")  # every worker started at the first go
    assert "[tuner0]" in result.stdout and "[tuner1]" in result.stdout
    # A worker knows its own trials only, and its progress lines say so.
    assert "this worker's best so far" in result.stdout
    assert " best so far" not in result.stdout.replace("worker's best so far", "")
    shown = re.findall(r"\(id \d+\) \[([^\]]*)\]", result.stdout)
    assert shown and all(re.fullmatch(r"frozen_blocks=\d+ head_lr=[\d.e-]+", values)
                         for values in shown), shown
    assert "I0000" not in result.stdout  # the backends' start-up chatter stays in the logs
    assert (run / "workers" / "tuner0" / "log.txt").exists()


@pytest.mark.slow
def test_a_workers_run_records_what_its_workers_found_as_one_process_does(study):
    # Found in review: a worker's notes (here: evaluation at the training batch size)
    # were printed in its log only; run.json and the report of the run did not say them.
    (study / "spaces" / "mcthree.py").write_text(MC_THREE)
    records = {}
    for name, extra in (("mc-one", ()), ("mc-two", ("--workers", "2"))):
        result = subprocess.run(_run_command(study, name, *extra, space="mcthree"), cwd=ROOT,
                                env=_env(study), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        records[name] = json.loads((study / "results" / name / "run.json").read_text())
    _assert_same_tables(study / "results" / "mc-two", study / "results" / "mc-one")
    one, two = records["mc-one"], records["mc-two"]
    evaluation = [n for n in one["notes"] if n.startswith("validation and test at the "
                                                           "training batch size (32)")]
    assert len(evaluation) == 1, one["notes"]
    assert sorted(two["notes"]) == sorted(one["notes"])
    assert f"Note: {evaluation[0]}" in (study / "results" / "mc-two" / "report.md").read_text()
    # Every execution (4 trials x 2 repeats) built or reused a model, in one of the workers.
    for record in (one, two):
        assert record["models"]["compiled"] + record["models"]["reused"] == 8, record["models"]
    assert two["together"] == {"trials": 0, "retried_alone": 0}
    assert two["device_data"] == one["device_data"]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_a_worker_killed_mid_trial_is_restarted_and_its_trial_runs_again(study, stop):
    # SIGTERM is handled (the worker stops at once, saying so) and still reads to the
    # chief as a death by that signal, as SIGKILL does.
    run = study / "results" / f"killed-worker-{stop.name}"
    hold = study / f"hold-killed-worker-{stop.name}"
    # tuner0 waits before its second repeat: it is still in that trial when killed.
    hold.write_text(f"tuner0 {run / 'workers' / 'tuner0' / 'epochs.csv'}")
    process = _start_holding(study, run.name, "--workers", "2", hold=hold)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("[tuner0]") and "repeat 1/2" in line:
                os.kill(_worker_pid(run, "tuner0"), stop)  # mid-trial
                hold.unlink()
                break
        lines.extend(process.stdout)
        process.wait(timeout=600)
    finally:
        _stop(process)
    output = "".join(lines)
    assert process.returncode == 0, output[-3000:]
    assert f"[tuner0] died (signal {stop.value}) in trial" in output
    if stop == signal.SIGTERM:  # no advice to restart it: its chief does
        assert "[tuner0] interrupted: worker tuner0 stopped\n" in output
    _assert_same_tables(run, study / "results" / "reference")
    record = json.loads((run / "run.json").read_text())
    assert record["distributed"]["restarts"] == {"tuner0": 1}
    report = (run / "report.md").read_text()
    assert ("Trials ran in 2 worker processes under KerasTuner's chief (merged tables); "
            "restarted: tuner0 1x") in report


@pytest.mark.slow
def test_a_trial_whose_worker_keeps_dying_is_recorded_failed_and_the_study_ends(study):
    result = subprocess.run(_run_command(study, "dying", "--workers", "2", space="dying"),
                            cwd=ROOT, env=_env(study), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    trials = pd.read_csv(study / "results" / "dying" / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 4
    dead = trials[(trials.head_lr == 3e-3) & (trials.frozen_blocks == 0)]
    assert list(dead.status) == ["FAILED"]
    assert "worker process died 2 times" in dead.error.iloc[0]
    assert (trials.drop(dead.index).status == "COMPLETED").all()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _worker(study, run, name, port):
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "worker", "--chief", f"127.0.0.1:{port}",
         "--run", str(run), "--id", name, "--wait", "300"],
        cwd=ROOT, env=_env(study), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_chief_and_worker_commands_and_a_worker_of_another_space_version(study):
    # The multi-host commands on one machine: a chief, a worker whose copy of the space
    # has another version (refused with one line), then two right workers.
    port = _free_port()
    run = study / "results" / "hosts"
    space_file = study / "spaces" / "three.py"
    chief = subprocess.Popen(_run_command(study, "hosts", "--port", str(port), "--host",
                                          "127.0.0.1", command="chief"),
                             cwd=ROOT, env=_env(study), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    workers = []
    try:
        deadline = time.monotonic() + 300
        while not (run / "run.json").exists() or "chief" not in json.loads(
                (run / "run.json").read_text()).get("distributed", {}):
            assert chief.poll() is None and time.monotonic() < deadline, chief.stderr.read()
            time.sleep(0.5)
        space_file.write_text(THREE_TRIALS.replace("version = 1", "version = 2"))
        try:
            wrong = _worker(study, run, "other", port)
            _, err = wrong.communicate(timeout=300)
        finally:
            space_file.write_text(THREE_TRIALS)
        assert wrong.returncode == 2, err[-2000:]
        message = err.strip().splitlines()[-1]
        assert message == ("error: this worker's space is not the run's: the run ran space "
                           "three version 1, but three is now version 2; start the worker "
                           "with the same space file")
        assert not (run / "workers" / "other" / "epochs.csv").exists()  # touched nothing
        # A worker on another Keras backend would add trials made with other numerics.
        jax = subprocess.run(
            [sys.executable, str(ROOT / "run_bench.py"), "worker", "--chief",
             f"127.0.0.1:{port}", "--run", str(run), "--id", "jax", "--wait", "300"],
            cwd=ROOT, env=_env(study) | {"KERAS_BACKEND": "jax"}, capture_output=True,
            text=True, timeout=300)
        assert jax.returncode == 2, jax.stderr[-2000:]
        assert jax.stderr.strip().splitlines()[-1].startswith(
            "error: this worker's inputs differ from the chief's: Keras backend tensorflow -> jax")
        assert not (run / "workers" / "jax").exists()
        # A worker stopped mid-trial (SIGTERM: a scheduler's stop, or Ctrl-C) says how to
        # get its trial run, dies of the signal, and the same --id gets the trial back.
        stopped = _worker(study, run, "w0", port)
        watchdog = threading.Timer(300, stopped.kill)
        watchdog.start()
        try:
            for line in stopped.stdout:
                if "repeat 1/2" in line:
                    stopped.send_signal(signal.SIGTERM)
                    break
            _, err = stopped.communicate(timeout=120)
        finally:
            watchdog.cancel()
        assert stopped.returncode == -signal.SIGTERM, err[-2000:]
        assert err.strip().splitlines()[-1] == (
            "interrupted: worker w0 stopped; any trial it was running waits at the chief until "
            f"a worker with this --id starts again: '{RUN_BENCH} worker --chief "
            f"127.0.0.1:{port} --run {run} --id w0'")
        workers = [_worker(study, run, name, port) for name in ("w0", "w1")]
        for worker in workers:
            out, err = worker.communicate(timeout=600)
            assert worker.returncode == 0, out[-2000:] + err[-2000:]
        _, err = chief.communicate(timeout=300)
        assert chief.returncode == 0, err[-2000:]
    finally:
        for process in [chief, *workers]:
            _stop(process)
    _assert_same_tables(run, study / "results" / "reference")


@pytest.mark.slow
def test_a_killed_distributed_run_resumes_to_the_tables_of_one_process(study):
    run = study / "results" / "killed-chief"
    hold = study / "hold-killed-chief"
    hold.write_text("trial")  # the last trial waits: the study cannot end before the kill
    process = _start_holding(study, "killed-chief", "--workers", "2", hold=hold)
    # Whatever happens, the chief does not outlive this: a kill that never comes fails
    # the test instead of hanging it (the held trial would wait forever).
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    try:
        midway, finished, killed = set(), set(), False
        for line in process.stdout:
            midway.update(re.findall(r"\(id (\w+)\).*repeat 1/2", line))
            finished.update(re.findall(r"-> trial (\w+) ", line))
            # One trial ended and another is between its repeats, in either order: the
            # two workers' lines interleave as the machine's load has it.
            if finished and midway - finished:
                os.kill(process.pid, signal.SIGKILL)  # the chief; its workers follow it
                killed = True
                break
        assert killed, f"the chief ended before the kill (finished {finished})"
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
        _stop(process)
    deadline = time.monotonic() + 60
    while any(_worker_pid(run, name) for name in ("tuner0", "tuner1")):
        assert time.monotonic() < deadline, "a worker outlived its chief"
        time.sleep(0.5)
    hold.unlink()
    result = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "run", "--resume",
                             str(run)], cwd=ROOT, env=_env(study), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "chief on 127.0.0.1" in result.stdout  # resumed distributed, as it was run
    _assert_same_tables(run, study / "results" / "reference")
    assert not list(run.rglob("*.partial"))
    # The killed chief never added its workers' counts up: they are the earlier process's;
    # this process counts the executions of the trials it ran (2 repeats each).
    kept = int(re.search(r"resuming killed-chief: (\d+) trial\(s\) ended and kept",
                         result.stdout).group(1))
    record = json.loads((run / "run.json").read_text())
    earlier = record["earlier_processes"][0]["models"]
    assert earlier["compiled"] + earlier["reused"] >= 2 * kept
    assert record["models"]["compiled"] + record["models"]["reused"] == 2 * (4 - kept)


def test_a_stop_swallowed_before_a_workers_request_stops_it_instead_of_an_hours_wait():
    # Found in the killed-chief test (1 run in 8 under load): the worker's SIGTERM, sent
    # as its chief died, was swallowed before it reported its trial's end, and KerasTuner's
    # client then waited (up to an hour) for the chief that was gone. Real gRPC, real
    # KerasTuner client, a port where nothing listens.
    script = f"""
import os, signal, time
from pathlib import Path
os.environ |= {{"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT":
               "{_free_port()}", "KERASTUNER_TUNER_ID": "tuner0@x"}}
from keras_tuner.src.distribute.oracle_client import OracleClient
from bench.stopping import install_stop_handlers
from bench.tuning.worker_link import patient_client
install_stop_handlers()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except KeyboardInterrupt:
    pass  # swallowed, as a library's bare except does
client = patient_client(OracleClient(object()), run=Path("."))
started = time.monotonic()
try:
    client.create_trial("tuner0@x")
except KeyboardInterrupt:
    print(f"stopped after {{time.monotonic() - started:.1f}} s")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"stopped after 0\.\d s\n", result.stdout), result.stdout


def test_a_local_worker_deaf_to_sigterm_still_ends_soon_after_its_chief_is_killed(tmp_path):
    # The parent-death SIGTERM stops a worker in order; a worker whose code ignores it (or
    # swallows the stop) is killed a grace after its chief is gone (ORPHAN_GRACE_SECONDS,
    # 2 s here).
    from bench.tuning.distributed import CHIEF_PID

    grace, ready = 2.0, tmp_path / "ready"
    worker = (f"import signal, time\nfrom pathlib import Path\n"
              "from bench.tuning.worker_link import end_with_chief\n"
              f"end_with_chief(grace={grace})\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              f"Path({str(ready)!r}).write_text('x')\ntime.sleep(600)\n")
    chief = ("import os, subprocess, sys, time\n"
             f"worker = subprocess.Popen([sys.executable, '-c', {worker!r}], "
             f"env=os.environ | {{{CHIEF_PID!r}: str(os.getpid())}})\n"
             "print(worker.pid, flush=True)\ntime.sleep(600)\n")
    process = subprocess.Popen([sys.executable, "-c", chief], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    pid = None
    try:
        pid = int(process.stdout.readline())
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.2)
        killed = time.monotonic()
        process.kill()
        process.wait(timeout=60)
        while _running(pid):
            assert time.monotonic() - killed < grace + 30, \
                "a worker deaf to SIGTERM outlived its chief"
            time.sleep(0.2)
        # It ignored the SIGTERM: what ended it was the watch, after the grace.
        assert time.monotonic() - killed > grace
    finally:
        _stop(process)
        process.stdout.close()
        if pid is not None and _running(pid):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs; a zombie (an orphan nobody reaped) has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_local_workers_get_one_gpu_each_round_robin():
    assert worker_environment(0, workers=2, gpus=[]) == {}
    assert worker_environment(1, workers=2, gpus=["0", "1"]) == {"CUDA_VISIBLE_DEVICES": "1"}
    shared = worker_environment(2, workers=3, gpus=["0", "1"])
    assert shared["CUDA_VISIBLE_DEVICES"] == "0"
    assert shared["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert shared["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_a_space_named_chief_is_not_taken_for_the_chief():
    # KerasTuner treats any tuner id containing "chief" as the chief's.
    assert "chief" not in study_fingerprint("mischief", 3)


def test_the_chief_refuses_another_study_and_a_stale_worker_in_one_line(tmp_path):
    # The chief's own checks, over real gRPC: a tuner id carrying another space's
    # fingerprint, and an update for a trial the chief is not running.
    import grpc
    import keras_tuner
    from keras_tuner.src import protos

    from bench.errors import FailureLimit
    from bench.results import RunDir
    from bench.tuning.algorithms import make_oracle
    from bench.tuning.distributed import Chief, worker_tuner_id

    def failure_limit(trial_id):
        return FailureLimit.at(limit=3, trial_id=trial_id, why="a test")

    hp = keras_tuner.HyperParameters()
    hp.Choice("head_lr", [1e-3, 1e-2])
    oracle = make_oracle("grid", hyperparameters=hp, max_trials=None, seed=1, max_epochs=1)
    oracle._set_project_dir(str(tmp_path), "tuner")
    run = RunDir(tmp_path)
    chief = Chief(oracle, run=run, fingerprint=study_fingerprint("three", 1),
                  described="three version 1", failure_limit=failure_limit,
                  on_trial_end=lambda: None, log=lambda line: None)
    port = chief.start(host="127.0.0.1", port=0)
    try:
        stub = protos.get_service_grpc().OracleStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        service = protos.get_service()
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateTrial(service.CreateTrialRequest(
                tuner_id=worker_tuner_id("w0", study_fingerprint("three", 2))), timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.details() == (
            "the chief refused worker w0: it runs space three.v2, the study runs three "
            "version 1; start the worker with the same space file")
        ours = worker_tuner_id("w1", study_fingerprint("three", 1))
        trial = stub.CreateTrial(service.CreateTrialRequest(tuner_id=ours), timeout=30).trial
        assert trial.trial_id == "0000" and trial.status == protos.get_proto().RUNNING
        with pytest.raises(grpc.RpcError) as stale:
            stub.UpdateTrial(service.UpdateTrialRequest(trial_id="7", step=0), timeout=30)
        assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "trial 7 is not running on this chief" in stale.value.details()
        with pytest.raises(BenchErrorType):
            Chief(oracle, run=run, fingerprint="x", described="x", failure_limit=failure_limit,
                  on_trial_end=lambda: None).start(host="127.0.0.1", port=port)
    finally:
        chief.stop()


@pytest.mark.slow
def test_a_one_process_run_killed_then_resumed_with_workers_equals_one_process(study):
    run = study / "results" / "then-workers"
    process = _start(study, "then-workers")
    try:
        for line in process.stdout:
            if line.lstrip().startswith("-> trial"):
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        _stop(process)
    result = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "run", "--resume",
                             str(run), "--workers", "2"], cwd=ROOT, env=_env(study),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    _assert_same_tables(run, study / "results" / "reference")
    record = json.loads((run / "run.json").read_text())
    assert record["distributed"]["workers"] == 2
    assert record["earlier_processes"][0]["distributed"] is None
    # Found by a new user: the report said every trial ran in the last process's workers.
    assert ("Trials ran, by process (the run was resumed): process 1 in one process; "
            "process 2 in 2 worker processes;") in (run / "report.md").read_text()


def test_a_run_served_to_other_machines_resumes_only_as_a_chief(tiny_run, tmp_path):
    import shutil

    from test_cli import run_bench

    served = tmp_path / "served"
    shutil.copytree(tiny_run, served)
    record = json.loads((served / "run.json").read_text())
    record |= {"status": "interrupted", "distributed": {"workers": 0, "remote": True}}
    (served / "run.json").write_text(json.dumps(record))
    result = run_bench("run", "--resume", str(served))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {served} was served to workers on other machines: resume it with "
        f"'{RUN_BENCH} chief --resume {served} --port P', or here with 'run --resume ... "
        "--workers N'")


def test_a_second_live_worker_with_the_same_id_is_refused(tmp_path):
    from bench.errors import BenchError
    from bench.tuning.chief import _hold_worker_id

    _hold_worker_id(tmp_path, "tuner0")
    with pytest.raises(BenchError, match="another live worker has --id tuner0"):
        _hold_worker_id(tmp_path, "tuner0")


@pytest.mark.parametrize("args, told", [
    (["--chief", "127.0.0.1:99999"], "--chief 127.0.0.1:99999: the port must be between 1 "
                                     "and 65535"),
    (["--id", ".."], "worker id '..' must be a letter or digit followed by letters, digits"),
    (["--id", "../../evil"], "worker id '../../evil' must be a letter or digit"),
    (["--run", "FILE"], "--run FILE is a file; pass the chief's run folder (the one holding "
                        "run.json)"),
])
def test_a_worker_s_own_mistakes_are_told_at_once(tmp_path, args, told):
    # Found by a new user: each of these waited for a chief (an hour), or was told only
    # after a chief answered and the data had loaded; '..' would have named the run's own
    # epochs.csv as this worker's table.
    (tmp_path / "epochs.csv").write_text("")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "run.json").write_text(json.dumps({"status": "completed"}))
    given = {"--chief": "127.0.0.1:9", "--run": str(tmp_path / "none"), "--id": "t"}
    paths = {"FILE": str(tmp_path / "epochs.csv"), "DONE": str(tmp_path / "done")}
    given |= {key: paths.get(value, value) for key, value in zip(args[::2], args[1::2])}
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "worker",
                             *[word for pair in given.items() for word in pair],
                             "--wait", "300"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    for name, path in paths.items():
        told = told.replace(name, path)
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {told}")
    assert time.monotonic() - started < 60  # not after waiting for a chief


def test_a_worker_of_a_completed_run_has_nothing_to_do_and_exits_0(tmp_path):
    # A late worker of a job array (docs/slurm.sh) is no mistake: exit 0, and it says so.
    done = tmp_path / "done"
    done.mkdir()
    (done / "run.json").write_text(json.dumps({"status": "completed"}))
    result = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "worker", "--chief",
                             "127.0.0.1:9", "--run", str(done), "--id", "t"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == (
        f"worker t: {done} has completed: no trial is left for a worker")


def test_a_worker_whose_run_folder_is_mistyped_is_told_once_the_chief_serves(
        tmp_path, monkeypatch):
    # Found by a new user: `worker --run results/hots` (for hosts) waited an hour for a
    # run.json that would never come, saying only that it was waiting.
    from concurrent import futures

    import grpc

    from bench.errors import BenchError
    from bench.results import RunDir
    from bench.tuning import chief

    said = []
    monkeypatch.setattr(chief, "ANSWERED_GRACE_SECONDS", 0)
    port = _free_port()
    missing = tmp_path / "hots"
    # Nothing serves yet: the worker waits, as for a chief still pretraining.
    with pytest.raises(BenchError, match="no run.json appeared"):
        chief._wait_for_run(RunDir(missing), address=f"127.0.0.1:{port}", wait_seconds=2,
                            log=said.append)
    assert said == [f"waiting for the chief to write {missing / 'run.json'}"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # a real gRPC server
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        for folder, how in ((missing, "does not exist"), (tmp_path, "has no run.json")):
            with pytest.raises(BenchError) as refused:
                chief._wait_for_run(RunDir(folder), address=f"127.0.0.1:{port}",
                                    wait_seconds=300, log=said.append)
            assert str(refused.value) == (
                f"the chief at 127.0.0.1:{port} is serving, but {folder} {how} (the chief "
                "writes its run.json before it serves): --run must name the run folder the "
                "chief printed, on a disk this machine shares")
        # A shared disk slow to show the chief's run.json is waited for, within the grace.
        monkeypatch.setattr(chief, "ANSWERED_GRACE_SECONDS", 30)
        late = tmp_path / "late"
        timer = threading.Timer(2.0, lambda: (late.mkdir(), (late / "run.json").write_text(
            json.dumps({"status": "running"}))))
        timer.start()
        record = chief._wait_for_run(RunDir(late), address=f"127.0.0.1:{port}",
                                     wait_seconds=300, log=said.append)
        assert record["status"] == "running"
    finally:
        server.stop(None)


@pytest.mark.slow
def test_a_killed_chief_resumed_refuses_its_stale_worker_and_ends_equal(study):
    # Across machines nothing kills a worker with its chief: the old worker must not
    # report a trial the resumed chief has put back in its queue.
    port = _free_port()
    run = study / "results" / "chief-resumed"
    options = ["--port", str(port), "--host", "127.0.0.1"]
    chief = subprocess.Popen(_run_command(study, "chief-resumed", *options, command="chief"),
                             cwd=ROOT, env=_env(study), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    stale = _worker(study, run, "w0", port)
    processes = [chief, stale]
    try:
        ended = 0
        for line in stale.stdout:
            ended += line.lstrip().startswith("-> trial")
            if ended == 1 and "repeat 1/2" in line:  # mid-way through its second trial
                os.kill(chief.pid, signal.SIGKILL)
                break
        chief.wait(timeout=60)
        # KerasTuner's client waits an hour for the dead chief: the worker says so.
        watchdog = threading.Timer(CHIEF_SILENCE_SECONDS + 120, stale.kill)
        watchdog.start()
        silence = next((line for line in stale.stdout if "has not answered" in line), "")
        watchdog.cancel()
        assert silence.strip() == (
            f"worker w0: the chief at 127.0.0.1:{port} has not answered for 15 s; waiting "
            "for it (KerasTuner's client waits up to an hour). If the chief was stopped, "
            f"'{RUN_BENCH} chief --resume {run} --port {port}' continues the study; "
            "then start the workers again. Ctrl-C stops this worker")
        resumed = subprocess.Popen(
            [sys.executable, str(ROOT / "run_bench.py"), "chief", "--resume", str(run),
             *options], cwd=ROOT, env=_env(study), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        processes.append(resumed)
        _, err = stale.communicate(timeout=600)
        assert stale.returncode == 2, err[-2000:]
        assert err.strip().splitlines()[-1].endswith("this worker is stale: stop it")
        fresh = _worker(study, run, "w1", port)
        processes.append(fresh)
        _, err = fresh.communicate(timeout=600)
        assert fresh.returncode == 0, err[-2000:]
        _, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err[-2000:]
    finally:
        for process in processes:
            _stop(process)
    _assert_same_tables(run, study / "results" / "reference")


def test_the_grid_is_handed_out_to_waiting_workers_in_one_process_order(tmp_path):
    # Found by a new user: KerasTuner's grid walks on from a trial only when it ends, so
    # with --workers 2 one worker ran 11 of 12 trials and the other was told to wait.
    import itertools

    import keras_tuner

    from bench.tuning.algorithms import make_oracle

    def space():
        hp = keras_tuner.HyperParameters()
        hp.Choice("init", ["pretrained", "random"])
        with hp.conditional_scope("init", ["pretrained"]):
            hp.Choice("frozen_blocks", [0, 2])
        hp.Choice("head_lr", [1e-3, 1e-2])
        return hp

    def grid_oracle(folder, *, upstream=False):
        oracle = (keras_tuner.oracles.GridSearchOracle(
            objective=keras_tuner.Objective("val_accuracy", direction="max"),
            hyperparameters=space(), seed=1) if upstream else
            make_oracle("grid", hyperparameters=space(), max_trials=None, seed=1,
                        max_epochs=1))
        oracle._set_project_dir(str(folder), "tuner")
        return oracle

    # One process on KerasTuner's own grid: each trial ends before the next is asked for.
    serial, oracle = [], grid_oracle(tmp_path / "one", upstream=True)
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        serial.append(trial.hyperparameters.values)
        oracle.end_trial(trial)
    # 3 active combinations of init and depth x 2 head learning rates, each once.
    assert len(serial) == 6
    assert len({tuple(sorted(v.items())) for v in serial}) == 6
    # Six workers asking at once, before any trial ends: each gets the next combination.
    oracle = grid_oracle(tmp_path / "six")
    running = [oracle.create_trial(f"tuner{i}") for i in range(6)]
    assert [t.status for t in running] == ["RUNNING"] * 6
    assert [t.hyperparameters.values for t in running] == serial
    for trial in running:
        oracle.end_trial(trial)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    # Ending in another order hands out nothing twice.
    oracle = grid_oracle(tmp_path / "mixed")
    seen = []
    for count in itertools.count():
        trial = oracle.create_trial(f"tuner{count}")
        if trial.status != "RUNNING":
            break
        seen.append(trial.hyperparameters.values)
        if count % 2:
            oracle.end_trial(trial)
    assert seen == serial


def test_a_worker_s_record_is_written_before_the_oracle_hears_its_trial_ended(
        tmp_path, tiny_spaces_dir, cache_dir, monkeypatch):
    """A chief killed between the two would keep the trial as ended with its executions
    counted nowhere (found by a new user: 22 counted for 24 executions)."""
    import keras_tuner
    from conftest import IMAGE_SIZE

    from bench.plan import RunSpec
    from bench.runner import run_study
    from bench.tuning.bench_tuner import BenchTuner

    order = []
    told = keras_tuner.Tuner.on_trial_end
    search = BenchTuner.search

    def on_trial_end(self, trial):
        order.append(f"oracle {trial.trial_id}")
        return told(self, trial)

    def search_recording(self, *args, **kwargs):
        # What a worker's tuner gets (bench.tuning.chief), here recording when it runs.
        self.after_trial = lambda: order.append("record")
        return search(self, *args, **kwargs)

    monkeypatch.setattr(keras_tuner.Tuner, "on_trial_end", on_trial_end)
    monkeypatch.setattr(BenchTuner, "search", search_recording)
    run_study(RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE,
                      pretrain_epochs=3, results_dir=tmp_path, name="run", cache_dir=cache_dir),
              log=lambda *_: None)
    trials = sorted(p.parent.name.removeprefix("trial_")
                    for p in (tmp_path / "run" / "tuner").glob("trial_*/trial.json"))
    assert len(trials) == 2
    assert order == [step for trial in trials
                     for step in ("record", f"oracle {trial}", "record")]


def test_a_worker_that_dies_restarting_before_asking_for_its_trial_is_not_counted_in_it(
        tmp_path):
    """Found by a new user: a worker killed again while restarting (before it asked for
    its trial back) counted as a second death in the trial, which was recorded failed."""
    import keras_tuner

    from bench.results import RunDir
    from bench.tuning.algorithms import make_oracle
    from bench.tuning.distributed import Chief, LocalWorker, worker_tuner_id

    hp = keras_tuner.HyperParameters()
    hp.Choice("head_lr", [0.01, 0.001])
    oracle = make_oracle("grid", hyperparameters=hp, max_trials=2, seed=1, max_epochs=1)
    oracle._set_project_dir(str(tmp_path), "tuner")
    said = []
    chief = Chief(oracle, run=RunDir(tmp_path), fingerprint="space.v1", described="space v1",
                  failure_limit=lambda trial_id: None, on_trial_end=lambda: None,
                  log=said.append)
    worker = LocalWorker(name="tuner0", command=[sys.executable, "-c", "pass"],
                         env=dict(os.environ), log_path=tmp_path / "tuner0" / "log.txt")
    trial = keras_tuner.engine.trial.Trial(hp, trial_id="0001")
    oracle.ongoing_trials[worker_tuner_id("tuner0", "space.v1")] = trial

    chief.servicer.asked.add("tuner0")  # it asked for the trial (CreateTrial), then died
    chief._worker_died(worker, -9)
    assert chief.deaths == {"0001": 1} and worker.restarts == 1
    chief._worker_died(worker, -9)  # killed again before it asked for the trial back
    assert chief.deaths == {"0001": 1} and worker.deaths_between_trials == 1
    assert trial.status != "FAILED" and worker.restarts == 2
    assert said == ["[tuner0] died (signal 9) in trial 0001; restarting it with the same id, "
                    "which runs that trial again",
                    "[tuner0] died (signal 9) while restarting, before it asked for trial 0001 "
                    "again; restarting it"]
    worker.process.wait(timeout=60)


@pytest.mark.parametrize("where", ["/dev/full", "a folder"])
def test_a_worker_whose_log_cannot_be_written_runs_on_and_its_output_reaches_the_console(
        tmp_path, where):
    # /dev/full refuses every write (ENOSPC), as a full disk does; a folder cannot even be
    # opened as the log. A worker prints more than a pipe holds: if the log's failure
    # stopped the pipe being read, it would block for ever.
    if where == "/dev/full" and not Path(where).exists():
        pytest.skip("no /dev/full here")
    log_path = Path(where) if where == "/dev/full" else tmp_path
    reason = "No space left on device" if where == "/dev/full" else "Is a directory"
    lines = [f"line {i} " + "x" * 90 for i in range(3000)]  # about 300 KB
    worker = LocalWorker(
        name="w", command=[sys.executable, "-c",
                           "for i in range(3000): print(f'line {i} ' + 'x' * 90)"],
        env=dict(os.environ), log_path=log_path)
    told = []
    worker.start(told.append)
    assert worker.process.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while not told or told[-1] != "[w] " + lines[-1]:
        assert time.monotonic() < deadline, told[-3:]
        time.sleep(0.1)
    warnings = [line for line in told if line.startswith("warning:")]
    assert warnings == [f"warning: cannot write {log_path} ({reason}): worker w's output "
                        "from here on is only in this console"]
    assert worker.log_cut
    assert told.index(warnings[0]) == 0  # the first line could not be kept either
    assert [line for line in told if not line.startswith("warning:")] == [
        "[w] " + line for line in lines]
