"""The command line: ``run_bench.py [run|list|analyze]``. User mistakes exit with status 2."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from bench.command import command, started_as
from bench.errors import BenchError, DiskFull, StudyFailed
from bench.stopping import install_stop_handlers

EXIT_USER_ERROR = 2
EXIT_STUDY_FAILED = 1


class _Parser(argparse.ArgumentParser):
    # argparse answers a mistake with the whole usage block (15 lines for 'run') above
    # the one line that matters; the user gets that line and where the help is.
    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"error: {message}; see '{self.prog} --help'\n")


def _path(text: str) -> Path:
    """A path option's value; an empty one (an unset shell variable) is refused rather than
    read as the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset variable?); give a path, "
                                         "or '.' for the current folder")
    return Path(text)


def _run_arguments(parser: argparse.ArgumentParser, *, resumable: bool = True) -> None:
    from bench.plan import default_cache_dir
    from bench.space import default_spaces_dir

    add = parser.add_argument
    add("--space", help="search space: a file in the spaces folder (default seed)")
    add("--preset", help="seed or d2l: the seed chapter's experiments (their space and "
                         "settings, published numbers in the report; meant for a GPU)")
    add("--spaces-dir", type=_path, default=default_spaces_dir(),
        help="folder of search space files (default: ./search_spaces if there is one, "
             "else the shipped spaces)")
    add("--init", help="fix the init hyperparameter to pretrained, random or imagenet "
                       "(for example to run an ImageNet space offline with random weights)")
    add("--dataset", help="dataset name (default: the space's; 'folder' with --data)")
    add("--data", type=_path, help="an image folder: one subfolder per class, or train/ with "
                                  "val/ and/or test/, each with class subfolders (dataset "
                                  "'folder')")
    add("--data-dir", type=_path, help="where downloaded datasets are kept "
                                      "(default: CACHE_DIR/data)")
    add("--source-dataset", help="dataset whose source task pretrains the backbone when the "
                                 "target dataset has none (digits, shapes)")
    add("--backbone", help="backbone name (default: the space's)")
    add("--tuner", help="grid, random, bayesian or hyperband (default: grid for finite spaces)")
    add("--max-trials", type=int, help="trials at most (default: the whole grid, or 10)")
    add("--max-epochs", type=int, help="Hyperband's most epochs per trial (default --epochs)")
    add("--initial-points", type=int,
        help="Bayesian tuner: trials sampled at random before the Gaussian process proposes "
             "any (default: 3 per hyperparameter, at least 3)")
    add("--epochs", type=int, help="epochs per execution (default: the space's)")
    add("--repeats", type=int, help="executions per configuration, one seed each")
    add("--batch-size", type=int, help="batch size (default: the space's)")
    add("--image-size", type=int, help="image side in pixels (default: the backbone's)")
    add("--seed", type=int, default=1,
        help="oracle seed; repeats use seed, seed+1, ... (1 or more; default 1)")
    add("--train-per-class", type=int, help="labelled target images per class (for a "
                                            "folder: taken from its training split)")
    add("--images-per-class", type=int, help="images per class for generated datasets "
                                             "(shapes)")
    add("--evaluation-batch-size", type=int, default=512,
        help="batch size of validation and test passes (default 512; the numbers do not "
             "depend on it, memory does; a model that changes at inference uses the training "
             "batch size)")
    add("--pretrain-epochs", type=int, default=15,
        help="epochs of source-task pretraining (cached; default 15)")
    add("--results-dir", type=_path, default=Path("results"), help="where runs land")
    add("--name", help="run directory name (default: SPACE-DATE-TIME)")
    add("--cache-dir", type=_path, default=default_cache_dir(),
        help="cache for source weights (default %(default)s)")
    add("--tensorboard", action="store_true",
        help="write TensorBoard logs with KerasTuner's HParams dashboard under RUN/tensorboard "
             "(TensorFlow backend)")
    if resumable:
        add("--resume", type=_path, metavar="RUN_DIR",
            help="continue a run that was interrupted or killed: its settings come from "
                 "its run.json, finished trials are kept, the unfinished one runs again")
    add("--no-prefix-cache", dest="prefix_cache", action="store_false",
        help="run the frozen blocks in every epoch instead of once (slower; for comparison)")
    add("--cache-memory", dest="cache_memory_mb", type=int, default=2048, metavar="MB",
        help="most memory for cached frozen-block features (default 2048)")
    add("--train-together", dest="together", action="store_true",
        help="train each trial's repeats as one model (the same numbers; on the 2-core CPU "
             "slower than one at a time, see README)")
    add("--no-device-data", dest="device_data", action="store_false",
        help="JAX: copy each training batch to the device, as Keras does, instead of "
             "keeping the split there (slower on a GPU; for comparison)")
    add("--precision", default="float32",
        help="float32 (default) or mixed_bfloat16: layers compute in bfloat16, weights "
             "stay float32 (Keras mixed precision; faster on GPUs since Ampere, other "
             "numbers than float32's)")
    add("--no-reuse", dest="reuse_models", action="store_false",
        help="build and compile a new model for every execution (slower; for comparison)")


