"""The backbone's learning rate as a fraction of the head's, checked on real updates."""

import numpy as np
import pytest

from bench.backbones import BACKBONES
from bench.model import assemble
from bench.optim import make_optimizer


def _one_step(scale, seed):
    import keras

    keras.utils.set_random_seed(seed)
    parts = assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=3, init="random")
    parts.model.compile(optimizer=make_optimizer("SGD", learning_rate=0.1,
                                                 body_variables=parts.body_variables,
                                                 body_lr_scale=scale),
                        loss="sparse_categorical_crossentropy")
    before = [keras.ops.convert_to_numpy(w) for w in parts.model.trainable_weights]
    images = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3)).astype("float32")
    parts.model.train_on_batch(images, np.arange(8) % 3)
    after = [keras.ops.convert_to_numpy(w) for w in parts.model.trainable_weights]
    body = {id(v) for v in parts.body_variables}
    is_body = [id(v) in body for v in parts.model.trainable_weights]
    return [a - b for a, b in zip(after, before)], is_body


@pytest.mark.parametrize("scale", [0.1, 0.5])
def test_body_updates_are_scaled_and_head_updates_are_not(seed, scale):
    plain, is_body = _one_step(1.0, seed)
    scaled, _ = _one_step(scale, seed)
    assert any(is_body) and not all(is_body)
    for delta_plain, delta_scaled, body in zip(plain, scaled, is_body):
        expected = delta_plain * (scale if body else 1.0)
        np.testing.assert_allclose(delta_scaled, expected, rtol=1e-4, atol=1e-7)
