"""A study from start to finish: plan it, prepare data and weights, search, report.

The runner only wires: the options are checked first (``bench.plan``), data and source
weights are ready before the tuner is constructed, and every result lands in the run
directory as it is produced, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from bench.analysis.formatting import counted
from bench.command import command
from bench.data.datasets import DataRequest, load_dataset, splits_sha256
from bench.errors import BenchError, DiskFull, FailureLimit, StudyFailed
from bench.models.backbones import ensure_imagenet_weights
from bench.models.precision import compute_dtype
from bench.plan import RunSpec, StudyPlan, no_source_error, plan_study
from bench.space import SpaceSettings, space_identity, values_in_use
from bench.tuning.search_record import add_notes, combined, search_record, worker_records


def _timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dataset_facts(data, *, own_source: bool, seconds: float) -> dict:
    """What ``run.json`` says of the loaded dataset (``own_source``: its own source task
    is the one used, not another dataset's from --source-dataset)."""
    import numpy as np

    splits = (("train", data.train), ("validation", data.validation), ("test", data.test))
    return {"name": data.name, "classes": list(data.class_names),
            "train": len(data.train), "validation": len(data.validation),
            "test": len(data.test),
            "class_counts": {part: np.bincount(split.labels,
                                               minlength=len(data.class_names)).tolist()
                             for part, split in splits},
            "source": len(data.source) if data.source is not None and own_source else 0,
            "skipped_files": len(data.skipped_files),
            "skipped_examples": list(data.skipped_files[:5]),
            "duplicates_dropped": data.duplicates_dropped,
            "sha256": splits_sha256(data.train, data.validation, data.test),
            "notes": list(data.notes), "seconds": seconds}


def prepare_inputs(spec: RunSpec, *, settings: SpaceSettings, backbone, hp, image_size: int,
                   log) -> tuple:
    """Loads the dataset and readies the initial weights the space can ask for.

    Returns:
        ``(data, weights, facts)``: the TransferData; the source-weights file, "imagenet",
        or None; and what ``run.json`` should say about both.
    """
    from bench.models.pretrain import pretrain, weak_source_warning

    request = DataRequest(
        image_size=image_size, seed=spec.seed, train_per_class=spec.train_per_class,
        images_per_class=spec.images_per_class, data=spec.data, data_dir=spec.data_dir,
        cache_dir=Path(spec.cache_dir), target_only=spec.source_dataset is not None)
    loading = time.perf_counter()
    data = load_dataset(settings.dataset, request)
    loaded_seconds = round(time.perf_counter() - loading, 2)
    log(f"data: {data.summary(source=spec.source_dataset is None)} ({loaded_seconds:.1f} s)")
    for note in data.notes:
        log(f"data: {note}")
    facts = {"dataset": _dataset_facts(data, own_source=spec.source_dataset is None,
                                       seconds=loaded_seconds)}
    weights = None
    inits, _ = values_in_use(hp, "init", settings)
    if "pretrained" in inits:
        source = data
        if spec.source_dataset is not None:
            # The target's --train-per-class is not the source dataset's.
            source = load_dataset(spec.source_dataset,
                                  replace(request, train_per_class=None, source_only=True,
                                          target_only=False))
            if source.source is not None:
                log(f"data: source task from {source.name}, {len(source.source)} images")
                facts["dataset"]["source"] = len(source.source)
        if source.source is not None:
            made = pretrain(backbone, source, image_size=image_size, seed=spec.seed,
                            epochs=spec.pretrain_epochs, cache_dir=Path(spec.cache_dir), log=log)
            weights = made.weights_path
            facts["pretraining"] = asdict(made) | {"source": source.name}
            weak = weak_source_warning(made.source_accuracy)
            if weak is not None:
                # Reused weights as well as new ones: the report must say it either way.
                log(f"warning: {weak}")
                facts["warnings"] = [weak]
        elif backbone.imagenet:
            log(f"{data.name} has no source task: 'pretrained' means ImageNet weights")
            weights = "imagenet"
            facts["pretraining"] = {"source": "imagenet"}
        else:
            raise no_source_error(data.name, backbone)
    if "imagenet" in inits or weights == "imagenet":
        ensure_imagenet_weights(backbone, image_size=image_size)
    return data, weights, facts


def _check_space(spec: RunSpec, *, space, inputs, hp, data, batch_size: int, keep_model: bool,
                 log):
    """The pre-flight build (bench.tuning.preflight); returns what the check found (its
    model too, with ``keep_model`` where compiled models are reused)."""
    from bench.tuning.hypermodel import FineTuneHyperModel
    from bench.tuning.preflight import preflight
    from bench.tuning.reuse import reusable

    return preflight(space, hypermodel=FineTuneHyperModel(space, inputs), hp=hp, data=data,
                     batch_size=batch_size, seed=spec.seed, log=log,
                     keep_model=keep_model and spec.reuse_models and reusable(space))


def _close_table(table) -> None:
    if table is None:
        return
    try:
        table.close()
    except OSError:
        pass  # The error that stopped the run, not this one, is what the user must see.


def _write_report(path: Path, failure: StudyFailed | None, *, log) -> StudyFailed | None:
    """Writes the run's figures and report; a full disk here leaves the tables whole and
    says how to make the report later. Returns the failure to raise, if any."""
    from bench.analysis.report import write_outputs

    try:
        write_outputs([path], log=log)
    except BrokenPipeError:
        raise  # the output closed (a reader such as 'head' ended), not the disk
    except (OSError, DiskFull) as error:
        if failure is not None and failure.resumable and DiskFull.caused(error):
            return failure  # the disk is still full; the resumed run writes the report
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
        later = (f"the report could not be written ({reason}); once there is space, "
                 f"'{command('analyze', path)}' makes it from the tables")
        return failure.also(later) if failure else StudyFailed(f"the study completed but {later}")
    except Exception as error:  # noqa: BLE001 (a bug in drawing must not hide whole tables)
        later = (f"the report failed ({type(error).__name__}: {error}), a bug in the suite; "
                 f"the tables are whole, and '{command('analyze', path)}' retries it")
        return failure.also(later) if failure else StudyFailed(f"the study completed but {later}")
    return failure



@dataclass(frozen=True)
class ScaleOut:
    """How trials are spread over processes (bench.tuning.distributed).

    ``workers`` local worker processes are started and supervised (``run --workers N``);
    with ``remote`` the chief only serves, and workers connect from other machines
    (``run_bench.py chief``).
    """

    workers: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    remote: bool = False


def study_oracle(plan: StudyPlan):
    """A new KerasTuner oracle for ``plan``'s search, over a copy of its hyperparameters."""
    from bench.tuning.algorithms import make_oracle

    spec, settings = plan.spec, plan.settings
    return make_oracle(plan.tuner_name, hyperparameters=plan.hp.copy(),
                       max_trials=settings.max_trials, seed=spec.seed,
                       max_epochs=plan.max_epochs, initial_points=spec.initial_points)


def _kept_trials(resumed) -> dict:
    """What a resumed run's progress lines count from: the trials kept and their time."""
    if resumed is None:
        return {}
    return {"done": len(resumed.ended),
            "kept_seconds": sum(extras.get("seconds") or 0.0
                                for extras in resumed.extras.values())}


def build_tuner(plan: StudyPlan, *, oracle, data, inputs, run_dir, table, log,
                resumed=None, worker: bool = False):
    """The BenchTuner that runs ``plan``'s trials here (a single process or a worker),
    and its frozen-prefix cache (None when off). ``resumed``: what a resumed run kept
    (its trials count, and their time); a ``worker`` counts only its own trials."""
    from bench.results import read_run
    from bench.tuning.bench_tuner import BenchTuner, Execution
    from bench.tuning.hypermodel import FineTuneHyperModel
    from bench.tuning.prefix import PrefixCache
    from bench.tuning.progress import Progress
    from bench.tuning.resident import device_data_wanted

    spec, settings = plan.spec, plan.settings
    notes = []
    prefix_cache, evaluation_batch_size = spec.prefix_cache, spec.evaluation_batch_size
    if spec.precision != "float32" and (prefix_cache
                                        or evaluation_batch_size != settings.batch_size):
        # Measured on JAX (CPU): either path moved a validation accuracy by an image or
        # two, where in float32 both agree within 1e-5 (tests/test_precision.py).
        prefix_cache, evaluation_batch_size = False, settings.batch_size
        notes.append(f"precision {spec.precision}: the frozen-prefix cache is off and "
                     f"validation and test run at the training batch size "
                     f"({settings.batch_size}): in bfloat16 a layer's result depends on "
                     "the batch it runs in and what it is computed with, so either could "
                     "change numbers")
    # The id the run started with: a run copied to another folder and resumed there
    # keeps one run_id in its tables.
    run_id = read_run(run_dir).get("run_id") or run_dir.path.name
    execution = Execution(run_id=run_id, data=data, epochs=settings.epochs,
                          batch_size=settings.batch_size, repeats=settings.repeats,
                          seed=spec.seed, table=table, columns=plan.columns, run_dir=run_dir,
                          evaluation_batch_size=evaluation_batch_size)
    total = plan.planned_trials
    progress = Progress(total_trials=None if worker else total, repeats=settings.repeats,
                        epochs=settings.epochs, worker=worker, **_kept_trials(resumed))
    prefix = None
    device_data = spec.device_data and device_data_wanted()
    if prefix_cache:
        prefix = PrefixCache(plan.space, memory_bytes=spec.cache_memory_mb * 2**20,
                             evaluation_batch_size=evaluation_batch_size,
                             device_data=device_data)
        if prefix.off_reason:
            notes.append(f"frozen-prefix cache off: {prefix.off_reason}")
    tuner = BenchTuner(oracle=oracle, hypermodel=FineTuneHyperModel(plan.space, inputs),
                       directory=str(run_dir.path), project_name="tuner", execution=execution,
                       progress=progress,
                       nothing_left_to_run=None if worker else plan.nothing_left_to_run,
                       reuse_models=spec.reuse_models,
                       tensorboard_dir=run_dir.path / "tensorboard" if spec.tensorboard
                       else None, prefix=prefix, together=spec.together,
                       device_data=device_data)
    if spec.together and tuner.together.off_reason and settings.repeats > 1:
        notes.append(f"repeats trained one at a time: {tuner.together.off_reason}")
    for note in notes:
        log(f"note: {note}")
    tuner.notes += notes
    return tuner, prefix


def _add_search_record(record: dict, search: dict) -> None:
    """Puts a search's counts and its notes not yet said into ``record``."""
    search = dict(search)
    add_notes(record, search.pop("notes"))
    record |= search


def _note_stop(record: dict, plan: StudyPlan, *, oracle, log,
               failure_limit: bool = False) -> None:
    """Notes why the search ran fewer trials than planned, and where KerasTuner's limit
    on failures in a row was met with nothing left to run (the search then ended)."""
    from bench.tuning.algorithms import stop_reason
    from bench.tuning.bench_tuner import failure_limit_met, limit_note

    trials = list(oracle.trials.values())
    if not failure_limit and failure_limit_met(oracle) is not None:
        note = limit_note(oracle.max_consecutive_failed_trials)
        log(f"note: {note}")
        add_notes(record, [note])
    reason = stop_reason(plan.tuner_name, plan.hp, trials_run=len(trials),
                         max_trials=plan.settings.max_trials, max_epochs=plan.max_epochs,
                         failed=sum(trial.status == "FAILED" for trial in trials),
                         failure_limit=failure_limit)
    if reason:
        log(f"note: {reason}")
        add_notes(record, [reason])


@dataclass(frozen=True)
class _Start:
    """What is known of a run before its data are ready: its name, when it started, the
    device it runs on and the space's file as it was loaded."""

    name: str
    started_at: str
    device: dict
    identity: dict


def _start(plan: StudyPlan, *, resume_from: Path | None, log) -> _Start:
    """Checks the run can start (its name is free, the cache writable; a resumed run's
    space, backend and versions unchanged) and says what is about to run."""
    from bench.device import describe_device, library_versions
    from bench.results import check_new_run_dir, check_writable, run_name

    spec, space = plan.spec, plan.space
    name = run_name(spec.name, prefix=space.name)
    if resume_from is None:
        check_new_run_dir(Path(spec.results_dir), name)
    check_writable(Path(spec.cache_dir), what=f"cannot write to --cache-dir {spec.cache_dir}")
    started_at = _timestamp()
    device = describe_device()
    identity = space_identity(space)  # the file as it was loaded
    if resume_from is not None:
        from bench.results import RunDir, read_run
        from bench.tuning.resume import refuse_changed_inputs, refuse_other_space

        # The space, backend and versions first, before the run's first line: their
        # refusal need not wait for data and pretraining (the weights and data are
        # compared when they are ready).
        ran = read_run(RunDir(Path(resume_from)))
        refuse_other_space(Path(resume_from), ran, identity)
        refuse_changed_inputs(Path(resume_from), ran,
                              {"backend": device["backend"], "versions": library_versions()})
    log(f"run {name}: space {space.name} v{space.version}, dataset {plan.settings.dataset}, "
        f"backbone {plan.backbone.name} ({plan.num_blocks} blocks) at {plan.image_size}px, "
        f"tuner {plan.tuner_name}")
    log(f"Keras backend {device['backend']} on {device['device']}"
        + ("" if spec.precision == "float32" else
           f"; precision {spec.precision} ({compute_dtype(spec.precision)} compute, "
           "float32 weights)"))
    return _Start(name=name, started_at=started_at, device=device, identity=identity)


def _study_notes(plan: StudyPlan, *, device: dict, log) -> list[str]:
    """The tuner's and reuse's notes, said now and kept for ``run.json``."""
    from bench.tuning.algorithms import tuner_notes
    from bench.tuning.reuse import reuse_note

    spec = plan.spec
    notes = tuner_notes(plan.tuner_name, plan.hp, max_trials=plan.settings.max_trials,
                        initial_points=spec.initial_points, given=spec.max_trials is not None)
    # Here, not where a tuner is built: a chief builds none, and its run.json says it too.
    reuse = reuse_note(plan.space, enabled=spec.reuse_models)
    notes += [reuse] if reuse is not None else []
    for note in notes:
        log(f"note: {note}")
    if spec.preset is not None and not device["accelerators"]:
        log(f"note: preset {spec.preset} is meant for a GPU; on this CPU it runs, slowly "
            "(a ResNet at 224 px trains at tens of images per second on two cores)")
    return notes


def _run_record(plan: StudyPlan, start: _Start, *, notes: list[str], prepared: dict,
                warnings: list[str], compilation_cache, preflight_seconds: float) -> dict:
    """The run's ``run.json`` as it starts (``status`` running)."""
    from bench.device import library_versions
    from bench.results import process_identity
    from bench.tuning.bench_tuner import repeat_seeds

    spec, space, settings, hp = plan.spec, plan.space, plan.settings, plan.hp
    return {
        "run_id": start.name,
        "status": "running",
        "started": start.started_at,
        "space": {**start.identity, "description": space.description,
                  "hyperparameters": [p.get_config() | {"type": type(p).__name__}
                                      for p in hp.space]},
        "settings": asdict(settings) | {"image_size": plan.image_size},
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()},
        "tuner": plan.tuner_name,
        "preset": spec.preset,
        "references": plan.references,
        "backbone": {"name": plan.backbone.name, "blocks": plan.num_blocks},
        "seeds": {"oracle": spec.seed, "repeats": repeat_seeds(spec.seed, settings.repeats)},
        "columns": {"hyperparameters": plan.columns, "varied": [p.name for p in hp.space]},
        **start.device,
        "versions": library_versions(),
        "notes": notes,
        "process": process_identity(),
        "compilation_cache": compilation_cache,
        **prepared,
        "warnings": warnings,
        "preflight_seconds": preflight_seconds,
    }