def _scale_arguments(parser: argparse.ArgumentParser, *, chief: bool) -> None:
    add = parser.add_argument
    if chief:
        add("--port", type=int, required=True,
            help="port the chief serves the oracle on (KerasTuner's gRPC)")
        add("--host", default="0.0.0.0",
            help="address to serve on (default 0.0.0.0: every interface of this machine)")
    else:
        add("--workers", type=int, metavar="N",
            help="run trials in N worker processes on this machine under a chief (one GPU "
                 "each when several are visible); they write one merged run directory")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=started_as(),
        description="Measure fine-tuning choices (frozen depth, head learning rate, "
                    "pretrained vs random init) with KerasTuner. With no command, runs the "
                    "default study (the seed space on bundled digits).",
    )
    commands = parser.add_subparsers(dest="command")
    parser.commands = commands.choices  # for an unknown option's pointer to its --help
    run = commands.add_parser("run", help="run a study")
    _run_arguments(run)
    _scale_arguments(run, chief=False)
    chief = commands.add_parser(
        "chief", help="run a study whose trials run in workers on other machines "
                      f"('{command('worker')}'); the run folder must be on a shared disk")
    _run_arguments(chief)
    _scale_arguments(chief, chief=True)
    worker = commands.add_parser("worker", help="run trials for a chief")
    worker.add_argument("--chief", required=True, metavar="HOST:PORT",
                        help="the chief's address, as it printed it")
    worker.add_argument("--run", required=True, type=_path, metavar="RUN_DIR",
                        help="the chief's run folder, as this machine sees it (shared disk)")
    worker.add_argument("--id", default="tuner0", dest="worker_id",
                        help="this worker's name, unique in the study (default tuner0); a "
                             "worker restarted with the same id gets its trial back")
    worker.add_argument("--wait", type=float, default=3600, metavar="SECONDS",
                        help="how long to wait for the chief's run.json (default 3600)")
    perf = commands.add_parser(
        "perf", help="run one study as plain KerasTuner and as the suite; write perf.json "
                     "with the speedup")
    _run_arguments(perf, resumable=False)  # perf measures a whole study each time
    perf.add_argument("--baseline-repeats", type=int, default=None, metavar="N",
                      help="plain KerasTuner runs N (2 or more) executions per "
                           "configuration instead of all repeats, and its time for all of "
                           "them is estimated from theirs (for studies it would take too "
                           "long to run whole; perf.json says so)")
    listing = commands.add_parser("list", help="list search spaces, datasets, backbones, tuners")
    listing.add_argument("--spaces-dir", type=_path, default=None,
                         help="folder of search space files (default: ./search_spaces if "
                              "there is one, else the shipped spaces)")
    analyze = commands.add_parser("analyze", help="rebuild figures and report from run tables")
    analyze.add_argument("runs", nargs="+", type=_path, help="run directories")
    analyze.add_argument("--out", type=_path,
                         help="where the joint report of several runs goes "
                              "(default: compare-FIRST-LAST beside the first run)")
    return parser


def _spec(args):
    from bench.plan import RunSpec

    if args.preset is not None and args.space is not None:
        raise BenchError(f"--preset {args.preset} chooses its own space; drop --space "
                         f"{args.space} (or drop --preset and give its options yourself)")
    fields = RunSpec.__dataclass_fields__
    return RunSpec(**{k: v for k, v in vars(args).items()
                      if k in fields and not (k == "space" and v is None)})


