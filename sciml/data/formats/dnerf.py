"""Reader of the D-NeRF layout (Pumarola et al., "D-NeRF: Neural Radiance Fields for Dynamic Scenes", 2021).

Layout: ``<root>/transforms_{train,val,test}.json``, each ``{"camera_angle_x": float, "frames": [{"file_path":
"./train/r_000", "time": float, "transform_matrix": 4x4}, ...]}``. ``file_path`` is relative to ``<root>`` and
has no extension; ``.png`` is appended as D-NeRF's ``load_blender_data`` does (a path that already ends in
``.png``/``.jpg``/``.jpeg`` is taken as written). Images are RGBA PNGs composited on white (or black), as
D-NeRF does with ``white_bkgd``.

Cameras: one pinhole for all frames, ``fx = fy = 0.5 W / tan(0.5 camera_angle_x)``, ``cx = W / 2``,
``cy = H / 2`` (``W, H`` of the images, which must all have one size); ``transform_matrix`` is the Blender
camera-to-world transform, already in the OpenGL convention of :mod:`sciml.data.captures`.

Scene bounds: D-NeRF's synthetic scenes are rendered with ``near = 2``, ``far = 6`` (D-NeRF's
``run_dnerf.py`` for the Blender data) inside the box ``[-1.5, 1.5]^3`` (the box HexPlane/TiNeuVox-style
models use for them); these are the defaults. A JSON may override them with the optional top-level keys
``near``, ``far`` and ``scene_box`` (``[[min x, y, z], [max x, y, z]]``), a sciml extension that
sciml's own generator writes.

Every problem is one DataFormatError naming the JSON file and the frame (its position in ``frames`` and its
``file_path``): a missing or unreadable image, an image whose size differs from the first frame's, a pose
that is not a finite rigid transform, a time outside [0, 1] or missing, or an empty split. A missing JSON
is a DatasetNotFoundError.
"""

from __future__ import annotations

import math
from pathlib import Path

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

#: D-NeRF's near/far planes and the scene box of its synthetic scenes (see the module docstring).
NEAR, FAR = 2.0, 6.0
SCENE_BOX = np.array([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]], dtype=np.float32)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_file(root: Path, file_path: str) -> Path:
    """The image a D-NeRF ``file_path`` names: relative to ``root``, ``.png`` appended."""
    if Path(file_path).suffix.lower() not in IMAGE_SUFFIXES:
        file_path += ".png"
    return root / file_path


def focal_length(camera_angle_x: float, width: int) -> float:
    """``0.5 W / tan(0.5 camera_angle_x)``: the focal length (pixels) of a horizontal field of view."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def read_dnerf(root: str | Path, split: str, *, white_background: bool = True) -> Capture:
    """The ``split`` (``train``, ``val``, ``test`` or the optional ``video``) of the D-NeRF capture."""
    root = Path(root)
    source = root / f"transforms_{split}.json"
    meta = load_json(source, make_command(root))
    angle = check_number(source, "camera_angle_x", "camera_angle_x", meta.get("camera_angle_x"), minimum=0.0)
    if angle >= math.pi:
        raise DataFormatError(source, "camera_angle_x", f"must be below pi (a field of view), got {angle}")
    scene_box, near, far = read_scene_bounds(source, meta, (SCENE_BOX, NEAR, FAR))
    frames = meta["frames"]
    if not frames:
        raise DataFormatError(source, "frames", f"is empty: the {split} split has no frames")
    background = np.full(3, 1.0 if white_background else 0.0, dtype=np.float32)
    images, alphas, poses, times, names = [], [], [], [], []
    for i, frame in enumerate(frames):
        where = frame_label(i, frame)
        path = image_file(root, frame_string(source, where, frame, "file_path"))
        poses.append(check_pose(source, where, frame))
        times.append(check_time(source, where, frame))
        rgb, alpha = load_image(source, where, path, background)
        if images and rgb.shape != images[0].shape:
            raise DataFormatError(
                source,
                where,
                f"image {path} is {rgb.shape[1]}x{rgb.shape[0]} (W x H) but {names[0]} is "
                f"{images[0].shape[1]}x{images[0].shape[0]}; every frame of a D-NeRF capture has one size",
            )
        images.append(rgb)
        alphas.append(alpha)
        names.append(str(path))
    height, width = images[0].shape[:2]
    focal = focal_length(angle, width)
    intrinsics = np.tile(np.array([focal, focal, width / 2, height / 2], dtype=np.float32), (len(frames), 1))
    return Capture(
        images=np.stack(images),
        masks=stack_masks(alphas, (height, width)),
        intrinsics=intrinsics,
        camera_to_world=np.stack(poses),
        times=np.array(times, dtype=np.float32),
        scene_box=scene_box,
        near=near,
        far=far,
        background=background,
        frame_names=names,
        split=split,
    )
