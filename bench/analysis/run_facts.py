"""What ran, as the report tells it: a run's space, data, backbone, settings, processes,
resumes and speed options, each read from its ``run.json`` alone."""

from __future__ import annotations

import pandas as pd

from bench.analysis.formatting import counted


def epochs_text(run: dict) -> str:
    """"8 epochs", or Hyperband's "up to 9 epochs per trial (Hyperband's schedule)"."""
    settings = run.get("settings", {})
    if run.get("tuner") == "hyperband":
        most = run.get("arguments", {}).get("max_epochs") or settings.get("epochs")
        return f"up to {counted(most, 'epoch')} per trial (Hyperband's schedule)"
    return counted(settings.get("epochs"), "epoch")


def trained_epochs(run: dict, epochs: pd.DataFrame) -> list[str]:
    """A line where the epochs trained disagree with the study's setting: a space's
    ``fit`` that trains more, or, in a completed run, fewer in every execution."""
    set_epochs = run.get("settings", {}).get("epochs")
    if run.get("tuner") == "hyperband" or epochs.empty or not set_epochs:
        return []
    last = epochs.groupby(["trial_id", "repeat"])["epoch"].max()
    most = int(last.max())
    if most > set_epochs:
        return [f"Epochs trained: up to {most} per execution, more than the "
                f"{counted(set_epochs, 'epoch')} set: the space's fit() trains beyond "
                "run.epochs, and the tables and figures hold every epoch it trained"]
    if most < set_epochs and run.get("status") == "completed":
        return [f"Epochs trained: at most {most} per execution of the "
                f"{counted(set_epochs, 'epoch')} set: the space's fit() (or its early "
                "stopping) ended every execution sooner"]
    return []


def search_time(run: dict) -> str:
    """"search 93.9 s", and for a resumed run what each earlier process searched."""
    seconds = run.get("search_seconds")
    text = "search time not recorded (the process stopped first)" if seconds is None \
        else f"search {seconds} s"
    earlier = run.get("earlier_processes") or []
    if not earlier:
        return text
    times = ", ".join("not recorded (that process was stopped before it wrote its time)"
                      if e.get("search_seconds") is None else f"{e['search_seconds']} s"
                      for e in earlier)
    return f"{text} in the last of {len(earlier) + 1} processes (resumed); before it: {times}"


def resumed_lines(run: dict) -> list[str]:
    """What a resume did to the trials: those started and not ended ran again."""
    resumed = run.get("resumed") or []
    if not resumed:
        return []
    line = f"Resumed {counted(len(resumed), 'time')}"
    recorded = run.get("run_again") or []  # one list per resume since 2026-12-06
    unrecorded = len(resumed) - len(recorded)
    if unrecorded == len(resumed):
        return [line]
    again = sorted({trial for trials in recorded for trial in trials})
    which = f"trial {again[0]}" if len(again) == 1 else f"trials {', '.join(again)}"
    said = ("every trial that had started had ended, and was kept" if not again else
            f"{which} had started and not ended when a process stopped, and ran again from "
            "the first epoch")
    if unrecorded:
        return [f"{line} ({unrecorded} of them, the earliest, did not record which trials "
                f"ran again; in the other {len(recorded)}, {said})"]
    return [f"{line}; {said}"]


def _spread(spread: dict | None) -> str:
    """Where one process ran its trials."""
    if not spread:
        return "one process"
    if spread.get("remote"):
        # Started by hand, on this machine or others: the chief cannot tell which. (Not
        # its address: 0.0.0.0 by default, and another port after a resume.)
        return "workers started with 'worker'"
    workers = spread.get("workers")
    return f"{workers} worker process{'' if workers == 1 else 'es'}"


def _restarts(spreads: list) -> str:
    """The workers restarted, each with its restarts added up over the processes."""
    total: dict[str, int] = {}
    for spread in spreads:
        for name, count in ((spread or {}).get("restarts") or {}).items():
            total[name] = total.get(name, 0) + count
    return ", ".join(f"{name} {count}x" for name, count in total.items())