def _option_spellings() -> dict[str, tuple[str, bool]]:
    """For each run option's destination, the option as typed and whether it is a flag:
    ``reuse_models`` is ``("--no-reuse", True)``."""
    run = argparse.ArgumentParser(add_help=False)
    _run_arguments(run)
    return {action.dest: (action.option_strings[0], action.nargs == 0)
            for action in run._actions if action.option_strings}


def _given_options(args) -> dict:
    """The run options given on the command line (those that differ from the defaults)."""
    from bench.plan import RunSpec

    defaults = vars(build_parser().parse_args(["run"]))
    return {k: v for k, v in vars(args).items()
            if k in RunSpec.__dataclass_fields__ and v != defaults.get(k)}


def _scale(args, resume_from):
    """The ScaleOut a run or chief command asks for (None: one process)."""
    from bench.runner import ScaleOut

    if args.command == "chief":
        if not 0 < args.port < 65536:
            raise BenchError(f"--port must be between 1 and 65535; got {args.port}")
        return ScaleOut(host=args.host, port=args.port, remote=True)
    workers = args.workers
    if workers is None and resume_from is not None:
        from bench.results import RunDir, read_run

        # A distributed run resumes distributed: its rows are in workers/.
        recorded = read_run(RunDir(Path(resume_from))).get("distributed") or {}
        if recorded.get("remote"):
            again = command("chief", "--resume", resume_from, "--port", "P")
            raise BenchError(f"{resume_from} was served to workers on other machines: resume "
                             f"it with '{again}', "
                             "or here with 'run --resume ... --workers N'")
        workers = recorded.get("workers")
    if workers is None:
        return None
    if workers < 1:
        raise BenchError(f"--workers must be 1 or more; got {workers}")
    return ScaleOut(workers=workers)


def _run(args) -> int:
    from bench.runner import run_study

    resume_from = getattr(args, "resume", None)
    if resume_from is not None:
        from bench.tuning.resume import resume_spec

        spec = resume_spec(resume_from, given=_given_options(args),
                           spelled=_option_spellings())
    else:
        spec = _spec(args)
    scale = _scale(args, resume_from)
    if scale is not None:
        # The chief pretrains and checks the space on the device before its workers
        # start: it must not take all of a GPU's memory, as both backends do by default.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # not its notes on fork()
    # SIGTERM ends a run as Ctrl-C does: the finished epochs are kept and the run is
    # marked interrupted.
    install_stop_handlers()
    try:
        run_dir = run_study(spec, resume_from=resume_from, scale=scale)
    except StudyFailed as failure:
        run_dir = getattr(failure, "run_dir", None)  # None: it failed before one was made
        try:
            if run_dir is not None:
                _print_summary(run_dir, ended=None)
        except BrokenPipeError:
            # The reader of the output ended: the failure and its advice still go to stderr
            # (not "continue it with --resume", which a failure limit refuses).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        then = (f", then continue the run with '{_resume_command(args, run_dir)}'"
                if failure.resumable and run_dir is not None else "")
        where = f" (run directory {run_dir})" if run_dir is not None else ""
        print(f"error: the study failed: {failure.advised(then)}{where}", file=sys.stderr)
        return EXIT_STUDY_FAILED
    _print_summary(run_dir, ended="whole")
    return 0


def _print_summary(run_dir, *, ended: str | None) -> None:
    """The run's summary; a stop or a closed pipe here names the run (``ended``: as
    ``_interrupted`` reads it), which exists whatever the moment."""
    # Imported only now: seaborn and matplotlib take seconds, and a refused option or a
    # missing file is told without them.
    from bench.analysis.summary import print_summary

    try:
        print_summary(run_dir)
    except (KeyboardInterrupt, BrokenPipeError) as stopped:
        stopped.run_dir, stopped.ended = run_dir, ended
        raise


