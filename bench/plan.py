"""A study's options resolved and checked: a RunSpec becomes a StudyPlan.

Every name resolves in its registry and every option is checked against the space, the
backbone and the tuner before anything is trained or written, so a mistake costs one line
and exit status 2 (``plan_study``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.data.datasets import (
    DATASETS,
    MAX_IMAGE_SIZE,
    check_image_folder,
    check_options,
    dataset_info,
)
from bench.errors import BenchError
from bench.models.backbones import BackboneSpec, backbone_spec, block_count
from bench.models.precision import check_precision
from bench.space import (
    BUILDER_HYPERPARAMETERS,
    DEFAULT_SPACES_DIR,
    SearchSpace,
    SpaceSettings,
    declared_hyperparameters,
    declared_values,
    default_spaces_dir,
    discover,
    load_space,
    optimizer_choice,
    values_in_use,
)
from bench.tuning.algorithms import check_tuner_name

#: The largest --seed: repeats use seed, seed + 1, ..., and every one must be a valid seed.
MAX_SEED = 2**31 - 1


def default_cache_dir() -> Path:
    """Per-user cache for source weights and decoded images (FINETUNE_BENCH_CACHE overrides)."""
    if "FINETUNE_BENCH_CACHE" in os.environ:
        return Path(os.environ["FINETUNE_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "finetune-bench"


@dataclass(frozen=True)
class RunSpec:
    """Everything a run is asked to do. None means: the search space's own setting."""

    space: str = "seed"
    spaces_dir: Path = field(default_factory=default_spaces_dir)
    dataset: str | None = None
    backbone: str | None = None
    tuner: str | None = None
    max_trials: int | None = None
    max_epochs: int | None = None
    epochs: int | None = None
    repeats: int | None = None
    batch_size: int | None = None
    image_size: int | None = None
    seed: int = 1
    train_per_class: int | None = None
    images_per_class: int | None = None
    pretrain_epochs: int = 15
    results_dir: Path = Path("results")
    name: str | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    reuse_models: bool = True
    tensorboard: bool = False
    data: Path | None = None
    data_dir: Path | None = None
    source_dataset: str | None = None
    preset: str | None = None
    init: str | None = None
    initial_points: int | None = None
    evaluation_batch_size: int = 512
    prefix_cache: bool = True
    cache_memory_mb: int = 2048
    together: bool = False
    device_data: bool = True
    precision: str = "float32"


def _check_positive(**values) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be 1 or more; got {value}")


def _check_source(spec: RunSpec, *, settings: SpaceSettings, backbone: BackboneSpec,
                  hp) -> None:
    """Refuses 'pretrained' with no weights to mean, before any image is decoded."""
    inits, _ = values_in_use(hp, "init", settings)
    if "pretrained" in inits and spec.source_dataset is None and not backbone.imagenet \
            and not dataset_info(settings.dataset).has_source:
        raise no_source_error(settings.dataset, backbone)


def no_source_error(dataset: str, backbone: BackboneSpec) -> BenchError:
    """The mistake of asking for 'pretrained' where neither the dataset's source task nor
    ImageNet weights give the backbone's pretrained weights."""
    return BenchError(
        f"dataset {dataset!r} has no source task to pretrain {backbone.name} on, and it has "
        "no ImageNet weights: name one with --source-dataset (digits, shapes), or train "
        "from random weights only with --init random")


def _check_data_options(spec: RunSpec, *, dataset: str) -> None:
    """Refuses a data option that neither the dataset nor the source dataset reads."""
    datasets = [dataset] + ([spec.source_dataset] if spec.source_dataset is not None else [])
    check_options(datasets, train_per_class=spec.train_per_class,
                  images_per_class=spec.images_per_class, data=spec.data,
                  data_dir=spec.data_dir)


def _changed_from_preset(preset: SpaceSettings, settings: SpaceSettings, *, init,
                         image_size: int) -> str:
    """What the command line changed of a preset's settings, as "dataset digits (the
    preset's hotdog), ..."; "" when nothing that its published numbers depend on."""
    ours = {"dataset": settings.dataset, "backbone": settings.backbone,
            "image size": image_size, "epochs": settings.epochs,
            "batch size": settings.batch_size}
    theirs = {"dataset": preset.dataset, "backbone": preset.backbone,
              "image size": preset.image_size or backbone_spec(preset.backbone)
              .default_image_size, "epochs": preset.epochs, "batch size": preset.batch_size}
    changed = [f"{name} {ours[name]} (the preset's {theirs[name]})" for name in ours
               if ours[name] != theirs[name]]
    if init is not None:
        changed.append(f"init fixed to {init}")
    return ", ".join(changed)


