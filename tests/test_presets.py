"""Presets: the seed chapter's experiments start and run on a CPU (tiny, offline) and carry
their published numbers into the report."""

import json

import keras_tuner
import numpy as np
import pytest
from test_cli import run_bench
from test_imagefolder import good_images

from bench.models.augment import RandomResizedCrop
from bench.models.backbones import BACKBONES
from bench.models.model import assemble
from bench.space import load_space


@pytest.mark.slow
@pytest.mark.parametrize("preset, optimizer, reference, theirs", [
    ("seed", "Adam", "0.7875", ("hotdog", "resnet50v2", 224, 3, 32)),
    ("d2l", "SGD", "fine-tuned 0.940 vs scratch 0.850", ("hotdog", "resnet50", 256, 5, 128)),
])
def test_a_preset_starts_on_a_cpu_and_reports_the_published_numbers(
        tmp_path, preset, optimizer, reference, theirs):
    data = tmp_path / "photos"
    good_images(data, per_class=8)
    # Offline stand-ins for what a GPU run downloads: a local folder instead of hotdog, and
    # random weights on resnet-mini instead of ImageNet's on a ResNet.
    result = run_bench("run", "--preset", preset, "--data", str(data), "--backbone",
                       "resnet-mini", "--init", "random", "--image-size", "20", "--epochs",
                       "1", "--batch-size", "8", "--max-trials", "2", "--results-dir",
                       str(tmp_path / "results"), "--name", preset)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"preset {preset} is meant for a GPU" in result.stdout
    run_dir = tmp_path / "results" / preset
    run = json.loads((run_dir / "run.json").read_text())
    assert run["preset"] == preset and run["settings"]["optimizer"] == optimizer
    assert any(reference in r["text"] for r in run["references"])
    report = (run_dir / "report.md").read_text()
    assert reference in report
    # Beside numbers measured otherwise, the report says what this run changed.
    dataset, backbone, size, epochs, batch = theirs
    assert (f"Not measured like this run, which changed dataset folder (the preset's "
            f"{dataset}), backbone resnet-mini (the preset's {backbone}), image size 20 (the "
            f"preset's {size}), epochs 1 (the preset's {epochs}), batch size 8 (the preset's "
            f"{batch}), init fixed to random.") in report


def test_an_unknown_preset_lists_the_valid_ones(tmp_path):
    result = run_bench("run", "--preset", "nope", "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "unknown preset 'nope'; valid presets: d2l, seed" in result.stderr


def test_the_seed_chapter_space_runs_ten_step_and_full_epochs(tmp_path):
    import pandas as pd

    data = tmp_path / "photos"
    good_images(data, per_class=8)
    result = run_bench("run", "--preset", "seed", "--data", str(data), "--backbone",
                       "resnet-mini", "--init", "random", "--image-size", "16", "--epochs",
                       "1", "--batch-size", "2", "--results-dir", str(tmp_path / "r"),
                       "--name", "steps")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "r" / "steps" / "epochs.csv")
    assert sorted(rows["steps_per_epoch"].unique()) == [0, 10]
    assert sorted(rows["frozen_blocks"].unique()) == [0, 4]


def test_random_resized_crop_centre_crops_in_evaluation_and_varies_in_training():
    images = np.arange(2 * 8 * 8 * 3, dtype="float32").reshape(2, 8, 8, 3)
    layer = RandomResizedCrop(6, seed=3)
    import keras

    evaluation = keras.ops.convert_to_numpy(layer(images, training=False))
    np.testing.assert_array_equal(evaluation, images[:, 1:7, 1:7, :])
    crops = [keras.ops.convert_to_numpy(layer(images, training=True)) for _ in range(3)]
    assert all(c.shape == (2, 6, 6, 3) for c in crops)
    assert not np.allclose(crops[0], crops[1])
    assert all(c.min() >= images.min() and c.max() <= images.max() for c in crops)


def test_d2l_trains_the_head_at_ten_times_the_body_only_when_fine_tuning():
    space = load_space("d2l-recipe")
    for init, scale in (("imagenet", 0.1), ("random", 1.0)):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("init", init)
        parts = assemble(BACKBONES["resnet-mini"], image_size=32, num_classes=2, init="random",
                         augment=lambda x, hp=hp: space.augment(x, hp=hp))
        space.compile(parts, hp=hp)
        optimizer = parts.model.optimizer
        assert type(optimizer).__name__ in ("SGD", "BodyScaledSGD")
        assert getattr(optimizer, "body_lr_scale", 1.0) == scale
        assert optimizer.weight_decay == pytest.approx(1e-3)
        assert float(optimizer.learning_rate) == pytest.approx(6.4e-2)
        assert parts.backbone.input.shape[1] == 28  # 224/256 of 32


def test_an_init_the_preset_does_not_run_says_what_its_space_derives_from_init():
    # Found by a new user: d2l with --init pretrained trained the body at the head's rate
    # (its 0.1 goes with imagenet), and the report's caveat said only "init fixed".
    from bench.plan import _init_rules_lost
    from bench.space import declared_hyperparameters

    space = load_space("d2l-recipe")
    hp = declared_hyperparameters(space, num_blocks=4)
    assert _init_rules_lost(space, hp, "pretrained") == (
        ", which the preset does not run (it runs imagenet and random), so body_lr_scale is "
        "1 (the preset's is 0.1 with imagenet, 1 with random)")
    assert _init_rules_lost(space, hp, "random") == ""


def test_a_preset_whose_space_another_spaces_dir_hides_is_told_so(tmp_path):
    # Found by a new user: "unknown search space 'd2l-recipe'", listing the user's spaces.
    (tmp_path / "mine.py").write_text("")
    result = run_bench("run", "--preset", "d2l", "--spaces-dir", str(tmp_path),
                       "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and result.stdout == ""
    told = (f"error: preset d2l runs search space d2l-recipe, which the spaces folder "
            f"{tmp_path} does not hold (a --spaces-dir, or ./search_spaces in the current "
            "folder, replaces the shipped one): copy d2l-recipe.py from ")
    assert result.stderr.startswith(told), result.stderr
    # Found by a reviewer: ./search_spaces in the current folder (README's place for your
    # own spaces) hid it the same way, and was not told.
    (tmp_path / "here" / "search_spaces").mkdir(parents=True)
    (tmp_path / "here" / "search_spaces" / "mine.py").write_text("")
    result = run_bench("run", "--preset", "d2l", "--results-dir", str(tmp_path / "r"),
                       cwd=tmp_path / "here")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(told.replace(str(tmp_path), str(
        tmp_path / "here" / "search_spaces"))), result.stderr