def _worker(args) -> int:
    import grpc
    import keras_tuner

    from bench.stopping import end_by_stop_signal
    from bench.tuning.chief import run_worker
    from bench.tuning.distributed import CHIEF_PID

    restart = command("worker", "--chief", args.chief, "--run", args.run, "--id",
                      args.worker_id)
    install_stop_handlers()
    try:
        run_worker(chief=args.chief, run_path=args.run, name=args.worker_id,
                   wait_seconds=args.wait)
    except KeyboardInterrupt:
        again = ("" if os.environ.get(CHIEF_PID) else  # a local chief restarts its own
                 "; any trial it was running waits at the chief until a worker with this --id "
                 f"starts again: '{restart}'")
        print(f"interrupted: worker {args.worker_id} stopped{again}", file=sys.stderr)
        sys.stdout.flush()  # nothing after this runs: the signal ends the process
        sys.stderr.flush()
        end_by_stop_signal()
        return 130
    except grpc.RpcError as error:
        print(f"error: lost the chief at {args.chief} ({error.code().name}); a worker "
              f"restarted with --id {args.worker_id} gets its trial back", file=sys.stderr)
        return EXIT_STUDY_FAILED
    except (StudyFailed, keras_tuner.errors.FatalError) as error:
        # A full disk: the trial that was running stays RUNNING at the chief, and this
        # worker started again gets it back (a local chief stops and names its own resume).
        full = isinstance(error, DiskFull) or isinstance(error.__cause__, DiskFull)
        then = (f", then start this worker again: '{restart}'"
                if full and not os.environ.get(CHIEF_PID) else "")
        print(f"error: worker {args.worker_id} stopped: {error}{then}", file=sys.stderr)
        return EXIT_STUDY_FAILED
    return 0


def _perf(args) -> int:
    from bench.perf import run_perf

    install_stop_handlers()  # SIGTERM stops it as Ctrl-C does, saying so
    try:
        run_perf(_spec(args), baseline_repeats=args.baseline_repeats)
    except KeyboardInterrupt as interrupt:
        # Not the run's 'continue it with --resume': that would finish one side alone.
        kept = getattr(interrupt, "perf_dir", None)
        print("interrupted: perf's comparison is incomplete and perf.json was not written; "
              "run perf again" + (f" (what ran is kept in {kept}: give another --name or "
                                  "remove it)" if kept is not None else ""), file=sys.stderr)
        return 130
    except StudyFailed as failure:
        where = getattr(failure, "run_dir", None)
        then = ", then run perf again with another --name" if failure.resumable else ""
        print(f"error: perf stopped: {failure.advised(then)}" +
              (f" (run directory {where})" if where else ""), file=sys.stderr)
        return EXIT_STUDY_FAILED
    return 0


def _analyze(args) -> int:
    from bench.analysis.report import write_outputs

    write_outputs(args.runs, out=args.out)
    return 0


def _list(args) -> int:
    from bench.listing import print_listing
    from bench.space import default_spaces_dir

    print_listing(args.spaces_dir if args.spaces_dir is not None else default_spaces_dir())
    return 0


def check_backend_installed() -> None:
    """``KERAS_BACKEND`` names a framework that is installed: otherwise Keras fails where
    it is first imported, which reads as a broken space file or a traceback."""
    import importlib.util

    from bench.device import BACKEND_FRAMEWORKS

    backend = os.environ.get("KERAS_BACKEND") or None  # empty is unset, as Keras reads it
    training = ("tensorflow", "jax", "torch")
    if backend is not None and backend not in training:
        what = ("cannot train (Keras's numpy and openvino backends only run models)"
                if backend in BACKEND_FRAMEWORKS else "is not a Keras backend")
        raise BenchError(f"KERAS_BACKEND={backend} {what}: set it to {', '.join(training)} "
                         "(lower case), or unset it to use TensorFlow")
    framework = BACKEND_FRAMEWORKS.get(backend)
    if framework is not None and importlib.util.find_spec(framework) is None:
        raise BenchError(f"KERAS_BACKEND={backend}, but {framework} is not installed here: "
                         f"pip install {framework} (README 'On a GPU' for a GPU build), or "
                         "unset KERAS_BACKEND to use TensorFlow")


#: Modules the command line imports whatever the backend (pip names where they differ).
REQUIRED_MODULES = {"numpy": "numpy", "PIL": "pillow", "pandas": "pandas",
                    "keras": "keras", "keras_tuner": "keras-tuner", "seaborn": "seaborn",
                    "scipy": "scipy", "sklearn": "scikit-learn"}


def missing_modules() -> list[str]:
    """The pip names of the required modules this Python cannot import."""
    import importlib.util

    return [name for module, name in REQUIRED_MODULES.items()
            if importlib.util.find_spec(module) is None]


