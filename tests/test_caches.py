"""Caches are verified before use: a damaged entry is rebuilt, says why, and gives the
same numbers as a clean run."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGE_SIZE, ROOT
from test_imagefolder import good_images

from bench.data import imagefolder
from bench.data.datasets import DataRequest, load_dataset
from bench.models.backbones import BACKBONES
from bench.models.pretrain import cache_name, pretrain, pretrain_key, record_sha256

MINI = BACKBONES["resnet-mini"]


def _pretrain(data, cache, log):
    return pretrain(MINI, data, image_size=IMAGE_SIZE, seed=1, epochs=1, cache_dir=cache,
                    log=log)


@pytest.fixture(scope="module")
def clean(digits, tmp_path_factory):
    cache = tmp_path_factory.mktemp("clean-cache")
    made = _pretrain(digits, cache, lambda *_: None)
    return cache, made, Path(made.weights_path).read_bytes()


def _scale_values(weights: Path) -> None:
    """Overwrites values inside the HDF5 file, its structure intact (as a bad disk or a
    stray write would)."""
    import h5py

    with h5py.File(weights, "r+") as handle:
        kernels = []
        handle.visititems(lambda name, item: kernels.append(name)
                          if isinstance(item, h5py.Dataset) and item.size > 1 else None)
        handle[kernels[0]][...] = handle[kernels[0]][...] * 0.5


def _damage(kind: str, weights: Path, meta: Path) -> None:
    if kind == "values":
        _scale_values(weights)
        # Keras still loads it: only the checksum can tell.
        MINI.constructor((IMAGE_SIZE, IMAGE_SIZE, 3)).load_weights(weights)
    elif kind == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif kind == "garbled metadata":
        meta.write_text(meta.read_text()[:40])
    elif kind == "metadata without checksum":
        record = json.loads(meta.read_text())
        del record["weights_sha256"]
        meta.write_text(json.dumps(record))
    elif kind == "no metadata":
        meta.unlink()
    elif kind == "edited accuracy":  # found by a new user: printed, warned about, reported
        meta.write_text(meta.read_text().replace(
            f'"source_accuracy": {json.loads(meta.read_text())["source_accuracy"]}',
            '"source_accuracy": 0.31'))
        assert json.loads(meta.read_text())["source_accuracy"] == 0.31
    elif kind == "record without checksum":
        record = json.loads(meta.read_text())
        del record["record_sha256"]
        meta.write_text(json.dumps(record))


@pytest.mark.parametrize("kind, reason", [
    ("values", "{weights} failed its checksum"),
    ("truncated weights", "{weights} failed its checksum"),
    ("garbled metadata", "{meta} is unreadable (JSONDecodeError)"),
    ("metadata without checksum", "{meta} is unreadable (KeyError)"),
    ("no metadata", "{meta} is missing"),
    ("edited accuracy", "{meta} failed its checksum"),
    ("record without checksum", "{meta} has no checksum of its record"),
])
def test_a_damaged_weights_cache_is_retrained_once_with_the_clean_numbers(
        clean, digits, tmp_path, kind, reason):
    clean_cache, made, clean_bytes = clean
    cache = tmp_path / "cache"
    shutil.copytree(clean_cache, cache)
    weights = cache / "pretrained" / Path(made.weights_path).name
    meta = weights.with_name(weights.name.replace(".weights.h5", ".json"))
    _damage(kind, weights, meta)

    messages = []
    again = _pretrain(digits, cache, messages.append)
    why = reason.format(weights=weights, meta=meta)
    assert [m for m in messages if "weights cache" in m] == [f"pretrained weights cache {why}; "
                                                            "retraining"]
    assert not again.reused and again.weights_path == str(weights)
    assert again.cache_problem == f"pretrained weights cache {why}; retraining"
    assert weights.read_bytes() == clean_bytes
    assert again.source_accuracy == made.source_accuracy
    assert again.weights_sha256 == made.weights_sha256

    messages.clear()
    third = _pretrain(digits, cache, messages.append)
    assert third.reused and "checksum verified" in messages[0] and not third.cache_problem
    # The problem is the run's, not the new entry's.
    assert "cache_problem" not in json.loads(meta.read_text())
    assert not list(cache.rglob("*partial*"))


def test_a_run_that_retrained_damaged_weights_says_so_in_its_report(
        clean, tmp_path, tiny_spaces_dir):
    from bench.plan import RunSpec
    from bench.runner import run_study

    clean_cache, made, _ = clean
    cache = tmp_path / "cache"
    shutil.copytree(clean_cache, cache)
    weights = cache / "pretrained" / Path(made.weights_path).name
    _scale_values(weights)
    spec = RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE, seed=1,
                   epochs=1, repeats=1, pretrain_epochs=1, results_dir=tmp_path / "runs",
                   name="damaged", cache_dir=cache)
    run_dir = run_study(spec, log=lambda *_: None)
    problem = f"pretrained weights cache {weights} failed its checksum; retraining"
    pretraining = json.loads((run_dir / "run.json").read_text())["pretraining"]
    assert pretraining["cache_problem"] == problem and not pretraining["reused"]
    assert pretraining["weights_sha256"] == made.weights_sha256
    assert f"Source pretraining ran again: {problem}" in (run_dir / "report.md").read_text()


def test_a_weak_source_model_is_a_warning_in_run_json_and_the_report_reused_or_not(
        clean, tmp_path, tiny_spaces_dir):
    """Found by a new user: the warning was printed once, when the weights were trained,
    and never in run.json or report.md, whose headline then read as any other."""
    from bench.plan import RunSpec
    from bench.runner import run_study

    clean_cache, made, _ = clean
    assert made.source_accuracy >= 0.5  # the clean source model is not weak
    cache = tmp_path / "cache"
    shutil.copytree(clean_cache, cache)
    meta = cache / "pretrained" / Path(made.weights_path).name.replace(".weights.h5", ".json")
    record = json.loads(meta.read_text())
    record["source_accuracy"] = 0.3  # as measured when the weights were made, say
    meta.write_text(json.dumps(record | {"record_sha256": record_sha256(record)}))
    lines = []
    spec = RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE, seed=1,
                   epochs=1, repeats=1, pretrain_epochs=1, results_dir=tmp_path / "runs",
                   name="weak", cache_dir=cache)
    run_dir = run_study(spec, log=lines.append)
    warning = ("the source model is weak: 0.300 accuracy in inference mode on held-out "
               "source images, so 'pretrained' results will say little (more "
               "--pretrain-epochs may help)")
    assert f"warning: {warning}" in lines
    ran = json.loads((run_dir / "run.json").read_text())
    assert ran["pretraining"]["reused"] and warning in ran["warnings"]
    assert f"Warning: {warning}" in (run_dir / "report.md").read_text()


def test_what_changes_the_source_images_or_the_backend_changes_the_key(digits):
    def key_of(data):
        return pretrain_key(MINI, data, image_size=IMAGE_SIZE, seed=1, epochs=1,
                            batch_size=32, learning_rate=1e-3)

    shapes = [load_dataset("shapes", DataRequest(image_size=IMAGE_SIZE, seed=1,
                                                 images_per_class=n, train_per_class=5))
              for n in (12, 14)]
    assert cache_name(key_of(shapes[0])) != cache_name(key_of(shapes[1]))
    # The digits source (0-4) is the same whatever the target's labelled count.
    more = load_dataset("digits", DataRequest(image_size=IMAGE_SIZE, seed=1, train_per_class=30))
    assert cache_name(key_of(more)) == cache_name(key_of(digits))
    import keras

    key = key_of(digits)
    backend = keras.backend.backend()
    assert key["backend"] == backend and key["versions"]["keras"] == keras.__version__
    other = "tensorflow" if backend == "jax" else "jax"
    pytest.importorskip(other)
    code = ("from bench.models.backbones import BACKBONES\n"
            "from bench.data.datasets import DataRequest, load_dataset\n"
            "from bench.models.pretrain import cache_name, pretrain_key\n"
            f"data = load_dataset('digits', DataRequest(image_size={IMAGE_SIZE}, seed=1))\n"
            f"print(cache_name(pretrain_key(BACKBONES['resnet-mini'], data, "
            f"image_size={IMAGE_SIZE}, seed=1, epochs=1, batch_size=32, learning_rate=1e-3)))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND=other))
    assert result.returncode == 0, result.stderr[-2000:]
    other_name = result.stdout.strip().splitlines()[-1]
    assert f"__{other}__" in other_name and other_name != cache_name(key)


def _rewriter(name: str, change):
    def rewrite(npz: Path) -> None:
        """A well-formed archive with one array changed but not its checksum."""
        with np.load(npz) as cached:
            arrays = {name: cached[name] for name in cached.files}
        arrays[name] = change(arrays[name])
        with open(npz, "wb") as handle:
            np.savez(handle, **arrays)
    return rewrite


def _flip_middle(npz: Path) -> None:
    content = bytearray(npz.read_bytes())
    middle = len(content) // 2
    content[middle:middle + 64] = bytes(255 - b for b in content[middle:middle + 64])
    npz.write_bytes(bytes(content))


@pytest.mark.parametrize("damage, reason", [
    (lambda npz: npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2]),
     r"is unreadable \(\w+\)"),
    (_flip_middle, r"(is unreadable \(\w+\)|failed its checksum)"),
    (_rewriter("images", lambda images: images // 2), r"failed its checksum"),
    (_rewriter("duplicates", lambda count: count + 1), r"failed its checksum"),
    (_rewriter("other_class", lambda said: np.append(said, "a.png (a) repeats b.png (b)")),
     r"failed its checksum"),
    (_rewriter("paths", lambda paths: paths[::-1]), r"failed its checksum"),
    (lambda npz: npz.write_bytes(b""), r"is unreadable \(\w+\)"),
], ids=["truncated", "flipped", "images", "duplicates", "other_class", "paths", "empty"])
def test_a_damaged_decode_cache_is_decoded_again_with_one_line(tmp_path, damage, reason):
    good_images(tmp_path / "data")
    clean = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=None)
    first = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.images, clean.images)
    (npz,) = (tmp_path / "cache" / "decoded").glob("*.npz")
    damage(npz)

    messages = []
    again = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=tmp_path / "cache",
                                    log=messages.append)
    assert len(messages) == 1, messages
    assert re.fullmatch(rf"decoded-image cache {re.escape(str(npz))} {reason}; decoding again",
                        messages[0]), messages[0]
    np.testing.assert_array_equal(again.images, clean.images)
    np.testing.assert_array_equal(again.labels, clean.labels)
    assert again.hashes == clean.hashes

    messages.clear()
    third = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=tmp_path / "cache",
                                    log=messages.append)
    assert messages == [] and third.hashes == clean.hashes


def test_other_code_makes_another_pretraining_key_and_another_decode_key(digits, tmp_path,
                                                                         monkeypatch):
    # An edited backbone (here only a comment; a BatchNormalization momentum would make
    # other weights with the same shapes) must not find this code's cached weights.
    code = ("import bench\n"
            "from bench.models.backbones import BACKBONES\n"
            "from bench.data.datasets import DataRequest, load_dataset\n"
            "from bench.models.pretrain import cache_name, pretrain_key\n"
            f"data = load_dataset('digits', DataRequest(image_size={IMAGE_SIZE}, seed=1))\n"
            "print(bench.__file__)\n"
            f"print(cache_name(pretrain_key(BACKBONES['resnet-mini'], data, "
            f"image_size={IMAGE_SIZE}, seed=1, epochs=1, batch_size=32, learning_rate=1e-3)))\n")
    here = cache_name(pretrain_key(MINI, digits, image_size=IMAGE_SIZE, seed=1, epochs=1,
                                   batch_size=32, learning_rate=1e-3))
    names = {}
    for edited in (False, True):
        copy = tmp_path / f"edited-{edited}"
        shutil.copytree(ROOT / "bench", copy / "bench",
                        ignore=shutil.ignore_patterns("__pycache__"))
        if edited:
            with open(copy / "bench" / "models" / "backbones.py", "a") as source:
                source.write("# edited\n")
        result = subprocess.run([sys.executable, "-c", code], cwd=copy, capture_output=True,
                                text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(copy)))
        assert result.returncode == 0, result.stderr[-2000:]
        where, name = result.stdout.strip().splitlines()[-2:]
        assert where == str(copy / "bench" / "__init__.py")
        names[edited] = name
    assert names[False] == here and names[True] != here
    # Decoded images are keyed by what decodes them too: another Pillow, another entry.
    good_images(tmp_path / "images", per_class=1)
    files = [(path, 0) for path in sorted((tmp_path / "images").rglob("*.*"))]
    key = imagefolder.cache_key(files, 16)
    import PIL

    monkeypatch.setattr(PIL, "__version__", "0.0.0")
    assert imagefolder.cache_key(files, 16) != key


def test_a_decode_cache_that_cannot_be_written_is_said_and_the_images_still_come(tmp_path):
    good_images(tmp_path / "data")
    clean = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=None)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "decoded").write_text("a file where the cache's folder should be")
    messages = []
    loaded = imagefolder.load_folder(tmp_path / "data", size=16, cache_dir=tmp_path / "cache",
                                     log=messages.append)
    assert len(messages) == 1, messages
    assert re.fullmatch(rf"decoded-image cache {re.escape(str(tmp_path / 'cache' / 'decoded'))}"
                        r"/\w+\.npz could not be written \(File exists\); going on without it",
                        messages[0]), messages[0]
    np.testing.assert_array_equal(loaded.images, clean.images)
    assert loaded.hashes == clean.hashes


def test_a_module_edited_while_the_process_runs_keeps_its_first_digest(tmp_path):
    # perf pretrained a second time after an edit and filed the loaded (old) code's
    # weights under the edited file's key; the digest is now of the file as first read.
    import importlib.util

    from bench.device import code_sha256

    path = tmp_path / "recipe_for_digest.py"
    path.write_text("MOMENTUM = 0.99\n")
    spec = importlib.util.spec_from_file_location("recipe_for_digest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = code_sha256(module)
    path.write_text("MOMENTUM = 0.9\n")
    assert code_sha256(module) == first
    assert first == hashlib.sha256(b"MOMENTUM = 0.99\n").hexdigest()