def _init_rules_lost(space: SearchSpace, declared, init: str) -> str:
    """Where ``--init`` fixes a preset to an init it does not run, what the preset's space
    derives from init that this run does not get (the d2l recipe's body at a tenth of the
    head's rate goes with imagenet, not pretrained), as ", which the preset does not run
    (it runs imagenet and random), so body_lr_scale is 1 (...)"; "" when it runs it."""
    inits = declared_values(declared, "init") or []
    if not inits or init in inits:
        return ""
    said = ""
    for name in ("body_lr_scale", "head_lr"):
        theirs = {value: space.value(fix_hyperparameter(declared, "init", value), name)
                  for value in inits}
        ours = space.value(fix_hyperparameter(declared, "init", init), name)
        if len(set(theirs.values())) > 1:
            said += (f", so {name} is {ours:g} (the preset's is "
                     + ", ".join(f"{v:g} with {i}" for i, v in theirs.items()) + ")")
    return f", which the preset does not run (it runs {' and '.join(inits)}){said}"


def _check_optimizer(space: SearchSpace, hp) -> None:
    """An unknown optimizer name or option, or an ``optimizer`` hook that returns other
    than ``(name, options)``, is refused before data loading and pretraining. Checked for
    the first trial's values and for each declared value of every hyperparameter, one
    changed at a time (a misspelt second choice failed half the trials); a hook that
    raises here is left to the pre-flight and the trials."""
    import keras_tuner

    from bench.models.optim import make_optimizer

    def changed_to(name: str, value):
        """``hp`` with ``name`` at ``value``, every other value as a trial would have it:
        a conditional one active only where its condition holds (at its default where it
        became active); None where ``name`` itself is inactive there."""
        changed = keras_tuner.HyperParameters.from_config(hp.get_config())
        changed.values[name] = value
        for parameter in changed.space:  # parents are declared before their children
            if not changed.is_active(parameter):
                changed.values.pop(parameter.name, None)
            elif parameter.name not in changed.values:
                changed.values[parameter.name] = parameter.default
        return changed if name in changed.values else None

    variants = [hp, *(changed_to(parameter.name, value) for parameter in hp.space
                      for value in declared_values(hp, parameter.name) or [])]
    for variant in filter(None, variants):
        try:
            name, options = optimizer_choice(space, variant)
        except BenchError:
            raise
        except Exception:  # noqa: BLE001 (the pre-flight reports a broken hook in one line)
            continue
        make_optimizer(name, learning_rate=1e-3, **options)  # an unknown name or option


def fix_hyperparameter(hp, name: str, value):
    """A copy of ``hp`` with ``name`` fixed to ``value`` (declared or not)."""
    import keras_tuner

    from bench.models.model import INITS

    if name == "init" and value not in INITS:
        raise BenchError(f"--init must be one of {', '.join(INITS)}; got {value!r}")
    config = hp.get_config()
    config["space"] = [entry for entry in config["space"] if entry["config"]["name"] != name]
    config["space"].append({"class_name": "Fixed",
                            "config": {"name": name, "value": value, "conditions": []}})
    config["values"][name] = value
    return keras_tuner.HyperParameters.from_config(config)


@dataclass(frozen=True)
class StudyPlan:
    """A RunSpec resolved: the space, its settings with the options applied, the backbone
    and the declared hyperparameters. Making one trains nothing and writes nothing."""

    spec: RunSpec  # with the preset's space filled in
    space: SearchSpace
    settings: SpaceSettings
    backbone: BackboneSpec
    image_size: int
    num_blocks: int
    hp: object  # keras_tuner.HyperParameters
    tuner_name: str
    columns: list[str]  # the hyperparameter columns of the tables
    references: list[dict]

    @property
    def max_epochs(self) -> int:
        """Hyperband's most epochs per trial: ``--max-epochs``, else the epochs."""
        return self.spec.max_epochs or self.settings.epochs

    @property
    def planned_trials(self) -> int | None:
        """The most trials the search runs (``bench.tuning.algorithms.planned_trials``)."""
        from bench.tuning.algorithms import planned_trials

        return planned_trials(self.tuner_name, self.hp, max_trials=self.settings.max_trials,
                              max_epochs=self.max_epochs)

    def nothing_left_to_run(self, trials) -> bool:
        """``bench.tuning.algorithms.nothing_left_to_run`` for this search."""
        from bench.tuning.algorithms import nothing_left_to_run

        return nothing_left_to_run(self.tuner_name, self.hp, trials,
                                   planned=self.planned_trials)

    def model_inputs(self, data, weights: str | None):
        """What the model builder needs for ``data`` and the initial ``weights``."""
        from bench.tuning.hypermodel import ModelInputs

        return ModelInputs(backbone=self.backbone, image_size=self.image_size,
                           num_classes=len(data.class_names), num_blocks=self.num_blocks,
                           pretrained_weights=weights, precision=self.spec.precision)


