"""Cut points: where a backbone's graph narrows to one tensor, and freezing by block.

A block ends at the first place after a merge of paths (Add, Concatenate: the end of a
residual block) where a single tensor carries everything forward, extended over the
weightless layers (activations) that follow it. A gating product (Multiply: the
squeeze-excite of MobileNetV3 and EfficientNet) is not a block end, even where the graph
is narrow after it: the block's projection convolution still follows. Layers before the
first merge (the stem) belong to the first block, and layers after the last cut that
hold no merge belong to the last block, so freezing every block freezes the whole
backbone. The cut points are found from the graph, never listed per model, and at each
one the backbone can be split in two (the frozen prefix and the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Merges that scale a tensor by a function of itself, inside a block.
GATING = ("Multiply",)


@dataclass(frozen=True)
class Block:
    """A run of consecutive backbone layers between two cut points."""

    layer_names: tuple[str, ...]

    @property
    def output_layer(self) -> str:
        return self.layer_names[-1]


def _input_layers(layer) -> list:
    parents = []
    for node in layer._inbound_nodes:
        for tensor in node.input_tensors:
            parents.append(tensor._keras_history.operation)
    return parents


def find_blocks(model) -> list[Block]:
    """Splits a functional backbone into blocks at its cut points."""
    import keras

    # operations, not layers: a functional graph can hold plain ops (``x + 3.0``) too.
    layers = [op for op in model.operations if not isinstance(op, keras.layers.InputLayer)]
    position = {id(layer): i for i, layer in enumerate(layers)}
    last_use = [-1] * len(layers)
    is_merge = [False] * len(layers)
    input_last_use = -1
    for i, layer in enumerate(layers):
        parents = _input_layers(layer)
        is_merge[i] = len(parents) > 1 and type(layer).__name__ not in GATING
        for parent in parents:
            if id(parent) in position:
                last_use[position[id(parent)]] = max(last_use[position[id(parent)]], i)
            else:
                input_last_use = max(input_last_use, i)

    # furthest[i]: the last layer that reads any tensor made before layer i.
    furthest = [-1] * len(layers)
    running = input_last_use
    for i in range(len(layers)):
        furthest[i] = running
        running = max(running, last_use[i])

    def is_narrow(i: int) -> bool:
        return furthest[i] <= i

    cuts = []
    merged = False
    i = 0
    while i < len(layers):
        merged = merged or is_merge[i]
        if merged and is_narrow(i) and i < len(layers) - 1:
            while (i + 1 < len(layers) - 1 and not getattr(layers[i + 1], "weights", None)
                   and not is_merge[i + 1] and is_narrow(i + 1)):
                i += 1
            cuts.append(i)
            merged = False
        i += 1
    tail_has_merge = any(is_merge[(cuts[-1] if cuts else -1) + 1:])
    if cuts and not tail_has_merge:
        cuts[-1] = len(layers) - 1
    else:
        cuts.append(len(layers) - 1)

    blocks, start = [], 0
    for cut in cuts:
        blocks.append(Block(tuple(layer.name for layer in layers[start:cut + 1])))
        start = cut + 1
    return blocks


def freeze_blocks(model, blocks: list[Block], frozen_blocks: int, *,
                  freeze_batchnorm: bool = False) -> int:
    """Makes the first ``frozen_blocks`` blocks untrainable and the rest trainable.

    BatchNormalization layers in frozen blocks run in inference mode, because Keras 3
    uses the moving statistics of any BatchNormalization layer whose ``trainable`` is
    False; their statistics stay those the weights were trained with.

    Args:
        freeze_batchnorm: Also freeze the BatchNormalization layers of the trainable
            blocks, as the Keras transfer-learning guide advises when fine-tuning
            pretrained weights on little data.

    Returns:
        The number of backbone layers holding weights that are frozen.
    """
    import keras

    if not 0 <= frozen_blocks <= len(blocks):
        raise ValueError(f"frozen_blocks must be in 0..{len(blocks)}; got {frozen_blocks}")
    frozen = {name for block in blocks[:frozen_blocks] for name in block.layer_names}
    count = 0
    for layer in model.layers:
        batchnorm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = layer.name not in frozen and not (freeze_batchnorm and batchnorm)
        if not layer.trainable and layer.weights:
            count += 1
    return count


def cut_output(model, block: Block):
    """The symbolic output of ``block``: the tensor at its cut point, for splitting."""
    return model.get_layer(block.output_layer).output
