"""Command line: ``python -m sciml fit|validate|test|predict --config <file>.yaml`` and
``python -m sciml slurm --config <file>.yaml [--nodes N --gpus-per-node G ...] [--submit]`` and
``python -m sciml export-viewer --ckpt <SHaDe checkpoint> --out <dir> [--data <capture>]`` (nerfstudio).

A LightningCLI whose model and data module are chosen by ``class_path`` in the config (networks are injected
into tasks the same way). jsonargparse validates the whole config before anything is built, so unknown keys,
wrong types and missing required values fail at once, naming the key.

A ``--config`` value that is a bare name (``turbulence.yaml`` or ``turbulence``) and does not exist where the
user stands resolves to the config of that name shipped with sciml; the file used is printed.

Every Trainer gets atomic checkpoint writes, random states in checkpoints and SLURM auto-requeue (inactive
outside SLURM jobs); ``fit --ckpt_path auto`` resumes from the newest loadable checkpoint under
``trainer.default_root_dir`` (or starts fresh when there is none; when checkpoints exist but none loads it
stops and names them, unless ``--start_over true``). Before any work, every folder the run will write to
(run directory, logger, checkpoints, prediction writers) is checked writable; the error names its config key.
Errors that sciml raises on purpose (bad data, bad config values, also when raised inside a class that
jsonargparse instantiates or a DataLoader worker) print as one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from lightning_fabric.plugins import CheckpointIO
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from rich.console import Console
from rich.table import Table

from sciml.core.atomic import write_text_atomic
from sciml.core.errors import ConfigError, SciMLError
from sciml.hpc import slurm
from sciml.hpc.checkpoints import AtomicCheckpointIO, find_resume_checkpoint
from sciml.hpc.requeue import SlurmAutoRequeue
from sciml.tasks.checkpointing import RandomStateCheckpoint

_console = Console(stderr=True, soft_wrap=True)


def shipped_configs() -> dict[str, Path]:
    """The configs installed with sciml, by file name."""
    folder = resources.files("sciml.configs")
    return {entry.name: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def resolve_config(value: str) -> str:
    """Return ``value`` if it names an existing file, else the shipped config of that name.

    Raises FileNotFoundError listing the shipped configs when neither exists.
    """
    if Path(value).exists():
        return value
    name = Path(value).name if value.endswith((".yaml", ".yml")) else f"{Path(value).name}.yaml"
    shipped = shipped_configs()
    if Path(value).parent == Path(".") and name in shipped:
        _console.print(f"[bold]sciml[/]: no file '{value}' here; using the shipped config {shipped[name]}")
        return str(shipped[name])
    raise FileNotFoundError(
        f"config file '{value}' not found (looked in {Path.cwd()}); "
        f"shipped configs are: {', '.join(sorted(shipped))}"
    )


def _resolve_config_arguments(args: list[str]) -> list[str]:
    resolved = list(args)
    for index, argument in enumerate(resolved):
        if argument in ("--config", "-c") and index + 1 < len(resolved):
            resolved[index + 1] = resolve_config(resolved[index + 1])
        elif argument.startswith("--config="):
            resolved[index] = "--config=" + resolve_config(argument.split("=", 1)[1])
    return resolved


class SciMLArgumentParser(LightningArgumentParser):
    """On a config error, print one usage line instead of every option, so the message that names the
    key stays on screen."""

    def print_usage(self, file=None) -> None:
        (file or sys.stderr).write(
            f"usage: {self.prog.replace(' [options]', '')} --config FILE [--key value ...]\n"
        )


class SciMLCLI(LightningCLI):
    """LightningCLI with subclass-mode tasks and data modules, resumable checkpoints and an end-of-run
    summary."""

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        plugins = self._get(self.config_init, "trainer", default={}).get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        return super().instantiate_trainer(plugins=plugins, **kwargs)

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "fit":
            parser.add_argument(
                "--start_over",
                type=bool,
                default=False,
                help="with --ckpt_path auto: start from step 0 when the run directory holds checkpoints but "
                "none of them loads (without it the run stops and names them)",
            )
        return parser

    def before_fit(self) -> None:
        arguments = self.config_init[self.subcommand]
        check_output_folders(self.trainer, self.subcommand)
        if arguments.get("ckpt_path") == "auto":
            found = find_resume_checkpoint(
                self.trainer.default_root_dir, start_over=arguments.get("start_over")
            )
            arguments["ckpt_path"] = found
            if self.trainer.is_global_zero:
                where = self.trainer.default_root_dir
                _console.print(
                    f"[bold]sciml[/]: resuming from {found}"
                    if found
                    else f"[bold]sciml[/]: no checkpoint under {where}; starting a new run"
                )

    def before_validate(self) -> None:
        check_output_folders(self.trainer, self.subcommand)

    def before_test(self) -> None:
        check_output_folders(self.trainer, self.subcommand)

    def before_predict(self) -> None:
        check_output_folders(self.trainer, self.subcommand)

    def after_fit(self) -> None:
        self._print_summary("fit")

    def after_validate(self) -> None:
        self._print_summary("validate")

    def after_test(self) -> None:
        self._print_summary("test")

    def _print_summary(self, subcommand: str) -> None:
        # Trainer.log_dir broadcasts from rank 0: every rank must ask for it.
        run_directory = self.trainer.log_dir or self.trainer.default_root_dir
        if not self.trainer.is_global_zero:
            return
        summary = dict(getattr(self.model, "summary", {}) or {})
        checkpoint = self.trainer.checkpoint_callback
        if subcommand == "fit" and checkpoint is not None:
            summary["checkpoint"] = checkpoint.best_model_path or checkpoint.last_model_path or "(none saved)"
        summary["run directory"] = run_directory
        table = Table(title=f"sciml {subcommand} summary", show_header=False)
        table.add_column("quantity", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in summary.items():
            table.add_row(key.replace("_", " "), _format(value))
        Console().print(table)


def output_folders(trainer: pl.Trainer, subcommand: str) -> dict[str, Path]:
    """The folders a run of ``subcommand`` will write to, by the config key that sets each."""
    folders = {"trainer.default_root_dir": Path(trainer.default_root_dir)}
    for logger in trainer.loggers:
        if getattr(logger, "save_dir", None):
            folders[f"trainer.logger ({type(logger).__name__}) save_dir"] = Path(logger.save_dir)
    checkpoint = trainer.checkpoint_callback
    if subcommand == "fit" and checkpoint is not None and getattr(checkpoint, "dirpath", None):
        folders["trainer.callbacks (ModelCheckpoint) dirpath"] = Path(checkpoint.dirpath)
    if subcommand == "predict":
        for callback in trainer.callbacks:
            if isinstance(callback, BasePredictionWriter) and getattr(callback, "output_dir", None):
                folders[f"trainer.callbacks ({type(callback).__name__}) output_dir"] = Path(
                    callback.output_dir
                )
    return folders


def check_output_folders(trainer: pl.Trainer, subcommand: str) -> None:
    """Raise ConfigError naming the key of the first output folder sciml cannot write to, before any work.

    A folder that does not exist yet is judged by its nearest existing parent, where it would be created.
    Writability is tried, not read from permission bits: root ignores them, a read-only mount does not.
    """
    for key, folder in output_folders(trainer, subcommand).items():
        existing = folder.absolute()
        while not existing.exists():
            existing = existing.parent
        try:
            if not existing.is_dir():
                raise NotADirectoryError(f"{existing} is a file")
            with tempfile.TemporaryFile(dir=existing, prefix=".sciml-write-check-"):
                pass
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigError(
                key, f"cannot write to {folder} ({reason} at {existing}); choose a folder you can write to"
            ) from None


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(args: list[str] | None = None) -> SciMLCLI | str:
    """Entry point of ``python -m sciml`` and the ``sciml`` script; ``args`` defaults to ``sys.argv[1:]``.

    Returns the CLI object, or for ``slurm`` the script (or the job id with ``--submit``).
    """
    raw = sys.argv[1:] if args is None else list(args)
    if raw[:1] == ["export-viewer"]:
        try:
            return export_viewer_command(raw[1:])
        except SciMLError as error:
            _console.print(f"[bold red]error[/]: {error}")
            raise SystemExit(1) from None
    if raw[:1] == ["slurm"]:
        try:
            return slurm_command(raw[1:])
        except FileNotFoundError as error:
            _console.print(f"[bold red]error[/]: {error}")
            raise SystemExit(2) from None
        except SciMLError as error:
            _console.print(f"[bold red]error[/]: {error}")
            raise SystemExit(1) from None
    try:
        arguments = _resolve_config_arguments(raw)
    except FileNotFoundError as error:
        _console.print(f"[bold red]error[/]: {error}")
        raise SystemExit(2) from None
    if args is None:
        # LightningCLI warns when given both argv and args; from the shell, hand it the resolved argv.
        sys.argv[1:] = arguments
        arguments = None
    try:
        cli = _run(arguments)
    except Exception as error:
        # Data and config problems are the user's to fix: one message naming the file/key, no traceback.
        problem = sciml_error_in(error)
        if problem is None:
            raise
        _console.print(f"[bold red]error[/]: {problem}")
        raise SystemExit(1) from None
    _leave_process_group()
    return cli


def sciml_error_in(error: BaseException) -> SciMLError | None:
    """``error`` if it is a sciml error, else the first one it was raised from or while handling.

    jsonargparse re-raises what a class's ``__init__`` raised as a ValueError ("Does not validate against any
    of the Union subtypes ...") whose chain holds the original error.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, SciMLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _leave_process_group() -> None:
    """Tear down DDP's process group once every rank is done.

    Lightning leaves it to interpreter shutdown, where gloo's worker threads can be destroyed while still
    joinable: the process then aborts ("terminate called without an active exception") and srun marks a
    finished job FAILED.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _run(arguments: list[str] | None, cli_class: type[SciMLCLI] = SciMLCLI) -> SciMLCLI:
    return cli_class(
        model_class=pl.LightningModule,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        parser_class=SciMLArgumentParser,
        parser_kwargs={"prog": "python -m sciml", "description": __doc__.split("\n\n")[0]},
        trainer_defaults={"callbacks": [RandomStateCheckpoint(), SlurmAutoRequeue()]},
        # A requeued SLURM job restarts in the same run directory, over its own config.yaml.
        save_config_kwargs={"overwrite": True},
        args=arguments,
    )


# ---------------------------------------------------------------------------------------------- slurm
class _ParseOnly(SciMLCLI):
    """Parses and validates a fit config exactly as ``fit`` would, building nothing."""

    def instantiate_classes(self) -> None:
        pass

    def _run_subcommand(self, subcommand: str) -> None:
        pass


def parse_fit_config(config: str, overrides: list[str]) -> Any:
    """The validated ``fit`` namespace of ``config`` plus command-line ``overrides`` (exit 2 on bad keys)."""
    seed_logger = logging.getLogger("lightning_fabric.utilities.seed")
    level = seed_logger.level
    seed_logger.setLevel(logging.WARNING)  # nothing is seeded that matters: no run starts here
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            return _run(["fit", "--config", config, *overrides], cli_class=_ParseOnly).config["fit"]
    finally:
        seed_logger.setLevel(level)


def _slurm_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sciml slurm",
        description="Render (or submit) a SLURM batch script that runs `python -m sciml fit` with one task "
        "per device, auto-requeue on SIGUSR1 and a run directory that is stable across restarts. Arguments "
        "it does not know (e.g. --trainer.max_epochs=10) are passed on to fit.",
    )
    parser.add_argument("--config", "-c", required=True, help="fit config (a file or a shipped config name)")
    parser.add_argument("--nodes", type=int, help="nodes (default: trainer.num_nodes)")
    parser.add_argument(
        "--gpus-per-node", type=int, help="GPUs and tasks per node (default: trainer.devices)"
    )
    parser.add_argument("--cpus-per-task", type=int, default=8, help="CPUs per task (default: 8)")
    parser.add_argument(
        "--time", default="24:00:00", type=slurm.check_time, help="time limit (default 24:00:00)"
    )
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--account", help="SLURM account to charge")
    parser.add_argument("--mem", help="memory per node, e.g. 64G")
    parser.add_argument("--array", help="job array spec, e.g. 0-9 (with --sweep: a %%N throttle)")
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a config key over values, one array task per combination (repeatable: the product)",
    )
    parser.add_argument("--job-name", help="job name (default: the config's file name)")
    parser.add_argument("--output", help="also write the script to this file")
    parser.add_argument("--submit", action="store_true", help="submit with sbatch and print the job id")
    return parser


def slurm_command(args: list[str]) -> str:
    """``python -m sciml slurm``: render the batch script, print it (or submit it and print the job id)."""
    options, fit_arguments = _slurm_parser().parse_known_args(args)
    config = Path(resolve_config(options.config)).resolve()
    if options.sweep and options.array and not options.array.startswith("%"):
        raise ConfigError(
            "--array", "with --sweep the array is one task per combination; give only a %N throttle"
        )
    sweep = slurm.sweep_arguments(options.sweep)
    # Validate the config with every sweep combination now, not when the job starts after hours in a queue.
    for combination in sweep or [[]]:
        namespace = parse_fit_config(str(config), fit_arguments + combination)
    trainer = namespace.trainer
    raw = yaml.safe_load(config.read_text()) or {}
    explicit = set((raw.get("trainer") or {}).keys())
    explicit |= {
        key
        for key in ("devices", "num_nodes")
        if any(a.startswith(f"--trainer.{key}") for a in fit_arguments)
    }
    nodes, tasks, gpus = slurm.resolve_layout(
        str(trainer.accelerator),
        trainer.devices,
        int(trainer.num_nodes),
        options.nodes,
        options.gpus_per_node,
        explicit,
        config,
    )
    run_root, logger_has_version = _run_root(trainer.logger, config)
    job = slurm.SlurmJob(
        config=config,
        job_name=options.job_name or config.stem,
        nodes=nodes,
        tasks_per_node=tasks,
        gpus_per_node=gpus,
        cpus_per_task=options.cpus_per_task,
        time=options.time,
        python=sys.executable,
        workdir=Path.cwd(),
        run_root=run_root,
        logger_has_version=logger_has_version,
        partition=options.partition,
        account=options.account,
        mem=options.mem,
        array=options.array,
        sweep=sweep,
        fit_arguments=fit_arguments,
    )
    script = slurm.render(job)
    if options.output:
        write_text_atomic(options.output, script)
    if not options.submit:
        print(script, end="")
        return script
    job_id = slurm.submit(script, Path.cwd() / run_root)
    print(job_id)
    _console.print(f"[bold]sciml[/]: submitted job {job_id}; log: {job.log_file.replace('%j', job_id)}")
    return job_id


def export_viewer_command(args: list[str]) -> str:
    """``python -m sciml export-viewer``: a SHaDe checkpoint as a nerfstudio run (sciml.viewer.export)."""
    parser = argparse.ArgumentParser(
        prog="python -m sciml export-viewer",
        description="Write a SHaDe Lightning checkpoint as a nerfstudio run for ns-viewer and ns-render.",
    )
    parser.add_argument(
        "--ckpt", required=True, help="the ShadeTask checkpoint (e.g. .../checkpoints/last.ckpt)"
    )
    parser.add_argument("--out", default="outputs", help="nerfstudio output folder (default: outputs)")
    parser.add_argument(
        "--data", default=None, help="the D-NeRF capture (default: the one the run trained on)"
    )
    options = parser.parse_args(args)
    try:
        from sciml.viewer.export import export_viewer
    except ImportError as error:
        _console.print(
            f"[bold red]error[/]: export-viewer needs nerfstudio ({error}); install the viewer extra in an "
            'environment with a matching torchvision: make viewer-env, or pip install "sciml[viewer]"'
        )
        raise SystemExit(2) from None
    config = export_viewer(options.ckpt, options.out, options.data)
    print(config)
    _console.print(f"[bold]sciml[/]: open it with  ns-viewer --load-config {config}")
    return str(config)


def _run_root(logger: Any, config: Path) -> tuple[str, bool]:
    """``(<save_dir>/<name>, True)`` for a single logger with a save_dir and a version (CSV, TensorBoard),
    else ``(runs/<config stem>, False)``."""
    init_args = getattr(logger, "init_args", None)
    if init_args is not None and hasattr(init_args, "save_dir") and hasattr(init_args, "version"):
        name = getattr(init_args, "name", None)
        return str(Path(init_args.save_dir) / name) if name else str(init_args.save_dir), True
    return f"runs/{config.stem}", False
