"""Reader of nerfstudio's ``transforms.json`` (the layout ``ns-process-data`` writes), with frame times.

Layout: ``{"camera_model": "OPENCV", "fl_x", "fl_y", "cx", "cy", "w", "h", "frames": [{"file_path":
"images/frame_00001.png", "transform_matrix": 4x4, "time": float}, ...]}``. Intrinsics are global, and any
of ``fl_x, fl_y, cx, cy, w, h`` may be overridden per frame (as nerfstudio allows); ``w``/``h`` must match
the image file, and all frames of a split must share one image size (a Capture holds one image array).
``file_path`` includes the extension and is relative to the JSON's folder; nerfstudio's pre-downscaled
``images_<n>`` folders are not used (the data module downscales itself). RGBA images are composited on
the background; RGB images are opaque.

Times: every frame needs a ``time`` in [0, 1]. Plain nerfstudio captures have none; it is sciml's
requirement for dynamic captures (the key nerfstudio's own dynamic-data parsers read).

Cameras: undistorted pinholes only: ``camera_model`` one of the perspective models (``OPENCV`` when absent)
with all distortion coefficients (``k1..k4``, ``p1``, ``p2``) zero; undistort other captures first.
Poses are used as written, in the OpenGL convention: nerfstudio's dataparser additionally re-orients,
centres and rescales them at load time, sciml does not (so the scene box below is in the file's frame).
``applied_transform`` (written by ``ns-process-data``) records a transform that was already applied to the
``transform_matrix`` entries, so it needs no action and is ignored.

Splits follow nerfstudio's dataparser: when the JSON has any of ``train_filenames``, ``val_filenames``,
``test_filenames``, each split is the frames its list names (every split needs its list); otherwise every
8th frame (``i % 8 == 0``, nerfstudio's ``eval_mode="interval"``) is held out, and validation and test both
get those frames (nerfstudio has one evaluation set).

Scene bounds: the optional top-level keys ``near``, ``far``, ``scene_box`` (``[[min x, y, z], [max x, y,
z]]``, a sciml extension) win. Without them they are derived from the cameras the way nerfstudio sets them
up after its normalization (cameras inside the box ``[-1, 1]^3``, near 0.05), scaled by ``r``, the largest
distance of a camera centre from the origin (over all frames of the file, so every split agrees):
``scene_box = [-r, r]^3``, ``near = 0.05 r``, ``far = 2 sqrt(3) r`` (the box diagonal, the longest path a
ray from a camera inside the box has in it). Object-centric captures should set a tighter ``scene_box``.

Every problem is one DataFormatError naming the JSON file and the frame (its position in ``frames`` and
its ``file_path``); a missing JSON is a DatasetNotFoundError.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from sciml.core.errors import DataFormatError
from sciml.data.formats.capture import (
    Capture,
    check_number,
    check_pose,
    check_time,
    frame_label,
    frame_string,
    load_image,
    load_json,
    make_command,
    read_scene_bounds,
    stack_masks,
)

#: Every ``EVAL_INTERVAL``-th frame is held out when the JSON names no split lists.
EVAL_INTERVAL = 8
#: nerfstudio's perspective camera models; with zero distortion they are pinholes.
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
SPLIT_KEYS = {split: f"{split}_filenames" for split in ("train", "val", "test")}


def transforms_file(path: str | Path) -> Path:
    """The ``transforms.json`` that ``path`` (the file itself or its folder) names."""
    path = Path(path)
    return path if path.suffix == ".json" else path / "transforms.json"


def _normalized(folder: Path, file_path: str) -> str:
    return os.path.normpath(folder / file_path)


def split_indices(source: Path, meta: dict[str, Any], split: str) -> list[int]:
    """Positions in ``frames`` of the frames of ``split`` (see the module docstring for the rule)."""
    frames = meta["frames"]
    if not any(key in meta for key in SPLIT_KEYS.values()):
        held_out = [i for i in range(len(frames)) if i % EVAL_INTERVAL == 0]
        if split == "train":
            return [i for i in range(len(frames)) if i % EVAL_INTERVAL != 0]
        return held_out
    key = SPLIT_KEYS[split]
    if key not in meta:
        given = ", ".join(k for k in SPLIT_KEYS.values() if k in meta)
        raise DataFormatError(
            source, key, f"is missing, but the file lists {given}: when one split is listed, every split is"
        )
    listed = meta[key]
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise DataFormatError(source, key, "expected a list of image paths relative to the JSON's folder")
    folder = source.parent
    wanted = {_normalized(folder, name) for name in listed}
    paths = [
        _normalized(folder, frame["file_path"]) if isinstance(frame.get("file_path"), str) else None
        for frame in frames
    ]
    unmatched = sorted(wanted - set(paths))
    if unmatched:
        raise DataFormatError(
            source,
            key,
            f"names {len(unmatched)} image(s) that no frame has, e.g. {unmatched[:3]} (paths are relative to "
            f"{folder})",
        )
    return [i for i, path in enumerate(paths) if path in wanted]


def _camera_radius(source: Path, frames: list[dict[str, Any]]) -> float:
    radius = 0.0
    for i, frame in enumerate(frames):
        radius = max(radius, float(np.linalg.norm(check_pose(source, frame_label(i, frame), frame)[:3, 3])))
    if radius == 0.0:
        raise DataFormatError(
            source, "frames", "every camera sits at the origin; set near, far and scene_box in the file"
        )
    return radius


def read_nerfstudio(path: str | Path, split: str, *, white_background: bool = True) -> Capture:
    """The ``split`` (``train``, ``val`` or ``test``) of the nerfstudio capture at ``path``."""
    source = transforms_file(path)
    meta = load_json(source, make_command(path))
    frames = meta["frames"]
    if not frames:
        raise DataFormatError(source, "frames", "is empty: the capture has no frames")
    model = meta.get("camera_model", "OPENCV")
    if model not in PINHOLE_MODELS:
        raise DataFormatError(
            source,
            "camera_model",
            f"{model!r} is not supported: sciml reads undistorted pinhole cameras "
            f"({', '.join(PINHOLE_MODELS)} with zero distortion); undistort the images first",
        )
    indices = split_indices(source, meta, split)
    if not indices:
        raise DataFormatError(
            source, "frames", f"the {split} split has no frames ({len(frames)} in the file)"
        )
    if all(key in meta for key in ("near", "far", "scene_box")):
        defaults = (np.zeros((2, 3)), 0.0, 1.0)  # all overridden: the cameras need not be scanned
    else:
        r = _camera_radius(source, frames)
        defaults = (np.array([[-r] * 3, [r] * 3]), 0.05 * r, 2.0 * math.sqrt(3.0) * r)
    scene_box, near, far = read_scene_bounds(source, meta, defaults)
    background = np.full(3, 1.0 if white_background else 0.0, dtype=np.float32)
    images, alphas, intrinsics, poses, times, names = [], [], [], [], [], []
    folder = source.parent
    for i in indices:
        frame = frames[i]
        where = frame_label(i, frame)
        image_path = folder / frame_string(source, where, frame, "file_path")
        camera = {}
        for key in (*INTRINSIC_KEYS, *DISTORTION_KEYS):
            value = frame.get(key, meta.get(key))
            if value is None and key in INTRINSIC_KEYS:
                raise DataFormatError(
                    source, where, f"has no '{key}', neither its own nor a global one (pinhole intrinsics)"
                )
            if value is not None:
                positive = key in ("fl_x", "fl_y", "w", "h")
                camera[key] = check_number(source, where, key, value, minimum=0.0 if positive else None)
        distorted = {key: camera[key] for key in DISTORTION_KEYS if camera.get(key, 0.0) != 0.0}
        if distorted:
            raise DataFormatError(
                source,
                where,
                f"has lens distortion {distorted}; sciml reads undistorted pinhole cameras only: "
                "undistort the images first",
            )
        poses.append(check_pose(source, where, frame))
        times.append(check_time(source, where, frame))
        rgb, alpha = load_image(source, where, image_path, background)
        height, width = rgb.shape[:2]
        if (camera["w"], camera["h"]) != (width, height):
            raise DataFormatError(
                source,
                where,
                f"w x h = {camera['w']:g} x {camera['h']:g} but image {image_path} is {width} x {height}",
            )
        if images and rgb.shape != images[0].shape:
            raise DataFormatError(
                source,
                where,
                f"image {image_path} is {width} x {height} (W x H) but {names[0]} is "
                f"{images[0].shape[1]} x {images[0].shape[0]}; the frames of a split must share one size",
            )
        images.append(rgb)
        alphas.append(alpha)
        intrinsics.append([camera["fl_x"], camera["fl_y"], camera["cx"], camera["cy"]])
        names.append(str(image_path))
    return Capture(
        images=np.stack(images),
        masks=stack_masks(alphas, images[0].shape[:2]),
        intrinsics=np.array(intrinsics, dtype=np.float32),
        camera_to_world=np.stack(poses),
        times=np.array(times, dtype=np.float32),
        scene_box=scene_box,
        near=near,
        far=far,
        background=background,
        frame_names=names,
        split=split,
    )
