"""Error types that name what is wrong and where, so a user can fix their data or config.

Every error here survives the two ways an exception leaves a process:

* pickling (``multiprocessing``, spawned DDP workers) keeps the structured fields (``__reduce__``);
* a PyTorch DataLoader worker does not pickle the exception: the main process rebuilds it as
  ``type(error)(report)``, where ``report`` is "Caught <Name> in DataLoader worker process <n>. Original
  Traceback ...". Each error accepts that one-argument form and keeps only the original one-line message
  (the worker's traceback stays available as ``worker_report``); an error that could not be rebuilt from
  one argument would reach the user as a 100-line ``RuntimeError`` instead.
"""

from __future__ import annotations

import re
from pathlib import Path

#: torch.utils.data's report of an exception raised in a worker (torch/_utils.py ``ExceptionWrapper``).
_WORKER_REPORT = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def _worker_message(report: str) -> str | None:
    """The original message inside a DataLoader worker's report, or None if ``report`` is not one."""
    match = _WORKER_REPORT.match(report)
    if match is None:
        return None
    # The traceback ends with "<module>.<Name>: <message>"; messages here are one line.
    marker = f"{match.group(1)}: "
    last = report.rstrip("\n").rsplit("\n", 1)[-1]
    return last.split(marker, 1)[1] if marker in last else last


class SciMLError(Exception):
    """Base class of every error sciml raises on purpose."""

    worker_report: str | None = None

    def __init__(self, message: str):
        original = _worker_message(message)
        if original is not None:
            self.worker_report = message
            message = original
        super().__init__(message)


class DataFormatError(SciMLError, ValueError):
    """A data file exists but its content is not what sciml expects.

    The message always starts with the file and the variable (group, dataset or array) at fault.
    ``DataFormatError(message)`` (no ``problem``) rebuilds an error from its message alone.
    """

    def __init__(self, path: str | Path, variable: str | None = None, problem: str | None = None):
        if problem is None:
            self.path, self.variable, self.problem = None, None, None
            super().__init__(str(path))
            return
        self.path = str(path)
        self.variable = variable
        self.problem = problem
        where = f"{self.path}: {variable}" if variable else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        if self.problem is None:
            return type(self), (str(self),)
        return type(self), (self.path, self.variable, self.problem)


class DatasetNotFoundError(SciMLError, FileNotFoundError):
    """A configured data path does not exist; the message names the command that makes it."""

    def __init__(self, path: str | Path, make_command: str | None = None):
        if _worker_message(str(path)) is not None:
            self.path, self.make_command = None, None
            super().__init__(str(path))
            return
        self.path = str(path)
        self.make_command = make_command
        message = f"dataset not found at {self.path}"
        if make_command:
            message += f"; make it with: {make_command}"
        super().__init__(message)

    def __reduce__(self):
        if self.path is None:
            return type(self), (str(self),)
        return type(self), (self.path, self.make_command)


class ConfigError(SciMLError, ValueError):
    """A configuration value (or a command-line option, ``--name``) is invalid; the message names it.

    ``ConfigError(message)`` (no ``problem``) rebuilds an error from its message alone.
    """

    def __init__(self, key: str, problem: str | None = None):
        if problem is None:
            self.key, self.problem = None, None
            super().__init__(key)
            return
        self.key = key
        self.problem = problem
        kind = "option" if key.startswith("--") else "config key"
        super().__init__(f"{kind} '{key}': {problem}")

    def __reduce__(self):
        if self.problem is None:
            return type(self), (str(self),)
        return type(self), (self.key, self.problem)
