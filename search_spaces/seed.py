"""The seed chapter's study: does pretraining help, how much to freeze, how fast the head learns."""

import math

from bench.space import SearchSpace, SpaceSettings


class Seed(SearchSpace):
    description = "pretrained vs random init x frozen blocks x head learning rate (the seed study)"
    version = 2
    settings = SpaceSettings(dataset="digits", backbone="resnet-mini", epochs=8, repeats=5)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        # Three depths: all trainable, half the blocks frozen, the whole backbone frozen.
        hp.Int("frozen_blocks", 0, num_blocks, step=max(1, math.ceil(num_blocks / 2)))
        hp.Float("head_lr", 1e-3, 1e-2, sampling="log", step=10)
