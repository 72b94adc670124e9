"""Multi-view captures of dynamic scenes and the data module that serves them as rays (SHaDe, D-NeRF).

A :class:`Capture` (:mod:`sciml.data.formats.capture`) is the one canonical multi-view object every format
reader produces (:mod:`sciml.data.formats.dnerf`, :mod:`sciml.data.formats.nerfstudio`) and the data module
consumes: the frames of one split with their images, cameras and timestamps, plus the scene's box, near/far
bounds and background colour.

Conventions:

* Cameras: ``camera_to_world`` is a 4x4 rigid transform in the OpenGL/NeRF convention (the one Blender,
  D-NeRF and nerfstudio write): the camera looks along its -z axis, +y is up and +x right in the image.
  Intrinsics are ``(fx, fy, cx, cy)`` in pixels; lenses are undistorted pinholes.
* Pixels: ``(u, v) = (column, row)``; pixel ``(u, v)`` covers ``[u, u + 1) x [v, v + 1)``, so its centre
  is at ``(u + 0.5, v + 0.5)``. The ray through it has the camera-space direction
  ``((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1)``, rotated by ``camera_to_world[:3, :3]`` and
  normalized to unit length; its origin is ``camera_to_world[:3, 3]``.
* Colours are float32 in [0, 1], already composited on the background with straight (non-premultiplied)
  alpha, as PNG stores it: ``rgb * alpha + background * (1 - alpha)``. ``masks`` keeps the alpha.
* Times are float32 in [0, 1] (D-NeRF's normalized frame time).
* Downscaling by ``f`` averages ``f x f`` pixel blocks (area averaging, what D-NeRF's ``half_res`` does
  with OpenCV's INTER_AREA) and divides all four intrinsics by ``f``: pixel ``U`` of the small image covers
  pixels ``[fU, fU + f)`` of the large one, whose centre ``f (U + 0.5)`` maps to ``U + 0.5``, so rays stay
  exact. Rows and columns beyond the last whole block (fewer than ``f``) are cropped, which leaves
  ``cx, cy`` unchanged.

Format choice (``format="auto"``): a folder holding ``transforms_train.json`` is D-NeRF, a folder holding
``transforms.json`` (or a path to a ``.json`` file) is nerfstudio.

Batches:

* training: ``steps_per_epoch`` batches per epoch (over all processes), each of ``rays_per_batch`` rays
  drawn uniformly, with replacement, over every pixel of every training frame (so over all times):
  ``{"origins": (R, 3), "directions": (R, 3), "rgb": (R, 3), "time": (R,), "frame": (R,) int64 frame of
  each ray, "pixel": (R, 2) int64 (u, v) of each ray, "index": batch index}``. Ray directions of every
  training pixel are computed once in ``setup``; origins and times are per frame and gathered through each
  ray's frame (identical values, 16 bytes per ray less memory than storing them per pixel).
* validation/test: one whole image per item, ``{"origins": (H, W, 3), "directions": (H, W, 3),
  "rgb": (H, W, 3), "time": (), "index": frame position in the split, "frame": image file}``, batched one
  image per batch. ``val_frames`` caps the validation frames (evenly spaced); test uses every frame.

Reproducibility: a training batch's rays are a pure function of ``(shuffle_seed, epoch, batch index)``;
the training loader's sampler hands the dataset ``(epoch, index)`` pairs (as for point clouds), so draws
are the same in any worker, differ between epochs, and a run resumed mid-epoch from a checkpoint draws
exactly the batches it would have drawn. Loaders shard with :class:`sciml.data.sampling.ShardedSampler`:
DDP ranks get disjoint batch indices (rank ``r`` of ``w`` takes ``r, r + w, ...``, so each runs
``steps_per_epoch // w`` steps) and disjoint evaluation frames (padded with repeats to equal length).

Scene bounds: the scene box, near and far come from the format (see each reader) unless the data module
overrides them; they must agree between the splits of one dataset. Before ``setup`` they are known only
when configured.

When ``path`` is missing, ``prepare_data`` (global rank 0) runs the configured generator
(``generator: dynamic_scene``: :func:`sciml.data.dynamic_scenes.make_dynamic_scene`); without one it is a
DatasetNotFoundError naming the command that makes a synthetic scene.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from sciml.data.formats.capture import Capture, check_bounds, check_pose, check_time, make_command
from sciml.data.formats.dnerf import read_dnerf
from sciml.data.formats.nerfstudio import read_nerfstudio
from sciml.data.sampling import EpochIndexSampler, ResumableDataLoader, ShardedSampler
from sciml.rendering.cameras import look_at

CaptureFormat = Literal["auto", "dnerf", "nerfstudio"]
FORMATS = ("auto", "dnerf", "nerfstudio")
SPLITS = ("train", "val", "test")
#: Read when present: ``video`` is one camera through consecutive times (the generated scene writes it), for
#: the temporal-consistency metric and videos over time.
OPTIONAL_SPLITS = ("video",)
GENERATORS = ("dynamic_scene",)
# Seed-sequence tag of the training ray draws (keeps them apart from any other stream of the same seed).
_TRAIN = 0


# ---------------------------------------------------------------------------------------------- rays
def camera_rays(
    intrinsics: np.ndarray | torch.Tensor,
    camera_to_world: np.ndarray | torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions ``(..., H, W, 3)`` of every pixel of cameras ``(..., 4)``, ``(..., 4, 4)``.

    Pixel ``(u, v)`` (column, row) has the camera-space direction ``((u + 0.5 - cx) / fx,
    -(v + 0.5 - cy) / fy, -1)`` (OpenGL: looking along -z, +y up), rotated to world space.
    """
    intrinsics = torch.as_tensor(intrinsics, dtype=torch.float32)
    camera_to_world = torch.as_tensor(camera_to_world, dtype=torch.float32)
    fx, fy, cx, cy = (intrinsics[..., i, None, None] for i in range(4))  # each (..., 1, 1)
    u = torch.arange(width, dtype=torch.float32) + 0.5
    v = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
    x = ((u - cx) / fx).expand(*intrinsics.shape[:-1], height, width)  # (..., H, W)
    y = (-(v - cy) / fy).expand(*intrinsics.shape[:-1], height, width)  # (..., H, W)
    camera = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # (..., H, W, 3)
    rotation = camera_to_world[..., None, None, :3, :3]  # (..., 1, 1, 3, 3)
    directions = (rotation @ camera[..., None]).squeeze(-1)  # (..., H, W, 3)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = camera_to_world[..., None, None, :3, 3].expand(directions.shape)  # (..., H, W, 3)
    return origins, directions