def command_line(argv: list[str] | None = None) -> int:
    """The programs' entry point (``run_bench.py``, ``python -m bench``,
    ``finetune-bench``): ``main``, after which a stop does not change its status. The
    command has ended and written everything, and Python's shutdown (a second or more
    with TensorFlow loaded) has nothing to stop; a Ctrl-C there turned a completed run
    into a silent exit status 130 (found by a new user). Ctrl-C is ignored: Python sets
    its handlers back to the default part way through its shutdown, and leaves an
    ignored signal ignored. SIGTERM ends the process at once with the status, as a
    program that sends it (a worker's dying chief, a scheduler) wants it gone."""
    status = main(argv)

    def end(signum, frame):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed, or its reader gone
                pass
        os._exit(status)

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, end)
    except ValueError:  # called in another thread than the main one
        pass
    return status


def main(argv: list[str] | None = None) -> int:
    """Runs one command line; its exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Keep TensorFlow's C++ chatter out.
    argv = sys.argv[1:] if argv is None else argv
    missing = missing_modules()
    if missing:  # run_bench.py from a checkout before 'pip install -e .'
        print(f"error: {sys.executable} lacks the suite's dependencies ({', '.join(missing)}): "
              "install them with 'pip install -e .' in the checkout (README 'Two commands')",
              file=sys.stderr)
        return EXIT_USER_ERROR
    parser = build_parser()
    if not argv or argv[0].startswith("--") and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's own --help lists what it takes
        parser.commands.get(args.command, parser).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command != "analyze":  # the analysis needs no backend
            check_backend_installed()
        if args.command in ("run", "chief"):
            return _run(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "perf":
            return _perf(args)
        if args.command == "list":
            return _list(args)
        if args.command == "analyze":
            return _analyze(args)
        parser.print_help()
        return EXIT_USER_ERROR
    except BenchError as error:
        unwritten = ("; no run was written (it stopped before the run directory was made)"
                     if getattr(error, "no_run_written", False) else "")
        print(f"error: {error}{unwritten}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interrupt:
        print(_interrupted(args, getattr(interrupt, "run_dir", None),
                           ended=getattr(interrupt, "ended", None)), file=sys.stderr)
        return 130
    except BrokenPipeError as error:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if args.command in ("list", "analyze"):  # 'list | head': the reader has what it wanted
            return 141
        run_dir = getattr(error, "run_dir", None)
        ended = getattr(error, "ended", None)
        kept = (f"; the run had completed: {run_dir} holds its tables and report"
                if run_dir is not None and ended == "whole" else
                f"; the run's tables in {run_dir} are whole (its search completed), its report "
                f"was not written: '{command('analyze', run_dir)}' writes it"
                if run_dir is not None and ended == "report missing" else
                f"; the rows written so far are kept in {run_dir}: continue it with "
                f"'{_resume_command(args, run_dir)}'" if run_dir is not None else
                "; no run was written (it stopped before the run directory was made)"
                if args.command in ("run", "chief") and not args.resume else "")
        print(f"error: the program reading this command's output ended, which stopped "
              f"it{kept}", file=sys.stderr)
        return 141


def _resume_command(args, run_dir) -> str:
    """The command that continues ``run_dir``: a chief's run is served again (run
    --resume refuses a run served to workers on other machines)."""
    if args.command == "chief":
        host = () if args.host == "0.0.0.0" else ("--host", args.host)
        return command("chief", "--resume", run_dir, "--port", args.port, *host)
    return command("run", "--resume", run_dir)


def _interrupted(args, run_dir, *, ended: str | None = None) -> str:
    """What a Ctrl-C or SIGTERM left, in one line. ``ended``: how far a run that had
    completed its search got: "report missing" (stopped while writing its report) or
    "whole" (stopped while its summary was printed)."""
    if run_dir is not None and ended == "report missing":
        return (f"interrupted while writing the report: the run's tables in {run_dir} are "
                f"whole (its search completed); '{command('analyze', run_dir)}' writes its "
                "report")
    if run_dir is not None and ended == "whole":
        return f"interrupted after the run completed: {run_dir} holds its tables and report"
    if run_dir is not None:
        return (f"interrupted: the rows written so far are kept in {run_dir}; continue it "
                f"with '{_resume_command(args, run_dir)}'")
    if args.command in ("run", "chief") and args.resume:
        return (f"interrupted before the search restarted: {args.resume} can be resumed "
                "again with the same command")
    if args.command in ("run", "chief"):
        return ("interrupted before the run directory was made: no run was written (a "
                "source pretraining that finished stays cached)")
    return "interrupted"
