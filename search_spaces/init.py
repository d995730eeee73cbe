"""Pretrained vs random initialisation with enough paired repeats for an interval on the gap."""

from bench.space import SearchSpace, SpaceSettings


class Initialisation(SearchSpace):
    description = "pretrained vs random init, 10 paired seeds, everything trainable"
    version = 1
    settings = SpaceSettings(epochs=8, repeats=10, frozen_blocks=0, head_lr=1e-3)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
