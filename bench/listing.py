"""What ``run_bench.py list`` prints: spaces with their hyperparameters, datasets,
backbones with their block counts, and tuners."""

from __future__ import annotations

from bench.data.datasets import DATASETS
from bench.errors import BenchError
from bench.models.backbones import BACKBONES, BackboneSpec, block_count
from bench.space import DEFAULT_SPACES_DIR, declared_hyperparameters, discover, load_space_file
from bench.tuning.algorithms import TUNERS


def describe_hyperparameter(parameter) -> str:
    """One line: name, type, range or values, sampling, default."""
    config = parameter.get_config()
    kind = type(parameter).__name__
    if kind == "Choice":
        domain = "{" + ", ".join(str(v) for v in config["values"]) + "}"
    elif kind in ("Int", "Float"):
        step = f", step {config['step']}" if config.get("step") is not None else ""
        domain = f"[{config['min_value']}, {config['max_value']}]{step}, {config['sampling']}"
    elif kind == "Fixed":
        domain = f"= {config['value']}"
    elif kind == "Boolean":
        domain = "{False, True}"
    else:
        domain = ""
    default = f", default {parameter.default}" if kind != "Fixed" else ""
    conditions = [c.get_config() for c in parameter.conditions]
    when = "".join(f", only when {c['name']} in {{{', '.join(str(v) for v in c['values'])}}}"
                   for c in conditions)
    return f"{parameter.name} ({kind}) {domain}{default}{when}"


def count_blocks(spec: BackboneSpec) -> int:
    if spec.blocks is not None:  # pinned: building ResNet50 and the rest takes a minute
        return spec.blocks
    # Block counts do not depend on the size; a small one builds fast.
    return block_count(spec, image_size=max(spec.min_image_size,
                                            64 if spec.imagenet else spec.default_image_size))


def print_listing(spaces_dir=DEFAULT_SPACES_DIR) -> None:
    # Keras and its backend load here, so that their start-up lines come before the listing.
    import keras_tuner  # noqa: F401

    print(f"Search spaces ({spaces_dir}/NAME.py):")
    for name, space_file in discover(spaces_dir).items():
        try:
            space = load_space_file(space_file)
            backbone = BACKBONES.get(space.settings.backbone)
            blocks = count_blocks(backbone) if backbone else 4
            hp = declared_hyperparameters(space, num_blocks=blocks)
        except BenchError as error:
            print(f"  {name}: cannot be loaded: {error}")
            continue
        s = space.settings
        print(f"  {name} (v{space.version}): {space.description}")
        print(f"    defaults: dataset {s.dataset}, backbone {s.backbone}, epochs {s.epochs}, "
              f"repeats {s.repeats}, tuner {s.tuner or 'grid if finite'}")
        for parameter in hp.space:
            print(f"    - {describe_hyperparameter(parameter)}")
    print("\nDatasets:")
    for info in DATASETS.values():
        print(f"  {info.name}: {info.description}")
    print("\nBackbones (blocks = cut points for frozen_blocks):")
    for spec in BACKBONES.values():
        weights = "ImageNet weights available" if spec.imagenet else "no published weights"
        print(f"  {spec.name}: {spec.description}; {count_blocks(spec)} blocks; "
              f"{spec.default_image_size}px; {weights}")
    from bench.presets import PRESETS

    print("\nPresets (--preset NAME; meant for a GPU):")
    for item in PRESETS.values():
        print(f"  {item.name}: {item.description} (space {item.space})")
    print("\nTuners:")
    for name, text in TUNERS.items():
        print(f"  {name}: {text}")
