"""Step 1 of the recipe: train the backbone on the dataset's source task, once.

The weights are cached on disk and reused by later runs. A cache entry is a weights file
and a metadata file beside it; the metadata holds the SHA-256 of the weights file's bytes
and the key of everything that made it: backbone, dataset, a SHA-256 of the source images
and labels themselves (so every data option that changes them, image size, seed or
``--images-per-class``, changes the key), pretraining epochs, batch size, learning rate,
the Keras backend, the versions of Keras and of the backend's framework, and a SHA-256 of
the suite's modules that build and train the model; and a SHA-256 of the metadata's own
fields (the source accuracy, epochs and time are read from it, not measured again). An
entry that is missing a part, unreadable, made by other settings, or whose weights or
metadata fail their checksum is rebuilt, with one line saying why.

The source model's accuracy is measured in inference mode on held-out source images: a
backbone whose BatchNormalization statistics have not settled can score well in training
and near chance in inference, and then every "pretrained" result would be meaningless.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from bench.analysis.formatting import counted
from bench.data.datasets import Split, TransferData, splits_sha256
from bench.data.download import file_digest
from bench.device import BACKEND_FRAMEWORKS, code_sha256
from bench.errors import BenchError
from bench.files import write_whole
from bench.models.backbones import BackboneSpec
from bench.models.model import assemble
from bench.stopping import stop_check

#: Below this accuracy on held-out source images the source model says little about
#: what pretraining gives (the run warns, in run.json and report.md too).
WEAK_SOURCE_ACCURACY = 0.5


def weak_source_warning(accuracy: float) -> str | None:
    """The warning for a source model this weak, or None."""
    if accuracy >= WEAK_SOURCE_ACCURACY:
        return None
    return (f"the source model is weak: {accuracy:.3f} accuracy in inference mode on "
            "held-out source images, so 'pretrained' results will say little (more "
            "--pretrain-epochs may help)")


@dataclass(frozen=True)
class Pretrained:
    """Source-task weights for one backbone and what was measured when they were made."""

    weights_path: str
    source_accuracy: float
    epochs: int
    seconds: float
    reused: bool = False
    weights_sha256: str = ""
    cache_problem: str = ""  # why a cache entry for the same key was not used, if one was


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def pretrain_key(spec: BackboneSpec, data: TransferData, *, image_size: int, seed: int,
                 epochs: int, batch_size: int, learning_rate: float) -> dict:
    """Everything that made a source model, as a JSON-able dict (the cache key)."""
    backend = keras.backend.backend()
    framework = BACKEND_FRAMEWORKS.get(backend, backend)
    return {
        "backbone": spec.name,
        "dataset": data.name,
        "source_sha256": splits_sha256(data.source),
        "source_images": len(data.source),
        "image_size": image_size,
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "backend": backend,
        "versions": {"keras": _version("keras"), framework: _version(framework)},
        # What builds and trains the source model: another release or an edit of these
        # files (a BatchNormalization momentum, the optimizer) makes other weights.
        "code_sha256": code_sha256(*_recipe_modules()),
    }


def _recipe_modules() -> tuple:
    import sys

    from bench.models import backbones, blocks, model
    from bench.tuning import batches

    return (backbones, blocks, model, batches, sys.modules[__name__])


def cache_name(key: dict) -> str:
    """A file stem: the main settings readable, and a digest of the whole key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return (f"{key['backbone']}__{key['dataset']}__{key['image_size']}px__seed{key['seed']}"
            f"__{key['epochs']}ep__{key['backend']}__{digest}")


def _cached(weights_path: Path, meta_path: Path, key: dict) -> tuple[dict | None, str]:
    """The metadata of a verified cache entry, or None and why it cannot be used."""
    if not meta_path.exists() and not weights_path.exists():
        return None, ""
    try:
        meta = json.loads(meta_path.read_text())
        float(meta["source_accuracy"]), int(meta["epochs"]), float(meta["seconds"])
        expected = str(meta["weights_sha256"])
        made_by = meta["key"]
    except FileNotFoundError:
        return None, f"pretrained weights cache {meta_path} is missing; retraining"
    except (OSError, ValueError, TypeError, KeyError) as error:
        return None, (f"pretrained weights cache {meta_path} is unreadable "
                      f"({type(error).__name__}); retraining")
    if made_by != key:
        return None, (f"pretrained weights cache {meta_path} was made by other settings; "
                      "retraining")
    # The source accuracy is read, not measured again (the source head is not kept): an
    # edited or damaged record would print and warn about another model's number.
    if "record_sha256" not in meta:
        return None, (f"pretrained weights cache {meta_path} has no checksum of its record; "
                      "retraining")
    if meta["record_sha256"] != record_sha256(meta):
        return None, f"pretrained weights cache {meta_path} failed its checksum; retraining"
    try:
        actual = file_digest(weights_path, "sha256")
    except OSError as error:
        return None, (f"pretrained weights cache {weights_path} is unreadable "
                      f"({type(error).__name__}); retraining")
    if actual != expected:
        return None, f"pretrained weights cache {weights_path} failed its checksum; retraining"
    return meta, ""


