"""Accuracy against the number of frozen blocks: the transferability curve of Yosinski et al."""

from bench.space import SearchSpace, SpaceSettings


class FrozenDepth(SearchSpace):
    description = "every cut point of the backbone x both inits, head learning rate fixed"
    version = 1
    settings = SpaceSettings(epochs=8, repeats=3, head_lr=3e-3)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Int("frozen_blocks", 0, num_blocks)
