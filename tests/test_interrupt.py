"""A run stopped by SIGTERM, or killed outright, is never mistaken for a whole one."""

import json
import os
import signal
import subprocess
import sys
import textwrap

from conftest import ROOT

from bench.results import RunDir, read_run, read_trials

SLOW_SPACE = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class Slow(SearchSpace):
        description = "enough trials to be stopped in the middle"
        version = 1
        settings = SpaceSettings(init="random", epochs=3, repeats=1)

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3])
''')


def test_sigterm_marks_the_run_interrupted_and_keeps_what_finished(tmp_path):
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "slow.py").write_text(SLOW_SPACE)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "run", "--space", "slow", "--spaces-dir",
         str(spaces), "--image-size", "16", "--train-per-class", "10", "--results-dir",
         str(tmp_path / "results"), "--name", "stopped"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in process.stdout:
            if "-> trial" in line:  # one trial has finished
                process.send_signal(signal.SIGTERM)
                break
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert "interrupted: the rows written so far are kept" in err
    run = RunDir(tmp_path / "results" / "stopped")
    assert read_run(run)["status"] == "interrupted"
    trials = read_trials(run)
    assert trials["status"].iloc[0] == "COMPLETED"
    assert len(trials) < 6


def test_a_run_whose_process_is_gone_reads_as_interrupted(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "killed"
    shutil.copytree(tiny_run, copy)
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = json.loads((copy / "run.json").read_text())
    record["status"] = "running"
    record["process"]["pid"] = dead.pid
    (copy / "run.json").write_text(json.dumps(record))
    assert read_run(RunDir(copy))["status"] == "interrupted"
    record["process"]["pid"] = os.getpid()  # alive: still running
    (copy / "run.json").write_text(json.dumps(record))
    assert read_run(RunDir(copy))["status"] == "running"


def test_a_bad_results_folder_or_taken_name_is_refused_before_any_work(tiny_run, tmp_path,
                                                                       tiny_spaces_dir):
    from test_cli import run_bench

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_bench("run", "--results-dir", str(blocker / "results"))
    assert result.returncode == 2 and "cannot write to --results-dir" in result.stderr
    # The name is taken: refused before the data is loaded or the source model trained.
    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--results-dir", str(tiny_run.parent), "--name", tiny_run.name)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert "data:" not in result.stdout and "pretraining" not in result.stdout


def test_an_unknown_optimizer_is_refused_before_data_or_pretraining(tmp_path):
    from test_cli import run_bench

    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "momentum.py").write_text(textwrap.dedent('''
        from bench.space import SearchSpace, SpaceSettings


        class Momentum(SearchSpace):
            description = "SGD momentum, named in lower case by mistake"
            version = 1
            extra_hyperparameters = ("momentum",)

            def declare(self, hp, *, num_blocks):
                hp.Choice("momentum", [0.0, 0.9])

            def optimizer(self, hp):
                return "sgd", {"momentum": hp.get("momentum")}
    '''))
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    result = run_bench("run", "--space", "momentum", "--spaces-dir", str(spaces),
                       "--results-dir", str(tmp_path / "results"), env=env)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown optimizer 'sgd'; name a class in keras.optimizers, "
                      "such as Adam, AdamW, SGD, RMSprop, Adagrad or Ftrl"]
    assert "Traceback" not in result.stderr
    assert "data:" not in result.stdout and not (tmp_path / "cache").exists()
