"""Every fast path changes no number: the same study with and without it, compared."""

import numpy as np
import pandas as pd
from conftest import IMAGE_SIZE

from bench.results import RunDir, read_epochs, read_trials
from bench.runner import RunSpec, run_study

METRICS = ["loss", "accuracy", "val_loss", "val_accuracy"]


def test_evaluation_batch_size_changes_no_number(tmp_path, tiny_spaces_dir, cache_dir):
    runs = {}
    for size in (32, 512):
        spec = RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE,
                       pretrain_epochs=3, results_dir=tmp_path, name=f"eval{size}",
                       cache_dir=cache_dir, evaluation_batch_size=size)
        runs[size] = RunDir(run_study(spec, log=lambda *_: None))
    small, large = (read_epochs(runs[s]) for s in (32, 512))
    assert len(small) == len(large) == 2 * 2 * 2
    np.testing.assert_allclose(large[METRICS], small[METRICS], rtol=0, atol=1e-5)
    # Training does not see the evaluation batch at all: bit-identical.
    pd.testing.assert_frame_equal(large[["loss", "accuracy"]], small[["loss", "accuracy"]])
    np.testing.assert_allclose(read_trials(runs[512])["test_accuracy"],
                               read_trials(runs[32])["test_accuracy"], rtol=0, atol=1e-6)