def with_absolute_folders(spec: RunSpec) -> RunSpec:
    """``spec`` with its folders absolute and resolved: ``run.json`` then names the
    folders the run used wherever it is read, and a resume from another folder (or a
    worker) finds the same cache, spaces and data."""
    from bench.tuning.resume import PATH_FIELDS

    return replace(spec, **{name: Path(value).resolve() for name in PATH_FIELDS
                            if (value := getattr(spec, name)) is not None})


def _check_numbers(spec: RunSpec, *, new: bool) -> None:
    """Refuses numbers no run can use: counts below 1, an unknown precision, a seed out of
    range (a run that exists keeps the seed it started with)."""
    _check_positive(max_trials=spec.max_trials, max_epochs=spec.max_epochs, epochs=spec.epochs,
                    repeats=spec.repeats, batch_size=spec.batch_size,
                    image_size=spec.image_size, train_per_class=spec.train_per_class,
                    images_per_class=spec.images_per_class,
                    pretrain_epochs=spec.pretrain_epochs, initial_points=spec.initial_points,
                    evaluation_batch_size=spec.evaluation_batch_size,
                    cache_memory=spec.cache_memory_mb)
    check_precision(spec.precision)
    if not spec.prefix_cache and spec.cache_memory_mb != RunSpec.cache_memory_mb:
        raise BenchError("--cache-memory sizes the prefix cache, which --no-prefix-cache "
                         "turns off; drop one of them")
    if spec.seed < 1:
        raise BenchError(f"--seed must be 1 or more (KerasTuner reads 0 as 'pick a random "
                         f"seed'); got {spec.seed}")
    if new and spec.seed > MAX_SEED:
        raise BenchError(f"--seed must be at most {MAX_SEED} (2**31 - 1: the repeats' seeds "
                         f"count on from it and must stay valid seeds); got {spec.seed}")


def _with_preset(spec: RunSpec) -> tuple[RunSpec, list[dict]]:
    """``spec`` with its preset's space filled in, and the preset's references."""
    if spec.preset is None:
        return spec, []
    from bench.presets import preset

    chosen = preset(spec.preset)
    spec = replace(spec, space=chosen.space)
    if chosen.space not in discover(spec.spaces_dir):
        # A --spaces-dir, or ./search_spaces in the current folder, replaces the
        # shipped spaces, the preset's among them.
        raise BenchError(f"preset {spec.preset} runs search space {chosen.space}, which "
                         f"the spaces folder {spec.spaces_dir} does not hold (a "
                         "--spaces-dir, or ./search_spaces in the current folder, "
                         f"replaces the shipped one): copy {chosen.space}.py from "
                         f"{DEFAULT_SPACES_DIR} into it, or run from another folder "
                         "without --spaces-dir")
    return spec, [asdict(r) for r in chosen.references]


def _check_tuner_options(spec: RunSpec, *, space: SearchSpace, settings: SpaceSettings,
                         tuner_name: str, new: bool) -> None:
    """Refuses options the chosen tuner would ignore, and repeats whose seeds overflow."""
    from bench.tuning.algorithms import hyperband_shortest_trial

    if new and spec.seed + settings.repeats - 1 > MAX_SEED:
        raise BenchError(f"--seed {spec.seed} with {settings.repeats} repeats gives seeds up "
                         f"to {spec.seed + settings.repeats - 1}, above {MAX_SEED} (2**31 - "
                         "1); use a smaller --seed")
    if new and spec.max_epochs is not None and tuner_name != "hyperband":
        raise BenchError(f"--max-epochs is Hyperband's most epochs per trial; this run uses "
                         f"the {tuner_name} tuner: add --tuner hyperband, or set --epochs")
    if new and spec.max_trials is not None and tuner_name == "hyperband":
        raise BenchError("--max-trials does not bound Hyperband: its brackets decide the "
                         "trials and --max-epochs their length; drop --max-trials")
    if new and tuner_name == "hyperband" and spec.max_epochs is not None \
            and spec.epochs is not None:
        # Found by a new user: --epochs was ignored without a word.
        raise BenchError(f"--epochs {spec.epochs} does not apply with --max-epochs "
                         f"{spec.max_epochs}: Hyperband sets each trial's epochs, up to "
                         "--max-epochs; drop --epochs")
    shortest = hyperband_shortest_trial(spec.max_epochs or settings.epochs)
    if new and tuner_name == "hyperband" and shortest < space.min_epochs:
        raise BenchError(f"search space {space.name} needs {space.min_epochs} or more epochs "
                         f"per trial, but Hyperband gives its shortest trials {shortest}; use "
                         "--tuner grid, random or bayesian")
    if spec.initial_points is not None and tuner_name != "bayesian":
        raise BenchError(f"--initial-points sets the Bayesian tuner's random start; this run "
                         f"uses the {tuner_name} tuner: add --tuner bayesian or drop it")