def _open_run_dir(plan: StudyPlan, record: dict, *, resume_from: Path | None,
                  scale: ScaleOut | None, log) -> tuple:
    """Makes the run directory (or continues ``resume_from``) and writes ``run.json``.

    Returns:
        ``(run_dir, record, resumed)``: ``resumed`` is what a continued run had done,
        None for a new run.
    """
    from bench.results import new_run_dir, write_json

    resumed = None
    if resume_from is None:
        run_dir = new_run_dir(Path(plan.spec.results_dir), record["run_id"])
    else:
        from bench.tuning.resume import continue_run

        if scale is None and (Path(resume_from) / "workers").is_dir():
            served = command("chief", "--resume", resume_from, "--port", "P")
            raise BenchError(f"{resume_from} ran its trials in workers; resume it with "
                             f"--workers N (or '{served}')")
        run_dir, record, resumed = continue_run(Path(resume_from), record, log=log)
    record.pop("distributed", None)
    if scale is not None:
        record["distributed"] = {"workers": scale.workers, "remote": scale.remote}
    try:
        write_json(run_dir.run_json, record)
    except DiskFull:
        if resume_from is None:
            try:
                run_dir.path.rmdir()  # empty: the same command (--name) can run again
            except OSError:
                pass
        raise
    return run_dir, record, resumed