def spread_lines(run: dict) -> list[str]:
    """How the trials were spread over processes: one line, naming each process's way
    where a resumed run's processes differed (run.json of runs before 2026-12-06 did not
    record it for the earlier ones). Processes differ in their number of workers, not in
    the port their chief took."""
    earlier = run.get("earlier_processes") or []
    ways = [e.get("distributed", "not recorded") for e in earlier] + [run.get("distributed")]
    if not any(isinstance(way, dict) for way in ways):
        return []
    where = ["not recorded" if isinstance(way, str) else _spread(way) for way in ways]
    if len(set(where)) == 1:
        restarts = _restarts(ways)
        return [f"Trials ran in {where[0]} under KerasTuner's chief (merged tables)"
                + (f"; restarted: {restarts}" if restarts else "")]
    each = []
    for i, (way, text) in enumerate(zip(ways, where), start=1):
        if isinstance(way, str):
            each.append(f"process {i}: {text}")
            continue
        restarts = _restarts([way])
        each.append(f"process {i} in {text}" + (f", restarted: {restarts}" if restarts else ""))
    return [f"Trials ran, by process (the run was resumed): {'; '.join(each)}; worker "
            "processes under KerasTuner's chief (merged tables)"]


#: Classes listed by name in the report's class line; more are summed up.
LISTED_CLASSES = 10


def class_balance_line(data: dict) -> str | None:
    """Images per class and split, and the score of answering one class for every image
    (the largest class's share of each split): the accuracy a model must beat. None for a
    run that did not record its class counts."""
    counts = data.get("class_counts")
    if not counts:
        return None
    splits = [split for split in ("train", "validation", "test") if sum(counts.get(split, []))]
    classes = data.get("classes") or [str(i) for i in range(len(counts[splits[0]]))]
    per = [f"{name}: " + "/".join(str(counts[split][i]) for split in splits)
           for i, name in enumerate(classes)]
    shown = ", ".join(per[:LISTED_CLASSES]) + (
        f" and {len(per) - LISTED_CLASSES} more" if len(per) > LISTED_CLASSES else "")
    largest = " and ".join(f"{max(counts[split]) / sum(counts[split]):.3f} on {split}"
                           for split in splits if split != "train")
    line = f"Images per class ({'/'.join(splits)}): {shown}"
    return line + (f". Answering one class for every image scores at most {largest} (the "
                   "largest class's share)" if largest else "")


def what_ran(run: dict) -> list[str]:
    settings = run.get("settings", {})
    space = run.get("space", {})
    data = run.get("dataset", {})
    versions = run.get("versions", {})
    lines = [
        f"Search space `{space.get('name')}` version {space.get('version')}: "
        f"{space.get('description', '')}",
        f"Dataset `{settings.get('dataset')}`: {data.get('train', '?')} training, "
        f"{data.get('validation', '?')} validation, {data.get('test', '?')} test images, "
        f"classes {', '.join(str(c) for c in data.get('classes', []))}",
        f"Backbone `{settings.get('backbone')}` ({run.get('backbone', {}).get('blocks')} "
        f"blocks) at {settings.get('image_size')} px; tuner `{run.get('tuner')}`; "
        f"{epochs_text(run)}, {counted(settings.get('repeats'), 'repeat')} per "
        f"configuration (seeds {run.get('seeds', {}).get('repeats')}), batch "
        f"{settings.get('batch_size')}{whole_batch_text(run)}",
        *optimizer_lines(run),
        f"Keras backend `{run.get('backend')}` on {run.get('device')}; Keras "
        f"{versions.get('keras')}, KerasTuner {versions.get('keras-tuner')}; precision "
        f"`{precision(run)}`",
        f"Status {run.get('status')}; started {run.get('started')}, ended "
        f"{run.get('ended') or 'not recorded (the process stopped first)'}; "
        f"{search_time(run)}",
    ]
    balance = class_balance_line(data)
    if balance:
        lines.append(balance)
    if data.get("skipped_files"):
        lines.append(f"Skipped {data['skipped_files']} unreadable image file(s), for example "
                     f"{', '.join(data.get('skipped_examples', [])[:3])}")
    if data.get("duplicates_dropped"):
        lines.append(f"Dropped {data['duplicates_dropped']} file(s) repeating another "
                     "file's picture, within a folder or across splits (the data notes "
                     "below say where)")
    lines += [f"Data: {note}" for note in data.get("notes", [])]
    pre = run.get("pretraining")
    if pre and "source_accuracy" in pre:
        source = f" on the `{pre['source']}` source task" if pre.get("source") else ""
        lines.append(f"Source pretraining{source}: {counted(pre.get('epochs'), 'epoch')}, "
                     f"source accuracy in inference mode {pre['source_accuracy']:.3f}"
                     f"{' (reused from cache)' if pre.get('reused') else ''}")
        if pre.get("cache_problem"):
            lines.append(f"Source pretraining ran again: {pre['cache_problem']}")
    lines += spread_lines(run) + resumed_lines(run)
    rounding = rounding_paths_line(run)
    if rounding:
        lines.append(rounding)
    chosen = speed_options(run.get("arguments", {}))
    if chosen:
        lines.append(f"Speed options given: {', '.join(chosen)} (each changes the time, "
                     "and the numbers only by float rounding, which training can grow: "
                     "README, \"Speed\")")
    lines += [f"Note: {note}" for note in run.get("notes", [])]
    lines += [f"Warning: {warning}" for warning in run.get("warnings", [])]
    return lines


