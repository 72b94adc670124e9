"""Command line: ``python -m sciml fit|validate|test|predict --config <file>.yaml``.

A LightningCLI whose model and data module are chosen by ``class_path`` in the config (networks are injected
into tasks the same way). jsonargparse validates the whole config before anything is built, so unknown keys,
wrong types and missing required values fail at once, naming the key.

A ``--config`` value that is a bare name (``turbulence.yaml`` or ``turbulence``) and does not exist where the
user stands resolves to the config of that name shipped with sciml; the file used is printed.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from rich.console import Console
from rich.table import Table

from sciml.core.errors import SciMLError

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
    """LightningCLI with subclass-mode tasks and data modules and an end-of-run summary."""

    def after_fit(self) -> None:
        self._print_summary("fit")

    def after_validate(self) -> None:
        self._print_summary("validate")

    def after_test(self) -> None:
        self._print_summary("test")

    def _print_summary(self, subcommand: str) -> None:
        if not self.trainer.is_global_zero:
            return
        summary = dict(getattr(self.model, "summary", {}) or {})
        checkpoint = self.trainer.checkpoint_callback
        if subcommand == "fit" and checkpoint is not None:
            summary["checkpoint"] = checkpoint.best_model_path or checkpoint.last_model_path or "(none saved)"
        summary["run directory"] = self.trainer.log_dir or self.trainer.default_root_dir
        table = Table(title=f"sciml {subcommand} summary", show_header=False)
        table.add_column("quantity", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in summary.items():
            table.add_row(key.replace("_", " "), _format(value))
        Console().print(table)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(args: list[str] | None = None) -> SciMLCLI:
    """Entry point of ``python -m sciml`` and the ``sciml`` script; ``args`` defaults to ``sys.argv[1:]``."""
    try:
        arguments = _resolve_config_arguments(sys.argv[1:] if args is None else args)
    except FileNotFoundError as error:
        _console.print(f"[bold red]error[/]: {error}")
        raise SystemExit(2) from None
    if args is None:
        # LightningCLI warns when given both argv and args; from the shell, hand it the resolved argv.
        sys.argv[1:] = arguments
        arguments = None
    try:
        return _run(arguments)
    except SciMLError as error:
        # Data and config problems are the user's to fix: one message naming the file/key, no traceback.
        _console.print(f"[bold red]error[/]: {error}")
        raise SystemExit(1) from None


def _run(arguments: list[str] | None) -> SciMLCLI:
    return SciMLCLI(
        model_class=pl.LightningModule,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        parser_class=SciMLArgumentParser,
        parser_kwargs={"prog": "python -m sciml", "description": __doc__.split("\n\n")[0]},
        args=arguments,
    )
