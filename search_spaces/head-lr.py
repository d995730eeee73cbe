"""Head learning rate over three decades, body frozen vs fine-tuned at a tenth of the head's
rate (the Dive into Deep Learning recipe trains the output layer at 10x the body's rate)."""

from bench.space import SearchSpace, SpaceSettings


class HeadLearningRate(SearchSpace):
    description = "head learning rate 1e-4..1e-1 x body frozen or fine-tuned at head_lr / 10"
    version = 1
    settings = SpaceSettings(epochs=8, repeats=3, init="pretrained", body_lr_scale=0.1)

    def declare(self, hp, *, num_blocks):
        hp.Float("head_lr", 1e-4, 1e-1, sampling="log", step=10)
        # Two settings of the body: all blocks frozen, or all trainable at head_lr / 10.
        hp.Choice("frozen_blocks", [num_blocks, 0])
