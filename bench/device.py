"""Which Keras backend and which device run the trials, said plainly at the start of a run.

Each backend is asked in its own terms, and its framework is imported only here, so the
rest of the suite stays backend-agnostic.
"""

from __future__ import annotations

import functools
import platform

#: Each Keras backend's framework: the package it imports, whose version its numbers
#: depend on besides Keras.
BACKEND_FRAMEWORKS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch",
                      "numpy": "numpy", "openvino": "openvino"}


def describe_device() -> dict:
    """Returns ``{"backend", "device", "accelerators", "cpu_features"}`` for the active
    Keras backend."""
    import keras

    backend = keras.backend.backend()
    accelerators: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            accelerators.append(details.get("device_name", gpu.name))
    elif backend == "jax":
        import jax

        accelerators = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            accelerators = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    names = ", ".join(filter(None, [cpu_model(), platform.machine()]))
    cpu = f"CPU ({names}, {_cpu_count()} cores)"
    device = f"GPU: {accelerators[0]}" if accelerators else cpu
    return {"backend": backend, "device": device, "accelerators": accelerators,
            "cpu_features": cpu_features()}


def cpu_model() -> str:
    """The processor's model name ("" where the system does not say). Recorded because
    floating-point results can differ between processors running the same code."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


#: Instruction-set extensions that decide which kernels the math libraries (oneDNN, XLA,
#: Eigen) run, and so the rounding of a float computation.
NUMERIC_CPU_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                        "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_features() -> list[str]:
    """Which of ``NUMERIC_CPU_FEATURES`` the processor has ([] where the system does not
    say). Two instances of one machine kind can share a model name ("AMD EPYC") and differ
    here, and then a study's numbers can differ from the first pretraining epoch on."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [name for name in NUMERIC_CPU_FEATURES if name in flags]
    except OSError:
        pass
    return []


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def library_versions() -> dict:
    """Versions of the libraries a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("keras", "keras-tuner", "tensorflow", "jax", "torch", "numpy", "pandas",
                 "pillow", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def code_sha256(*modules) -> str:
    """SHA-256 of the modules' source files: a cache entry made by other code (another
    release, an edited backbone) must not be taken for this code's."""
    import hashlib

    digest = hashlib.sha256()
    for module in modules:
        digest.update(_source(module.__file__))
    return digest.hexdigest()


@functools.cache
def _source(path: str) -> bytes:
    # Read once per process, at its first digest (the suite's first cache lookup): a file
    # edited after that is not the code that runs, and its digest would file this code's
    # results under the edited code's key (on 2026-12-05 perf's second pretraining, after
    # an edit, did that). An edit between import and the first lookup is not caught.
    from pathlib import Path

    return Path(path).read_bytes()


def use_compilation_cache(cache_dir) -> str | None:
    """With JAX, keeps compiled programs under ``cache_dir/jax-compilation`` so that a later
    run compiles less (FACTS.md: a second process's first epoch fell from 19 s to 5 s on an
    H100). A cache the user set (``JAX_COMPILATION_CACHE_DIR``) is kept. Returns the folder,
    or None for other backends."""
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return str(current)
    from pathlib import Path

    folder = Path(cache_dir) / "jax-compilation"
    jax.config.update("jax_compilation_cache_dir", str(folder))
    return str(folder)
