"""Project-wide rules: the layering contract of docs/architecture.md, lint (one Lightning import path),
packaging."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else shutil.which(name)


def test_import_layering_contracts_hold():
    result = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_lint_including_the_single_lightning_import_path():
    result = subprocess.run(
        [_tool("ruff"), "check", "sciml", "tests", "tools"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_rule_rejects_the_other_lightning_import_path(tmp_path):
    offending = tmp_path / "offending.py"
    offending.write_text("import lightning\n")
    result = subprocess.run(
        [_tool("ruff"), "check", "--config", str(ROOT / "pyproject.toml"), str(offending)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "TID251" in result.stdout and "pytorch_lightning" in result.stdout


def test_shipped_configs_are_the_top_level_configs():
    from sciml.cli import shipped_configs

    top_level = {path.name for path in (ROOT / "configs").glob("*.yaml")}
    assert top_level and set(shipped_configs()) == top_level
