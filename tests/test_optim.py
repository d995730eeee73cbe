"""The backbone's learning rate as a fraction of the head's, checked on real updates."""

import numpy as np
import pytest

from bench.models.backbones import BACKBONES
from bench.models.model import assemble
from bench.models.optim import make_optimizer


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


@pytest.mark.parametrize("scale", [0.1, 1.0])
def test_weight_decay_acts_at_each_variable_s_own_rate(seed, scale):
    """Zero gradients, so only decoupled weight decay moves the weights: a head weight
    shrinks by lr * wd, a body weight by lr * scale * wd, computed by hand."""
    import keras

    lr, wd = 0.5, 0.2
    parts = assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=3, init="random")
    variables = parts.model.trainable_variables
    optimizer = make_optimizer("SGD", learning_rate=lr, body_variables=parts.body_variables,
                               body_lr_scale=scale, weight_decay=wd)
    optimizer.build(variables)
    before = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    optimizer.apply([keras.ops.zeros(v.shape, v.dtype) for v in variables], variables)
    body = {id(v) for v in parts.body_variables}
    shrink = {}
    for variable, old in zip(variables, before):
        rate = lr * (scale if id(variable) in body else 1.0)
        new = keras.ops.convert_to_numpy(variable)
        np.testing.assert_allclose(new, old * (1 - rate * wd), rtol=1e-6, atol=1e-7)
        nonzero = np.abs(old) > 1e-3
        if nonzero.any():
            shrink.setdefault(id(variable) in body, (1 - new[nonzero] / old[nonzero]).mean())
    assert shrink[True] / shrink[False] == pytest.approx(scale, rel=1e-4)


@pytest.mark.parametrize("scale", [0.1, 1.0])
def test_muon_decays_what_it_leaves_to_adamw_at_adam_weight_decay(scale):
    """Muon gives 1-D variables (biases) to AdamW, decayed at adam_weight_decay, and 2-D
    kernels to Muon, decayed at weight_decay. Zero gradients: by hand, a bias of 1 becomes
    1 - lr * scale * 0.5 and a kernel of 1 becomes 1 - lr * scale * 0.2."""
    import keras

    lr = 0.1
    bias = keras.Variable(np.ones(3, "float32"), name="bias")
    kernel = keras.Variable(np.ones((3, 3), "float32"), name="kernel")
    optimizer = make_optimizer("Muon", learning_rate=lr, body_variables=[bias, kernel],
                               body_lr_scale=scale, weight_decay=0.2, adam_weight_decay=0.5)
    optimizer.build([bias, kernel])
    optimizer.apply([keras.ops.zeros(v.shape) for v in (bias, kernel)], [bias, kernel])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), 1 - lr * scale * 0.5,
                               rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 1 - lr * scale * 0.2,
                               rtol=1e-6)


def test_every_option_of_the_optimizer_reaches_it_including_its_name():
    optimizer = make_optimizer("SGD", learning_rate=0.1, momentum=0.9, name="sgd_m")
    assert (optimizer.name, optimizer.momentum, optimizer.body_lr_scale) == ("sgd_m", 0.9, 1.0)
