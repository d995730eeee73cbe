"""The recipe of the chapter's PyTorch and MXNet editions (``--preset d2l``).

SGD without momentum and weight decay 0.001; the fine-tuned model trains its new output
layer at 10x the rate of the copied layers, the scratch model trains everything at the
head's rate. The PyTorch edition's 5e-5 body rate is for a loss summed over batches of 128;
with Keras's mean loss that is about 6.4e-3, so the head gets 6.4e-2. Training images get
a random resized crop to 224 and a horizontal flip; test images are resized to 256 and
centre-cropped to 224.
"""

import keras

from bench.models.augment import RandomResizedCrop
from bench.space import SearchSpace, SpaceSettings


class D2LRecipe(SearchSpace):
    description = "hotdog, ResNet at 224: ImageNet fine-tuned (head 10x) vs scratch, SGD"
    version = 2  # 2: weight decay at each variable's own rate (the body's is a tenth)
    settings = SpaceSettings(dataset="hotdog", backbone="resnet50", image_size=256,
                             batch_size=128, epochs=5, repeats=1, head_lr=6.4e-2,
                             optimizer="SGD", optimizer_options=(("weight_decay", 1e-3),))

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["imagenet", "random"])

    def value(self, hp, name):
        # The fine-tuned model's body learns at a tenth of the head's rate; the scratch
        # model trains everything at one rate. epochs.csv records the scale that ran.
        if name == "body_lr_scale":
            return 0.1 if self.value(hp, "init") == "imagenet" else 1.0
        return super().value(hp, name)

    def augment(self, images, *, hp):
        # 224 of 256, and the same proportion at any other --image-size.
        size = round(images.shape[1] * 224 / 256)
        cropped = RandomResizedCrop(size, name="random_resized_crop")(images)
        return keras.layers.RandomFlip("horizontal", name="flip")(cropped)
