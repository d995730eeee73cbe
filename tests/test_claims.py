"""What the suite claims about its models, checked on real models and a real run."""

import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import IMAGE_SIZE

from bench.errors import BenchError
from bench.models.backbones import BACKBONES
from bench.models.model import assemble
from bench.models.optim import make_optimizer


def _values(layer) -> list:
    import keras

    return [keras.ops.convert_to_numpy(v).copy() for v in layer.weights]


def test_frozen_blocks_and_their_batchnorm_statistics_do_not_move_in_fit(seed, digits):
    parts = assemble(BACKBONES["resnet-mini"], image_size=IMAGE_SIZE, num_classes=5,
                     init="random")
    parts.freeze(2)
    parts.model.compile(optimizer=make_optimizer("Adam", learning_rate=1e-2),
                        loss="sparse_categorical_crossentropy")
    frozen = {n for b in parts.blocks[:2] for n in b.layer_names}
    layers = [layer for layer in parts.backbone.layers if layer.weights]
    before = {layer.name: _values(layer) for layer in layers}
    parts.model.fit(digits.train.images[:64], digits.train.labels[:64], epochs=1,
                    batch_size=16, verbose=0)
    batchnorm_seen = {True: 0, False: 0}
    for layer in layers:
        after = _values(layer)
        is_frozen = layer.name in frozen
        if "bn" in layer.name:
            batchnorm_seen[is_frozen] += 1
        for name, old, new in zip([w.name for w in layer.weights], before[layer.name], after):
            if is_frozen:
                np.testing.assert_array_equal(new, old, err_msg=f"{layer.name}/{name}")
            else:  # every weight of a trainable layer moves, moving statistics included
                assert not np.array_equal(new, old), f"{layer.name}/{name} did not change"
    assert batchnorm_seen[True] >= 2 and batchnorm_seen[False] >= 2


def _first_conv(parts) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(parts.backbone.get_layer("stem_conv").kernel)


def test_random_and_pretrained_backbones_differ(seed, tmp_path):
    import keras

    source = BACKBONES["resnet-mini"].constructor((IMAGE_SIZE, IMAGE_SIZE, 3))
    for weight in source.weights:  # a weights file unlike any fresh initialisation
        weight.assign(np.full(weight.shape, 0.25, dtype="float32"))
    path = str(tmp_path / "source.weights.h5")
    source.save_weights(path)
    keras.utils.set_random_seed(seed)
    random = assemble(BACKBONES["resnet-mini"], image_size=IMAGE_SIZE, num_classes=3,
                      init="random")
    pretrained = assemble(BACKBONES["resnet-mini"], image_size=IMAGE_SIZE, num_classes=3,
                          init="pretrained", weights_path=path)
    np.testing.assert_array_equal(_first_conv(pretrained), 0.25)
    assert not np.allclose(_first_conv(random), 0.25)


def test_imagenet_backbone_differs_from_random_and_pretrained(seed, tmp_path):
    """Needs Keras's cached ImageNet file for MobileNetV3Small (KERAS_HOME/models/).

    Keras checks the file's hash before using it, so no locally made file can stand in;
    offline without the cached file the test is skipped, saying so.
    """
    import keras

    from bench.models.backbones import build_backbone, ensure_imagenet_weights

    spec = BACKBONES["mobilenetv3small"]
    try:
        ensure_imagenet_weights(spec, image_size=32)
    except BenchError as error:
        pytest.skip(f"ImageNet weights unavailable offline: {error}")
    imagenet = build_backbone(spec, image_size=32, weights="imagenet")
    keras.utils.set_random_seed(seed)
    random = build_backbone(spec, image_size=32, weights=None)
    path = str(tmp_path / "pretrained.weights.h5")
    random.save_weights(path)
    pretrained = build_backbone(spec, image_size=32, weights=None)
    pretrained.load_weights(path)
    kernel = next(w for w in imagenet.weights if len(w.shape) == 4).path
    by_path = [{w.path: keras.ops.convert_to_numpy(w) for w in m.weights}[kernel]
               for m in (imagenet, random, pretrained)]
    assert not np.allclose(by_path[0], by_path[1]) and not np.allclose(by_path[0], by_path[2])


SELECTION = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class Selection(SearchSpace):
        description = "two depths, random init"
        settings = SpaceSettings(init="random", head_lr=1e-2)

        def declare(self, hp, *, num_blocks):
            hp.Choice("frozen_blocks", [0, num_blocks])
''')


def test_permuting_test_labels_changes_no_selection(tmp_path, cache_dir, monkeypatch):
    import bench.runner
    from bench.data.datasets import Split
    from bench.plan import RunSpec
    from bench.runner import run_study

    (tmp_path / "selection.py").write_text(SELECTION)
    real_load = bench.runner.load_dataset

    def permuted(name, request):
        data = real_load(name, request)
        labels = np.random.default_rng(0).permutation(data.test.labels)
        return type(data)(**{**vars(data), "test": Split(data.test.images, labels)})

    runs = {}
    for kind in ("real", "permuted"):
        if kind == "permuted":
            monkeypatch.setattr(bench.runner, "load_dataset", permuted)
        path = run_study(RunSpec(space="selection", spaces_dir=tmp_path, image_size=IMAGE_SIZE,
                                 epochs=2, repeats=1, train_per_class=8,
                                 results_dir=tmp_path / "results", name=kind,
                                 cache_dir=cache_dir), log=lambda *_: None)
        runs[kind] = (pd.read_csv(path / "trials.csv"), pd.read_csv(path / "epochs.csv"))
    (real, real_epochs), (perm, perm_epochs) = runs["real"], runs["permuted"]
    columns = ["trial_id", "frozen_blocks", "best_val_accuracy", "final_val_accuracy"]
    pd.testing.assert_frame_equal(real[columns], perm[columns])
    assert (real.sort_values("best_val_accuracy").trial_id.iloc[-1]
            == perm.sort_values("best_val_accuracy").trial_id.iloc[-1])
    drop = ["run_id", "epoch_seconds"]
    pd.testing.assert_frame_equal(real_epochs.drop(columns=drop), perm_epochs.drop(columns=drop))
    assert not np.allclose(real["test_accuracy"], perm["test_accuracy"])
