"""Seeded generators of tiny multi-view captures in the D-NeRF and nerfstudio layouts (a few kB each).

One scene, written in either layout: cameras on a sphere of radius 4 around the origin (elevations 15-60
degrees, z up as in Blender), each looking at the origin with D-NeRF's ``camera_angle_x``; RGBA PNG
images of random colours whose alpha is 255 on a disc, 128 on a ring around it and 0 outside, so
compositing and averaging are visible in every image. Training times are evenly spaced over [0, 1],
validation and test times are random.

* :func:`make_dnerf_fixture` writes ``transforms_{train,val,test}.json`` and ``{split}/r_XXX.png``.
* :func:`make_nerfstudio_fixture` writes the same frames as ``transforms.json`` (global ``fl_x, fl_y, cx,
  cy, w, h``, per-frame ``time``, ``train/val/test_filenames``) with D-NeRF's near/far/scene box in the
  sciml keys, so both layouts describe the same capture.

Both return what they wrote: ``{"camera_angle_x", "focal", "size", "splits": {split: [{"file": Path,
"rgba": (H, W, 4) uint8, "transform_matrix": (4, 4) float64, "time": float}, ...]}}``.

``python tests/data/capture_fixtures.py OUT_DIR`` writes both.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SIZE = 16
COUNTS = {"train": 6, "val": 2, "test": 2}
CAMERA_ANGLE_X = 0.6911112070083618  # the value in D-NeRF's synthetic scenes
RADIUS = 4.0
NEAR, FAR = 2.0, 6.0
SCENE_BOX = [[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]


def look_at(position, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenGL camera-to-world (4, 4) of a camera at ``position`` looking at ``target`` (-z towards it)."""
    position, target = np.asarray(position, dtype=np.float64), np.asarray(target, dtype=np.float64)
    back = position - target
    back /= np.linalg.norm(back)
    up = np.asarray(up, dtype=np.float64)
    if abs(np.dot(up, back)) > 0.999:  # looking along the up vector: any perpendicular up will do
        up = np.array([0.0, 1.0, 0.0]) if abs(back[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, np.cross(back, right), back, position
    return matrix


def _rgba(rng: np.random.Generator, size: int, time: float) -> np.ndarray:
    """(size, size, 4) uint8: random colours; alpha 255 on a disc growing with time, 128 on a ring, else 0."""
    pixels = np.empty((size, size, 4), dtype=np.uint8)
    pixels[..., :3] = rng.integers(0, 256, size=(size, size, 3))
    v, u = np.mgrid[:size, :size] + 0.5
    distance = np.hypot(u - size / 2, v - size / 2) / size
    inner = 0.15 + 0.15 * time
    pixels[..., 3] = np.where(distance < inner, 255, np.where(distance < inner + 0.12, 128, 0))
    return pixels


def make_scene(counts=COUNTS, size: int = SIZE, seed: int = 0) -> dict[str, Any]:
    """The frames of the fixture scene (nothing written): see the module docstring for the layout."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in counts.items():
        if split == "train":
            times = np.linspace(0.0, 1.0, count)
        else:
            times = rng.uniform(0.0, 1.0, count)
        frames = []
        for i in range(count):
            azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(math.radians(15), math.radians(60))
            position = RADIUS * np.array(
                [
                    math.cos(elevation) * math.cos(azimuth),
                    math.cos(elevation) * math.sin(azimuth),
                    math.sin(elevation),
                ]
            )
            frames.append(
                {
                    "name": f"{split}/r_{i:03d}",
                    "rgba": _rgba(rng, size, float(times[i])),
                    "transform_matrix": look_at(position),
                    "time": float(times[i]),
                }
            )
        splits[split] = frames
    focal = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    return {"camera_angle_x": CAMERA_ANGLE_X, "focal": focal, "size": size, "splits": splits}


def _write_images(root: Path, scene: dict[str, Any]) -> None:
    for frames in scene["splits"].values():
        for frame in frames:
            frame["file"] = root / f"{frame.pop('name')}.png"
            frame["file"].parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame["rgba"]).save(frame["file"])


def _frame_json(frame: dict[str, Any], root: Path, dnerf: bool) -> dict[str, Any]:
    """D-NeRF's ``file_path`` is ``./train/r_000`` (no extension); nerfstudio's ``train/r_000.png``."""
    file_path = frame["file"].relative_to(root).as_posix()
    return {
        "file_path": f"./{file_path.removesuffix('.png')}" if dnerf else file_path,
        "time": frame["time"],
        "transform_matrix": frame["transform_matrix"].tolist(),
    }


def make_dnerf_fixture(root: str | Path, counts=COUNTS, size: int = SIZE, seed: int = 0) -> dict[str, Any]:
    """The fixture scene in the D-NeRF layout under ``root`` (no near/far/scene box: D-NeRF's defaults)."""
    root = Path(root)
    scene = make_scene(counts, size, seed)
    _write_images(root, scene)
    for split, frames in scene["splits"].items():
        meta = {
            "camera_angle_x": CAMERA_ANGLE_X,
            "frames": [_frame_json(f, root, dnerf=True) for f in frames],
        }
        (root / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))
    return scene


def make_nerfstudio_fixture(
    root: str | Path, counts=COUNTS, size: int = SIZE, seed: int = 0, bounds: bool = True
) -> dict[str, Any]:
    """The fixture scene as a nerfstudio ``transforms.json`` under ``root``; ``bounds`` writes D-NeRF's
    near/far/scene box (else the reader derives them from the cameras)."""
    root = Path(root)
    scene = make_scene(counts, size, seed)
    _write_images(root, scene)
    focal = scene["focal"]
    meta: dict[str, Any] = {
        "camera_model": "OPENCV",
        "fl_x": focal,
        "fl_y": focal,
        "cx": size / 2,
        "cy": size / 2,
        "w": size,
        "h": size,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": [],
    }
    if bounds:
        meta.update(near=NEAR, far=FAR, scene_box=SCENE_BOX)
    for split, frames in scene["splits"].items():
        entries = [_frame_json(f, root, dnerf=False) for f in frames]
        meta["frames"] += entries
        meta[f"{split}_filenames"] = [entry["file_path"] for entry in entries]
    (root / "transforms.json").write_text(json.dumps(meta, indent=2))
    return scene


def main(out: str) -> None:
    make_dnerf_fixture(Path(out) / "dnerf")
    make_nerfstudio_fixture(Path(out) / "nerfstudio")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
