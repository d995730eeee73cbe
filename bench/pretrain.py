"""Step 1 of the recipe: train the backbone on the dataset's source task, once.

The weights are cached on disk, keyed by backbone, dataset, image size, seed and
epochs, and reused by later runs. The source model's accuracy is measured in inference
mode on held-out source images: a backbone whose BatchNormalization statistics have not
settled can score well in training and near chance in inference, and then every
"pretrained" result would be meaningless.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from bench.backbones import BackboneSpec
from bench.datasets import Split, TransferData
from bench.errors import BenchError
from bench.model import assemble


@dataclass(frozen=True)
class Pretrained:
    """Source-task weights for one backbone and what was measured when they were made."""

    weights_path: str
    source_accuracy: float
    epochs: int
    seconds: float
    reused: bool = False


def cache_key(*, backbone: str, dataset: str, image_size: int, seed: int, epochs: int) -> str:
    return f"{backbone}__{dataset}__{image_size}px__seed{seed}__{epochs}ep"


def _holdout(split: Split, seed: int, fraction: float = 0.2) -> tuple[Split, Split]:
    order = np.random.default_rng(seed).permutation(len(split))
    cut = int(len(split) * (1 - fraction))
    train, held = np.sort(order[:cut]), np.sort(order[cut:])
    return (Split(split.images[train], split.labels[train]),
            Split(split.images[held], split.labels[held]))


def pretrain(spec: BackboneSpec, data: TransferData, *, image_size: int, seed: int,
             epochs: int, cache_dir: Path, batch_size: int = 32,
             learning_rate: float = 1e-3, log=print) -> Pretrained:
    """Returns source-task weights for ``spec``, training them only if none are cached."""
    if data.source is None:
        raise BenchError(f"dataset {data.name!r} has no source task to pretrain on; use "
                         "init 'random' or 'imagenet', or name a source dataset")
    key = cache_key(backbone=spec.name, dataset=data.name, image_size=image_size, seed=seed,
                    epochs=epochs)
    folder = Path(cache_dir) / "pretrained"
    weights_path = folder / f"{key}.weights.h5"
    meta_path = folder / f"{key}.json"
    if weights_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        log(f"pretrained weights reused from {weights_path} "
            f"(source accuracy {meta['source_accuracy']:.3f})")
        return Pretrained(**{**meta, "weights_path": str(weights_path), "reused": True})

    log(f"pretraining {spec.name} on the {data.name} source task "
        f"({len(data.source)} images, {epochs} epochs); cached for later runs")
    train, held = _holdout(data.source, seed)
    keras.utils.set_random_seed(seed)
    parts = assemble(spec, image_size=image_size,
                     num_classes=len(data.source_class_names), init="random")
    parts.model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    parts.model.fit(train.images, train.labels, batch_size=batch_size, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    _, accuracy = parts.model.evaluate(held.images, held.labels, batch_size=256, verbose=0)
    log(f"source model: {accuracy:.3f} accuracy in inference mode on {len(held)} held-out "
        f"source images ({seconds:.1f} s)")
    if accuracy < 0.5:
        log("warning: the source model is weak in inference mode; 'pretrained' results "
            "will say little (more --pretrain-epochs may help)")

    folder.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed, so a killed run leaves no half file.
    partial = folder / f"{key}.{os.getpid()}.partial.weights.h5"
    parts.backbone.save_weights(partial)
    os.replace(partial, weights_path)
    result = Pretrained(weights_path=str(weights_path), source_accuracy=float(accuracy),
                        epochs=epochs, seconds=seconds)
    meta = {k: v for k, v in asdict(result).items() if k not in ("weights_path", "reused")}
    partial_meta = meta_path.with_suffix(f".{os.getpid()}.partial")
    partial_meta.write_text(json.dumps(meta, indent=2))
    os.replace(partial_meta, meta_path)
    return result
