"""The canonical multi-view :class:`Capture` and the checks every capture reader shares.

Format readers (:mod:`sciml.data.formats.dnerf`, :mod:`sciml.data.formats.nerfstudio`) build Captures from
their files with these checks; the data module (:mod:`sciml.data.captures`, whose docstring states the
camera, pixel, colour and time conventions) serves them as rays. Living under ``formats`` keeps the
dependency one way: formats never import the data modules.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError

# Tolerance of the rigid-pose checks (rotation orthonormality, det +1, last row 0 0 0 1).
POSE_TOLERANCE = 1e-3


def make_command(path: str | Path) -> str:
    """The command that makes a synthetic dynamic scene at ``path`` (for DatasetNotFoundError)."""
    return f"python -m sciml.data.dynamic_scenes --out {path}"


# ---------------------------------------------------------------------------------------------- capture
@dataclass
class Capture:
    """The frames of one split of a multi-view capture (see the module docstring for the conventions).

    Attributes:
        images: ``(F, H, W, 3)`` float32 in [0, 1], composited on ``background``.
        masks: ``(F, H, W)`` float32 alpha in [0, 1], or ``None`` when the images carry none.
        intrinsics: ``(F, 4)`` float32 ``fx, fy, cx, cy`` in pixels.
        camera_to_world: ``(F, 4, 4)`` float32 OpenGL camera-to-world transforms.
        times: ``(F,)`` float32 in [0, 1].
        scene_box: ``(2, 3)`` float32 min and max corners of the box holding the scene.
        near, far: ray bounds.
        background: ``(3,)`` float32 colour the images are composited on.
        frame_names: the image file of each frame (for messages and file names).
        split: ``train``, ``val`` or ``test``.
    """

    images: np.ndarray
    masks: np.ndarray | None
    intrinsics: np.ndarray
    camera_to_world: np.ndarray
    times: np.ndarray
    scene_box: np.ndarray
    near: float
    far: float
    background: np.ndarray
    frame_names: list[str]
    split: str

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.float32)
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"Capture.images: expected (F, H, W, 3), got {self.images.shape}")
        frames, height, width = self.images.shape[:3]
        expected = {
            "intrinsics": (frames, 4),
            "camera_to_world": (frames, 4, 4),
            "times": (frames,),
            "scene_box": (2, 3),
            "background": (3,),
        }
        if self.masks is not None:
            expected["masks"] = (frames, height, width)
        for name, shape in expected.items():
            value = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"Capture.{name}: expected shape {shape}, got {value.shape}")
            setattr(self, name, value)
        self.near, self.far = float(self.near), float(self.far)
        self.frame_names = [str(name) for name in self.frame_names]
        if len(self.frame_names) != frames:
            raise ValueError(f"Capture.frame_names: expected {frames} names, got {len(self.frame_names)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def downscale(self, factor: int) -> Capture:
        """A new Capture with ``f x f`` pixel blocks averaged and intrinsics divided by ``f``."""
        if isinstance(factor, bool) or not isinstance(factor, int | np.integer) or factor < 1:
            raise ConfigError("downscale", f"expected an integer >= 1, got {factor!r}")
        if factor > min(self.height, self.width):
            raise ConfigError(
                "downscale", f"{factor} is larger than the {self.height}x{self.width} images of {self.split}"
            )
        h, w = self.height // factor, self.width // factor

        def area_average(array: np.ndarray) -> np.ndarray:
            blocks = array[:, : h * factor, : w * factor]
            blocks = blocks.reshape(len(self), h, factor, w, factor, *array.shape[3:])  # (F, h, f, w, f, ...)
            return blocks.mean(axis=(2, 4), dtype=np.float64).astype(np.float32)

        return dataclasses.replace(
            self,
            images=area_average(self.images),
            masks=None if self.masks is None else area_average(self.masks),
            intrinsics=self.intrinsics / np.float32(factor),
            frame_names=list(self.frame_names),
        )

    def subset(self, indices: Sequence[int]) -> Capture:
        """A new Capture of the frames ``indices`` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            images=self.images[indices],
            masks=None if self.masks is None else self.masks[indices],
            intrinsics=self.intrinsics[indices],
            camera_to_world=self.camera_to_world[indices],
            times=self.times[indices],
            frame_names=[self.frame_names[i] for i in indices.tolist()],
        )


# ---------------------------------------------------------------------------------------------- reading
def load_json(path: Path, make: str) -> dict[str, Any]:
    """The JSON object in ``path``; DatasetNotFoundError (naming ``make``) when it is missing."""
    if not path.is_file():
        raise DatasetNotFoundError(path, make)
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFormatError(path, None, f"not readable JSON ({error})") from error
    if not isinstance(meta, dict):
        raise DataFormatError(
            path, None, f"expected a JSON object at the top level, got {type(meta).__name__}"
        )
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise DataFormatError(path, "frames", f"expected a list of frames, got {type(frames).__name__}")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise DataFormatError(path, f"frames[{i}]", f"expected an object, got {type(frame).__name__}")
    return meta


def frame_label(index: int, frame: dict[str, Any]) -> str:
    """How errors name a frame: its position in the JSON's ``frames`` list and its ``file_path``."""
    file_path = frame.get("file_path")
    return f"frames[{index}] ({file_path})" if isinstance(file_path, str) else f"frames[{index}]"


