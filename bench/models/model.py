"""The fine-tuning model: a copied backbone without its output layer, plus a new head.

Steps 2 and 3 of the recipe: the backbone (randomly initialised, or loaded with source
weights) is kept whole, its first blocks frozen, and a freshly initialised classifier
for the target classes is put on top. Preprocessing runs inside the model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import keras

from bench.errors import BenchError
from bench.models.backbones import BackboneSpec, build_backbone
from bench.models.blocks import Block, find_blocks, freeze_blocks

INITS = ("pretrained", "random", "imagenet")


class Preprocess(keras.layers.Layer):
    """Runs ``keras.applications.<module>.preprocess_input`` on uint8 RGB images."""

    def __init__(self, module: str, **kwargs):
        super().__init__(**kwargs)
        self.module = module
        self._fn = importlib.import_module(f"keras.applications.{module}").preprocess_input

    def call(self, images):
        return self._fn(keras.ops.cast(images, self.compute_dtype))

    def get_config(self):
        return {**super().get_config(), "module": self.module}


@dataclass
class FineTuneModel:
    """A built model and the handles a search space needs to change it.

    Attributes:
        model: images -> class probabilities, uncompiled.
        backbone: The nested headless backbone.
        blocks: Its blocks, first to last.
        head_layers: The layers added on top of the backbone.
    """

    model: object
    backbone: object
    blocks: list[Block]
    head_layers: list

    def freeze(self, frozen_blocks: int, *, freeze_batchnorm: bool = False) -> None:
        """Freezes the first ``frozen_blocks`` backbone blocks; the rest and the head train."""
        freeze_blocks(self.backbone, self.blocks, frozen_blocks,
                      freeze_batchnorm=freeze_batchnorm)

    @property
    def frozen_layers(self) -> int:
        """Backbone layers holding weights that do not train now, however they were frozen
        (``freeze``, or ``backbone.trainable = False`` as the Keras guide does)."""
        if self.backbone is None:  # a bare model handed to the recorder
            return 0
        whole = self.backbone.trainable
        return sum(1 for layer in self.backbone.layers
                   if layer.weights and not (whole and layer.trainable))

    @property
    def trainable_params(self) -> int:
        return sum(_size(w) for w in self.model.trainable_weights)

    @property
    def body_variables(self) -> list:
        return list(self.backbone.trainable_weights)


def _size(weight) -> int:
    size = 1
    for dim in weight.shape:
        size *= int(dim)
    return size


def default_head(features, *, num_classes: int):
    """Global average pooling and a new Dense softmax layer: the seed's new output layer.

    The Dense layer computes in float32 under any precision, as Keras's mixed-precision
    guide advises for the softmax (bfloat16 probabilities are good to 2-3 digits)."""
    pooled = keras.layers.GlobalAveragePooling2D(name="head_pool")(features)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                              name="head_dense")(pooled)


def assemble(spec: BackboneSpec, *, image_size: int, num_classes: int,
             init: str, weights_path: str | None = None,
             head: Callable = default_head, augment: Callable | None = None) -> FineTuneModel:
    """Builds backbone and head.

    Args:
        spec: The backbone.
        image_size: Side of the input images.
        num_classes: Target classes.
        init: "random" (``weights=None``), "pretrained" (load ``weights_path``, the
            backbone trained on the source task) or "imagenet" (Keras's ImageNet weights).
        weights_path: Backbone weights for "pretrained".
        head: ``(features, num_classes=...) -> probabilities``.
        augment: ``images -> images`` applied first (training-time augmentation); the
            backbone is built for the size it returns.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}")
    images = keras.Input((image_size, image_size, 3), name="images")
    x = augment(images) if augment is not None else images
    seen = int(x.shape[1])
    if seen != image_size and seen < spec.min_image_size:
        # Found by a new user: "got --image-size 14" where 16 was given and the crop made 14.
        raise BenchError(f"{spec.name} needs images of at least {spec.min_image_size} "
                         f"pixels, and the space's augment turns --image-size {image_size} "
                         f"into {seen}; use a larger --image-size")
    backbone = build_backbone(spec, image_size=seen,
                              weights="imagenet" if init == "imagenet" else None)
    if init == "pretrained":
        if weights_path is None:
            raise ValueError("init 'pretrained' needs weights_path")
        backbone.load_weights(weights_path)
    blocks = find_blocks(backbone)
    x = Preprocess(spec.preprocessing, name="preprocess")(x)
    features = backbone(x)
    before = {id(layer) for layer in keras.Model(images, features).layers}
    outputs = head(features, num_classes=num_classes)
    if outputs.dtype != "float32":
        # A head computing in bfloat16 (mixed precision): loss and metrics read float32.
        outputs = keras.layers.Activation("linear", dtype="float32",
                                          name="head_output_float32")(outputs)
    model = keras.Model(images, outputs, name=f"{spec.name}_finetune")
    head_layers = [layer for layer in model.layers if id(layer) not in before]
    return FineTuneModel(model=model, backbone=backbone, blocks=blocks, head_layers=head_layers)