def plan_study(spec: RunSpec, *, new: bool = True) -> StudyPlan:
    """Resolves and checks every name and option of ``spec``.

    Args:
        spec: What the run is asked to do.
        new: False for a run that exists (resumed, or served to workers): options a new
            run may not combine are not refused there, so a run recorded before those
            checks still continues as it started.

    Raises:
        BenchError: for a user mistake (unknown name, bad option), before any training.
    """
    spec = with_absolute_folders(spec)
    _check_numbers(spec, new=new)
    spec, references = _with_preset(spec)
    space = load_space(spec.space, spec.spaces_dir)
    dataset = spec.dataset or ("folder" if spec.data is not None else None)
    settings = space.settings.override(
        dataset=dataset, backbone=spec.backbone, tuner=spec.tuner,
        max_trials=spec.max_trials, epochs=spec.epochs, repeats=spec.repeats,
        batch_size=spec.batch_size, image_size=spec.image_size,
    )
    if settings.epochs < space.min_epochs:
        raise BenchError(f"search space {space.name} needs --epochs {space.min_epochs} or more; "
                         f"got {settings.epochs}")
    backbone = backbone_spec(settings.backbone)
    dataset_info(settings.dataset)
    if spec.source_dataset is not None and not dataset_info(spec.source_dataset).has_source:
        with_source = [d.name for d in DATASETS.values() if d.has_source]
        raise BenchError(f"--source-dataset {spec.source_dataset} has no source task to "
                         f"pretrain on; use one that has: {', '.join(with_source)}")
    _check_data_options(spec, dataset=settings.dataset)
    if settings.dataset == "folder":
        check_image_folder(spec.data)
    check_tuner_name(settings.tuner)
    image_size = settings.image_size or backbone.default_image_size
    if image_size > MAX_IMAGE_SIZE:
        raise BenchError(f"--image-size {image_size} is too large; the datasets are made at "
                         f"{MAX_IMAGE_SIZE} px at most")

    import keras  # The backend loads here, after the cheap checks.

    from bench.tuning.algorithms import choose_tuner

    if spec.tensorboard and keras.backend.backend() != "tensorflow":
        raise BenchError("--tensorboard writes KerasTuner's HParams logs, which need the "
                         "TensorFlow backend; unset KERAS_BACKEND or drop --tensorboard")
    num_blocks = block_count(backbone, image_size=image_size)
    hp = declared_hyperparameters(space, num_blocks=num_blocks)
    declared = hp
    if spec.init is not None:
        hp = fix_hyperparameter(hp, "init", spec.init)
    if references:
        changed = _changed_from_preset(space.settings, settings, init=spec.init,
                                       image_size=image_size)
        if spec.init is not None:
            changed += _init_rules_lost(space, declared, spec.init)
        references = [dict(r, changed=changed) if changed else r for r in references]
    _check_source(spec, settings=settings, backbone=backbone, hp=hp)
    _check_optimizer(space, hp)
    tuner_name = choose_tuner(settings.tuner, hp)
    _check_tuner_options(spec, space=space, settings=settings, tuner_name=tuner_name, new=new)
    declared = [p.name for p in hp.space]
    columns = [*BUILDER_HYPERPARAMETERS,
               *[n for n in declared if n not in BUILDER_HYPERPARAMETERS]]
    return StudyPlan(spec=spec, space=space, settings=settings, backbone=backbone,
                     image_size=image_size, num_blocks=num_blocks, hp=hp,
                     tuner_name=tuner_name, columns=columns, references=references)
