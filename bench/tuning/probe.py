"""Calling a model on a few images to see what its configuration does not say, leaving it
as it was.

Reuse compares graphs by each layer's class and configuration, but a layer's
configuration does not describe everything it computes: a function passed as an
activation is saved by its name only (a temperature it closes over is not), an attribute
set after construction is not saved, and a NumPy draw in ``call`` becomes a constant of
each trace. Two builds that compute the same thing give the same outputs on the same
images with the same variables; these checks ask exactly that.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import keras
import numpy as np

#: Images each check runs on: few, so a check costs little next to an execution.
PROBE_IMAGES = 2


def probe_batch(images):
    """The first ``PROBE_IMAGES`` of ``images`` (an array, or a structure of them)."""
    return keras.tree.map_structure(lambda array: array[:PROBE_IMAGES], images)


@contextmanager
def untouched(*models):
    """Leaves every non-trainable variable of ``models`` (BatchNormalization statistics,
    the seed-generator states of random layers) and Python's, NumPy's and Keras's global
    random states as they were before the block: a call in training mode, or of a layer
    that draws at inference, moves them, and the execution that follows must not see it."""
    from keras.src.backend.common import global_state

    saved = [(variable, keras.ops.convert_to_numpy(variable))
             for model in models for variable in model.non_trainable_variables]
    generator = global_state.get_global_attribute("global_seed_generator")
    if generator is not None:
        saved.append((generator.state, keras.ops.convert_to_numpy(generator.state)))
    python, numpy = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)
        if generator is None:
            # Made by an unseeded keras.random draw inside the block: Keras makes it again
            # at the next such draw, as it would have.
            global_state.set_global_attribute("global_seed_generator", None)
        random.setstate(python)
        np.random.set_state(numpy)


def _outputs(model, images, *, training: bool) -> list[np.ndarray]:
    """``model``'s outputs on ``images`` as NumPy arrays, flattened."""
    return [keras.ops.convert_to_numpy(o)
            for o in keras.tree.flatten(model(images, training=training))]


def _alike(a: list[np.ndarray], b: list[np.ndarray], *, exact: bool = False) -> bool:
    # The same operations on the same values give the same bits on one device; the
    # tolerance between two models is only for a backend that picks another kernel for
    # another model.
    if exact:
        return len(a) == len(b) and all(np.array_equal(x, y, equal_nan=True)
                                        for x, y in zip(a, b))
    return len(a) == len(b) and all(
        x.shape == y.shape and np.allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True)
        for x, y in zip(a, b))


def _gradients(model, images) -> list[np.ndarray]:
    """The gradients, in training mode, of a fixed weighted sum of ``model``'s outputs
    with respect to its trainable variables: what a training step follows, whatever its
    loss, since any loss reaches the variables through the outputs. Weights that differ
    per output element keep a gradient hidden from a plain sum (a softmax's sums to 1)."""
    backend = keras.backend.backend()
    variables = model.trainable_variables

    def weighted(outputs):
        total = 0.0
        for output in keras.tree.flatten(outputs):
            count = int(np.prod(output.shape))
            weights = keras.ops.convert_to_tensor(
                np.linspace(-1.0, 2.0, count, dtype="float32").reshape(output.shape))
            total = total + keras.ops.sum(keras.ops.multiply(keras.ops.cast(output, "float32"),
                                                             weights))
        return total

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            total = weighted(model(images, training=True))
        gradients = tape.gradient(total, variables)
    elif backend == "jax":
        import jax

        others = [v.value for v in model.non_trainable_variables]

        def call(values):
            outputs, _ = model.stateless_call(values, others, images, training=True)
            return weighted(outputs)

        gradients = jax.grad(call)([v.value for v in variables])
    else:  # torch: the suite refuses the other backends before a model is built
        import torch

        total = weighted(model(images, training=True))
        gradients = torch.autograd.grad(total, [v.value for v in variables],
                                        allow_unused=True)
    return [np.zeros(tuple(v.shape), "float32") if g is None
            else keras.ops.convert_to_numpy(keras.ops.cast(g, "float32"))
            for v, g in zip(variables, gradients)]


