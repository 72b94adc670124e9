"""One helper for heavy optional dependencies, whose error names the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail with the ``pip install "sciml[<extra>]"`` command that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f'{module} is needed for this feature but is not installed: pip install "sciml[{extra}]"'
        ) from error
