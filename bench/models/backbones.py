"""Backbones by name: how to build each one headless, and how its inputs are preprocessed.

Every backbone is built with its classification top removed (``include_top=False``) and
returns a feature map; the suite adds pooling and the new head. Inputs are uint8 RGB
images cast to float; each backbone's own ``preprocess_input`` runs inside the model, so
no caller can feed [0, 1] pixels to a network that expects [-1, 1].
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from bench.command import command
from bench.errors import BenchError, unknown_name


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone.

    Attributes:
        name: The name used on the command line.
        description: One line for ``list``.
        constructor: ``(input_shape, weights) -> keras.Model`` without a top; ``weights`` is
            None (random) or ``"imagenet"``.
        preprocessing: The ``keras.applications`` module whose ``preprocess_input`` the
            images go through.
        default_image_size: The side the backbone is meant for.
        min_image_size: The smallest side it builds at.
        imagenet: Whether Keras publishes ImageNet weights for it.
        blocks: How many blocks ``find_blocks`` finds in it (checked against a build in
            the tests), so that ``list`` need not build it; None: found by building.
    """

    name: str
    description: str
    constructor: Callable
    preprocessing: str
    default_image_size: int
    min_image_size: int = 32
    imagenet: bool = False
    blocks: int | None = None


def resnet_mini(input_shape: tuple[int, int, int], weights: str | None = None,
                widths: tuple[int, ...] = (16, 32, 64, 128)):
    """A small residual CNN: a stem and one residual block per stage, fast on two CPU cores.

    BatchNormalization uses momentum 0.9 so its moving averages settle within a short
    pretraining (with Keras's default 0.99 they lag behind the weights, and the source
    model scores far below its training accuracy in inference mode).
    """
    import keras
    from keras import layers

    if weights is not None:
        raise BenchError("resnet-mini has no published weights; use init 'pretrained' "
                         "(trained on the dataset's source task) or 'random'")

    def conv_bn(x, filters, kernel, stride, name):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
        return layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)

    inputs = keras.Input(input_shape, name="image")
    x = layers.ReLU(name="stem_relu")(conv_bn(inputs, widths[0], 3, 1, "stem"))
    for stage, width in enumerate(widths, start=1):
        stride = 1 if stage == 1 else 2
        y = layers.ReLU(name=f"stage{stage}_a_relu")(conv_bn(x, width, 3, stride,
                                                             f"stage{stage}_a"))
        y = conv_bn(y, width, 3, 1, f"stage{stage}_b")
        shortcut = x
        if stride != 1 or x.shape[-1] != width:
            shortcut = conv_bn(x, width, 1, stride, f"stage{stage}_shortcut")
        x = layers.Add(name=f"stage{stage}_add")([y, shortcut])
        x = layers.ReLU(name=f"stage{stage}_out")(x)
    return keras.Model(inputs, x, name="resnet_mini")


def _application(class_name: str, **extra) -> Callable:
    def construct(input_shape, weights=None):
        import keras

        cls = getattr(keras.applications, class_name)
        return cls(include_top=False, weights=weights, input_shape=input_shape, **extra)

    construct.__name__ = class_name
    return construct


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("resnet-mini", "small residual CNN (4 stages, 16-128 filters), CPU-friendly",
                     resnet_mini, "resnet_v2", default_image_size=32, min_image_size=16,
                     blocks=4),
        BackboneSpec("resnet50v2", "ResNet50V2 from keras.applications (the seed chapter's)",
                     _application("ResNet50V2"), "resnet_v2", 224, imagenet=True, blocks=16),
        BackboneSpec("resnet50", "ResNet50 from keras.applications",
                     _application("ResNet50"), "resnet", 224, imagenet=True, blocks=16),
        BackboneSpec("mobilenetv2", "MobileNetV2 from keras.applications",
                     _application("MobileNetV2"), "mobilenet_v2", 224, imagenet=True, blocks=10),
        BackboneSpec("mobilenetv3small", "MobileNetV3Small from keras.applications",
                     _application("MobileNetV3Small"), "mobilenet_v3", 224, imagenet=True,
                     blocks=6),
        BackboneSpec("efficientnetb0", "EfficientNetB0 from keras.applications",
                     _application("EfficientNetB0"), "efficientnet", 224, imagenet=True, blocks=9),
    )
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise unknown_name("backbone", name, list(BACKBONES))
    return BACKBONES[name]


def build_backbone(spec: BackboneSpec, *, image_size: int, weights: str | None = None):
    """Builds the headless backbone for square RGB images of side ``image_size``."""
    if image_size < spec.min_image_size:
        raise BenchError(f"{spec.name} needs images of at least {spec.min_image_size} pixels; "
                         f"got --image-size {image_size}")
    return spec.constructor((image_size, image_size, 3), weights)


@functools.cache
def block_count(spec: BackboneSpec, *, image_size: int) -> int:
    """How many blocks (cut points for ``frozen_blocks``) the backbone has."""
    import keras

    from bench.models.blocks import find_blocks

    keras.backend.clear_session()
    return len(find_blocks(build_backbone(spec, image_size=image_size)))


def ensure_imagenet_weights(spec: BackboneSpec, *, image_size: int) -> None:
    """Builds the backbone with ImageNet weights once, so Keras downloads and caches them
    before any trial; offline and without the cached file this is a BenchError naming the
    file and where to put it."""
    import os
    import re

    if not spec.imagenet:
        raise BenchError(f"{spec.name} has no ImageNet weights; use init 'pretrained' or "
                         f"'random', or a backbone that has them (see '{command('list')}')")
    try:
        build_backbone(spec, image_size=image_size, weights="imagenet")
    except BenchError:
        raise
    except Exception as error:  # Keras raises a bare Exception for a failed fetch.
        text = str(error)
        url = re.search(r"https?://\S+?\.h5", text)
        keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"),
                                                               ".keras"))
        if url is None:
            raise BenchError(f"could not load ImageNet weights for {spec.name}: {text}") \
                from None
        name = url.group(0).rsplit("/", 1)[-1]
        raise BenchError(
            f"could not download ImageNet weights for {spec.name} ({name}) from "
            f"{url.group(0)}: no network? Put that file in {keras_home}/models/ and run again, "
            "or use init 'random'") from None
