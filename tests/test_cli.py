"""The command line as a user meets it: help, list, and one clear line for each mistake."""

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, RUN_BENCH


def run_bench(*args, cwd=ROOT, env=None, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "run_bench.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_help_lists_the_commands_and_run_options():
    top = run_bench("--help")
    assert top.returncode == 0
    for command in ("run", "list", "analyze", "perf", "chief", "worker"):
        assert command in top.stdout
    run = run_bench("run", "--help")
    assert run.returncode == 0
    for option in ("--space", "--dataset", "--backbone", "--tuner", "--max-trials", "--epochs",
                   "--repeats", "--batch-size", "--image-size", "--seed", "--results-dir",
                   "--name"):
        assert option in run.stdout


def test_a_python_without_the_dependencies_is_told_how_to_install_them():
    # 'python run_bench.py' before 'pip install -e .' was a ModuleNotFoundError traceback;
    # -S leaves site-packages out, as a Python without the install has them.
    result = subprocess.run([sys.executable, "-S", str(ROOT / "run_bench.py"), "list"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {sys.executable} lacks the suite's dependencies (")
    assert "keras-tuner" in result.stderr and "pip install -e ." in result.stderr


def test_list_read_in_part_by_a_pipe_ends_quietly():
    shell = subprocess.run(f"'{sys.executable}' '{ROOT / 'run_bench.py'}' list | head -1",
                           shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert shell.stdout.startswith("Search spaces")
    assert "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr


def test_a_run_whose_output_pipe_closes_says_so_in_one_line(tmp_path):
    shell = subprocess.run(
        f"'{sys.executable}' '{ROOT / 'run_bench.py'}' --epochs 1 --repeats 1 --max-trials 1 "
        f"--image-size 16 --results-dir '{tmp_path}' | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert shell.stdout.startswith("run seed-")
    assert shell.returncode == 141 and "Traceback" not in shell.stderr
    errors = [line for line in shell.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: the program reading this command's output ended, which stopped it; ")
    # head leaves after the first line, long before the run directory exists (seconds of
    # data and pretraining later); where one existed the line would give its resume command.
    assert errors[0].endswith("no run was written (it stopped before the run directory was "
                              "made)") or "--resume" in errors[0]


def test_list_shows_spaces_with_hyperparameters_datasets_backbones_and_tuners():
    result = run_bench("list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "seed (v2)" in out and "init (Choice) {pretrained, random}" in out
    assert "head_lr (Float)" in out and "log" in out
    assert "digits:" in out and "shapes:" in out
    assert "resnet-mini:" in out and "resnet50v2:" in out and "16 blocks" in out
    for tuner in ("grid:", "random:", "bayesian:", "hyperband:"):
        assert tuner in out


def test_list_describes_each_kind_of_hyperparameter_in_one_line():
    import keras_tuner

    from bench.listing import describe_hyperparameter

    hp = keras_tuner.HyperParameters()
    hp.Choice("init", ["pretrained", "random"])
    hp.Boolean("bn")  # found by a new user: "bn (Boolean) , default False"
    with hp.conditional_scope("init", ["pretrained"]):
        hp.Int("frozen_blocks", 0, 4, step=2)
    hp.Float("head_lr", 1e-3, 1e-1, sampling="log")
    hp.Fixed("width", 32)
    assert [describe_hyperparameter(p) for p in hp.space] == [
        "init (Choice) {pretrained, random}, default pretrained",
        "bn (Boolean) {False, True}, default False",
        "frozen_blocks (Int) [0, 4], step 2, linear, default 0, only when init in {pretrained}",
        "head_lr (Float) [0.001, 0.1], log, default 0.001",
        "width (Fixed) = 32",
    ]


@pytest.mark.parametrize("option, value, kind, valid", [
    ("--space", "nope", "search space", "seed"),
    ("--dataset", "nope", "dataset", "digits, folder, hotdog, shapes"),
    ("--backbone", "nope", "backbone", "resnet-mini"),
    ("--tuner", "nope", "tuner", "bayesian, grid, hyperband, random"),
])
def test_an_unknown_name_is_one_line_listing_the_valid_ones_and_exit_2(
        tmp_path, option, value, kind, valid):
    result = run_bench("run", option, value, "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: unknown {kind} 'nope'; valid {kind}s: ")
    assert valid in lines[-1]
    assert not any(tmp_path.iterdir()), "a refused run must not leave a run directory"


@pytest.mark.parametrize("args, message", [
    (["--seed", "0"], "--seed must be 1 or more"),
    (["--epochs", "0"], "--epochs must be 1 or more"),
    (["--name", "../escape"], "run name '../escape' must be"),
    # An empty name was taken as no name: the run went to SPACE-DATE-TIME.
    (["--name", ""], "run name '' must be"),
    # Found by a new user: '..' was told to be what it already was.
    (["--name", ".."], "run name '..' must be a letter or digit followed by"),
    # Found by a new user: the file system's "File name too long" as a traceback.
    (["--name", "a" * 300], "run name aaaaaaaaaaaaaaaaaaaa... is 300 characters long; use "
                            "at most 200"),
    (["--seed", "5000000000"], "--seed must be at most 2147483647"),
    (["--seed", "2147483647", "--repeats", "3"], "gives seeds up to 2147483649, above"),
    (["--max-epochs", "4"], "--max-epochs is Hyperband's most epochs per trial; this run "
                            "uses the grid tuner"),
    (["--tuner", "hyperband", "--max-trials", "3"], "--max-trials does not bound Hyperband"),
    (["--tuner", "hyperband", "--max-epochs", "3", "--epochs", "2"],
     "--epochs 2 does not apply with --max-epochs 3: Hyperband sets each trial's epochs"),
    (["--preset", "seed", "--space", "head-lr"], "--preset seed chooses its own space; drop "
                                                 "--space head-lr"),
    (["--no-prefix-cache", "--cache-memory", "10"], "--cache-memory sizes the prefix cache, "
                                                    "which --no-prefix-cache turns off"),
    (["--space", "search_spaces/head-lr.py"], "--space takes a space's name, not its file: "
                                              "--space head-lr"),
    # A file outside the spaces folder: its own folder is named, not a bundled namesake.
    (["--space", "bench/space.py"], "--space takes a space's name, not its file: for the "
                                    "space in bench/space.py, use --spaces-dir bench --space "
                                    "space"),
    # Found by a new user: the crop's 14 was given as the --image-size typed (16).
    (["--preset", "d2l", "--dataset", "digits", "--backbone", "resnet-mini", "--init",
      "random", "--image-size", "16"], "resnet-mini needs images of at least 16 pixels, and "
                                       "the space's augment turns --image-size 16 into 14"),
    (["--space", "two-phase", "--tuner", "hyperband", "--max-epochs", "9"],
     "search space two-phase needs 2 or more epochs per trial, but Hyperband gives its "
     "shortest trials 1; use --tuner grid"),
])
def test_bad_option_values_are_user_errors(tmp_path, args, message):
    result = run_bench("run", *args, "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir()), "a refused run leaves nothing behind"


@pytest.mark.parametrize("args, line", [
    (["run", "--repeats", "abc"], "error: argument --repeats: invalid int value: 'abc'; "
                                  "see 'python run_bench.py run --help'"),
    (["--epochs"], "error: argument --epochs: expected one argument; "
                   "see 'python run_bench.py run --help'"),
    (["worker", "--run", "x"], "error: the following arguments are required: --chief; "
                               "see 'python run_bench.py worker --help'"),
    # Found by a new user: an empty path (an unset shell variable) read the current folder.
    (["--data", ""], "error: argument --data: an empty path (an unset variable?); give a "
                     "path, or '.' for the current folder; see 'python run_bench.py run --help'"),
    (["analyze", "run", ""], "error: argument runs: an empty path ...; see 'python "
                             "run_bench.py analyze --help'"),
    # Python versions quote the choices differently: the line's ends are compared.
    (["nope"], "error: argument command: invalid choice: 'nope' (choose from ...); "
               "see 'python run_bench.py --help'"),
])
def test_a_malformed_option_is_one_line_not_the_usage_block(args, line):
    result = run_bench(*args)
    assert result.returncode == 2 and result.stdout == ""
    [told] = result.stderr.splitlines()
    start, _, end = line.partition("...")
    assert told.startswith(start) and told.endswith(end), told


def test_an_unusable_cache_dir_is_refused_before_any_work(tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("")
    result = run_bench("run", "--cache-dir", str(taken), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot write to --cache-dir {taken}: {taken} is a file, not a "
                      "folder; pass a folder"] and "Traceback" not in result.stderr
    assert not list((tmp_path / "r").iterdir())


def test_perf_has_no_resume_and_no_hyperband(tmp_path):
    result = run_bench("perf", "--resume", "x")
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: unrecognized arguments: --resume x; see 'python run_bench.py perf --help'")
    result = run_bench("perf", "--tuner", "hyperband", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "perf times both sides on the same trials and epochs" in result.stderr


@pytest.mark.parametrize("options, told", [
    (["--epochs", "0"], "--epochs must be 1 or more; got 0"),
    (["--tuner", "nope"], "unknown tuner 'nope'"),
    (["--data", "MISSING"], "image folder MISSING does not exist"),
    (["--dataset", "folder"], "dataset 'folder' needs --data PATH"),
    (["--data", "SPLITS"], "SPLITS has train_set/, which look like split folders"),
    (["--data", "ONE"], "ONE has 1 class subfolder(s); a classification dataset needs at "
                        "least two"),
    (["--data", "OTHER"], "OTHER/val has the classes ['cat'], where train/ has ['cat', "
                          "'dog'] (lacks dog)"),
    # A notes file and a hidden copy are no images; the name is all it takes to pass here.
    (["--data", "EMPTY"], "class folder EMPTY/test/dog holds no images (files of a format "
                          "Pillow opens"),
])
def test_a_refused_option_is_answered_before_keras_or_the_plotting_libraries_load(
        tmp_path, options, told):
    """A user mistake is told at once: seaborn, matplotlib and Keras take seconds to
    import and are not needed to say that --epochs must be 1 or more, that a tuner name
    is unknown or that the --data folder is not there (or not laid out as one)."""
    import subprocess
    import sys

    (tmp_path / "splits" / "train_set" / "cat").mkdir(parents=True)
    (tmp_path / "one" / "cat").mkdir(parents=True)
    for folder in ("train/cat", "train/dog", "val/cat"):
        (tmp_path / "other" / folder).mkdir(parents=True)
    for folder in ("train/cat", "train/dog", "test/cat", "test/dog/notes"):
        (tmp_path / "empty" / folder).mkdir(parents=True)
    for image in ("train/cat/a.jpg", "train/dog/b.PNG", "test/cat/c.jpeg",
                  "test/dog/._d.jpg", "test/dog/notes/e.txt"):
        (tmp_path / "empty" / image).write_bytes(b"")
    paths = {"MISSING": str(tmp_path / "missing"), "SPLITS": str(tmp_path / "splits"),
             "ONE": str(tmp_path / "one"), "OTHER": str(tmp_path / "other"),
             "EMPTY": str(tmp_path / "empty")}
    options = [paths.get(option, option) for option in options]
    for word, path in paths.items():
        told = told.replace(word, path)
    code = ("import sys; from bench.cli import main; "
            f"rc = main(['run', *{options!r}, '--results-dir', {str(tmp_path / 'r')!r}]); "
            "print(rc, sorted(m for m in ('keras', 'matplotlib', 'seaborn', 'tensorflow') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split("\n")[0] == "2 []", result.stdout + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and told in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())


def test_analyze_of_a_folder_that_is_not_a_run_is_a_user_error(tmp_path):
    result = run_bench("analyze", str(tmp_path))
    assert result.returncode == 2
    assert "is not a run directory" in result.stderr and "Traceback" not in result.stderr
    # A run that has not finished an epoch is a run, only not one to analyse yet.
    (tmp_path / "run.json").write_text('{"status": "running"}')
    result = run_bench("analyze", str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {tmp_path} has run.json but no epochs.csv yet: its run has not finished an "
        "epoch (it is starting, or stopped before one ended); analyse it once it has rows")
    # Found by a new user: a run's own epochs.csv was "no run.json or epochs.csv".
    (tmp_path / "epochs.csv").write_text("run_id\n")
    result = run_bench("analyze", str(tmp_path / "epochs.csv"))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {tmp_path / 'epochs.csv'} is a file, not a run directory: pass the run "
        f"directory that holds it, {tmp_path}")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "run.json").unlink()
    result = run_bench("analyze", str(tmp_path / "notes.txt"))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {tmp_path / 'notes.txt'} is a file, not a run directory; pass a folder made "
        f"by '{RUN_BENCH} run'")


def test_analyze_says_which_table_of_a_run_is_missing_and_why(tmp_path):
    # Found by a new user: a completed run without its epochs.csv was "not finished an
    # epoch ... analyse it once it has rows", which would never come; one without its
    # run.json was "no run.json or epochs.csv", beside its epochs.csv.
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "completed"}))
    result = run_bench("analyze", str(run))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {run}: epochs.csv is missing, but the run completed; restore epochs.csv "
        "from a copy of the run")
    # Interrupted after two trials of 3 and 2 epochs had ended (by trials.csv).
    (run / "run.json").write_text(json.dumps({"status": "interrupted"}))
    (run / "trials.csv").write_text("trial_id,status,epochs_completed\n0000,COMPLETED,3\n"
                                    "0001,FAILED,2\n")
    result = run_bench("analyze", str(run))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {run}: epochs.csv is missing, but trials.csv counts 5 epoch row(s); restore "
        "epochs.csv from a copy of the run")
    # Every trial failed before an epoch ended: there never will be rows.
    (run / "run.json").write_text(json.dumps({"status": "failed"}))
    (run / "trials.csv").write_text("trial_id,status,epochs_completed\n0000,FAILED,0\n")
    result = run_bench("analyze", str(run))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {run} has no epochs.csv: its run failed before any execution finished an "
        "epoch, so there is nothing to analyse (run.json's error and trials.csv say why)")
    # Found by a new user: a status edited to "finished" was reported as a partial run.
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    result = run_bench("analyze", str(run))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {run / 'run.json'}'s status is 'finished', not one the suite writes "
        "(running, completed, failed, interrupted); the file was edited: restore it from a "
        "copy")
    (run / "run.json").unlink()
    (run / "epochs.csv").write_text("run_id\n")
    result = run_bench("analyze", str(run))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {run} has epochs.csv but no run.json, which records the study the rows are "
        "of: restore run.json from a copy of the run")


