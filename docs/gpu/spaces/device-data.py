"""The device-data check (docs/gpu/check.sh, step device-data): pretrained ResNet50V2
frozen halfway and whole, one head rate, run with and without --no-device-data. Its
epochs train on the frozen-prefix cache's float32 features, the data whose per-batch copy
to the device the suite now avoids."""

from bench.space import SearchSpace, SpaceSettings


class DeviceData(SearchSpace):
    description = "pretrained, frozen halfway and whole, one head rate: device-data A/B"
    version = 1
    settings = SpaceSettings(dataset="shapes", backbone="resnet50v2", epochs=5, repeats=3,
                             head_lr=1e-3)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained"])
        hp.Choice("frozen_blocks", [num_blocks // 2, num_blocks])