def same_function(first, second, images) -> bool:
    """Whether two models with equal variables (seed-generator states included) give the
    same outputs on ``images``, in inference and in training mode, and the same gradients
    in training mode (a ``stop_gradient`` or a gradient scale closed over in a hook
    changes only those). A model that draws from Python's, NumPy's or Keras's global
    random state in its call does not: its function is not fixed by its variables. Both
    models are left as they were."""
    with untouched(first, second):
        if not all(_alike(_outputs(first, images, training=training),
                          _outputs(second, images, training=training))
                   for training in (False, True)):
            return False
    with untouched(first, second):
        return _alike(_gradients(first, images), _gradients(second, images))


def changes_at_inference(model, images) -> bool:
    """Whether an inference call of ``model`` on ``images`` moves any of its
    non-trainable variables (the seed-generator state of a layer that draws at inference,
    as Monte-Carlo dropout does, however rarely it drops; any state a layer updates when
    called), gives other outputs a second time (NumPy or TensorFlow randomness), or gives
    the first image another output alone than beside the others (a layer that reads the
    whole batch, such as one that subtracts the batch mean): then its validation numbers
    depend on how many calls validation makes, or on which images share a call, i.e. on
    its batch size. The model is left as it was."""
    with untouched(model):
        state = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
        first = _outputs(model, images, training=False)
        moved = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
        if (not _alike(state, moved, exact=True)
                or not _alike(first, _outputs(model, images, training=False), exact=True)):
            return True
        alone = _outputs(model, keras.tree.map_structure(lambda a: a[:1], images),
                         training=False)
        # Not exact: a backend may pick another kernel for another batch size.
        return not _alike([o[:1] for o in first], alone)


def changing_layer(model, images) -> list | None:
    """The first layer of ``model`` (in its graph's order) whose output on the model's
    inputs changes at inference (``changes_at_inference``), for a model that does; found
    by bisection over the graph's first layers taken together (a layer on another
    branch after it does not change, so a cut at one layer would mislead it). Where that
    layer is a functional model itself (a backbone), the search goes on inside it, on
    what reaches it. Returns the path, outermost first (``[backbone, its layer]``); None
    where none is found, or ``model`` is no functional model to cut at a layer."""
    try:
        # Keras's graph of this model, inputs first: a layer called in other models too
        # (a kept backbone) has other nodes there, so its ``output`` may not be this one.
        depths = model._nodes_by_depth  # noqa: SLF001 (no public way to cut at a node)
        nodes = [node for depth in sorted(depths, reverse=True) for node in depths[depth]
                 if not isinstance(node.operation, keras.layers.InputLayer)]

        def changes(count: int) -> bool:
            """Whether any of the first ``count`` layers' outputs changes."""
            outputs = [tensor for node in nodes[:count] for tensor in node.output_tensors]
            return changes_at_inference(keras.Model(model.input, outputs), images)

        low, high = 1, len(nodes)  # the first ``high`` layers change: the whole model
        while low < high:
            middle = (low + high) // 2
            if changes(middle):
                high = middle
            else:
                low = middle + 1
        if not nodes or (high == len(nodes) and not changes(high)):
            return None
    except Exception:  # noqa: BLE001 (naming the layer is a courtesy; the note stands)
        return None
    node = nodes[high - 1]
    return [node.operation, *(_inside(model, node, images) or [])]


def _inside(model, node, images) -> list | None:
    """The changing layer inside the functional model ``node`` calls, on the values that
    reach it from ``images`` (the layers before it do not change); None where it is none
    or none is found."""
    # A Sequential keeps its graph in a functional model of its own.
    inner = getattr(node.operation, "_functional", None) or node.operation
    if not hasattr(inner, "_nodes_by_depth"):
        return None
    try:
        given = node.input_tensors
        reach = keras.Model(model.input, given[0] if len(given) == 1 else given)
        with untouched(model):
            values = reach(images, training=False)
    except Exception:  # noqa: BLE001 (as above: only a detail of the note)
        return None
    return changing_layer(inner, values)