def test_a_spaces_dir_that_is_a_file_is_told_so(tmp_path):
    (tmp_path / "spaces").write_text("")
    result = run_bench("list", "--spaces-dir", str(tmp_path / "spaces"))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        f"error: search space folder {tmp_path / 'spaces'} is a file, not a folder; pass "
        "--spaces-dir with a folder of space files")


def test_an_existing_run_name_is_refused_and_the_old_run_kept(tiny_run):
    marker = (tiny_run / "epochs.csv").read_text()
    result = run_bench("run", "--results-dir", str(tiny_run.parent), "--name", tiny_run.name)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tiny_run / "epochs.csv").read_text() == marker


def test_list_names_the_folder_it_read_and_analyze_a_missing_folder_says_so(tmp_path):
    import shutil

    from bench.space import DEFAULT_SPACES_DIR

    spaces = tmp_path / "mine"
    spaces.mkdir()
    shutil.copy(DEFAULT_SPACES_DIR / "init.py", spaces / "init.py")
    listing = run_bench("list", "--spaces-dir", str(spaces))
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert f"Search spaces ({spaces}/NAME.py):" in listing.stdout
    missing = run_bench("analyze", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"error: {tmp_path / 'nope'} does not exist" in missing.stderr


def test_options_refused_for_new_runs_still_let_an_existing_run_continue():
    # A Hyperband run recorded with --max-trials (ignored before it was refused) must
    # still resume and serve workers: the refusal is for new runs only.
    from bench.errors import BenchError
    from bench.plan import RunSpec, plan_study

    spec = RunSpec(space="seed", tuner="hyperband", max_trials=3)
    with pytest.raises(BenchError, match="--max-trials does not bound Hyperband"):
        plan_study(spec)
    assert plan_study(spec, new=False).tuner_name == "hyperband"


@pytest.mark.parametrize("started, cwd, expected", [
    ("run_bench.py", "root", "python run_bench.py"),
    ("ROOT/run_bench.py", "root", "python run_bench.py"),
    ("ROOT/run_bench.py", "elsewhere", "python ROOT/run_bench.py"),
    ("ROOT/bench/__main__.py", "elsewhere", "python -m bench"),
    ("/usr/local/bin/finetune-bench", "elsewhere", "finetune-bench"),
])
def test_a_command_a_message_gives_starts_as_this_one_was_started(
        monkeypatch, tmp_path, started, cwd, expected):
    from bench.command import command

    monkeypatch.setattr(sys, "argv", [started.replace("ROOT", str(ROOT)), "run"])
    monkeypatch.chdir(ROOT if cwd == "root" else tmp_path)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert command("analyze", "results/x") == \
        f"{expected.replace('ROOT', str(ROOT))} analyze results/x"
    # Found by a new user: a JAX run's "continue it with" line, pasted, was refused for
    # resuming on TensorFlow.
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert command("run", "--resume", "results/x") == \
        f"KERAS_BACKEND=jax {expected.replace('ROOT', str(ROOT))} run --resume results/x"
    # Set to TensorFlow it is said too: ~/.keras/keras.json may name another backend.
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert command("analyze", "results/x").startswith(
        f"KERAS_BACKEND=tensorflow {expected.replace('ROOT', str(ROOT))}")


def test_a_command_with_odd_characters_in_its_paths_pastes_back_to_the_same_words(
        monkeypatch, tmp_path):
    from bench.command import command

    script = tmp_path / "my scripts" / "run_bench.py"
    folder = tmp_path / "my runs" / 'a "b" $HOME `c` d\\e'
    monkeypatch.setattr(sys, "argv", [str(script), "run"])
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    line = command("run", "--resume", folder)
    assert "'" not in line  # messages put the whole line in single quotes
    shell = subprocess.run(["bash", "-c", f'printf "%s\\n" {line}'], capture_output=True,
                           text=True, check=True)
    assert shell.stdout.splitlines() == ["python", str(script), "run", "--resume", str(folder)]


def test_a_keras_backend_that_is_not_installed_is_one_line_and_exit_2(tmp_path):
    """Found by a new user: with KERAS_BACKEND=jax in a venv without JAX, run blamed the
    space file ("failed to import: line 1") and list printed a traceback."""
    import importlib.util
    import os

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here")
    env = os.environ | {"KERAS_BACKEND": "torch"}
    for args in (["run", "--results-dir", str(tmp_path)], ["list"]):
        result = run_bench(*args, env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() == (
            "error: KERAS_BACKEND=torch, but torch is not installed here: pip install torch "
            "(README 'On a GPU' for a GPU build), or unset KERAS_BACKEND to use TensorFlow")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("backend, what", [
    ("JAX", "is not a Keras backend"), ("tf", "is not a Keras backend"),
    ("numpy", "cannot train (Keras's numpy and openvino backends only run models)")])
def test_a_keras_backend_that_cannot_train_is_one_line_and_exit_2(tmp_path, backend, what):
    """Found by a new user: KERAS_BACKEND=JAX (upper case) ended in Keras's traceback."""
    import os

    result = run_bench("list", env=os.environ | {"KERAS_BACKEND": backend})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (
        f"error: KERAS_BACKEND={backend} {what}: set it to tensorflow, jax, torch (lower "
        "case), or unset it to use TensorFlow")


def test_an_empty_keras_backend_is_unset_as_keras_reads_it():
    import os

    result = run_bench("list", env=os.environ | {"KERAS_BACKEND": ""})
    assert result.returncode == 0, result.stderr[-2000:]


def test_usage_lines_name_the_program_without_the_environment():
    import os

    env = os.environ | {"KERAS_BACKEND": "jax"}
    result = run_bench("run", "--help", env=env)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python run_bench.py run"), result.stdout[:300]
    wrong = run_bench("run", "--no-such-option", env=env)
    assert wrong.returncode == 2 and wrong.stderr.strip().endswith(
        "see 'python run_bench.py run --help'")


def test_a_stopped_chief_says_to_continue_it_as_a_chief(monkeypatch, tmp_path):
    # Found by a new user: a chief stopped by Ctrl-C said "continue it with 'run --resume
    # RUN'", which refuses a run served to workers on other machines.
    import argparse

    from bench.cli import _interrupted

    monkeypatch.setattr(sys, "argv", [str(ROOT / "run_bench.py"), "chief"])
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    run = tmp_path / "hosts"
    chief = argparse.Namespace(command="chief", port=8470, host="0.0.0.0", resume=None)
    assert _interrupted(chief, run) == (
        f"interrupted: the rows written so far are kept in {run}; continue it with "
        f"'python run_bench.py chief --resume {run} --port 8470'")
    chief.host = "127.0.0.1"
    assert _interrupted(chief, run).endswith(
        f"'python run_bench.py chief --resume {run} --port 8470 --host 127.0.0.1'")
    one = argparse.Namespace(command="run", resume=None)
    assert _interrupted(one, run).endswith(f"'python run_bench.py run --resume {run}'")


@pytest.mark.parametrize("command", ["list", "run"])
def test_a_stop_after_the_command_ended_keeps_its_exit_status(tmp_path, tiny_spaces_dir,
                                                              command):
    """Found by a new user: Ctrl-C in the second or so that Python takes to shut down
    after a run had completed exited 130, silently, as if the run had been stopped."""
    words = ["list"] if command == "list" else [
        "run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir), "--epochs", "1",
        "--repeats", "1", "--image-size", "16", "--pretrain-epochs", "1", "--results-dir",
        str(tmp_path / "results"), "--name", "done"]
    # A stop at each stage: once the command returned, in the atexit handlers, and while
    # modules are torn down (a __del__; found in review: Python sets handlers back to the
    # default before that stage, and a handler ended the process by SIGINT there).
    code = ("import atexit, os, signal, sys, time\n"
            "from bench.cli import command_line\n"
            "def stop(stage):\n"
            "    print('stop', stage, flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(0.3)\n"
            "class Late:\n"
            "    def __del__(self):\n"
            "        stop('teardown')\n"
            "late = Late()\n"
            "atexit.register(stop, 'atexit')\n"
            f"status = command_line({words!r})\n"
            "print('status', status, flush=True)\n"
            "stop('after')\n"
            "sys.exit(status)\n")
    env = os.environ | {"FINETUNE_BENCH_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-4:] == ["status 0", "stop after", "stop atexit",
                                               "stop teardown"]
    assert "Traceback" not in result.stderr and "interrupted" not in result.stderr
    assert "KeyboardInterrupt" not in result.stderr
    # SIGTERM once the command returned ends the process at once, with its status.
    code = ("import os, signal, sys, time\n"
            "from bench.cli import command_line\n"
            f"status = command_line({[w if w != 'done' else 'again' for w in words]!r})\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\n"
            "print('not ended')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0 and "not ended" not in result.stdout, result.stderr[-3000:]
    # main() alone, as a notebook or script calls it, leaves Ctrl-C to them.
    from bench.cli import main

    assert main(["list", "--spaces-dir", str(tiny_spaces_dir)]) == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
