"""The shapes generator: threaded rendering gives the images of one at a time, and the
cache of generated images gives back those very images, or says it is damaged and renders."""

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.data.shapes import SOURCE_SHAPES, TARGET_SHAPES, _draw, render_shapes


def _one_at_a_time(shapes, *, per_class, image_size, seed):
    # The generator as it was before threads (commit f5827cc), kept as the second path.
    rng = np.random.default_rng(seed)
    side = image_size * 4
    images = np.empty((len(shapes) * per_class, image_size, image_size, 3), np.uint8)
    labels = np.repeat(np.arange(len(shapes), dtype=np.int32), per_class)
    for index, label in enumerate(labels):
        background = rng.integers(0, 120, size=3)
        noise = rng.normal(0, 18, size=(side, side, 3))
        canvas = np.clip(background + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(canvas)
        r = rng.uniform(0.22, 0.38) * side
        cx, cy = rng.uniform(r, side - r, size=2)
        colour = tuple(int(c) for c in rng.integers(140, 256, size=3))
        _draw(ImageDraw.Draw(image), shapes[label], cx, cy, r, rng.uniform(0, 2 * math.pi),
              colour, max(2, int(side * 0.07)))
        images[index] = np.asarray(image.resize((image_size, image_size), Image.BILINEAR))
    return images, labels


@pytest.mark.parametrize("shapes, image_size, seed", [
    (SOURCE_SHAPES, 24, 1), (TARGET_SHAPES, 40, 7920)])
def test_threaded_rendering_gives_the_images_of_one_at_a_time(shapes, image_size, seed):
    # 6 per class: more images than the threads keep waiting, so the queue wraps round.
    images, labels = render_shapes(shapes, per_class=6, image_size=image_size, seed=seed)
    expected_images, expected_labels = _one_at_a_time(shapes, per_class=6,
                                                      image_size=image_size, seed=seed)
    assert images.shape == (30, image_size, image_size, 3)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(images, expected_images)


def _flip_middle(npz):
    content = bytearray(npz.read_bytes())
    middle = len(content) // 2
    content[middle:middle + 64] = bytes(255 - b for b in content[middle:middle + 64])
    npz.write_bytes(bytes(content))


def _halve_images(npz):
    with np.load(npz) as stored:  # a well-formed archive whose checksum no longer fits
        arrays = {name: stored[name] for name in stored.files}
    arrays["images"] = arrays["images"] // 2
    with open(npz, "wb") as handle:
        np.savez(handle, **arrays)


def _load(**request):
    from bench.data.datasets import DataRequest, load_dataset

    request = {"image_size": 24, "seed": 3, "images_per_class": 8, "train_per_class": 4} | request
    return load_dataset("shapes", DataRequest(**request))


def _arrays(data):
    return [array for split in (data.source, data.train, data.validation, data.test)
            for array in (split.images, split.labels)]


def test_generated_images_are_cached_and_a_cached_copy_is_the_same(tmp_path, monkeypatch):
    fresh = _load()
    assert not (tmp_path / "generated").exists()
    first = _load(cache_dir=tmp_path)
    stored = sorted((tmp_path / "generated").glob("*.npz"))
    assert len(stored) == 2  # the source task and the target task
    # From here on the generator must not run: the images come from the files.
    import bench.data.shapes

    def refuse(*args, **kwargs):
        raise AssertionError("rendered again despite a valid cache")

    monkeypatch.setattr(bench.data.shapes, "render_shapes", refuse)
    second = _load(cache_dir=tmp_path)
    for expected, cached_first, cached_second in zip(_arrays(fresh), _arrays(first),
                                                     _arrays(second), strict=True):
        np.testing.assert_array_equal(cached_first, expected)
        np.testing.assert_array_equal(cached_second, expected)
    # Another request is another entry, not this one's images.
    monkeypatch.undo()
    _load(cache_dir=tmp_path, images_per_class=9)
    assert len(list((tmp_path / "generated").glob("*.npz"))) == 4


@pytest.mark.parametrize("damage, reason", [
    (lambda npz: npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2]),
     r"is unreadable \(\w+\)"),
    (_flip_middle, r"(is unreadable \(\w+\)|failed its checksum)"),
    (_halve_images, "failed its checksum"),
], ids=["truncated", "flipped", "images"])
def test_a_damaged_generated_cache_is_generated_again_with_one_line(tmp_path, capsys, damage,
                                                                    reason):
    import re

    fresh = _load()
    _load(cache_dir=tmp_path)
    capsys.readouterr()
    damaged = sorted((tmp_path / "generated").glob("*.npz"))[0]
    damage(damaged)
    again = _load(cache_dir=tmp_path)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"generated-image cache {re.escape(str(damaged))} {reason}; "
                        "generating again", lines[0]), lines[0]
    for expected, got in zip(_arrays(fresh), _arrays(again), strict=True):
        np.testing.assert_array_equal(got, expected)
    _load(cache_dir=tmp_path)  # remade whole: quiet from now on
    assert capsys.readouterr().err == ""


def test_a_cache_that_cannot_be_written_is_said_once_per_entry_and_left_out(tmp_path, capsys):
    fresh = _load()
    (tmp_path / "generated").write_text("a file where the cache's folder should be")
    kept = _load(cache_dir=tmp_path)
    lines = sorted(capsys.readouterr().err.splitlines())
    assert len(lines) == 2, lines  # the source task's entry and the target task's
    for line in lines:
        assert line.startswith(f"generated-image cache {tmp_path / 'generated'}/shapes-24px-")
        assert line.endswith("could not be written (File exists); going on without it"), line
    for expected, got in zip(_arrays(fresh), _arrays(kept), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_target_only_load_has_the_target_splits_of_a_whole_load_and_renders_no_source(
        tmp_path):
    # Another dataset's source task pretrains (--source-dataset): shapes rendered its own
    # source task as well, unused (at 224 px, seconds of random noise).
    whole = _load()
    alone = _load(target_only=True, cache_dir=tmp_path)
    assert alone.source is None and alone.source_class_names == ()
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(alone, part).images, getattr(whole, part).images)
        np.testing.assert_array_equal(getattr(alone, part).labels, getattr(whole, part).labels)
    assert len(list((tmp_path / "generated").glob("*.npz"))) == 1


@pytest.mark.slow
def test_shapes_with_another_source_dataset_renders_its_target_task_alone(tmp_path,
                                                                          tiny_spaces_dir):
    import json

    from test_cli import run_bench

    result = run_bench("run", "--space", "tiny", "--spaces-dir", str(tiny_spaces_dir),
                       "--dataset", "shapes", "--source-dataset", "digits",
                       "--images-per-class", "8", "--train-per-class", "4",
                       "--image-size", "16", "--epochs", "1", "--repeats", "1",
                       "--pretrain-epochs", "1", "--cache-dir", str(tmp_path / "cache"),
                       "--results-dir", str(tmp_path / "results"), "--name", "target")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "cache" / "generated").glob("shapes-*.npz"))) == 1
    run = json.loads((tmp_path / "results" / "target" / "run.json").read_text())
    assert run["pretraining"]["source"] == "digits" and run["dataset"]["source"] == 901
    assert run["dataset"]["train"] == 4 * 5
