"""Initialisation: 'random' is really random, 'pretrained' is the source weights."""

import numpy as np
import pytest

from bench.models.backbones import BACKBONES
from bench.models.model import assemble
from bench.models.pretrain import pretrain


@pytest.fixture(scope="module")
def source_weights(digits, tmp_path_factory):
    return pretrain(BACKBONES["resnet-mini"], digits, image_size=16, seed=1, epochs=2,
                    cache_dir=tmp_path_factory.mktemp("cache"), log=lambda *_: None)


def _backbone_weights(parts):
    return [np.asarray(w) for w in parts.backbone.get_weights()]


def test_pretrained_init_loads_the_source_weights_and_random_does_not(source_weights, seed):
    import keras

    pretrained = assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=5,
                          init="pretrained", weights_path=source_weights.weights_path)
    keras.utils.set_random_seed(seed)
    random_a = assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=5, init="random")
    keras.utils.set_random_seed(seed + 1)
    random_b = assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=5, init="random")

    saved = BACKBONES["resnet-mini"].constructor((16, 16, 3))
    saved.load_weights(source_weights.weights_path)
    for loaded, expected in zip(_backbone_weights(pretrained), saved.get_weights()):
        np.testing.assert_array_equal(loaded, expected)
    conv = 0  # stem_conv kernel: trained weights differ from any fresh initialisation
    assert not np.allclose(_backbone_weights(pretrained)[conv], _backbone_weights(random_a)[conv])
    assert not np.allclose(_backbone_weights(random_a)[conv], _backbone_weights(random_b)[conv])


def test_the_same_seed_gives_the_same_random_init(seed):
    import keras

    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(seed)
        parts = assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=5, init="random")
        weights.append(_backbone_weights(parts))
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_the_source_model_is_measured_in_inference_mode(source_weights):
    assert 0.0 <= source_weights.source_accuracy <= 1.0
    assert source_weights.epochs == 2 and not source_weights.reused


def test_pretraining_is_cached_and_reused(digits, tmp_path):
    from pathlib import Path

    messages = []
    first = pretrain(BACKBONES["resnet-mini"], digits, image_size=16, seed=3, epochs=1,
                     cache_dir=tmp_path, log=messages.append)
    mtime = Path(first.weights_path).stat().st_mtime_ns
    second = pretrain(BACKBONES["resnet-mini"], digits, image_size=16, seed=3, epochs=1,
                      cache_dir=tmp_path, log=messages.append)
    assert not first.reused and second.reused
    # Found by a new user: it said "(901 images ...)" and trained on 720 of them.
    assert len(digits.source) == 901
    assert messages[0] == ("pretraining resnet-mini on the digits source task (720 of its 901 "
                           "images, 181 held out to check it; 1 epoch); cached for later runs")
    assert messages[1].startswith("source model: ") and " on 181 held-out " in messages[1]
    assert second.weights_path == first.weights_path
    assert second.source_accuracy == pytest.approx(first.source_accuracy)
    assert Path(second.weights_path).stat().st_mtime_ns == mtime
    assert any("reused" in m for m in messages)
    # A different key (another seed) trains again, next to the first.
    third = pretrain(BACKBONES["resnet-mini"], digits, image_size=16, seed=4, epochs=1,
                     cache_dir=tmp_path, log=messages.append)
    assert not third.reused and third.weights_path != first.weights_path
    assert not list(tmp_path.rglob("*partial*"))


def test_the_source_model_trains_on_a_new_batch_order_every_epoch(source_weights, digits):
    """Pretraining equals a second path written out by hand: one epoch at a time, each
    on the rows in the order the seed draws for that epoch. Keras's own seeded shuffle
    kept one order throughout on TensorFlow (and a new one on JAX)."""
    import keras

    from bench.models.pretrain import _holdout
    from bench.tuning.batches import epoch_order

    train, _ = _holdout(digits.source, 1)
    assert len({tuple(epoch_order(1, e, len(train))) for e in range(2)}) == 2
    keras.utils.set_random_seed(1)
    parts = assemble(BACKBONES["resnet-mini"], image_size=16,
                     num_classes=len(digits.source_class_names), init="random")
    parts.model.compile(optimizer=keras.optimizers.Adam(1e-3),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for epoch in range(2):
        order = epoch_order(1, epoch, len(train))
        parts.model.fit(train.images[order], train.labels[order], batch_size=32, epochs=1,
                        shuffle=False, verbose=0)
    saved = BACKBONES["resnet-mini"].constructor((16, 16, 3))
    saved.load_weights(source_weights.weights_path)
    for by_hand, pretrained in zip(_backbone_weights(parts), saved.get_weights()):
        np.testing.assert_allclose(by_hand, pretrained, rtol=0, atol=1e-5)
