"""The viewer tests run nerfstudio in its own environment (``make viewer-env``: ``.venv-viewer``), created
here when it is missing (about 7 GB; minutes), and drive it through subprocesses: the core environment
never imports nerfstudio or torchvision."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEWER_VENV = ROOT / ".venv-viewer"


@pytest.fixture(scope="session")
def viewer_bin() -> Path:
    """``.venv-viewer/bin`` with nerfstudio, sciml (editable) and the ``shade`` plugin installed."""
    result = subprocess.run(["make", "viewer-env"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"make viewer-env failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return VIEWER_VENV / "bin"


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    from sciml.data.dynamic_scenes import make_dynamic_scene

    root = tmp_path_factory.mktemp("viewer") / "scene"
    make_dynamic_scene(root, height=16, width=16, train=8, val=2, test=2, video=3, progress=False)
    return root
