"""Shared test setup: the fixture generators under tests/data are importable as plain modules."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
