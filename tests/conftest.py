"""Shared fixtures: a seed, tiny real data, and one tiny real run made once per session."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SIZE = 16  # resnet-mini's smallest size: fast, still real convolutions.
#: How the suite's advice starts a command line run from ROOT as ``python run_bench.py``:
#: with the Keras backend first where the tests run under a chosen one.
RUN_BENCH = (f"KERAS_BACKEND={os.environ['KERAS_BACKEND']} " if os.environ.get("KERAS_BACKEND")
             else "") + "python run_bench.py"

TINY_SPACE = textwrap.dedent('''
    """Two inits, everything else fixed: the smallest study that has a gap."""
    from bench.space import SearchSpace, SpaceSettings


    class Tiny(SearchSpace):
        description = "pretrained vs random, half the backbone frozen"
        version = 3
        settings = SpaceSettings(epochs=2, repeats=2, frozen_blocks=2, head_lr=3e-3)

        def declare(self, hp, *, num_blocks):
            hp.Choice("init", ["pretrained", "random"])
''')


def pytest_configure(config):
    # Tests never write to the user's own cache, subprocesses included.
    import tempfile

    os.environ["FINETUNE_BENCH_CACHE"] = tempfile.mkdtemp(prefix="finetune-bench-test-cache-")


@pytest.fixture
def seed() -> int:
    import keras

    keras.utils.set_random_seed(7)
    return 7


@pytest.fixture(scope="session")
def digits():
    from bench.data.datasets import DataRequest, load_dataset

    return load_dataset("digits", DataRequest(image_size=IMAGE_SIZE, seed=1))


@pytest.fixture(scope="session")
def tiny_spaces_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("spaces")
    (folder / "tiny.py").write_text(TINY_SPACE)
    return folder


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_spaces_dir, cache_dir) -> Path:
    """A real run: 2 trials x 2 repeats x 2 epochs on digits at 16 px."""
    from bench.plan import RunSpec
    from bench.runner import run_study

    results = tmp_path_factory.mktemp("results")
    spec = RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE,
                   pretrain_epochs=3, results_dir=results, name="tiny", cache_dir=cache_dir)
    return run_study(spec, log=lambda *_: None)


_OTHER_PROCESSES = iter(range(5_000_000, 6_000_000))  # above Linux's pid_max: none alive


def copy_as_another_run(run: Path, folder: Path) -> Path:
    """A copy of ``run`` at ``folder`` that analyze takes for another run with the same
    tables (a plain copy is the same run, refused beside it): another process started it."""
    import json
    import shutil

    shutil.copytree(run, folder)
    record = json.loads((folder / "run.json").read_text())
    record["process"] = {**record["process"], "pid": next(_OTHER_PROCESSES)}
    (folder / "run.json").write_text(json.dumps(record, indent=2))
    return folder
