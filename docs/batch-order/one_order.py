"""One batch order in every epoch (the suite's first epoch's), same seeds and initial
weights as paired.py. Usage: python one_order.py N (30 in README.md)."""

import json
import sys

from bench.plan import RunSpec, plan_study
from bench.runner import prepare_inputs
from bench.tuning.batches import epoch_order
from bench.tuning.hypermodel import FineTuneHyperModel
from bench.tuning.seeding import set_seed

plan = plan_study(RunSpec())  # the default study, the cache folder a run uses
data, weights, _ = prepare_inputs(plan.spec, settings=plan.settings, backbone=plan.backbone,
                                  hp=plan.hp, image_size=plan.image_size,
                                  log=lambda *_: None)
hypermodel = FineTuneHyperModel(plan.space, plan.model_inputs(data, weights))
hp = plan.hp.copy()
hp.values.update({"init": "pretrained", "frozen_blocks": 0, "head_lr": 1e-3})
validation = (data.validation.images, data.validation.labels)
x, y = data.train.images, data.train.labels
for seed in range(1, int(sys.argv[1]) + 1):
    set_seed(seed)
    model = hypermodel.build_parts(hp).model
    order = epoch_order(seed, 0, len(x))
    curve = model.fit(x[order], y[order], batch_size=32, shuffle=False, epochs=8,
                      validation_data=validation, verbose=0).history["val_accuracy"]
    print(json.dumps({"seed": seed, "fixed": max(curve), "fixed_final": curve[-1]}),
          flush=True)
