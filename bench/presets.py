"""Presets: the seed chapter's experiments, each a search space with fixed settings and the
numbers its source published, which the report shows beside ours."""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import unknown_name


@dataclass(frozen=True)
class Reference:
    source: str
    text: str


@dataclass(frozen=True)
class Preset:
    """Settings a preset fixes; anything given on the command line still wins."""

    name: str
    description: str
    space: str
    references: tuple[Reference, ...]


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "seed",
            "the seed chapter's TensorFlow experiment done right: hotdog, ResNet50V2 at 224, "
            "batch 32, Adam, 3 epochs of 10 steps and of full length, ImageNet vs random",
            "seed-chapter",
            (Reference("Dive into Deep Learning, Fine-tuning, TensorFlow edition",
                       "validation accuracy 0.7875 (pretrained, frozen) vs 0.5125 ('random', "
                       "which was in fact ImageNet-initialised and kept the ImageNet top), 3 "
                       "epochs of 10 steps of batch 32, validated on 320 of the 800 test "
                       "images"),),
        ),
        Preset(
            "d2l",
            "the recipe of the chapter's PyTorch and MXNet editions: hotdog, ResNet at 224, "
            "SGD, weight decay 0.001, head at 10x the body's rate, batch 128, 5 epochs, "
            "random-resized-crop and flip, test resize 256 and centre crop 224",
            "d2l-recipe",
            (Reference("Dive into Deep Learning, Fine-tuning, PyTorch edition (ResNet-18)",
                       "test accuracy fine-tuned 0.940 vs scratch 0.850"),
             Reference("Dive into Deep Learning, Fine-tuning, MXNet edition (ResNet-18)",
                       "test accuracy fine-tuned 0.944 vs scratch 0.860")),
        ),
    )
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise unknown_name("preset", name, list(PRESETS))
    return PRESETS[name]
