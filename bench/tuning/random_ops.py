"""TensorFlow random ops whose state is not the model's.

``tf.random.normal`` and its kin, ``tf.image.random_*`` and ``tf.random.Generator`` draw
from a state kept in the traced step (or in a variable no model lists). A reused compiled
model cannot be given the state a fresh build would start from: its draws would go on
from the executions before, so a graph holding such an op is never reused. Keras's own
randomness (``keras.random`` with a ``SeedGenerator``, its random layers) is stateless
ops seeded from a variable of the model, which reuse restores; it is not listed here.
"""

from __future__ import annotations

import re

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


def stateful_random_ops(model) -> list[str]:
    """The stateful TensorFlow random ops in ``model``'s forward pass, training and
    inference, as "OpType in layer name"; empty on another backend, where they cannot run
    in a compiled step. Traces the pass once and runs nothing, so no state changes."""
    import keras

    if keras.backend.backend() != "tensorflow" or not getattr(model, "inputs", None):
        return []
    import tensorflow as tf

    specs = [tf.TensorSpec(tuple(tensor.shape), tensor.dtype) for tensor in model.inputs]
    inputs = (lambda xs: xs[0]) if len(specs) == 1 else list

    def both_modes(*xs):
        return model(inputs(xs), training=True), model(inputs(xs), training=False)

    graph = tf.function(both_modes).get_concrete_function(*specs).graph.as_graph_def()
    nodes = [*graph.node, *(node for function in graph.library.function
                            for node in function.node_def)]
    layers = {layer.name for layer in model._flatten_layers(include_self=False)}
    return sorted({f"{node.op} in layer {_layer_of(node.name, layers)}" for node in nodes
                   if node.op in STATEFUL_RANDOM})


def _layer_of(op_name: str, layers: set[str]) -> str:
    """The layer an op's name scope names ("model_1/noise_1/random_normal/Op" -> "noise";
    TensorFlow numbers a scope entered twice), else its scope."""
    scopes = op_name.split("/")[1:-1]
    for scope in scopes:
        for name in (scope, re.sub(r"_\d+$", "", scope)):
            if name in layers:
                return name
    return "/".join(scopes) or op_name
