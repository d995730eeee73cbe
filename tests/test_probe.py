"""The checks that call a model to see what its configuration does not say, on real Keras
models: what they find, and that they leave the model and the random states as they were."""

import keras
import numpy as np
import pytest


class AlwaysDropout(keras.layers.Dropout):
    """Monte-Carlo dropout: random at inference too."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


def softmax_at(temperature):
    def tempered_softmax(x):
        return keras.activations.softmax(x / temperature)
    return tempered_softmax


def _model(*, dropout=keras.layers.Dropout, temperature=1.0, seed=0):
    keras.utils.set_random_seed(seed)
    images = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 3)(images)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = dropout(0.5, seed=3)(x)
    return keras.Model(images, keras.layers.Dense(3, activation=softmax_at(temperature))(x))


def _state(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.variables]


def _images():
    return np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 3)).astype("float32")


def test_changes_at_inference_finds_monte_carlo_dropout_and_leaves_the_model_as_it_was():
    from bench.tuning.probe import changes_at_inference

    plain, always = _model(), _model(dropout=AlwaysDropout)
    before = _state(always)
    numpy_state = np.random.get_state()[1].copy()
    assert changes_at_inference(always, _images())
    assert not changes_at_inference(plain, _images())
    # The dropout's seed-generator state moved with each call, and is back.
    for now, then in zip(_state(always), before):
        np.testing.assert_array_equal(now, then)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


def test_changes_at_inference_sees_dropout_that_drops_nothing_on_these_images():
    # A reviewer's case: a rate of 0.001 on 2 images dropped nothing in most builds, so
    # comparing outputs missed it; the seed generator moved all the same.
    from bench.tuning.probe import changes_at_inference

    rarely = _model(dropout=lambda rate, seed: AlwaysDropout(1e-9, seed=seed))
    assert changes_at_inference(rarely, _images())


def test_untouched_forgets_a_global_seed_generator_made_inside_it():
    # keras.random without a seed makes Keras's global generator at its first draw; made
    # inside the block, it must not stay advanced for the next draw outside it.
    from keras.src.backend.common import global_state

    from bench.tuning.probe import untouched

    def first_draw():
        keras.utils.set_random_seed(1)
        global_state.set_global_attribute("global_seed_generator", None)
        return keras.ops.convert_to_numpy(keras.random.uniform((3,)))

    expected = first_draw()
    keras.utils.set_random_seed(1)
    global_state.set_global_attribute("global_seed_generator", None)
    with untouched():
        keras.random.uniform((3,))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.random.uniform((3,))),
                                  expected)


def test_same_function_sees_a_temperature_no_configuration_records():
    from bench.tuning.probe import same_function
    from bench.tuning.reuse import graph_signature

    one, again, four = _model(), _model(seed=1), _model(temperature=4.0, seed=2)
    assert graph_signature(one) == graph_signature(four)  # what reuse compared alone
    for other in (again, four):
        other.set_weights(one.get_weights())
    before = [_state(m) for m in (one, again, four)]
    assert same_function(one, again, _images())
    assert not same_function(one, four, _images())
    # Training mode moved the BatchNormalization statistics and the seed states: back.
    for model, then in zip((one, again, four), before):
        for now, value in zip(_state(model), then):
            np.testing.assert_array_equal(now, value)


def test_same_function_sees_numpy_randomness_in_a_call():
    from bench.tuning.probe import same_function

    class NumpyNoise(keras.layers.Layer):
        def call(self, x, training=None):
            return x + np.random.normal(0, 0.5, (1, x.shape[-1])).astype("float32") \
                if training else x

    def model():
        keras.utils.set_random_seed(0)
        images = keras.Input((3,))
        return keras.Model(images, keras.layers.Dense(2)(NumpyNoise()(images)))

    first, second = model(), model()
    numpy_state = np.random.get_state()[1].copy()
    assert not same_function(first, second, np.ones((2, 3), "float32"))
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


def _gated(*, stop: bool, seed: int = 0):
    """A head that stops the gradient below its last layer, for one init only: the
    forward pass is the same either way (a new user's space, 2026-12-06)."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 3)(images)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5, seed=3)(x)
    x = keras.layers.Dense(5, activation="tanh")(x)

    def gate(z):  # a function is configured by its name: its closure is not seen
        return keras.ops.stop_gradient(z) if stop else z

    x = keras.layers.Activation(gate)(x)
    return keras.Model(images, keras.layers.Dense(3, activation="softmax")(x))


def test_same_function_sees_a_gradient_stopped_for_one_build_only():
    from bench.tuning.probe import same_function, untouched
    from bench.tuning.reuse import graph_signature

    stopped, flowing, again = _gated(stop=True), _gated(stop=False, seed=1), \
        _gated(stop=True, seed=2)
    assert graph_signature(stopped) == graph_signature(flowing)  # what reuse compares
    for other in (flowing, again):
        other.set_weights(stopped.get_weights())
    # The outputs agree in both modes (what the probe compared alone) ...
    with untouched(stopped, flowing):
        for training in (False, True):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(stopped(_images(), training=training)),
                keras.ops.convert_to_numpy(flowing(_images(), training=training)))
    before = [_state(m) for m in (stopped, flowing, again)]
    assert not same_function(stopped, flowing, _images())  # ... the gradients do not
    assert same_function(stopped, again, _images())
    for model, then in zip((stopped, flowing, again), before):
        for now, value in zip(_state(model), then):
            np.testing.assert_array_equal(now, value)


