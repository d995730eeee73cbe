"""The arithmetic floor of a study: the multiply-adds it requires, over the device's rate.

Required is less than "every execution runs the whole model every epoch". A frozen block
needs no backward pass, and its output for an image depends only on its weights: it is
computed once per weights and split, through the deepest frozen prefix used with those
weights (a shallower cut's output is on the way). Pretrained weights are one set for the
whole study; random ones are each seed's. What follows the cut trains at three forward
passes' worth per training image (the forward pass, and the backward pass for its
weights' and inputs' gradients), and is evaluated once per epoch on the validation split
and once at the end on the test split. Only convolutions and dense layers are counted
(the work that dominates; a convolution's taps on padding are not), and the rate is a
square matrix product's, so the floor is a bound no implementation beats, not a target,
but for one over-count: the layers that read the cut's output need no input gradient,
which they are charged (about 1% of the default study's work).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


def _taps_in_bounds(size: int, out: int, kernel: int, stride: int, dilation: int,
                    before: int) -> int:
    """(output position, kernel tap) pairs along one axis that read an input pixel, not
    the zero padding ``before`` it (or after it)."""
    return sum(1 for o in range(out) for k in range(kernel)
               if 0 <= o * stride - before + k * dilation < size)


def _input_taps(layer) -> int:
    """Pairs of output position and kernel tap of a 2-D convolution that read an input
    pixel: padding, its own ("same") or a ZeroPadding2D's just before it, is not work a
    convolution requires (found by a new user: charging it overstated resnet-mini's
    floor by 11% at 32 px)."""
    import keras

    taps = 1
    padded = None
    parents = [parent.operation for node in layer._inbound_nodes  # noqa: SLF001
               for parent in node.parent_nodes]
    if len(parents) == 1 and isinstance(parents[0], keras.layers.ZeroPadding2D):
        padded = parents[0].padding  # ((top, bottom), (left, right))
    for axis in (0, 1):
        size, out = layer.input.shape[1 + axis], layer.output.shape[1 + axis]
        kernel, stride = layer.kernel_size[axis], layer.strides[axis]
        dilation = layer.dilation_rate[axis]
        before = (max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0) // 2
                  if layer.padding == "same" else 0)
        if padded is not None:
            start, end = padded[axis]
            size, before = size - start - end, before + start
        taps *= _taps_in_bounds(size, out, kernel, stride, dilation, before)
    return taps


def layer_macs(layer) -> int:
    """Multiply-adds of one image through ``layer``: a convolution (plain, grouped,
    depthwise or separable; taps on padding not counted) or a dense layer; 0 for anything
    else."""
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = layer.kernel.shape  # (height, width, input channels, multiplier)
        return _input_taps(layer) * kernel[2] * kernel[3]
    if isinstance(layer, keras.layers.SeparableConv2D):
        out = layer.output.shape
        depthwise, pointwise = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
        # The depthwise pass runs at the output's stride; the pointwise one per position.
        return (_input_taps(layer) * depthwise[2] * depthwise[3]
                + out[1] * out[2] * pointwise[2] * pointwise[3])
    if isinstance(layer, keras.layers.Conv2D):
        kernel = layer.kernel.shape  # (height, width, input channels / groups, filters)
        return _input_taps(layer) * kernel[2] * kernel[3]
    if isinstance(layer, keras.layers.Dense):
        return layer.kernel.shape[0] * layer.kernel.shape[1]
    return 0


def _all_layers(layers):
    for layer in layers:
        if getattr(layer, "layers", None):
            yield from _all_layers(layer.layers)
        else:
            yield layer


def forward_macs(model) -> int:
    """Multiply-adds of one image's forward pass through ``model``."""
    return int(sum(layer_macs(layer) for layer in _all_layers(model.layers)))


def prefix_macs(parts) -> list[int]:
    """Multiply-adds of one image through the first k backbone blocks, for k = 0..all."""
    by_name = {layer.name: layer for layer in parts.backbone.layers}
    totals = [0]
    for block in parts.blocks:
        layers = [by_name[name] for name in block.layer_names if name in by_name]
        totals.append(totals[-1] + sum(layer_macs(layer) for layer in _all_layers(layers)))
    return totals


@dataclass(frozen=True)
class Execution:
    """What an execution's required arithmetic depends on."""

    init: str
    seed: int
    frozen_blocks: int
    epochs: int


def required_macs(executions: list[Execution], *, model_macs: int, prefix: list[int],
                  train: int, validation: int, test: int) -> int:
    """The multiply-adds ``executions`` require (see the module's docstring).

    Args:
        executions: One per execution.
        model_macs: One image's forward pass through the whole model.
        prefix: One image's forward pass through the first k blocks, for each k.
        train, validation, test: Images in each split.
    """
    deepest: dict[tuple, int] = {}  # the frozen weights -> the deepest cut they serve
    total = 0
    for execution in executions:
        k = execution.frozen_blocks
        weights = (execution.init, execution.seed) if execution.init == "random" \
            else (execution.init,)
        deepest[weights] = max(deepest.get(weights, 0), k)
        rest = model_macs - prefix[k]
        total += rest * (3 * execution.epochs * train + execution.epochs * validation + test)
    return total + sum(prefix[k] for k in deepest.values()) * (train + validation + test)


def matmul_rate(*, size: int = 1024, tries: int = 5, least_seconds: float = 0.2,
                dtype: str = "float32") -> float:
    """Multiply-adds per second of a square matrix product of ``dtype`` here (bfloat16
    for a mixed-precision study): the fastest of ``tries`` timings of a run of products
    long enough (``least_seconds``) that launching them and reading one number back are
    a small part of it."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(size, size)),
                                    dtype=dtype)

    def timed(products: int) -> float:
        started = time.perf_counter()
        for _ in range(products):
            result = keras.ops.matmul(a, a)
        # Waits for every product (as float32: TensorFlow gives no NumPy bfloat16 scalar).
        keras.ops.convert_to_numpy(keras.ops.cast(result[0, 0], "float32"))
        return time.perf_counter() - started

    timed(1)  # warm up
    products = 1
    while timed(products) < least_seconds and products < 2**16:
        products *= 2
    best = min(timed(products) for _ in range(tries))
    return products * size ** 3 / best
