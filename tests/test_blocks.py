"""Freezing by block: which layers train, BatchNormalization in frozen blocks, counts."""

import numpy as np
import pytest

from bench.models.backbones import BACKBONES, build_backbone
from bench.models.blocks import find_blocks, freeze_blocks
from bench.models.model import assemble


@pytest.fixture
def parts(seed):
    return assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=5, init="random")


def test_resnet_mini_has_one_block_per_stage_ending_after_its_merge(parts):
    assert [b.output_layer for b in parts.blocks] == [
        "stage1_out", "stage2_out", "stage3_out", "stage4_out"]
    # The stem belongs to the first block, and every layer belongs to exactly one block.
    assert parts.blocks[0].layer_names[0] == "stem_conv"
    names = [n for b in parts.blocks for n in b.layer_names]
    assert sorted(names) == sorted(layer.name for layer in parts.backbone.layers[1:])


@pytest.mark.parametrize("frozen", [0, 1, 2, 3, 4])
def test_freezing_makes_exactly_the_first_blocks_untrainable(parts, frozen):
    parts.freeze(frozen)
    frozen_names = {n for b in parts.blocks[:frozen] for n in b.layer_names}
    for layer in parts.backbone.layers[1:]:
        assert layer.trainable == (layer.name not in frozen_names), layer.name
    assert all(layer.trainable for layer in parts.head_layers)
    expected = sum(int(np.prod(w.shape)) for layer in parts.backbone.layers
                   if layer.name not in frozen_names for w in layer.trainable_weights)
    expected += sum(int(np.prod(w.shape)) for layer in parts.head_layers for w in layer.weights)
    assert parts.trainable_params == expected
    assert parts.frozen_layers == sum(1 for layer in parts.backbone.layers
                                      if layer.name in frozen_names and layer.weights)


def test_frozen_layers_counts_a_backbone_frozen_the_keras_guides_way(parts):
    # backbone.trainable = False freezes every layer with weights, whatever freeze() did.
    parts.freeze(0)
    assert parts.frozen_layers == 0
    parts.backbone.trainable = False
    try:
        assert parts.frozen_layers == sum(1 for layer in parts.backbone.layers
                                          if layer.weights) > 0
        assert parts.trainable_params == sum(int(np.prod(w.shape)) for layer in
                                             parts.head_layers for w in layer.weights)
    finally:
        parts.backbone.trainable = True


def test_trainable_params_fall_as_blocks_freeze_and_all_frozen_leaves_only_the_head(parts):
    counts = []
    for frozen in range(len(parts.blocks) + 1):
        parts.freeze(frozen)
        counts.append(parts.trainable_params)
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts)
    head = sum(int(np.prod(w.shape)) for layer in parts.head_layers for w in layer.weights)
    assert counts[-1] == head == 128 * 5 + 5


def test_frozen_batchnorm_runs_in_inference_mode_even_when_training(parts):
    import keras

    parts.freeze(1)
    images = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3)).astype("float32")
    frozen_bn = parts.backbone.get_layer("stem_bn")
    live_bn = parts.backbone.get_layer("stage4_b_bn")
    before_frozen = keras.ops.convert_to_numpy(frozen_bn.moving_mean).copy()
    before_live = keras.ops.convert_to_numpy(live_bn.moving_mean).copy()
    parts.model(images, training=True)
    # Keras 3 only updates moving statistics of BN layers that are trainable; in eager
    # mode the call above updates them in place for the live layer.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen_bn.moving_mean),
                                  before_frozen)
    assert not np.allclose(keras.ops.convert_to_numpy(live_bn.moving_mean), before_live)
    features = np.random.default_rng(1).normal(size=(4, 16, 16, 16)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(frozen_bn(features, training=True)),
        keras.ops.convert_to_numpy(frozen_bn(features, training=False)), rtol=1e-6)
    wide = np.random.default_rng(2).normal(3.0, 2.0, size=(4, 2, 2, 128)).astype("float32")
    assert not np.allclose(keras.ops.convert_to_numpy(live_bn(wide, training=True)),
                           keras.ops.convert_to_numpy(live_bn(wide, training=False)))


def test_freeze_rejects_a_depth_outside_the_backbone(parts):
    with pytest.raises(ValueError, match="frozen_blocks must be in 0..4"):
        freeze_blocks(parts.backbone, parts.blocks, 5)


def test_resnet50v2_cut_points_are_its_residual_block_outputs():
    backbone = build_backbone(BACKBONES["resnet50v2"], image_size=32)
    blocks = find_blocks(backbone)
    assert len(blocks) == 16  # 3 + 4 + 6 + 3 residual blocks
    assert blocks[0].output_layer == "conv2_block1_out"
    assert blocks[-1].output_layer == "post_relu"  # the tail belongs to the last block
