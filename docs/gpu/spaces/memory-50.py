"""README's long-study memory check: a random search over a continuous head learning rate
and two frozen depths, run for 50 trials (1 repeat, 1 epoch) with docs/gpu/check.sh."""

from bench.space import SearchSpace, SpaceSettings


class Memory50(SearchSpace):
    description = "continuous head learning rate x two frozen depths, for a 50-trial memory check"
    version = 1
    settings = SpaceSettings(dataset="digits", backbone="resnet-mini", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Int("frozen_blocks", 0, num_blocks, step=num_blocks)
        hp.Float("head_lr", 1e-4, 1e-1, sampling="log")