def frame_string(source: Path, where: str, frame: dict[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value:
        raise DataFormatError(source, where, f"expected a non-empty string '{key}', got {value!r}")
    return value


def check_number(source: Path, where: str, key: str, value: Any, minimum: float | None = None) -> float:
    """``value`` as a finite float (> ``minimum`` when given); DataFormatError naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataFormatError(source, where, f"expected a finite number '{key}', got {value!r}")
    if minimum is not None and value <= minimum:
        raise DataFormatError(source, where, f"'{key}' must be > {minimum}, got {value!r}")
    return float(value)


def check_time(source: Path, where: str, frame: dict[str, Any]) -> float:
    """The frame's ``time``: a finite number in [0, 1]."""
    if "time" not in frame:
        raise DataFormatError(
            source, where, "has no 'time': dynamic captures need each frame's time in [0, 1]"
        )
    time = check_number(source, where, "time", frame["time"])
    if not 0.0 <= time <= 1.0:
        raise DataFormatError(source, where, f"'time' must lie in [0, 1], got {time!r}")
    return time


def check_pose(source: Path, where: str, frame: dict[str, Any]) -> np.ndarray:
    """The frame's ``transform_matrix`` as a (4, 4) float32 rigid camera-to-world transform.

    A 3x4 matrix is completed with the row ``0 0 0 1``. The rotation must be orthonormal with determinant
    +1 and the last row ``0 0 0 1``, each within ``POSE_TOLERANCE``.
    """
    try:
        matrix = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except KeyError:
        raise DataFormatError(
            source, where, "has no 'transform_matrix' (the 4x4 camera-to-world pose)"
        ) from None
    except (TypeError, ValueError) as error:
        raise DataFormatError(
            source, where, f"'transform_matrix' is not a numeric matrix ({error})"
        ) from None
    if matrix.shape == (3, 4):
        matrix = np.concatenate([matrix, [[0.0, 0.0, 0.0, 1.0]]])
    if matrix.shape != (4, 4):
        raise DataFormatError(source, where, f"'transform_matrix' must be 4x4, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise DataFormatError(source, where, "'transform_matrix' holds NaN or infinite values")
    if np.abs(matrix[3] - [0.0, 0.0, 0.0, 1.0]).max() > POSE_TOLERANCE:
        raise DataFormatError(
            source, where, f"'transform_matrix' last row must be 0 0 0 1, got {matrix[3].tolist()}"
        )
    rotation = matrix[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    determinant = np.linalg.det(rotation)
    if error > POSE_TOLERANCE or abs(determinant - 1.0) > POSE_TOLERANCE:
        raise DataFormatError(
            source,
            where,
            "'transform_matrix' is not a rigid camera-to-world transform: its rotation must be orthonormal "
            f"with determinant +1 (tolerance {POSE_TOLERANCE}), got max |R^T R - I| = {error:.3g} and "
            f"det R = {determinant:.4g}",
        )
    matrix[3] = [0.0, 0.0, 0.0, 1.0]
    return matrix.astype(np.float32)


def load_image(
    source: Path, where: str, image_path: Path, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(rgb (H, W, 3), alpha (H, W) or None)`` float32 of an 8-bit image, composited on ``background``."""
    if not image_path.is_file():
        raise DataFormatError(source, where, f"image {image_path} does not exist")
    try:
        with Image.open(image_path) as image:
            image.load()
            mode = image.mode
            has_alpha = mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            pixels = None
            if mode in ("RGB", "RGBA", "L", "LA", "P", "PA"):
                pixels = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataFormatError(
            source, where, f"image {image_path} is not a readable image ({error})"
        ) from error
    if pixels is None:
        raise DataFormatError(
            source, where, f"image {image_path} has pixel mode {mode}; expected 8-bit RGB(A) or grey(+alpha)"
        )
    if not has_alpha:
        return pixels, None
    rgb, alpha = pixels[..., :3], pixels[..., 3]
    composited = rgb * alpha[..., None] + background * (1.0 - alpha[..., None])
    return composited.astype(np.float32), alpha


def stack_masks(alphas: Sequence[np.ndarray | None], size: tuple[int, int]) -> np.ndarray | None:
    """``(F, H, W)`` masks of frames whose images may lack alpha (opaque: 1); ``None`` if none has any."""
    if all(alpha is None for alpha in alphas):
        return None
    return np.stack([np.ones(size, dtype=np.float32) if alpha is None else alpha for alpha in alphas])


def read_scene_bounds(
    source: Path, meta: dict[str, Any], defaults: tuple[np.ndarray, float, float]
) -> tuple[np.ndarray, float, float]:
    """``(scene_box (2, 3), near, far)`` from the optional top-level keys ``scene_box``, ``near``, ``far``."""
    box, near, far = defaults
    if "scene_box" in meta:
        try:
            box = np.asarray(meta["scene_box"], dtype=np.float64)
        except (TypeError, ValueError):
            box = np.asarray([])
        if box.shape != (2, 3) or not np.isfinite(box).all():
            raise DataFormatError(
                source, "scene_box", f"expected [[min x, y, z], [max x, y, z]], got {meta['scene_box']!r}"
            )
    if "near" in meta:
        near = check_number(source, "near", "near", meta["near"])
    if "far" in meta:
        far = check_number(source, "far", "far", meta["far"])
    check_bounds(np.asarray(box), near, far, lambda key, problem: DataFormatError(source, key, problem))
    return np.asarray(box, dtype=np.float32), float(near), float(far)


def check_bounds(box: np.ndarray, near: float, far: float, error: Any) -> None:
    """Raise ``error(key, problem)`` unless ``min < max`` on every axis and ``0 <= near < far``."""
    if not (box[0] < box[1]).all():
        raise error("scene_box", f"every min corner coordinate must be below the max one, got {box.tolist()}")
    if near < 0:
        raise error("near", f"must be >= 0, got {near}")
    if far <= near:
        raise error("far", f"must be larger than near ({near}), got {far}")
