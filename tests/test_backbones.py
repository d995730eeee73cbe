"""Every registered backbone builds headless, its cut points are found, freezing is exact."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from bench.errors import BenchError
from bench.models.backbones import BACKBONES, build_backbone, ensure_imagenet_weights
from bench.models.blocks import find_blocks, freeze_blocks

APPLICATIONS = [name for name, spec in BACKBONES.items() if spec.imagenet]


def test_the_issue_s_backbones_are_registered():
    assert {"resnet50v2", "resnet50", "mobilenetv2", "mobilenetv3small",
            "efficientnetb0"} <= set(APPLICATIONS)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_builds_headless_and_freezes_exactly_at_each_cut_point(name):
    import keras

    keras.backend.clear_session()
    spec = BACKBONES[name]
    backbone = build_backbone(spec, image_size=max(spec.min_image_size, 32))
    # Headless: the output is a feature map, not class scores.
    assert len(backbone.output.shape) == 4
    assert not any(layer.name in ("predictions", "probs") for layer in backbone.layers)
    blocks = find_blocks(backbone)
    assert len(blocks) >= 4
    names = [n for b in blocks for n in b.layer_names]
    assert len(names) == len(set(names))
    for frozen in range(len(blocks) + 1):
        freeze_blocks(backbone, blocks, frozen)
        frozen_names = {n for b in blocks[:frozen] for n in b.layer_names}
        expected = sum(int(np.prod(w.shape)) for layer in backbone.layers
                       if layer.name not in frozen_names for w in layer.trainable_weights)
        actual = sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)
        assert actual == expected
    assert sum(int(np.prod(w.shape)) for w in backbone.trainable_weights) == 0


def test_resnet_mini_has_no_imagenet_weights():
    with pytest.raises(BenchError, match="resnet-mini has no ImageNet weights"):
        ensure_imagenet_weights(BACKBONES["resnet-mini"], image_size=32)


def test_imagenet_weights_offline_name_the_file_and_where_to_put_it(tmp_path):
    code = ("from bench.models.backbones import BACKBONES, ensure_imagenet_weights\n"
            "from bench.errors import BenchError\n"
            "try:\n"
            "    ensure_imagenet_weights(BACKBONES['mobilenetv3small'], image_size=32)\n"
            "except BenchError as e:\n"
            "    print(e)\n")
    # No cached file, and every connection refused at once: a machine without network.
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras"), https_proxy="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", no_proxy="", NO_PROXY="")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    message = result.stdout.strip().splitlines()[-1]
    assert "could not download ImageNet weights for mobilenetv3small" in message
    assert ".h5" in message and str(tmp_path / "keras") + "/models/" in message


#: Block counts found from each graph, pinned: a change in cut finding shows here.
BLOCK_COUNTS = {"resnet-mini": 4, "resnet50v2": 16, "resnet50": 16, "mobilenetv2": 10,
                "mobilenetv3small": 6, "efficientnetb0": 9}

#: keras.applications name their layers by architecture block: conv2_block1_... (ResNets),
#: block_3_... (MobileNetV2), expanded_conv_3_... (MobileNetV3), block2a_... (EfficientNet).
BLOCK_PREFIX = r"^(conv\d_block\d+|block_\d+|expanded_conv(?:_\d+)?|block\d+[a-z])_"


def _name_blocks(names: list[str]) -> list[str | None]:
    """Each layer's architecture block; an unprefixed layer (re_lu_3, multiply_1) belongs
    to the block of the layer before it."""
    import re

    blocks, current = [], None
    for name in names:
        match = re.match(BLOCK_PREFIX, name)
        current = match.group(1) if match else current
        blocks.append(current)
    return blocks


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_block_counts_are_pinned(name):
    import keras

    keras.backend.clear_session()
    spec = BACKBONES[name]
    backbone = build_backbone(spec, image_size=max(spec.min_image_size, 32))
    assert len(find_blocks(backbone)) == BLOCK_COUNTS[name] == spec.blocks  # list shows it


@pytest.mark.parametrize("name", APPLICATIONS)
def test_cuts_fall_on_architecture_block_boundaries(name):
    import keras

    keras.backend.clear_session()
    backbone = build_backbone(BACKBONES[name], image_size=32)
    blocks = find_blocks(backbone)
    names = [n for b in blocks for n in b.layer_names]
    owner = dict(zip(names, _name_blocks(names)))
    for block, following in zip(blocks, blocks[1:]):
        last, first = block.layer_names[-1], following.layer_names[0]
        assert owner[last] != owner[first], f"{name}: the cut after {last} splits {owner[last]}"
