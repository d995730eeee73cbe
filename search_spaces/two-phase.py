"""Train the head on a frozen backbone, then unfreeze the top blocks at a lower learning rate.

The Keras transfer-learning guide's recipe, and linear-probe-then-fine-tune (Kumar et al.
2022). The epoch axis runs on across both phases; epochs.csv records the phase.
"""

from bench.models.optim import make_optimizer
from bench.space import SearchSpace, SpaceSettings


class TwoPhase(SearchSpace):
    description = "head first on a frozen backbone, then the top blocks at a lower rate"
    version = 1
    settings = SpaceSettings(epochs=8, repeats=3, init="pretrained", head_lr=1e-2)
    extra_hyperparameters = ("unfrozen_blocks", "phase2_lr")
    epoch_columns = ("phase",)
    min_epochs = 2

    def declare(self, hp, *, num_blocks):
        hp.Fixed("frozen_blocks", num_blocks)  # phase 1; epochs.csv's frozen_layers tells
        hp.Int("unfrozen_blocks", 1, num_blocks)
        hp.Float("phase2_lr", 1e-4, 1e-2, sampling="log", step=10)

    def fit(self, parts, *, hp, run):
        head_epochs = run.epochs // 2
        # Phase 1: the whole backbone frozen (frozen_blocks), only the new head learns.
        run.recorder.set(phase=1)
        first = run.fit(parts.model, epochs=head_epochs)
        # Phase 2: unfreeze the top blocks; their BatchNormalization stays in inference
        # mode, as the Keras guide advises, so the small target batches do not overwrite
        # the source statistics. A changed trainable set needs a new compile.
        parts.freeze(len(parts.blocks) - int(hp.get("unfrozen_blocks")), freeze_batchnorm=True)
        # The trial's optimizer and body_lr_scale, as the first compile had them.
        name, options = self.optimizer(hp)
        parts.model.compile(
            optimizer=make_optimizer(name, learning_rate=float(hp.get("phase2_lr")),
                                     body_variables=parts.body_variables,
                                     body_lr_scale=self.value(hp, "body_lr_scale"),
                                     **options),
            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        run.recorder.set(phase=2)
        second = run.fit(parts.model, epochs=run.epochs, initial_epoch=head_epochs)
        return [first, second]