def detect_format(path: str | Path) -> str:
    """``dnerf`` for a folder with ``transforms_train.json``, ``nerfstudio`` for ``transforms.json`` or a
    ``.json`` file; DatasetNotFoundError when ``path`` holds neither."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return "nerfstudio"
    if (path / "transforms_train.json").is_file():
        return "dnerf"
    if (path / "transforms.json").is_file():
        return "nerfstudio"
    if path.exists():
        raise DatasetNotFoundError(
            path / "transforms_train.json (D-NeRF) or transforms.json (nerfstudio)", make_command(path)
        )
    raise DatasetNotFoundError(path, make_command(path))


def read_capture(
    path: str | Path, split: str, format: CaptureFormat = "auto", white_background: bool = True
) -> Capture:
    """The ``split`` of the capture at ``path`` in ``format`` (``auto``: see :func:`detect_format`)."""
    if format not in FORMATS:
        raise ConfigError("format", f"must be one of {', '.join(FORMATS)}, got {format!r}")
    if split not in SPLITS + OPTIONAL_SPLITS:
        raise ConfigError("split", f"must be one of {', '.join(SPLITS + OPTIONAL_SPLITS)}, got {split!r}")
    if not Path(path).exists():
        raise DatasetNotFoundError(path, make_command(path))
    if format == "auto":
        format = detect_format(path)
    reader = read_dnerf if format == "dnerf" else read_nerfstudio
    return reader(path, split, white_background=white_background)


# ---------------------------------------------------------------------------------------------- datasets
class RayBatchDataset(Dataset):
    """``batches`` random ray batches per epoch over every pixel of every frame of a capture.

    Item ``(epoch, index)`` is batch ``index`` of ``epoch`` (see the module docstring for its keys); its
    rays are a pure function of ``(seed, epoch, index)``. A plain integer index draws for the epoch last
    passed to ``set_epoch``.
    """

    def __init__(self, capture: Capture, rays_per_batch: int, batches: int, seed: int = 0):
        self.rays_per_batch, self.batches, self.seed = rays_per_batch, batches, seed
        self.frames, self.height, self.width = len(capture), capture.height, capture.width
        self.num_rays = self.frames * self.height * self.width
        directions = torch.empty((self.frames, self.height, self.width, 3), dtype=torch.float32)
        for f in range(self.frames):  # one frame at a time keeps the temporaries small
            directions[f] = camera_rays(
                capture.intrinsics[f], capture.camera_to_world[f], *directions.shape[1:3]
            )[1]
        self.directions = directions.reshape(-1, 3)  # (F * H * W, 3), pixel-major within a frame
        self.rgb = torch.from_numpy(capture.images).reshape(-1, 3)  # (F * H * W, 3), a view
        self.origins = torch.from_numpy(np.ascontiguousarray(capture.camera_to_world[:, :3, 3]))  # (F, 3)
        self.times = torch.from_numpy(capture.times)  # (F,)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches

    def ray_indices(self, index: int, epoch: int | None = None) -> np.ndarray:
        """Flat ``frame * H * W + v * W + u`` indices of the rays of batch ``index`` of ``epoch``."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, _TRAIN, epoch, index])
        return rng.integers(0, self.num_rays, size=self.rays_per_batch, dtype=np.int64)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple | list) else (None, int(key))
        if not 0 <= index < self.batches:
            raise IndexError(f"batch index {index} out of range for {self.batches} batches")
        rays = torch.from_numpy(self.ray_indices(index, epoch))  # (R,)
        pixels_per_frame = self.height * self.width
        frame, pixel = rays // pixels_per_frame, rays % pixels_per_frame  # (R,), (R,)
        return {
            "origins": self.origins[frame],
            "directions": self.directions[rays],
            "rgb": self.rgb[rays],
            "time": self.times[frame],
            "frame": frame,
            "pixel": torch.stack([pixel % self.width, pixel // self.width], dim=-1),  # (R, 2) = (u, v)
            "index": index,
        }


class ImageRayDataset(Dataset):
    """The frames of a capture as whole images of rays (validation, test); see the module docstring."""

    def __init__(self, capture: Capture):
        self.capture = capture

    def __len__(self) -> int:
        return len(self.capture)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        capture = self.capture
        origins, directions = camera_rays(
            capture.intrinsics[index], capture.camera_to_world[index], capture.height, capture.width
        )
        return {
            "origins": origins.contiguous(),
            "directions": directions,
            "rgb": torch.from_numpy(capture.images[index]),
            "time": torch.tensor(capture.times[index]),
            "index": index,
            "frame": capture.frame_names[index],
        }


class CameraPathDataset(Dataset):
    """Whole images of rays along a render path (``predict``): one item per camera and time."""

    def __init__(
        self, camera_to_world: np.ndarray, times: np.ndarray, intrinsics: np.ndarray, height: int, width: int
    ):
        self.camera_to_world, self.times = camera_to_world, times
        self.intrinsics, self.height, self.width = intrinsics, height, width

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} path frames")
        origins, directions = camera_rays(
            self.intrinsics[index], self.camera_to_world[index], self.height, self.width
        )
        return {
            "origins": origins.contiguous(),
            "directions": directions,
            "time": torch.tensor(float(self.times[index])),
            "index": index,
        }


def orbit_path(capture: Capture, frames: int, elevation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """An orbit around the scene-box centre through time: ``(camera_to_world (F, 4, 4), times (F,))``.

    The radius is the capture's mean camera distance from the centre; "up" is the mean of its cameras' up
    axes (so z-up captures such as D-NeRF's and y-up ones both orbit upright); times run from 0 to 1.
    """
    centre = capture.scene_box.mean(axis=0).astype(np.float64)
    positions = capture.camera_to_world[:, :3, 3].astype(np.float64)
    radius = float(np.linalg.norm(positions - centre, axis=1).mean())
    up = capture.camera_to_world[:, :3, 1].astype(np.float64).mean(axis=0)
    up /= np.linalg.norm(up)
    side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    front = np.cross(up, side)
    elevation = np.deg2rad(elevation_deg)
    matrices = []
    for angle in np.linspace(0, 2 * np.pi, frames, endpoint=False):
        direction = (
            np.cos(elevation) * (np.cos(angle) * side + np.sin(angle) * front) + np.sin(elevation) * up
        )
        eye = centre + radius * direction
        matrices.append(look_at(eye.tolist(), centre.tolist(), up.tolist(), dtype=torch.float64).numpy())
    return np.stack(matrices).astype(np.float32), np.linspace(0, 1, frames, dtype=np.float32)


def read_camera_path(
    path: str | Path, intrinsics: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """A nerfstudio ``camera_path.json`` with per-keyframe times: ``(c2w, times, intrinsics, H, W)``.

    Reads ``camera_path: [{camera_to_world: 16 numbers (row-major 4x4), fov: vertical degrees (optional),
    render_time or time: in [0, 1]}]`` and optional ``render_height``/``render_width``; without them the
    capture's image size and intrinsics are used.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("render_path", f"no camera path file at {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFormatError(path, None, f"not readable JSON ({error})") from error
    entries = data.get("camera_path") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataFormatError(path, "camera_path", "expected a non-empty list of cameras")
    height = int(data.get("render_height", height))
    width = int(data.get("render_width", width))
    matrices, times, focal = [], [], []
    for index, entry in enumerate(entries):
        where = f"camera_path[{index}]"
        matrix = np.asarray(entry.get("camera_to_world", []), dtype=np.float64).reshape(-1)
        if matrix.size != 16:
            raise DataFormatError(path, where, "camera_to_world must hold 16 numbers (a row-major 4x4)")
        frame = {
            "transform_matrix": matrix.reshape(4, 4).tolist(),
            "time": entry.get("render_time", entry.get("time")),
        }
        if frame["time"] is None:
            del frame["time"]
        matrices.append(check_pose(path, where, frame))
        times.append(check_time(path, where, frame))
        fov = entry.get("fov")
        focal.append(0.5 * height / np.tan(0.5 * np.deg2rad(float(fov))) if fov is not None else None)
    scale = np.array([width / (2 * intrinsics[2]), height / (2 * intrinsics[3])])
    rows = []
    for f in focal:
        fx, fy = (f, f) if f is not None else (intrinsics[0] * scale[0], intrinsics[1] * scale[1])
        rows.append([fx, fy, width / 2, height / 2])
    return (
        np.stack(matrices).astype(np.float32),
        np.asarray(times, dtype=np.float32),
        np.asarray(rows, dtype=np.float32),
        height,
        width,
    )


def _single_batch(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate for a loader whose items are whole batches (batch_size 1): the item itself."""
    return items[0]


def _check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(key, f"expected an integer >= {minimum}, got {value!r}")


# ---------------------------------------------------------------------------------------------- data module
class CaptureDataModule(pl.LightningDataModule):
    """Random ray batches for training and whole images for validation/test of a multi-view capture.

    Args:
        path: the capture: a D-NeRF folder (``transforms_{train,val,test}.json``), a nerfstudio folder
            (``transforms.json``) or a nerfstudio ``.json`` file.
        format: ``auto`` (detected from the files), ``dnerf`` or ``nerfstudio``.
        downscale: integer factor the images are area-averaged by (intrinsics divided by it).
        rays_per_batch: rays per training batch.
        steps_per_epoch: training batches per epoch, over all processes.
        val_frames: at most this many validation frames (evenly spaced); ``None``: all.
        num_workers: DataLoader worker processes (kept alive between epochs).
        white_background: composite transparent pixels on white (else black).
        scene_box: ``[[min x, y, z], [max x, y, z]]`` (or the six numbers flat) overriding the format's.
        near, far: ray bounds overriding the format's.
        generator, generator_args: ``"dynamic_scene"`` makes a synthetic scene at ``path`` in
            ``prepare_data`` when it is missing (:func:`sciml.data.dynamic_scenes.make_dynamic_scene`,
            called with ``generator_args``).
        shuffle_seed: seed of the training ray draws.
        render_path: a nerfstudio ``camera_path.json`` with per-keyframe ``render_time`` that ``predict``
            renders; without it ``predict`` renders an orbit of ``orbit_frames`` views at
            ``orbit_elevation`` degrees through times 0..1 (:func:`orbit_path`).
    """

    prepare_data_per_node = False

    def __init__(
        self,
        path: str,
        format: CaptureFormat = "auto",
        downscale: int = 1,
        rays_per_batch: int = 4096,
        steps_per_epoch: int = 1000,
        val_frames: int | None = None,
        num_workers: int = 0,
        white_background: bool = True,
        scene_box: list[Any] | None = None,
        near: float | None = None,
        far: float | None = None,
        generator: str | None = None,
        generator_args: dict[str, Any] | None = None,
        shuffle_seed: int = 0,
        render_path: str | None = None,
        orbit_frames: int = 48,
        orbit_elevation: float = 30.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if format not in FORMATS:
            raise ConfigError("format", f"must be one of {', '.join(FORMATS)}, got {format!r}")
        for key, value, minimum in (
            ("downscale", downscale, 1),
            ("rays_per_batch", rays_per_batch, 1),
            ("steps_per_epoch", steps_per_epoch, 1),
            ("num_workers", num_workers, 0),
            ("shuffle_seed", shuffle_seed, 0),
            ("orbit_frames", orbit_frames, 1),
        ):
            _check_int(key, value, minimum)
        if val_frames is not None:
            _check_int("val_frames", val_frames, 1)
        if generator is not None and generator not in GENERATORS:
            raise ConfigError(
                "generator", f"unknown generator {generator!r}; built-in: {', '.join(GENERATORS)}"
            )
        if generator_args is not None and not isinstance(generator_args, dict):
            raise ConfigError("generator_args", f"expected a mapping, got {type(generator_args).__name__}")
        self._scene_box = None if scene_box is None else self._parse_box(scene_box)
        for key, value in (("near", near), ("far", far)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ConfigError(key, f"expected a number, got {value!r}")
            if value is not None and not math.isfinite(value):
                raise ConfigError(key, f"expected a finite number, got {value!r}")
        if near is not None and near < 0:
            raise ConfigError("near", f"must be >= 0, got {near}")
        if near is not None and far is not None and far <= near:
            raise ConfigError("far", f"must be larger than near ({near}), got {far}")
        self.path = Path(path)
        self._captures: dict[str, Capture] = {}
        self._train: RayBatchDataset | None = None

    @staticmethod
    def _parse_box(scene_box: Any) -> np.ndarray:
        try:
            box = np.asarray(scene_box, dtype=np.float64)
        except (TypeError, ValueError):
            box = np.asarray([])
        if box.size != 6 or not np.isfinite(box).all():
            raise ConfigError("scene_box", f"expected [[min x, y, z], [max x, y, z]], got {scene_box!r}")
        box = box.reshape(2, 3)
        if not (box[0] < box[1]).all():
            raise ConfigError(
                "scene_box", f"every min coordinate must be below the max one, got {box.tolist()}"
            )
        return box.astype(np.float32)

    # ------------------------------------------------------------------ preparation (rank 0 only)
    def prepare_data(self) -> None:
        """Make the capture with the configured generator when ``path`` is missing."""
        if self.path.exists():
            return
        if self.hparams.generator is None:
            raise DatasetNotFoundError(self.path, make_command(self.path))
        from sciml.data.dynamic_scenes import make_dynamic_scene

        make_dynamic_scene(self.path, **(self.hparams.generator_args or {}))

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is None and self.hparams.generator is not None:
            self.prepare_data()  # used outside a Trainer: nobody else calls prepare_data
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["test"]}.get(
            stage, list(SPLITS)
        )
        for split in wanted:
            if split not in self._captures:
                self._captures[split] = self._read(split)
        video = self.path / "transforms_video.json"
        if stage in ("fit", "validate", "test") and "video" not in self._captures and video.is_file():
            self._captures["video"] = self._read("video")
        if "train" in self._captures and self._train is None:
            hp = self.hparams
            self._train = RayBatchDataset(
                self._captures["train"], hp.rays_per_batch, hp.steps_per_epoch, seed=hp.shuffle_seed
            )

    def _read(self, split: str) -> Capture:
        hp = self.hparams
        capture = read_capture(self.path, split, hp.format, hp.white_background)
        box = capture.scene_box if self._scene_box is None else self._scene_box
        near = capture.near if hp.near is None else float(hp.near)
        far = capture.far if hp.far is None else float(hp.far)
        check_bounds(box, near, far, ConfigError)
        capture = dataclasses.replace(capture, scene_box=box, near=near, far=far)
        for other in self._captures.values():
            if not (np.array_equal(other.scene_box, box) and other.near == near and other.far == far):
                raise DataFormatError(
                    self.path,
                    split,
                    f"scene box {box.tolist()}, near {near}, far {far} differ from the {other.split} split's "
                    f"({other.scene_box.tolist()}, {other.near}, {other.far}); set scene_box/near/far in the "
                    "config to choose",
                )
        if hp.downscale > 1:
            capture = capture.downscale(hp.downscale)
        if split == "val" and hp.val_frames is not None and hp.val_frames < len(capture):
            keep = np.unique(np.linspace(0, len(capture) - 1, hp.val_frames).round().astype(int))
            capture = capture.subset(keep)
        return capture

    # ------------------------------------------------------------------ what the task reads
    def has_capture(self, split: str) -> bool:
        """Whether ``split`` is set up (``video`` only exists for captures that have one)."""
        return split in self._captures

    def capture(self, split: str) -> Capture:
        if split not in self._captures:
            raise RuntimeError(f"the {split} capture is not set up; call setup() first")
        return self._captures[split]

    def _scene(self) -> Capture | None:
        if "train" in self._captures:
            return self._captures["train"]
        return next(iter(self._captures.values()), None)

    def _bound(self, name: str) -> Any:
        scene = self._scene()
        if scene is None:
            raise RuntimeError(f"{name} is known after setup() (or when set in the data module's config)")
        return getattr(scene, name)

    @property
    def scene_box(self) -> torch.Tensor:
        """``(2, 3)`` float32 min and max corners of the scene."""
        box = self._scene_box if self._scene_box is not None else self._bound("scene_box")
        return torch.tensor(box, dtype=torch.float32)

    @property
    def near(self) -> float:
        return float(self.hparams.near) if self.hparams.near is not None else self._bound("near")

    @property
    def far(self) -> float:
        return float(self.hparams.far) if self.hparams.far is not None else self._bound("far")

    @property
    def background(self) -> torch.Tensor:
        """``(3,)`` float32 colour the images are composited on."""
        return torch.full((3,), 1.0 if self.hparams.white_background else 0.0)

    def dataset(self, split: str) -> Dataset:
        """The training ray-batch dataset, or the whole-image dataset of ``val``/``test``."""
        if split == "train":
            if self._train is None:
                raise RuntimeError("the train dataset is not set up; call setup('fit') first")
            return self._train
        return ImageRayDataset(self.capture(split))

    # ------------------------------------------------------------------ loaders
    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _workers(self) -> dict[str, Any]:
        workers = self.hparams.num_workers
        return {"num_workers": workers, "persistent_workers": workers > 0}

    def train_dataloader(self) -> ResumableDataLoader:
        dataset = self.dataset("train")
        rank, world_size = self._rank()
        sampler = EpochIndexSampler(
            len(dataset), rank=rank, world_size=world_size, shuffle=False, seed=self.hparams.shuffle_seed
        )
        if len(sampler) == 0:
            raise ConfigError(
                "steps_per_epoch",
                f"{self.hparams.steps_per_epoch} batches cannot be shared by {world_size} processes; "
                f"use at least {world_size}",
            )
        return ResumableDataLoader(
            dataset, sampler, batch_size=1, collate_fn=_single_batch, **self._workers()
        )

    def _evaluation_loader(self, split: str) -> DataLoader:
        """One image per batch; this rank's frames in order, padded to equal length (see ShardedSampler)."""
        dataset = self.dataset(split)
        rank, world_size = self._rank()
        sampler = ShardedSampler(
            len(dataset), rank=rank, world_size=world_size, shuffle=False, drop_tail=False
        )
        return DataLoader(dataset, batch_size=1, sampler=sampler, **self._workers())

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def orbit(self, split: str, frames: int) -> CameraPathDataset:
        """An orbit of ``frames`` views through times 0..1 around the ``split`` cameras (:func:`orbit_path`),
        with that split's intrinsics."""
        capture = self.capture(split)
        matrices, times = orbit_path(capture, frames, self.hparams.orbit_elevation)
        intrinsics = np.repeat(capture.intrinsics[:1], len(times), axis=0)
        return CameraPathDataset(matrices, times, intrinsics, capture.height, capture.width)

    def predict_dataloader(self) -> DataLoader:
        """The render path (``render_path``, or an orbit through time) with the test cameras' intrinsics."""
        hp, capture = self.hparams, self.capture("test")
        if hp.render_path is not None:
            matrices, times, intrinsics, height, width = read_camera_path(
                hp.render_path, capture.intrinsics[0], capture.height, capture.width
            )
            dataset = CameraPathDataset(matrices, times, intrinsics, height, width)
        else:
            dataset = self.orbit("test", hp.orbit_frames)
        rank, world_size = self._rank()
        sampler = ShardedSampler(
            len(dataset), rank=rank, world_size=world_size, shuffle=False, drop_tail=False
        )
        return DataLoader(dataset, batch_size=1, sampler=sampler, **self._workers())
