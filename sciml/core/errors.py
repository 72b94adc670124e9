"""Error types that name what is wrong and where, so a user can fix their data or config."""

from __future__ import annotations

from pathlib import Path


class SciMLError(Exception):
    """Base class of every error sciml raises on purpose."""


class DataFormatError(SciMLError, ValueError):
    """A data file exists but its content is not what sciml expects.

    The message always starts with the file and the variable (group, dataset or array) at fault.
    """

    def __init__(self, path: str | Path, variable: str | None, problem: str):
        self.path = str(path)
        self.variable = variable
        self.problem = problem
        where = f"{self.path}: {variable}" if variable else self.path
        super().__init__(f"{where}: {problem}")


class DatasetNotFoundError(SciMLError, FileNotFoundError):
    """A configured data path does not exist; the message names the command that makes it."""

    def __init__(self, path: str | Path, make_command: str | None = None):
        self.path = str(path)
        message = f"dataset not found at {self.path}"
        if make_command:
            message += f"; make it with: {make_command}"
        super().__init__(message)


class ConfigError(SciMLError, ValueError):
    """A configuration value (or a command-line option, ``--name``) is invalid; the message names it."""

    def __init__(self, key: str, problem: str):
        self.key = key
        kind = "option" if key.startswith("--") else "config key"
        super().__init__(f"{kind} '{key}': {problem}")