@dataclass
class _Search:
    """A search built, here or in workers: ``begin`` readies it (``write_trials`` can
    already write ``trials.csv``), ``run`` runs it, ``search_record`` then says what it
    did, for ``run.json``."""

    run: Callable[[], None]
    search_record: Callable[[], dict]
    write_trials: Callable[[], None]
    begin: Callable[[], None] = lambda: None
    table: object = None  # the epochs table this process appends to, if any


def _search_here(plan: StudyPlan, *, oracle, data, inputs, checked, run_dir, resumed,
                 log) -> _Search:
    """The search in this process: a BenchTuner appending to ``epochs.csv``, which takes
    over the pre-flight check's model and continues a ``resumed`` run's trials."""
    from bench.tuning.recording import CsvAppender, epoch_columns

    table = CsvAppender(run_dir.epochs_csv, epoch_columns(plan.columns, plan.space.epoch_columns))
    try:
        tuner, prefix = build_tuner(plan, oracle=oracle, data=data, inputs=inputs,
                                    run_dir=run_dir, table=table, log=log,
                                    resumed=resumed)
    except BaseException:
        _close_table(table)
        raise

    def begin():
        if checked.model is not None:
            tuner.models.adopt(checked.model, plan.hp)
            checked.model = None
        if resumed is not None:
            tuner.continue_from(resumed.extras)

    return _Search(run=lambda: tuner.search(verbose=0), begin=begin,
                   search_record=lambda: search_record(tuner, prefix),
                   write_trials=tuner.write_trials, table=table)