def record_sha256(meta: dict) -> str:
    """The checksum of a cache entry's record: every field but the checksum itself."""
    fields = {k: v for k, v in meta.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _holdout(split: Split, seed: int, fraction: float = 0.2) -> tuple[Split, Split]:
    order = np.random.default_rng(seed).permutation(len(split))
    cut = int(len(split) * (1 - fraction))
    train, held = np.sort(order[:cut]), np.sort(order[cut:])
    return (Split(split.images[train], split.labels[train]),
            Split(split.images[held], split.labels[held]))


def pretrain(spec: BackboneSpec, data: TransferData, *, image_size: int, seed: int,
             epochs: int, cache_dir: Path, batch_size: int = 32,
             learning_rate: float = 1e-3, log=print) -> Pretrained:
    """Returns source-task weights for ``spec``, training them only if no cache entry for
    the same key verifies."""
    from bench.tuning.batches import seeded_fit_arguments

    if data.source is None:
        raise BenchError(f"dataset {data.name!r} has no source task to pretrain on; use "
                         "init 'random' or 'imagenet', or name a source dataset")
    key = pretrain_key(spec, data, image_size=image_size, seed=seed, epochs=epochs,
                       batch_size=batch_size, learning_rate=learning_rate)
    folder = Path(cache_dir) / "pretrained"
    weights_path = folder / f"{cache_name(key)}.weights.h5"
    meta_path = folder / f"{cache_name(key)}.json"
    meta, why = _cached(weights_path, meta_path, key)
    if meta is not None:
        log(f"pretrained weights reused from {weights_path} "
            f"(source accuracy {meta['source_accuracy']:.3f}, checksum verified)")
        return Pretrained(weights_path=str(weights_path),
                          source_accuracy=float(meta["source_accuracy"]),
                          epochs=int(meta["epochs"]), seconds=float(meta["seconds"]),
                          reused=True, weights_sha256=meta["weights_sha256"])
    if why:
        log(why)

    train, held = _holdout(data.source, seed)
    log(f"pretraining {spec.name} on the {data.name} source task ({len(train)} of its "
        f"{len(data.source)} images, {len(held)} held out to check it; "
        f"{counted(epochs, 'epoch')}); cached for later runs")
    keras.utils.set_random_seed(seed)
    parts = assemble(spec, image_size=image_size,
                     num_classes=len(data.source_class_names), init="random")
    parts.model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # A new batch order every epoch, drawn from the seed, on every backend: Keras's own
    # shuffle, seeded, on JAX; the suite's batches in that order on TensorFlow and torch
    # (docs/batch-order/, bench/tuning/batches.py).
    training, seeding = seeded_fit_arguments(train, seed=seed, batch_size=batch_size,
                                             epochs=epochs)
    start = time.perf_counter()
    parts.model.fit(**training, epochs=epochs, verbose=0, callbacks=[*seeding, stop_check()])
    seconds = time.perf_counter() - start
    _, accuracy = parts.model.evaluate(held.images, held.labels, batch_size=256, verbose=0)
    log(f"source model: {accuracy:.3f} accuracy in inference mode on {len(held)} held-out "
        f"source images ({seconds:.1f} s)")

    folder.mkdir(parents=True, exist_ok=True)
    # Written under temporary names and renamed, weights first: the metadata, written
    # last, holds the weights' checksum, so a killed run leaves no entry that verifies.
    write_whole(weights_path, parts.backbone.save_weights,
                partial=folder / f"{cache_name(key)}.{os.getpid()}.partial.weights.h5")
    result = Pretrained(weights_path=str(weights_path), source_accuracy=float(accuracy),
                        epochs=epochs, seconds=seconds,
                        weights_sha256=file_digest(weights_path, "sha256"), cache_problem=why)
    meta = {k: v for k, v in asdict(result).items()
            if k not in ("weights_path", "reused", "cache_problem")}
    meta |= {"key": key}
    text = json.dumps(meta | {"record_sha256": record_sha256(meta)}, indent=2)
    write_whole(meta_path, lambda partial: partial.write_text(text),
                partial=meta_path.with_suffix(f".{os.getpid()}.partial"))
    return result