@pytest.mark.parametrize("before, beside", [(0, 1), (0, 4), (2, 2), (3, 3), (3, 6), (1, 0)])
def test_the_changing_layer_is_found_in_a_graph_with_branches(before, beside):
    """Found in review: a bisection over single layers named a later layer on a branch
    (the merge, or a Dense after the noise), since a layer on the other branch after the
    one that changes does not change."""
    from bench.tuning.probe import changes_at_inference, changing_layer

    inputs = keras.Input((4,))
    noisy = keras.layers.Lambda(lambda x: x + keras.random.uniform(keras.ops.shape(x)),
                                name="noise")(inputs)
    for i in range(before):
        noisy = keras.layers.Dense(4, name=f"after_noise_{i}")(noisy)
    plain = inputs
    for i in range(beside):
        plain = keras.layers.Dense(4, name=f"plain_{i}")(plain)
    model = keras.Model(inputs, keras.layers.Add(name="merge")([noisy, plain]))
    images = np.random.default_rng(0).random((2, 4)).astype("float32")
    assert changes_at_inference(model, images)
    assert [layer.name for layer in changing_layer(model, images)] == ["noise"]
    # A model that does not change has no such layer.
    steady = keras.Model(inputs, keras.layers.Add()([inputs, plain]))
    assert changing_layer(steady, images) is None


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("before", [0, 1, 3])
def test_the_changing_layer_inside_a_backbone_is_named_with_it(before, sequential):
    """Found in review: a change inside a nested model (functional or Sequential) was
    named as the whole model ('resnet50v2' (Functional))."""
    from bench.tuning.probe import changing_layer

    layers = [*(keras.layers.Dense(4, name=f"inner_{i}") for i in range(before)),
              keras.layers.Lambda(lambda t: t + keras.random.uniform(keras.ops.shape(t)),
                                  name="noise"),
              keras.layers.Dense(4, name="inner_last")]
    if sequential:
        backbone = keras.Sequential([keras.Input((4,)), *layers], name="backbone")
    else:
        inner = x = keras.Input((4,))
        for layer in layers:
            x = layer(x)
        backbone = keras.Model(inner, x, name="backbone")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(
        backbone(keras.layers.Dense(4, name="before")(inputs))))
    images = np.random.default_rng(0).random((2, 4)).astype("float32")
    assert [layer.name for layer in changing_layer(model, images)] == ["backbone", "noise"]
