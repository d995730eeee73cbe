"""How fast one training step of the study's model runs, in the forms the levers would take.

The ResNet50V2 study needs its training to run faster than the 23 T multiply-adds a second
its epochs reached on an H200 (README, "Speed"). This measures, on synthetic batches
already on the device, the rate of a full fine-tuning step (the study's depth 0, its
costliest part) of the suite's model (backbone, pooling, a Dense softmax head; Adam) in:

- ``one``: one model, ``train_on_batch``, at the study's batch of 32 and at 9 x 32 (what
  training a trial's 9 repeats together could at most reach: one model at that batch);
- ``one`` with ``--xla_gpu_autotune_level=0``: how much of a first step's compilation
  is XLA timing kernels, and what the untimed choice costs per step;
- ``vmap``: 9 models (each its own variables, all at one build's values) as one program
  through ``jax.vmap`` of ``stateless_call`` (one member's graph compiled once, its
  convolutions batched into grouped ones), 32 images each;

at float32 (TF32 on the tensor cores) and mixed_bfloat16 (the study's batch; the others
in bfloat16 only, to keep the call short). Every variant runs in its own
process (its compilation timed on its own); one JSON line each. Usage::

    python docs/gpu/throughput.py --out throughput.jsonl [--image-size 224] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

#: (form, precision, members, batch per member, XLA_FLAGS), the likeliest answers first.
VARIANTS = [
    ("one", "float32", 1, 32, ""), ("one", "mixed_bfloat16", 1, 32, ""),
    # Compilation: a new graph's first execution took about 30 s on the H200; XLA times
    # candidate kernels while it compiles, and at level 0 it picks them without timing.
    ("one", "mixed_bfloat16", 1, 32, "--xla_gpu_autotune_level=0"),
    ("one", "mixed_bfloat16", 1, 288, ""), ("vmap", "mixed_bfloat16", 9, 32, ""),
]


def _model(backbone: str, image_size: int, precision: str):
    import keras

    from bench.models.backbones import backbone_spec, build_backbone

    keras.config.set_dtype_policy(precision)
    base = build_backbone(backbone_spec(backbone), image_size=image_size)
    pooled = keras.layers.GlobalAveragePooling2D()(base.output)
    head = keras.layers.Dense(5, activation="softmax", dtype="float32")(pooled)
    return keras.Model(base.input, head)


def measure(form: str, precision: str, members: int, batch: int, xla_flags: str, *,
            backbone: str, image_size: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    from bench.floor import forward_macs

    rng = np.random.default_rng(0)
    shape = (members, batch, image_size, image_size, 3) if form == "vmap" else (
        batch, image_size, image_size, 3)
    x = jnp.asarray(rng.uniform(0, 255, shape).astype("float32"))
    y = jnp.asarray(rng.integers(0, 5, shape[:-3]).astype("int32"))
    model = _model(backbone, image_size, precision)
    macs = forward_macs(model)
    if form == "one":
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

        def step():
            return model.train_on_batch(x, y)
    else:
        template = model
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(template.trainable_variables)

        def stacked(variables):
            # One build's values for every member: the time does not depend on them, and
            # building 9 ResNet50V2s would take much of the variant's limit.
            return [jnp.stack([v.value] * members) for v in variables]

        state = (stacked(template.trainable_variables),
                 stacked(template.non_trainable_variables), stacked(optimizer.variables))

        def loss(trainable, non_trainable, images, labels):
            probabilities, non_trainable = template.stateless_call(
                trainable, non_trainable, images, training=True)
            mean = jnp.mean(keras.losses.sparse_categorical_crossentropy(labels,
                                                                         probabilities))
            return mean, non_trainable

        def one_step(trainable, non_trainable, optimizer_state, images, labels):
            (value, non_trainable), grads = jax.value_and_grad(loss, has_aux=True)(
                trainable, non_trainable, images, labels)
            trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads,
                                                                   trainable)
            return (trainable, non_trainable, optimizer_state), value

        compiled = jax.jit(jax.vmap(one_step), donate_argnums=(0, 1, 2))

        def step():
            nonlocal state
            state, value = compiled(*state, x, y)
            return value

    started = time.perf_counter()
    jax.block_until_ready(step())
    first = time.perf_counter() - started
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        jax.block_until_ready(step())
        times.append(time.perf_counter() - started)
    seconds = float(np.median(times))
    images = members * batch
    return {"form": form, "precision": precision, "members": members, "batch": batch,
            "first_step_seconds": round(first, 2), "step_seconds": round(seconds, 5),
            "images_per_second": round(images / seconds, 1),
            "tmacs_per_second": round(3 * macs * images / seconds / 1e12, 2),
            "xla_flags": xla_flags, "forward_gmacs": round(macs / 1e9, 3),
            "device": str(jax.devices()[0])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--backbone", default="resnet50v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--limit", type=int, default=150, help="seconds per variant")
    parser.add_argument("--variant", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant is not None:
        result = measure(*VARIANTS[args.variant], backbone=args.backbone,
                         image_size=args.image_size, steps=args.steps)
        with open(args.out, "a") as out:
            out.write(json.dumps(result) + "\n")
        return 0
    open(args.out, "w").close()  # this run's lines only
    for index, variant in enumerate(VARIANTS):
        command = [sys.executable, __file__, *sys.argv[1:], "--variant", str(index)]
        started = time.perf_counter()
        try:
            flags = " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), variant[-1]]))
            code = subprocess.run(command, timeout=args.limit,
                                  env=os.environ | {"XLA_FLAGS": flags}).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
            form, precision, members, batch, xla_flags = variant
            with open(args.out, "a") as out:
                out.write(json.dumps({"form": form, "precision": precision,
                                      "members": members, "batch": batch,
                                      "xla_flags": xla_flags,
                                      "timed_out_after_seconds": args.limit}) + "\n")
        print(f"{variant}: exit {code} after {time.perf_counter() - started:.0f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