def _search_in_workers(plan: StudyPlan, scale: ScaleOut, *, oracle, run_dir, record, resumed,
                       log) -> _Search:
    """The search served to worker processes by a chief (``bench.tuning.chief``)."""
    from bench.tuning.chief import ChiefStudy

    chief = ChiefStudy(scale, oracle=oracle, plan=plan, run_dir=run_dir, record=record,
                       resumed=resumed, log=log)
    return _Search(run=chief.run, write_trials=chief.write_trials,
                   search_record=lambda: combined(worker_records(run_dir.path)))


def _record_failure(record: dict, error: Exception) -> StudyFailed:
    """Marks ``record`` failed by ``error`` (a StudyFailed, or KerasTuner's FatalError,
    which carries a full disk out of its trial loop); returns the StudyFailed to raise."""
    failure = error.__cause__ if isinstance(error.__cause__, StudyFailed) else error
    if not isinstance(failure, StudyFailed):
        failure = StudyFailed(f"{type(error).__name__}: {error}")
    record["status"] = "failed"
    record["error"] = str(failure)
    if isinstance(failure, FailureLimit):
        record["failure_limit"] = True  # not resumable (see FailureLimit)
    return failure


def _stop_at_failure_limit(plan: StudyPlan, *, oracle, run_dir, search: _Search) -> None:
    """Raises the ``FailureLimit`` a resumed run's trials had met (it was stopped after
    KerasTuner's limit and before ``run.json`` said so): it ends as it would have then,
    where KerasTuner would run one more trial and stop at its end."""
    from bench.tuning.resume import recorded_failure_limit

    stopped = recorded_failure_limit(oracle, plan=plan, run=run_dir)
    if stopped is not None:
        search.write_trials()
        raise stopped


