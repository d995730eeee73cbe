"""Random draws whose state is not the model's.

``tf.random.normal`` and its kin, ``tf.image.random_*`` and ``tf.random.Generator`` draw
from a state kept in the traced step (or in a variable no model lists), and so does
``keras.random`` called without a seed (Keras's global ``SeedGenerator``, which a traced
step keeps after ``set_random_seed`` has made a new one). A reused compiled model cannot
be given the state a fresh build would start from: its draws would go on from the
executions before, so a graph holding such a draw is never reused. Keras's own
randomness with a seed (``keras.random`` with a ``SeedGenerator`` of the layer, its
random layers) is stateless ops seeded from a variable of the model, which reuse
restores; it is not listed here.
"""

from __future__ import annotations

import contextlib
import random
import re
from dataclasses import dataclass

#: TensorFlow's stateful ops that draw random numbers (from its op registry).
STATEFUL_RANDOM = frozenset({
    "AllCandidateSampler", "AnonymousRandomSeedGenerator", "FixedUnigramCandidateSampler",
    "LearnedUnigramCandidateSampler", "LogUniformCandidateSampler", "Multinomial",
    "ParameterizedTruncatedNormal", "RandomCrop", "RandomGamma", "RandomPoisson",
    "RandomPoissonV2", "RandomShuffle", "RandomStandardNormal", "RandomUniform",
    "RandomUniformInt", "RngReadAndSkip", "RngSkip", "SampleDistortedBoundingBox",
    "SampleDistortedBoundingBoxV2", "StatefulRandomBinomial", "StatefulStandardNormal",
    "StatefulStandardNormalV2", "StatefulTruncatedNormal", "StatefulUniform",
    "StatefulUniformFullInt", "StatefulUniformInt", "ThreadUnsafeUnigramCandidateSampler",
    "TruncatedNormal", "UniformCandidateSampler",
})


UNSEEDED_KERAS = "keras.random without a seed (Keras's global SeedGenerator)"


def stateful_random_ops(model) -> list[str]:
    """The stateful TensorFlow random ops in ``model``'s forward pass, training and
    inference, as "OpType in layer name", and ``UNSEEDED_KERAS`` where the pass draws
    from Keras's global seed generator; empty on another backend (JAX refuses unseeded
    draws in a traced step; torch runs eagerly). Traces the pass once and runs nothing,
    so no state changes."""
    import keras

    if keras.backend.backend() != "tensorflow" or not getattr(model, "inputs", None):
        return []
    import tensorflow as tf

    specs = [tf.TensorSpec(tuple(tensor.shape), tensor.dtype) for tensor in model.inputs]
    inputs = (lambda xs: xs[0]) if len(specs) == 1 else list

    def both_modes(*xs):
        return model(inputs(xs), training=True), model(inputs(xs), training=False)

    with _global_seed_generator_watched() as watch:
        graph = tf.function(both_modes).get_concrete_function(*specs).graph.as_graph_def()
    nodes = [*graph.node, *(node for function in graph.library.function
                            for node in function.node_def)]
    layers = {layer.name for layer in model._flatten_layers(include_self=False)}
    found = sorted({f"{node.op} in layer {_layer_of(node.name, layers)}" for node in nodes
                    if node.op in STATEFUL_RANDOM})
    return found + ([UNSEEDED_KERAS] if watch.used else [])


@dataclass
class _Watch:
    used: bool = False


@contextlib.contextmanager
def _global_seed_generator_watched():
    """Yields a ``_Watch`` whose ``used`` says, after the block, whether Keras's global
    seed generator was asked for inside it; the one in place before is put back."""
    watch = _Watch()
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    except ImportError:  # another Keras layout: nothing to watch
        yield watch
        return
    before = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, None)
    # A generator made here seeds itself from Python's random module: the draw is put
    # back, so the step that trains makes the generator a fresh build would.
    python_state = random.getstate()
    try:
        yield watch
    finally:
        watch.used = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR) is not None
        global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, before)
        random.setstate(python_state)


def _layer_of(op_name: str, layers: set[str]) -> str:
    """The layer an op's name scope names ("model_1/noise_1/random_normal/Op" -> "noise";
    TensorFlow numbers a scope entered twice), else its scope."""
    scopes = op_name.split("/")[1:-1]
    for scope in scopes:
        for name in (scope, re.sub(r"_\d+$", "", scope)):
            if name in layers:
                return name
    return "/".join(scopes) or op_name
