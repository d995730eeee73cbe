"""The one model builder: hyperparameter values in, a compiled fine-tuning model out.

KerasTuner calls ``declare_hyperparameters`` when the tuner is constructed and ``build``
for every execution. Both stay cheap: the data is decoded and the source weights are
trained before the tuner exists; ``build`` only assembles and loads what is ready.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import keras_tuner

from bench.errors import BenchError
from bench.models.backbones import BackboneSpec
from bench.models.model import FineTuneModel, assemble
from bench.models.precision import dtype_policy
from bench.space import SearchSpace


@dataclass(frozen=True)
class ModelInputs:
    """What the builder needs besides hyperparameters."""

    backbone: BackboneSpec
    image_size: int
    num_classes: int
    num_blocks: int
    pretrained_weights: str | None = None  # a weights file, or "imagenet"
    precision: str = "float32"  # a Keras dtype policy (bench.models.precision)


def check_body_lr_scale(space: SearchSpace, hp, optimizer, body_variables=(), *,
                        trainable_variables=(), stage: str = "compile()") -> None:
    """Refuses a compiled optimizer whose backbone rate is not the recorded ``body_lr_scale``.

    Only ``bench.models.optim.make_optimizer`` applies the scale, and only to the
    ``body_variables`` it was given; any other optimizer, or a backbone variable it was
    not given, trains at the head's rate, which is right only where the recorded scale is 1.
    A head variable given to it as a body variable trains at the scaled rate while the
    tables record ``head_lr``: refused too.

    Args:
        body_variables: The backbone's trainable variables (``parts.body_variables``).
        trainable_variables: The model's trainable variables; those not in
            ``body_variables`` are the head's.
        stage: What compiled the optimizer, for the message.

    Raises:
        BenchError: naming body_lr_scale, when the scale that runs is not the one recorded.
    """
    recorded = float(space.value(hp, "body_lr_scale"))
    applied = float(getattr(optimizer, "body_lr_scale", 1.0))
    given = getattr(optimizer, "_body_keys", None)
    if given is not None and any(optimizer._var_key(v) not in given for v in body_variables):
        applied = 1.0  # the scale reaches none of the variables it was not given
    body = {id(v) for v in body_variables}
    head = [v for v in trainable_variables if id(v) not in body]
    scaled_head = [v for v in head if given is not None and optimizer._var_key(v) in given]
    if scaled_head and applied != 1.0:
        raise BenchError(
            f"search space {space.name}: its {stage} trains {len(scaled_head)} head "
            f"variable(s) (such as {scaled_head[0].path}) at body_lr_scale {applied:g} x "
            "head_lr, while the tables record head_lr for the head; give make_optimizer "
            "body_variables=parts.body_variables (the backbone's), not the whole model's")
    if applied != recorded:
        raise BenchError(
            f"search space {space.name}: body_lr_scale is {recorded:g} but its {stage} "
            f"trains the backbone at {applied:g} x head_lr; build the optimizer with "
            "bench.models.optim.make_optimizer(..., body_variables=parts.body_variables, "
            "body_lr_scale=self.value(hp, 'body_lr_scale')), or drop compile() and name "
            "the optimizer in settings (optimizer, optimizer_options)")


def check_head_lr(space: SearchSpace, hp, optimizer) -> None:
    """Refuses a space's own ``compile`` whose optimizer trains the head at another rate
    than the ``head_lr`` the tables record (a rate written into ``compile``, say). A
    learning-rate schedule is the space's own design and is not compared.

    Raises:
        BenchError: naming head_lr and both rates.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    if isinstance(inner._learning_rate, keras.optimizers.schedules.LearningRateSchedule) \
            or callable(inner._learning_rate):
        return
    applied = float(keras.ops.convert_to_numpy(inner.learning_rate))
    recorded = float(space.value(hp, "head_lr"))
    if not math.isclose(applied, recorded, rel_tol=1e-6):  # float32 keeps 7 digits
        raise BenchError(
            f"search space {space.name}: head_lr is {recorded:g} but its compile() trains "
            f"at a learning rate of {applied:g}, while the tables record head_lr; build "
            "the optimizer at self.value(hp, 'head_lr') (make_optimizer(..., "
            "learning_rate=float(self.value(hp, 'head_lr')), ...)), or drop compile() and "
            "name the optimizer in settings (optimizer, optimizer_options)")


def check_rates(space: SearchSpace, hp, parts: FineTuneModel) -> None:
    """Refuses a compiled model whose optimizer trains at other rates than the tables
    record: ``check_body_lr_scale`` and ``check_head_lr``."""
    check_body_lr_scale(space, hp, parts.model.optimizer, parts.body_variables,
                        trainable_variables=parts.model.trainable_variables)
    check_head_lr(space, hp, parts.model.optimizer)


class FineTuneHyperModel(keras_tuner.HyperModel):
    """Builds the model a search space describes, with the builder's hyperparameters."""

    def __init__(self, space: SearchSpace, inputs: ModelInputs):
        super().__init__(name=space.name)
        self.space = space
        self.inputs = inputs

    def declare_hyperparameters(self, hp):
        self.space.declare(hp, num_blocks=self.inputs.num_blocks)

    def build_parts(self, hp, *, compile: bool = True) -> FineTuneModel:
        init = self.space.value(hp, "init")
        frozen_blocks = int(self.space.value(hp, "frozen_blocks"))
        if init == "pretrained" and self.inputs.pretrained_weights is None:
            raise BenchError("init 'pretrained' needs source weights, and none were made")
        if init == "pretrained" and self.inputs.pretrained_weights == "imagenet":
            init = "imagenet"  # a dataset without a source task: ImageNet is the source
        with dtype_policy(self.inputs.precision):
            parts = assemble(
                self.inputs.backbone,
                image_size=self.inputs.image_size,
                num_classes=self.inputs.num_classes,
                init=init,
                weights_path=self.inputs.pretrained_weights,
                head=lambda features, num_classes: self._tensor_from(
                    "build_head", self.space.build_head(features, num_classes=num_classes,
                                                        hp=hp)),
                augment=lambda images: self._tensor_from(
                    "augment", self.space.augment(images, hp=hp)),
            )
        parts.freeze(frozen_blocks)
        if compile:
            self.space.compile(parts, hp=hp)
            check_rates(self.space, hp, parts)
        return parts

    def _tensor_from(self, hook: str, returned):
        """What a model-building hook returned, if it is one symbolic tensor: a hook that
        forgets ``return`` gives None, which Keras reports as an unrelated AttributeError."""
        if not isinstance(returned, keras.KerasTensor):
            got = "None (no return statement?)" if returned is None else type(returned).__name__
            raise BenchError(f"search space {self.space.name}: {hook}() returned {got}; it "
                             "returns the symbolic tensor its layers made (return x)")
        return returned

    def build(self, hp) -> keras.Model:
        return self.build_parts(hp).model