def trained_batch_size(run: dict) -> int | None:
    """The batch size the run trained at: its ``--batch-size``, or the training split's
    size where that is smaller (every epoch one step on all of it); None if unrecorded."""
    batch = run.get("settings", {}).get("batch_size")
    train = run.get("dataset", {}).get("train")
    if not isinstance(batch, int):
        return None
    return min(batch, train) if isinstance(train, int) else batch


def whole_batch_text(run: dict) -> str:
    """" (more than the 100 training images: ...)" where the batch size is larger than
    the training split, so every epoch is one step on all of it; "" otherwise."""
    batch = run.get("settings", {}).get("batch_size")
    train = trained_batch_size(run)
    if train is None or train == batch:
        return ""
    # Found by a new user: "batch 100000" of a study that trained in batches of 100.
    return (f" (more than the {train} training images: every epoch is one step on all of "
            f"them, as at batch {train})")


def optimizer_lines(run: dict) -> list[str]:
    """The optimizer every execution trained with, as the space's settings name it, or
    the space's hooks that choose it; none for a run.json from before the optimizer
    setting."""
    settings = run.get("settings", {})
    if "optimizer" not in settings:
        return []
    named = optimizer_text(settings)
    hooks = run.get("space", {}).get("hooks")
    if hooks is None:  # a run.json from before the record of hooks (2026-12-07)
        return [f"Optimizer {named} as the settings name it (this run.json does not record "
                "whether the space's own `optimizer` or `compile` hook chose another)"]
    if "compile" in hooks:
        return [f"Optimizer: the space's own `compile` hook compiles every model (the "
                f"settings name {named}, which the hook may not use)"]
    if "optimizer" in hooks:
        return [f"Optimizer: chosen for each trial by the space's `optimizer` hook (its "
                f"default {named}), at head_lr, the unfrozen backbone at head_lr x "
                "body_lr_scale"]
    return [f"Optimizer {named} at head_lr, the unfrozen backbone at head_lr x "
            "body_lr_scale"]


def optimizer_used(run: dict) -> str | None:
    """The optimizer a run trained with, in a few words for a list of runs: the settings'
    (`SGD` (momentum 0.9)), or the hook that chose it; None for a run.json from before the
    optimizer setting or the record of hooks (it is not known)."""
    settings = run.get("settings", {})
    hooks = run.get("space", {}).get("hooks")
    if "optimizer" not in settings or hooks is None:
        return None
    named = optimizer_text(settings)
    if "compile" in hooks:
        return f"its own `compile` hook's (settings {named})"
    if "optimizer" in hooks:
        return f"its `optimizer` hook's for each trial (default {named})"
    return named


