"""Paired by seed: the suite's batch order (a new one each epoch, from the seed) against
Keras's own shuffle after the same seeding, same initial weights, one configuration of the
default study. Usage: python paired.py N DEPTH HEAD_LR (30 0 0.001 in README.md)."""

import json
import sys

import numpy as np
from scipy import stats

from bench.plan import RunSpec, plan_study
from bench.runner import prepare_inputs
from bench.tuning.batches import seeded_fit_arguments
from bench.tuning.hypermodel import FineTuneHyperModel
from bench.tuning.seeding import set_seed

n, depth, lr = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
plan = plan_study(RunSpec())  # the default study, the cache folder a run uses
data, weights, _ = prepare_inputs(plan.spec, settings=plan.settings, backbone=plan.backbone,
                                  hp=plan.hp, image_size=plan.image_size, log=print)
hypermodel = FineTuneHyperModel(plan.space, plan.model_inputs(data, weights))
hp = plan.hp.copy()
hp.values.update({"init": "pretrained", "frozen_blocks": depth, "head_lr": lr})
validation = (data.validation.images, data.validation.labels)
rows = []
for seed in range(1, n + 1):
    row = {"seed": seed}
    for arm in ("suite", "keras"):
        set_seed(seed)
        model = hypermodel.build_parts(hp).model
        if arm == "suite":
            kwargs, callbacks = seeded_fit_arguments(data.train, seed=seed, batch_size=32,
                                                     epochs=8)
        else:
            kwargs = {"x": data.train.images, "y": data.train.labels, "batch_size": 32,
                      "shuffle": True}
            callbacks = []
        curve = model.fit(**kwargs, callbacks=callbacks, epochs=8, validation_data=validation,
                          verbose=0).history["val_accuracy"]
        row[arm], row[arm + "_final"] = max(curve), curve[-1]
    rows.append(row)
    print(json.dumps(row), flush=True)
difference = np.array([r["suite"] - r["keras"] for r in rows])
print("mean suite", np.mean([r["suite"] for r in rows]),
      "keras", np.mean([r["keras"] for r in rows]))
print("paired diff", difference.mean(), "sd", difference.std(ddof=1),
      stats.ttest_1samp(difference, 0))
