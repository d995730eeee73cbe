"""--precision mixed_bfloat16: layers compute in bfloat16 over float32 weights, and the
paths that stay on change no number (the ones that could are off, and the run says so)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import IMAGE_SIZE
from test_cli import run_bench
from test_resident import EVERY_DEPTH_DEFAULT_HEAD


def _builder(precision):
    from bench.models.backbones import BACKBONES
    from bench.space import default_spaces_dir, load_space
    from bench.tuning.hypermodel import FineTuneHyperModel, ModelInputs

    space = load_space("seed", default_spaces_dir())
    return FineTuneHyperModel(space, ModelInputs(
        backbone=BACKBONES["resnet-mini"], image_size=IMAGE_SIZE, num_classes=5,
        num_blocks=4, precision=precision))


def _hp(builder):
    import keras_tuner

    from bench.plan import fix_hyperparameter

    hp = keras_tuner.HyperParameters()
    builder.declare_hyperparameters(hp)
    return fix_hyperparameter(hp, "init", "random")


def _layers(model):
    for layer in model.layers:
        yield from _layers(layer) if getattr(layer, "layers", None) else [layer]


def test_mixed_precision_computes_in_bfloat16_over_float32_weights(digits):
    import keras

    plain, mixed = _builder("float32"), _builder("mixed_bfloat16")
    single = plain.build_parts(_hp(plain)).model
    half = mixed.build_parts(_hp(mixed)).model
    assert keras.config.dtype_policy().name == "float32"  # not left set after the build
    convolutions = [layer for layer in _layers(half) if isinstance(layer, keras.layers.Conv2D)]
    assert len(convolutions) > 4
    assert {layer.compute_dtype for layer in convolutions} == {"bfloat16"}
    assert {v.dtype for v in half.variables} == {"float32"}  # weights and statistics
    assert {layer.compute_dtype for layer in _layers(single)} == {"float32"}
    # The softmax head computes in float32 under both (Keras's advice for mixed precision).
    assert half.get_layer("head_dense").compute_dtype == "float32"
    assert [layer.name for layer in _layers(half)] == [layer.name for layer in _layers(single)]
    # A second path: the float32 model with the same weights. bfloat16 keeps 8 bits of
    # mantissa, so the probabilities agree to about 1e-2, not to float32's 1e-6.
    half.set_weights(single.get_weights())
    images = digits.validation.images[:16]
    p_single = single.predict(images, verbose=0)
    p_half = half.predict(images, verbose=0)
    assert p_half.dtype == np.float32
    np.testing.assert_allclose(p_half, p_single, atol=0.05)
    assert np.abs(p_half - p_single).max() > 1e-5
    np.testing.assert_allclose(p_half.sum(axis=1), 1.0, atol=1e-5)


def test_a_head_computing_in_bfloat16_hands_the_loss_float32():
    import keras

    from bench.models.backbones import BACKBONES
    from bench.models.model import assemble
    from bench.models.precision import dtype_policy

    def bfloat16_head(features, *, num_classes):
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        return keras.layers.Dense(num_classes, activation="softmax")(pooled)

    with dtype_policy("mixed_bfloat16"):
        parts = assemble(BACKBONES["resnet-mini"], image_size=IMAGE_SIZE, num_classes=5,
                         init="random", head=bfloat16_head)
    assert parts.model.output.dtype == "float32"
    assert parts.head_layers[-1].name == "head_output_float32"
    assert parts.head_layers[-2].compute_dtype == "bfloat16"


def test_the_probability_check_takes_a_bfloat16_softmax_and_refuses_logits(digits):
    """A head of one's own ending in a bfloat16 softmax sums to 1 within a few
    thousandths, not float32's 1e-3; the pre-flight check must take it, and still
    refuse a head without a softmax."""
    import keras

    from bench.models.backbones import BACKBONES
    from bench.models.model import assemble
    from bench.models.precision import dtype_policy
    from bench.space import SearchSpace
    from bench.tuning.preflight import check_probabilities

    class Custom(SearchSpace):
        name = "custom"

    def head(activation):
        def build(features, *, num_classes):
            pooled = keras.layers.GlobalAveragePooling2D()(features)
            return keras.layers.Dense(num_classes, activation=activation)(pooled)
        return build

    images = digits.validation.images[:64]
    for activation in ("softmax", None):
        keras.utils.set_random_seed(3)
        with dtype_policy("mixed_bfloat16"):
            parts = assemble(BACKBONES["resnet-mini"], image_size=IMAGE_SIZE,
                             num_classes=5, init="random", head=head(activation))
        parts.model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        if activation is None:
            with pytest.raises(Exception, match="returns logits, not probabilities"):
                check_probabilities(Custom(), parts.model, images, num_classes=5)
            continue
        sums = parts.model.predict(images, verbose=0).sum(axis=1)
        assert np.abs(sums - 1).max() > 1e-3  # what float32's tolerance would refuse
        check_probabilities(Custom(), parts.model, images, num_classes=5)


def test_an_unknown_precision_is_one_line_and_exit_2():
    result = run_bench("run", "--precision", "mixed_float16")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--precision must be one of float32, mixed_bfloat16" in result.stderr
    assert "loss scaling" in result.stderr




@pytest.mark.slow
def test_a_mixed_precision_jax_study_keeps_only_the_paths_that_change_no_number(tmp_path):
    """On JAX a bfloat16 layer's result depends on the batch it runs in: the prefix cache
    and large evaluation batches moved validation accuracies by an image or two when this
    was written, so under mixed precision they are off. What stays on (compiled-model
    reuse, kept states, data on the device, repeats trained together) is checked here
    against the plainest run: no reuse, no cache, evaluation at the training batch size."""
    pytest.importorskip("jax")
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "mixed.py").write_text(EVERY_DEPTH_DEFAULT_HEAD)
    env = dict(os.environ, KERAS_BACKEND="jax", FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    plainest = ["--no-reuse", "--no-prefix-cache", "--no-device-data",
                "--evaluation-batch-size", "32"]
    runs = {}
    for name, extra in (("default", []), ("plainest", plainest),
                        ("together", ["--train-together"])):
        result = run_bench("run", "--space", "mixed", "--spaces-dir", str(spaces),
                           "--image-size", "16", "--pretrain-epochs", "2", "--results-dir",
                           str(tmp_path), "--name", name, "--precision", "mixed_bfloat16",
                           *extra, env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        runs[name] = tmp_path / name
        if name == "default":
            assert "precision mixed_bfloat16 (bfloat16 compute, float32 weights)" in result.stdout
    records = {name: json.loads((path / "run.json").read_text()) for name, path in runs.items()}
    note = ("precision mixed_bfloat16: the frozen-prefix cache is off and validation and "
            "test run at the training batch size (32)")
    assert any(n.startswith(note) for n in records["default"]["notes"])
    report = (runs["default"] / "report.md").read_text()
    assert note in report and "precision `mixed_bfloat16`" in report
    assert "prefix_cache" not in records["default"]
    assert records["default"]["evaluation"] == {"larger_batches": 0, "larger_tests_only": 0}
    assert "Fast paths that round otherwise" not in report
    assert records["default"]["models"]["states_reused"] > 0
    assert records["default"]["device_data"] is True
    assert records["together"]["together"] == {"trials": 6, "retried_alone": 0}
    assert records["default"]["arguments"]["precision"] == "mixed_bfloat16"
    tables = {name: pd.read_csv(path / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
              for name, path in runs.items()}
    assert len(tables["default"]) == 6 * 2 * 2
    for name in ("default", "together"):
        pd.testing.assert_frame_equal(tables[name], tables["plainest"], check_exact=True)
        pd.testing.assert_series_equal(
            pd.read_csv(runs[name] / "trials.csv")["test_accuracy"],
            pd.read_csv(runs["plainest"] / "trials.csv")["test_accuracy"], check_exact=True)


def test_a_report_says_its_precision(tiny_run):
    assert "precision `float32`" in (tiny_run / "report.md").read_text()