def optimizer_text(settings: dict) -> str:
    """"`SGD` (momentum 0.9)": the settings' optimizer and its options."""
    options = ", ".join(f"{name} {value}" for name, value in
                        settings.get("optimizer_options") or [])
    return f"`{settings.get('optimizer')}`" + (f" ({options})" if options else "")


def precision(run: dict) -> str:
    """The run's Keras dtype policy (float32 for a run from before --precision)."""
    return run.get("arguments", {}).get("precision", "float32")


def rounding_paths_line(run: dict) -> str | None:
    """The fast paths that ran and compute what the plain path computes in another order
    (so rounded otherwise), and how to get the plain path's numbers; None if none ran.
    A resumed run's counts are every process's: "at least" where one recorded none."""
    arguments = run.get("arguments", {})
    batch = run.get("settings", {}).get("batch_size")
    evaluation = arguments.get("evaluation_batch_size")
    ran, options, without = [], [], []
    executions = _all_processes(run, "prefix_cache", "executions")
    if executions:
        ran.append(f"{executions} trained on the frozen-prefix cache's features")
        options.append("--no-prefix-cache")
    trials = _all_processes(run, "together", "trials", unit="trial")
    if trials:
        ran.append(f"{trials} trained their repeats together")
        without.append("--train-together")
    larger = _all_processes(run, "evaluation", "larger_batches")
    tested = _all_processes(run, "evaluation", "larger_tests_only")
    if larger:
        ran.append(f"{larger} validated and tested in batches of {evaluation}, not {batch}")
    if tested:
        ran.append(f"{tested} tested in batches of {evaluation}, not {batch} (their "
                   "space's own fit validated some or all of their epochs)")
    if larger or tested:
        options.append(f"--evaluation-batch-size {batch}")
    elif not _recorded_anywhere(run, "evaluation") and evaluation and batch \
            and evaluation != batch and precision(run) == "float32":
        # A run from before the count (2026-12-07): the options given, as it then said.
        ran.append(f"validation and test in batches of {evaluation}, not {batch}")
        options.append(f"--evaluation-batch-size {batch}")
    if not ran:
        return None
    how = ([f"with {' and '.join(options)}"] if options else []) + [
        f"without {option}" for option in without]
    return (f"Fast paths that round otherwise than the plain path: {'; '.join(ran)}. The "
            "tests find them equal within 1e-5, but training can grow a rounding "
            "difference (once by one validation image: README, \"Speed\"); for the plain "
            f"path's numbers, run {', '.join(how)}")


def _processes(run: dict) -> list[dict]:
    """The records of each process of ``run`` (a resumed run's earlier ones first)."""
    return [*(run.get("earlier_processes") or []), run]


def _recorded_anywhere(run: dict, key: str) -> bool:
    return any(isinstance(process.get(key), dict) for process in _processes(run))


def _all_processes(run: dict, key: str, name: str, *, unit: str = "execution") -> str | None:
    """"12 executions": the count ``name`` of ``key`` summed over the run's processes,
    "at least 12 executions" where one of them recorded none (stopped before it did);
    None for none counted."""
    processes = _processes(run)
    total = sum((process.get(key) or {}).get(name, 0) for process in processes)
    if not total:
        return None
    # Every process that recorded its search has "models"; a path that was off, no key.
    unrecorded = any(process.get("models") is None for process in processes)
    return ("at least " if unrecorded else "") + counted(total, unit)


#: The run options that choose a fast path, by their RunSpec field (run.json's
#: "arguments"), as typed.
SPEED_OPTIONS = {"prefix_cache": "--no-prefix-cache", "reuse_models": "--no-reuse",
                 "device_data": "--no-device-data", "together": "--train-together",
                 "evaluation_batch_size": "--evaluation-batch-size {}",
                 "cache_memory_mb": "--cache-memory {}"}


def speed_options(arguments: dict) -> list[str]:
    """The fast-path options a run was given other than their defaults, as typed
    (``--no-reuse``)."""
    from dataclasses import fields

    from bench.plan import RunSpec

    defaults = {f.name: f.default for f in fields(RunSpec)}
    return [option.format(arguments[name]) for name, option in SPEED_OPTIONS.items()
            if name in arguments and arguments[name] != defaults[name]]
