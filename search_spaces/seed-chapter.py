"""The seed chapter's TensorFlow experiment (``--preset seed``), without its three bugs.

The chapter compared ResNet50V2 frozen with a new Dense(2) head against the "same model
from random initialisation", trained for 3 epochs of 10 steps of batch 32. Here the random
model is really random, the top is removed, inputs go through ResNetV2's own
preprocessing, and both inits run frozen and fully trainable, with 10-step and full
epochs.
"""

from bench.space import SearchSpace, SpaceSettings


class SeedChapter(SearchSpace):
    description = ("hotdog, ResNet50V2: ImageNet vs random x frozen or trainable x 10-step or "
                   "full epochs")
    version = 1
    settings = SpaceSettings(dataset="hotdog", backbone="resnet50v2", image_size=224,
                             batch_size=32, epochs=3, repeats=1, head_lr=1e-3)
    extra_hyperparameters = ("steps_per_epoch",)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["imagenet", "random"])
        hp.Choice("frozen_blocks", [num_blocks, 0])
        hp.Choice("steps_per_epoch", [10, 0])  # 0: the whole training split each epoch

    def fit(self, parts, *, hp, run):
        steps = int(hp.get("steps_per_epoch")) or None
        return [run.fit(parts.model, epochs=run.epochs, steps_per_epoch=steps)]
