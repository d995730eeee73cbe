"""Search spaces: the base class every file in ``search_spaces/`` extends, and discovery.

A search space declares hyperparameters with KerasTuner's ``hp`` API and the fixed
settings it wants. The suite's one model builder reads the hyperparameters it knows
(``BUILDER_HYPERPARAMETERS``); a space whose hooks read others lists them in
``extra_hyperparameters``. Discovery lists the folder and imports only the space asked
for, so one broken file never stops the others.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import traceback
from dataclasses import dataclass, fields, replace
from pathlib import Path

from bench.command import quoted
from bench.errors import BenchError, unknown_name

#: Hyperparameters the model builder understands, with what each one controls.
BUILDER_HYPERPARAMETERS = {
    "init": "backbone initialisation: pretrained (source task), random, or imagenet",
    "frozen_blocks": "backbone blocks frozen from the input side (0 = all trainable)",
    "head_lr": "learning rate of the new head",
    "body_lr_scale": "learning rate of the unfrozen backbone, as a fraction of head_lr",
}

#: Where the shipped spaces live: ``search_spaces/`` beside ``bench/`` in a checkout (or
#: an editable install), ``bench/search_spaces/`` inside an installed wheel.
CHECKOUT_SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
PACKAGED_SPACES_DIR = Path(__file__).resolve().parent / "search_spaces"
DEFAULT_SPACES_DIR = CHECKOUT_SPACES_DIR if CHECKOUT_SPACES_DIR.is_dir() else PACKAGED_SPACES_DIR


def default_spaces_dir(cwd: Path | None = None) -> Path:
    """The spaces folder a run uses when none is given.

    ``./search_spaces`` in the current directory when there is one (the checkout, or a
    folder where you keep your own spaces; it replaces the shipped ones), else the spaces
    that ship with the suite (``DEFAULT_SPACES_DIR``).
    """
    local = Path(cwd if cwd is not None else Path.cwd()) / "search_spaces"
    return local.resolve() if local.is_dir() else DEFAULT_SPACES_DIR


@dataclass(frozen=True)
class SpaceSettings:
    """The fixed settings a space wants. The run settings (``dataset`` to ``max_trials``) can be
    overridden from the command line, ``init`` fixed with ``--init``; the other model
    fields change here only.

    The model fields (``init`` to ``body_lr_scale``) are the values the builder uses for
    a hyperparameter the space does not declare. ``optimizer`` names a class in
    ``keras.optimizers`` and ``optimizer_options`` gives its keyword arguments as pairs
    (a tuple, so settings stay hashable), for example
    ``SpaceSettings(optimizer="SGD", optimizer_options=(("momentum", 0.9),))``.
    """

    dataset: str = "digits"
    backbone: str = "resnet-mini"
    image_size: int | None = None  # None: the backbone's default size
    epochs: int = 8
    batch_size: int = 32
    repeats: int = 3
    tuner: str | None = None  # None: grid for a finite space, random otherwise
    max_trials: int | None = None
    init: str = "pretrained"
    frozen_blocks: int = 0
    head_lr: float = 1e-3
    body_lr_scale: float = 1.0
    optimizer: str = "Adam"
    #: Keyword arguments for the optimizer, as (name, value) pairs: ``(("momentum", 0.9),)``.
    optimizer_options: tuple[tuple[str, object], ...] = ()

    def override(self, **values) -> SpaceSettings:
        """A copy with the given fields replaced; None values leave a field as it is."""
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        return replace(self, **{k: v for k, v in values.items() if v is not None})


class HyperparameterNotSet(LookupError):
    """``SearchSpace.value`` of a name with no value in this trial: a hyperparameter
    inactive here (declared under a condition that does not hold), or no hyperparameter
    nor setting at all. (Not a BenchError: the pre-flight check names the hook's line.)"""


def not_set(hp, name: str, *, settings: SpaceSettings) -> str:
    """Why ``name`` has no value in this trial, and what to do."""
    declared = [parameter for parameter in hp.space if parameter.name == name]
    if declared and all(p.conditions and not hp.is_active(p) for p in declared):
        needs = " or where ".join(" and ".join(
            f"{c.name} is {' or '.join(map(repr, c.values))}" for c in p.conditions)
            for p in declared)
        parents = dict.fromkeys(c.name for p in declared for c in p.conditions)
        here = ", ".join(f"{parent} is {hp.values[parent]!r}" if parent in hp.values
                         else f"{parent} is not active either" for parent in parents)
        return (f"hyperparameter {name!r} is not active in this trial: it is declared only "
                f"where {needs}, and here {here}; read it only under that condition")
    if declared:
        return (f"hyperparameter {name!r} is declared, but this trial's hyperparameters hold "
                "no value for it")
    return (f"{name!r} is neither a hyperparameter the space declares nor a field of its "
            f"settings ({', '.join(f.name for f in fields(settings))}); declare it in "
            "declare()")


class SearchSpace:
    """Base class for a search space: subclass it in one file of ``search_spaces/``.

    Set ``description`` (one line), ``version`` (raise it whenever the space changes
    meaning, so analyses can tell runs apart) and ``settings``, and implement
    ``declare``. Override ``augment``, ``build_head``, ``optimizer`` or ``fit`` only for
    what the builder cannot express (augmentation, another head, an optimizer chosen per
    trial, a multi-phase schedule); list any hyperparameter those hooks read in
    ``extra_hyperparameters``. Overriding ``compile`` is possible but rarely needed: the
    suite then checks that the optimizer applies the recorded ``body_lr_scale`` (build it
    with ``bench.models.optim.make_optimizer``), and reuses no compiled model.

    Example::

        from bench.space import SearchSpace, SpaceSettings

        class HeadLearningRate(SearchSpace):
            description = "Head learning rate with the backbone frozen."
            version = 1
            settings = SpaceSettings(init="pretrained", epochs=5)

            def declare(self, hp, *, num_blocks):
                hp.Fixed("frozen_blocks", num_blocks)
                hp.Float("head_lr", 1e-4, 1e-1, sampling="log", step=10)
    """

    description: str = ""
    version: int = 1
    settings: SpaceSettings = SpaceSettings()
    extra_hyperparameters: tuple[str, ...] = ()
    #: Extra per-epoch columns this space's ``fit`` fills in (for example ``phase``).
    epoch_columns: tuple[str, ...] = ()
    #: The fewest epochs a run of this space can have.
    min_epochs: int = 1

    name: str = ""
    path: Path | None = None

    def declare(self, hp, *, num_blocks: int) -> None:
        """Declares the hyperparameters on ``hp`` (a ``keras_tuner.HyperParameters``).

        Args:
            hp: Where to declare them: ``hp.Choice``, ``hp.Int``, ``hp.Float``...
            num_blocks: The backbone's number of blocks, the largest ``frozen_blocks``.
        """
        raise NotImplementedError

    def value(self, hp, name: str):
        """A hyperparameter's value in this trial, or the space's fixed setting.

        Everything the suite builds and records reads values through this method, so a
        space may override it to derive a setting from a hyperparameter (the d2l recipe's
        ``body_lr_scale`` depends on ``init``); ``epochs.csv`` then records the derived value.
        """
        if name in hp.values:
            return hp.values[name]
        if name in {f.name for f in fields(self.settings)}:
            return getattr(self.settings, name)
        raise HyperparameterNotSet(not_set(hp, name, settings=self.settings))

    def augment(self, images, *, hp):
        """Training-time augmentation before preprocessing. Default: none.

        Args:
            images: The symbolic RGB input batch, float32 pixel values 0 to 255,
                ``(None, size, size, 3)``.
            hp: This trial's hyperparameters.

        Returns:
            The augmented batch. Use Keras layers that act only in training (such as
            ``keras.layers.RandomFlip``): evaluation runs the same model. It may change
            the image size (a random crop, say); the backbone is built for the size it
            returns.
        """
        return images

    def build_head(self, features, *, num_classes: int, hp):
        """Maps backbone features to class probabilities. Default: pooling and Dense.

        Args:
            features: The backbone's symbolic output feature map, ``(None, h, w, c)``.
            num_classes: Target classes.
            hp: This trial's hyperparameters.

        Returns:
            Probabilities, ``(None, num_classes)``: end with a softmax, since the loss
            expects probabilities (a run refuses a head that returns logits). Under
            ``--precision mixed_bfloat16`` the layers made here compute in bfloat16;
            give the last one ``dtype="float32"`` for a float32 softmax.
        """
        from bench.models.model import default_head

        return default_head(features, num_classes=num_classes)

    def optimizer(self, hp) -> tuple[str, dict]:
        """The optimizer of this trial: a class name in ``keras.optimizers`` and its options.

        Default: ``settings.optimizer`` with ``settings.optimizer_options``. The suite
        builds it (``bench.models.optim.make_optimizer``) at ``head_lr``, the unfrozen backbone at
        ``head_lr * body_lr_scale``, for any optimizer named. Do not pass
        ``learning_rate`` here.

        Returns:
            ``(name, options)``, for example ``("SGD", {"momentum": 0.9})``.
        """
        return self.settings.optimizer, dict(self.settings.optimizer_options)

    def compile(self, parts, *, hp) -> None:
        """Compiles ``parts.model``: the ``optimizer`` hook's optimizer at ``head_lr``, the
        unfrozen backbone at ``head_lr * body_lr_scale``, sparse categorical cross-entropy
        on probabilities, accuracy."""
        parts.model.compile(optimizer=default_optimizer(self, parts, hp=hp),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def fit(self, parts, *, hp, run) -> list:
        """Trains the compiled model and returns its Keras History objects.

        Args:
            parts: The ``FineTuneModel`` (model, backbone, blocks, ``freeze``).
            hp: This trial's hyperparameters.
            run: A ``FitRun`` with the data, epochs, batch size, callbacks and the
                per-epoch recorder (``run.recorder.set(phase=...)``).
        """
        return [run.fit(parts.model, epochs=run.epochs)]


#: What the suite passes to the optimizer itself; an ``optimizer`` hook must not.
SUITE_OPTIMIZER_ARGUMENTS = ("learning_rate", "body_variables", "body_lr_scale")


def optimizer_choice(space: SearchSpace, hp) -> tuple[str, dict]:
    """The ``optimizer`` hook's ``(name, options)`` for ``hp``, checked.

    Raises:
        BenchError: when the hook returns something else (an optimizer object, a bare
            name) or sets a learning rate, which the suite sets from ``head_lr``.
    """
    chosen = space.optimizer(hp)
    if not (isinstance(chosen, (tuple, list)) and len(chosen) == 2
            and isinstance(chosen[0], str) and isinstance(chosen[1], dict)):
        shown = repr(chosen)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise BenchError(f"search space {space.name}: optimizer() returned {shown}; it "
                         "returns (name, options): a class name in keras.optimizers and a "
                         "dict of its keyword arguments, such as ('SGD', {'momentum': 0.9})")
    name, options = chosen
    taken = [key for key in SUITE_OPTIMIZER_ARGUMENTS if key in options]
    if taken:
        raise BenchError(f"search space {space.name}: optimizer() sets {', '.join(taken)}; "
                         "the suite sets the learning rates from head_lr and body_lr_scale: "
                         f"drop {'it' if len(taken) == 1 else 'them'} from the options")
    return name, dict(options)


def default_optimizer(space: SearchSpace, parts, *, hp):
    """The optimizer ``SearchSpace.compile`` compiles with: the ``optimizer`` hook's, at
    ``head_lr``, the backbone's variables at ``head_lr * body_lr_scale``."""
    from bench.models.optim import make_optimizer

    name, options = optimizer_choice(space, hp)
    return make_optimizer(
        name,
        learning_rate=float(space.value(hp, "head_lr")),
        body_variables=parts.body_variables,
        body_lr_scale=float(space.value(hp, "body_lr_scale")),
        **options,
    )


@dataclass(frozen=True)
class SpaceFile:
    name: str
    path: Path


def discover(spaces_dir: Path = DEFAULT_SPACES_DIR) -> dict[str, SpaceFile]:
    """Lists the spaces in a folder without importing any: ``NAME.py``, not ``_*.py``."""
    spaces_dir = Path(spaces_dir)
    if not spaces_dir.is_dir():
        what = "is a file, not a folder" if spaces_dir.exists() else "does not exist"
        raise BenchError(f"search space folder {spaces_dir} {what}; pass --spaces-dir "
                         "with a folder of space files")
    return {
        path.stem: SpaceFile(path.stem, path)
        for path in sorted(spaces_dir.glob("*.py"))
        if not path.name.startswith("_")
    }


def frames_in(error: BaseException, path: Path | None) -> list:
    """The frames of ``error``'s traceback that ran in the file ``path`` (however either
    spells it: relative, absolute, through a link)."""
    if path is None:
        return []
    target = Path(path).resolve()
    return [f for f in traceback.extract_tb(error.__traceback__)
            if Path(f.filename).resolve() == target]


def _short_error(error: BaseException, path: Path | None) -> str:
    """One line: where in the space file it failed, and why."""
    if isinstance(error, SyntaxError):
        return f"syntax error at line {error.lineno}: {error.msg}"
    frames = frames_in(error, path)
    where = f"line {frames[-1].lineno}: " if frames else ""
    return f"{where}{type(error).__name__}: {error}"


def load_space_file(space_file: SpaceFile) -> SearchSpace:
    """Imports one space file and returns an instance of the one SearchSpace it defines."""
    where = f"search space file {space_file.path}"
    module_name = f"_bench_space_{space_file.name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, space_file.path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        reason = _short_error(error, space_file.path)
        raise BenchError(f"{where} failed to import: {reason}") from None
    classes = [obj for obj in vars(module).values()
               if inspect.isclass(obj) and issubclass(obj, SearchSpace)
               and obj.__module__ == module_name]
    if len(classes) != 1:
        found = ", ".join(c.__name__ for c in classes) or "none"
        raise BenchError(f"{where} must define exactly one subclass of bench.space.SearchSpace; "
                         f"found {found}")
    _check_hooks(classes[0], where=where)
    space = classes[0]()
    space.name, space.path = space_file.name, space_file.path
    if not space.description:
        raise BenchError(f"{where}: {classes[0].__name__} needs a one-line description")
    if not isinstance(space.settings, SpaceSettings):
        raise BenchError(f"{where}: settings must be a bench.space.SpaceSettings")
    _check_counts(space.settings, where=where)
    return space


def _check_counts(settings: SpaceSettings, *, where: str) -> None:
    """The counts in a space's settings are whole numbers, 1 or more, as the options that
    override them must be (found by a new user: ``repeats=0`` failed every trial and
    ``batch_size=0`` ended in a traceback)."""
    for name in ("epochs", "batch_size", "repeats", "max_trials", "image_size"):
        value = getattr(settings, name)
        optional = name in ("max_trials", "image_size")
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BenchError(f"{where}: settings {name}={value!r} must be an int of 1 or "
                             f"more{' (or None)' if optional else ''}")


#: The methods of ``SearchSpace`` a space overrides to change what a trial does.
HOOKS = ("declare", "value", "augment", "build_head", "optimizer", "compile", "fit")


def _check_hooks(cls: type, *, where: str) -> None:
    """Refuses a space without ``declare``, and a method named like a hook but not one
    (``build_heads``): as written it would never be called, and the study would run the
    default in its place."""
    if cls.declare is SearchSpace.declare:
        raise BenchError(f"{where}: {cls.__name__} has no declare(); a space declares the "
                         "hyperparameters it varies: def declare(self, hp, *, num_blocks): "
                         "hp.Choice('head_lr', [0.01, 0.001])")
    for name, member in vars(cls).items():
        if name.startswith("_") or name in HOOKS or not callable(member):
            continue
        close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.85)
        if close:
            raise BenchError(f"{where}: {cls.__name__}.{name}() is not a hook, so nothing "
                             f"calls it; did you mean {close[0]}()? (a helper of your own: "
                             "start its name with _)")


def load_space(name: str, spaces_dir: Path = DEFAULT_SPACES_DIR) -> SearchSpace:
    """Loads the space called ``name``; an unknown name lists the valid ones."""
    files = discover(spaces_dir)
    if name not in files:
        given, file = Path(name), "--space takes a space's name, not its file"
        if given.suffix == ".py" and given.is_file() and not (
                given.stem in files and files[given.stem].path.resolve() == given.resolve()):
            raise BenchError(f"{file}: for the space in {name}, use --spaces-dir "
                             f"{quoted(str(given.parent))} --space {given.stem}")
        if given.stem != name and given.stem in files:
            raise BenchError(f"{file}: --space {given.stem}")
        raise unknown_name("search space", name, list(files))
    return load_space_file(files[name])


def space_identity(space: SearchSpace) -> dict:
    """What ``run.json`` records to know a space again: its name, version, file and the
    file's SHA-256 (a resume or a worker with another file is refused)."""
    from bench.data.download import file_digest

    return {"name": space.name, "version": space.version, "file": str(space.path),
            "sha256": file_digest(space.path, "sha256"), "hooks": overridden_hooks(space)}


def overridden_hooks(space: SearchSpace) -> list[str]:
    """The hooks (``HOOKS``) ``space`` defines itself, in ``HOOKS`` order."""
    return [name for name in HOOKS
            if getattr(type(space), name) is not getattr(SearchSpace, name)]


def declared_in_a_hook(parameter, *, declared, who: str, when: str,
                       then: str = "") -> BenchError:
    """The refusal of a hyperparameter a hook declared (``hp.Choice`` in ``build_head``,
    KerasTuner's usual style): the tuner searches only what ``declare`` declared (the
    ``HyperParameters`` ``declared``), each under its conditions."""
    kind, name = type(parameter).__name__, parameter.name
    if any(p.name == name for p in declared.space):
        fix = (f"declare() declares {name!r} under a condition (conditional_scope) and the "
               "hook declares it again outside it: read it in the hook with "
               f"hp.get({name!r}) where its condition holds")
    else:
        fix = (f"move hp.{kind}({name!r}, ...) into declare() and read it in the hook with "
               f"hp.get({name!r})")
    return BenchError(f"{who} declared hyperparameter {name!r} (hp.{kind}) {when}; the tuner "
                      f"searches only what declare() declares: {fix}{then}")


def undeclared(declared, hp) -> list:
    """The hyperparameters of ``hp`` that ``declared`` lacks, by name and conditions (as
    KerasTuner's oracle tells them apart)."""
    return [p for p in hp.space
            if not declared._exists(p.name, p.conditions)]  # noqa: SLF001 (no public test)


class _DeclaredTwice(Exception):
    pass


def _declared_once():
    import keras_tuner

    class DeclaredOnce(keras_tuner.HyperParameters):
        """Refuses a name declared again otherwise (``hp.Choice("head_lr", ...)`` then
        ``hp.Float("head_lr", ...)``): KerasTuner returns the first and drops the second."""

        def _retrieve(self, hp):
            if self._exists(hp.name, hp.conditions) and not any(
                    type(h) is type(hp) and h.get_config() == hp.get_config()
                    for h in self._hps[hp.name]):
                first = next(h for h in self._hps[hp.name] if h.conditions == hp.conditions)
                raise _DeclaredTwice(
                    f"{hp.name!r} twice (hp.{type(first).__name__}, then "
                    f"hp.{type(hp).__name__} with other values): KerasTuner keeps the first "
                    "and ignores the second; declare each name once")
            return super()._retrieve(hp)

    return DeclaredOnce()


def declared_hyperparameters(space: SearchSpace, *, num_blocks: int):
    """Declares the space's hyperparameters on a fresh ``HyperParameters`` and checks them.

    Raises:
        BenchError: naming the file, when the declaration fails or declares a name that
            neither the builder nor the space's own hooks use.
    """
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    where = f"search space file {space.path}"
    try:
        space.declare(_declared_once(), num_blocks=num_blocks)
        space.declare(hp, num_blocks=num_blocks)
    except _DeclaredTwice as twice:
        raise BenchError(f"{where}: declare() declares {twice}") from None
    except Exception as error:
        raise BenchError(f"{where}: declare() failed: {_short_error(error, space.path)}") from None
    if not hp.space:
        raise BenchError(f"{where}: declare() declared no hyperparameters")
    understood = set(BUILDER_HYPERPARAMETERS) | set(space.extra_hyperparameters)
    for parameter in hp.space:
        if parameter.name not in understood:
            raise BenchError(
                f"{where}: hyperparameter {parameter.name!r} is not used by the model "
                f"builder (it uses {', '.join(BUILDER_HYPERPARAMETERS)}); list it in "
                "extra_hyperparameters if your own hooks read it"
            )
    _check_column_names(space, [parameter.name for parameter in hp.space])
    _check_frozen_blocks(space, hp, num_blocks=num_blocks)
    _check_init(space, hp)
    _check_learning_rates(space, hp)
    return hp


def taken_column_names() -> dict[str, str]:
    """Names a hyperparameter or a space's epoch column cannot have, each with what
    already uses it: a second column of one name in a table overwrites or hides one."""
    from bench.analysis.numbers import ANALYSIS_COLUMNS, NOT_HYPERPARAMETERS
    from bench.models.model import INITS
    from bench.results import TRIAL_METRICS
    from bench.tuning.recording import epoch_columns

    # The analysis also makes a column of each init when it pairs them.
    taken = dict.fromkeys([*ANALYSIS_COLUMNS, *INITS], "the analysis's tables")
    taken |= dict.fromkeys(["trial_id", "status", *TRIAL_METRICS, "error"], "trials.csv")
    taken |= dict.fromkeys([*epoch_columns([]), *NOT_HYPERPARAMETERS], "epochs.csv")
    return taken


def _check_column_names(space: SearchSpace, hyperparameters: list[str]) -> None:
    taken = taken_column_names()
    named = [(name, "hyperparameter") for name in hyperparameters]
    named += [(name, "epoch column") for name in space.epoch_columns if name != "phase"]
    for name, what in named:
        if name in taken:
            raise BenchError(f"search space file {space.path}: {what} {name!r} has the name "
                             f"of a column of {taken[name]}; give it another name")
    # Every run has the builder's columns, declared or not.
    twice = sorted(set([*BUILDER_HYPERPARAMETERS, *hyperparameters]) & set(space.epoch_columns))
    if twice:
        raise BenchError(f"search space file {space.path}: {twice[0]!r} is both a "
                         "hyperparameter column and an epoch column; give them different "
                         "names")
    repeated = sorted({n for n in space.epoch_columns if space.epoch_columns.count(n) > 1})
    if repeated:
        raise BenchError(f"search space file {space.path}: epoch_columns names "
                         f"{repeated[0]!r} twice")


def declared_values(hp, name: str) -> list | None:
    """The values of a declared hyperparameter worth checking: each choice, or a range's
    bounds; None where it is not declared."""
    for parameter in hp.space:
        if parameter.name != name:
            continue
        kind = type(parameter).__name__
        if kind == "Fixed":
            return [parameter.value]
        if kind == "Boolean":
            return [False, True]
        if kind == "Choice":
            return list(parameter.values)
        return [parameter.min_value, parameter.max_value]  # Int, Float: the bounds
    return None


def values_in_use(hp, name: str, settings: SpaceSettings) -> tuple[list, str]:
    """The values of a builder hyperparameter worth checking: each declared one (see
    ``declared_values``), else the space's setting; and how the space gave them
    ("declares" or "sets in settings"), for messages."""
    values = declared_values(hp, name)
    if values is not None:
        return values, "declares"
    return [getattr(settings, name)], "sets in settings"


def _check_init(space: SearchSpace, hp) -> None:
    from bench.models.model import INITS

    values, where = values_in_use(hp, "init", space.settings)
    for value in values:
        if value not in INITS:
            raise BenchError(
                f"search space file {space.path} {where} init {value!r}: use "
                f"{', '.join(map(repr, INITS))} (as in hp.Choice('init', ['pretrained', "
                "'random']))")


def _check_learning_rates(space: SearchSpace, hp) -> None:
    """A head_lr of 0 trains nothing and a negative one climbs the loss: either would be
    a completed trial scoring what an untrained head scores."""
    import math
    import numbers
    import operator

    for name, allowed, bound in (("head_lr", operator.gt, "above 0"),
                                 ("body_lr_scale", operator.ge,
                                  "0 (the backbone not moved) or more")):
        values, where = values_in_use(hp, name, space.settings)
        for value in values:
            number = float(value) if isinstance(value, numbers.Real) else math.nan
            if not (math.isfinite(number) and allowed(number, 0)):
                raise BenchError(f"search space file {space.path} {where} {name} {value!r}: "
                                 f"it must be a number {bound}")


def _check_frozen_blocks(space: SearchSpace, hp, *, num_blocks: int) -> None:
    import numbers

    values, where = values_in_use(hp, "frozen_blocks", space.settings)
    for value in values:
        # A string ("0", "all") or a bool is no count of blocks; it was a traceback.
        whole = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                 and float(value).is_integer())
        if not (whole and 0 <= value <= num_blocks):
            raise BenchError(
                f"search space file {space.path} {where} frozen_blocks {value!r}, but the "
                f"backbone has {num_blocks} blocks: use values from 0 to {num_blocks} "
                "(declare with num_blocks, as in hp.Int('frozen_blocks', 0, num_blocks))")