def _search(plan: StudyPlan, record: dict, *, make_search, run_dir, log) -> StudyFailed | None:
    """Runs the search that ``make_search(oracle)`` readies, keeping ``record`` (and so
    ``run.json``) true to how it ended. Returns the failure that ended the study, if
    any; a stop or an error of the suite's is raised after the record is written."""
    import keras_tuner

    from bench.results import write_json

    search = None
    failure = None
    try:
        oracle = study_oracle(plan)
        total = plan.planned_trials
        epochs = (f"up to {counted(plan.max_epochs, 'epoch')} per trial"
                  if plan.tuner_name == "hyperband" else counted(plan.settings.epochs, "epoch"))
        trials = counted(total, "trial") + (" in Hyperband's brackets"
                                            if plan.tuner_name == "hyperband" else "")
        log(f"searching: {trials} x {counted(plan.settings.repeats, 'repeat')} x {epochs}")
        started = time.perf_counter()
        search = make_search(oracle)
        search.begin()
        try:
            _stop_at_failure_limit(plan, oracle=oracle, run_dir=run_dir, search=search)
            search.run()
        finally:
            record["search_seconds"] = round(time.perf_counter() - started, 2)
            _add_search_record(record, search.search_record())
        search.write_trials()
        _note_stop(record, plan, oracle=oracle, log=log)
        if not any(trial.status == "COMPLETED" for trial in oracle.trials.values()):
            raise StudyFailed(f"no trial completed: all {len(oracle.trials)} failed (why, "
                              "trial by trial, is in trials.csv and report.md)")
        record["status"] = "completed"
    except (StudyFailed, keras_tuner.errors.FatalError) as error:
        failure = _record_failure(record, error)
        if isinstance(failure, FailureLimit):
            _note_stop(record, plan, oracle=oracle, log=log, failure_limit=True)
        if search is not None:
            try:
                # The trial that was running is listed as RUNNING, and a chief merges what
                # its workers wrote (a worker that stopped left rows only in its table).
                search.write_trials()
            except (OSError, DiskFull):
                pass  # the disk is full: the failure already says so
            except Exception as error:  # noqa: BLE001 (the failure must not be hidden)
                log(f"warning: trials.csv was not rewritten after the failure "
                    f"({type(error).__name__}: {error})")
    except KeyboardInterrupt as interrupt:
        record["status"] = "interrupted"
        if search is not None:
            search.write_trials()  # the trial that was running is listed as RUNNING
        interrupt.run_dir = run_dir.path
        raise
    except BaseException as error:
        record["status"] = "failed"
        record["error"] = f"{type(error).__name__}: {error}"
        if isinstance(error, BrokenPipeError):  # the command line says where the rows are
            error.run_dir = run_dir.path
        raise
    finally:
        _close_table(search.table if search is not None else None)
        record["ended"] = _timestamp()
        try:
            write_json(run_dir.run_json, record)
        except DiskFull as error:
            if failure is None:
                failure = error  # a completed search's run.json still says running
            else:
                log(f"error: {error}")
    return failure


