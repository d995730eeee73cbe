"""One small study through run_bench.py, as a user runs it, on both tested backends."""

import json
import os
import re
import sys

import pandas as pd
import pytest
from conftest import ROOT
from test_cli import run_bench

SMALL = ["run", "--image-size", "16", "--epochs", "2", "--repeats", "2", "--pretrain-epochs",
         "2", "--seed", "3"]


def _run(tmp_path, name, spaces_dir, *extra, backend=None):
    env = dict(os.environ)
    env["FINETUNE_BENCH_CACHE"] = str(tmp_path / "cache")
    if backend:
        env["KERAS_BACKEND"] = backend
    result = run_bench(*SMALL, "--space", "tiny", "--spaces-dir", str(spaces_dir),
                       "--results-dir", str(tmp_path / "results"), "--name", name, *extra,
                       env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, tmp_path / "results" / name


@pytest.mark.slow
def test_run_bench_writes_the_whole_run_directory(tmp_path, tiny_spaces_dir):
    result, run_dir = _run(tmp_path, "e2e", tiny_spaces_dir)
    out = result.stdout
    # Any device: the line names the backend and what ran the trials, CPU or GPU.
    assert re.search(r"^Keras backend tensorflow on (CPU \(.+, \d+ cores\)|GPU: .+)$", out,
                     flags=re.MULTILINE), out[:2000]
    assert "trial 1/2" in out and "trial 2/2" in out and "best so far" in out
    assert "Top 2 of 2 trials" in out and "pretrained - random at epoch 2" in out
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["backend"] == "tensorflow"
    assert run["space"]["name"] == "tiny" and run["space"]["version"] == 3
    assert run["seeds"] == {"oracle": 3, "repeats": [3, 4]}
    assert {"keras", "keras-tuner", "numpy", "pillow", "scipy"} <= set(run["versions"])
    epochs = pd.read_csv(run_dir / "epochs.csv")
    assert len(epochs) == 2 * 2 * 2
    trials = pd.read_csv(run_dir / "trials.csv")
    assert list(trials.columns[:3]) == ["trial_id", "status", "init"]
    png = run_dir / "plots" / "accuracy_vs_epochs.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    report = (run_dir / "report.md").read_text()
    assert "pretrained minus random validation accuracy" in report
    assert "![accuracy_vs_epochs](plots/accuracy_vs_epochs.png)" in report
    assert (run_dir / "tuner" / "oracle.json").exists()


@pytest.mark.slow
def test_the_same_command_twice_gives_the_same_hyperparameters_and_curves(
        tmp_path, tiny_spaces_dir):
    _, first = _run(tmp_path, "a", tiny_spaces_dir, "--tuner", "random", "--max-trials", "2")
    _, second = _run(tmp_path, "b", tiny_spaces_dir, "--tuner", "random", "--max-trials", "2")
    a = pd.read_csv(first / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
    b = pd.read_csv(second / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_reusing_compiled_models_gives_the_same_curves_as_fresh_models(
        tmp_path, tiny_spaces_dir):
    _, reused = _run(tmp_path, "reused", tiny_spaces_dir)
    _, fresh = _run(tmp_path, "fresh", tiny_spaces_dir, "--no-reuse")
    # All four executions restored into the pre-flight check's model (pretrained, depth 2).
    assert json.loads((reused / "run.json").read_text())["models"] == {
        "compiled": 0, "reused": 4, "states_reused": 0, "from_preflight": 1}
    assert json.loads((fresh / "run.json").read_text())["models"] == {
        "compiled": 4, "reused": 0, "states_reused": 0, "from_preflight": 0}
    a = pd.read_csv(reused / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
    b = pd.read_csv(fresh / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_the_suite_runs_on_the_jax_backend_without_tensorflow(tmp_path, tiny_spaces_dir,
                                                              tiny_run):
    pytest.importorskip("jax")
    result, run_dir = _run(tmp_path, "jax", tiny_spaces_dir, backend="jax")
    assert "Keras backend jax" in result.stdout
    run = json.loads((run_dir / "run.json").read_text())
    assert run["backend"] == "jax" and run["status"] == "completed"
    # JAX's persistent compilation cache is on, under the suite's cache folder.
    assert run["compilation_cache"] == str(tmp_path / "cache" / "jax-compilation")
    assert len(pd.read_csv(run_dir / "epochs.csv")) == 8
    # Found by a new user: a joint report of a TensorFlow and a JAX run said nothing of
    # it, though one seed draws other initial weights on each backend.
    import keras

    if keras.backend.backend() == "jax":
        pytest.skip("the session's run is on JAX too")
    joint = run_bench("analyze", str(tiny_run), str(run_dir), "--out", str(tmp_path / "both"))
    assert joint.returncode == 0, joint.stderr[-3000:]
    report = (tmp_path / "both" / "report.md").read_text()
    assert (f"these runs did not run on the same Keras backend and precision (tiny: "
            f"`{keras.backend.backend()}`; jax: `jax`)") in report


def test_the_core_never_imports_tensorflow(tmp_path):
    """Under JAX, importing every module and building a model leaves TensorFlow unloaded."""
    pytest.importorskip("jax")
    import subprocess

    code = (
        "import sys, pkgutil, importlib, bench\n"
        "for m in pkgutil.iter_modules(bench.__path__):\n"
        "    importlib.import_module('bench.' + m.name)\n"
        "from bench.models.backbones import BACKBONES\n"
        "from bench.models.model import assemble\n"
        "assemble(BACKBONES['resnet-mini'], image_size=16, num_classes=3, init='random')\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_the_device_names_the_processor_and_versions_name_the_image_library():
    """Floating-point results can differ between processors (README, "What it found"), so a
    run says which one it ran on; checked against lscpu, a second reader of the same fact."""
    import shutil
    import subprocess

    import PIL
    import scipy

    from bench.device import describe_device, library_versions

    versions = library_versions()
    assert versions["pillow"] == PIL.__version__ and versions["scipy"] == scipy.__version__
    if shutil.which("lscpu") is None:
        pytest.skip("no lscpu to check the processor's name against")
    lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True,
                           env=dict(os.environ, LC_ALL="C")).stdout.splitlines()
    (model,) = [line.split(":", 1)[1].strip() for line in lines
                if line.startswith("Model name:")]
    device = describe_device()
    assert f"CPU ({model}, " in device["device"]
    # The instruction sets that decide the math kernels, as lscpu lists them.
    (flags,) = [set(line.split(":", 1)[1].split()) for line in lines
                if line.startswith("Flags:")]
    from bench.device import NUMERIC_CPU_FEATURES

    assert device["cpu_features"] == [f for f in NUMERIC_CPU_FEATURES if f in flags]