def run_study(spec: RunSpec, *, log=print, resume_from: Path | None = None,
              scale: ScaleOut | None = None) -> Path:
    """Runs one study and returns its run directory.

    Args:
        spec: What to run.
        resume_from: A run directory to continue instead of starting a new one (its
            ``run.json`` made ``spec``; see ``bench.tuning.resume``).
        scale: Run the trials in worker processes under a chief; None runs them here.

    Raises:
        BenchError: for a user mistake (unknown name, bad option, existing run name),
            before any training starts.
        StudyFailed: when the study started but could not finish; its tables and
            report are written first.
    """
    from bench.device import use_compilation_cache

    plan = plan_study(spec, new=resume_from is None)
    spec = plan.spec
    start = _start(plan, resume_from=resume_from, log=log)
    try:
        notes = _study_notes(plan, device=start.device, log=log)
        compilation_cache = use_compilation_cache(spec.cache_dir)
        # Data, source weights and ImageNet weights are ready before the run directory
        # exists, so a missing download or folder leaves no half-made run behind.
        data, weights, prepared = prepare_inputs(spec, settings=plan.settings,
                                                 backbone=plan.backbone, hp=plan.hp,
                                                 image_size=plan.image_size, log=log)
        inputs = plan.model_inputs(data, weights)
        checking = time.perf_counter()
        # In one process the search takes the checked model over; workers build their own.
        checked = _check_space(spec, space=plan.space, inputs=inputs, hp=plan.hp, data=data,
                               batch_size=plan.settings.batch_size, keep_model=scale is None,
                               log=log)
        warnings = prepared.pop("warnings", []) + checked.warnings
        record = _run_record(plan, start, notes=notes, prepared=prepared, warnings=warnings,
                             compilation_cache=compilation_cache,
                             preflight_seconds=round(time.perf_counter() - checking, 2))
    except BenchError as error:
        # Its first line named the run; say that nothing of it was written.
        if resume_from is None:
            error.no_run_written = True
        raise
    try:
        run_dir, record, resumed = _open_run_dir(plan, record, resume_from=resume_from,
                                                 scale=scale, log=log)
    except DiskFull as full:
        if resume_from is None:  # nothing ran: no run to continue
            raise StudyFailed(f"{full}; nothing ran: run the same command again") from full
        full.run_dir = Path(resume_from)
        raise
    if scale is None:
        def make_search(oracle):
            return _search_here(plan, oracle=oracle, data=data, inputs=inputs,
                                checked=checked, run_dir=run_dir, resumed=resumed, log=log)
    else:
        def make_search(oracle):
            return _search_in_workers(plan, scale, oracle=oracle, run_dir=run_dir,
                                      record=record, resumed=resumed, log=log)
    try:
        failure = _search(plan, record, make_search=make_search, run_dir=run_dir, log=log)
    except KeyboardInterrupt as interrupt:
        interrupt.run_dir = run_dir.path  # also when it came as run.json was written
        raise
    try:
        failure = _write_report(run_dir.path, failure, log=log)
    except (KeyboardInterrupt, BrokenPipeError) as interrupt:
        if failure is None:
            # The search completed and its tables are whole: only the report is missing.
            interrupt.run_dir, interrupt.ended = run_dir.path, "report missing"
            raise
        # A failed study's reason (and what to do about it) comes first.
        why = "stopped" if isinstance(interrupt, KeyboardInterrupt) else "the output closed"
        failure = failure.also(f"the report was not written ({why}): "
                               f"'{command('analyze', run_dir.path)}' writes it")
    if failure is not None:
        failure.run_dir = run_dir.path
        raise failure
    return run_dir.path
