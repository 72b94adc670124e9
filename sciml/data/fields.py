"""Field datasets (HDF5 in The Well schema, or zarr v3 via xarray) for surrogate models.

One API over both formats, chosen by the path: ``*.h5``/``*.hdf5`` (or a directory of them) is read as
Well HDF5, ``*.zarr`` as a zarr store; a directory holding both prefers the HDF5 (``file_format`` picks).

Samples (``FieldDataset``, all in physical units; the model standardizes with ``normalization``):

* window mode: ``{"input": (C, T_in, X, Y, Z), "target": (C, T_out, X, Y, Z), "coords": [x, y, z],
  "time": (T_in + T_out,)}`` — frames ``start, start + stride, ...`` of one trajectory;
* rollout mode: ``{"trajectory": (C, T, X, Y, Z), "time": (T,), "index": trajectory index}`` — a whole
  trajectory (every ``stride``-th frame), capped at ``t_in + rollout_steps`` frames.

Channels: a scalar field is one channel, a vector field three (``velocity_x``, ``velocity_y``,
``velocity_z``), a rank-2 tensor nine (``stress_xy``, ...). ``fields`` selects fields or single
channels by name, in the order given; the default is every time-varying field in file order. A
time-constant field may be selected; it is repeated along time.

Splits are by trajectory, never by window, so no trajectory contributes to two splits: explicit index
lists, or counts taken from the end (test = the last ``test_trajectories``, validation the ones before).

Normalization: per-channel mean and (population) standard deviation over every grid point and every time
step of the training trajectories, accumulated in float64 with Chan et al.'s pairwise update, one time
chunk at a time. They are stored next to the data (``<stem>.stats.json``, written atomically) under a key
that hashes the file fingerprint (names, sizes, modification times), the channel list and the training
trajectories, so a changed file or split recomputes them. A channel whose std is 0 gets std 1.

Bad values: every window is checked for NaN/Inf as it is read (error names file, variable, trajectory and
steps). Computing the statistics reads all training trajectories, and, when the selected data is at most
``full_check_bytes``, every trajectory, so small datasets are fully checked once per file version; for
large ones validation/test data is checked window by window as it is read.

HDF5 files are opened lazily on first read, once per process: DataLoader workers (fork or spawn,
persistent or not) each open their own handle; datasets pickle without open handles.

Distributed runs: loaders shard with ``sciml.data.sampling.ShardedSampler`` (disjoint shards; a 2-process run
with batch B sees the same samples per step as a 1-process run with batch 2B), and the training loader's
position is saved in checkpoints, so a run resumed mid-epoch continues with the next batch. Data generation
and the statistics file are written by global rank 0 only (``prepare_data_per_node = False``: cluster nodes
share the data filesystem); the other ranks read them after Lightning's barrier.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from sciml.core.atomic import atomic_path, is_temporary, remove_stale_temporaries
from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from sciml.data.formats.base import Channel, FieldReader, SourceInfo
from sciml.data.formats.well import SUFFIXES as WELL_SUFFIXES
from sciml.data.formats.well import WellReader, well_files, write_well
from sciml.data.formats.zarr_store import SUFFIX as ZARR_SUFFIX
from sciml.data.formats.zarr_store import ZarrReader, write_zarr
from sciml.data.sampling import ResumableDataLoader, ShardedSampler

FileFormat = Literal["auto", "hdf5", "zarr"]
STATS_VERSION = 1
# Statistics are accumulated over time chunks of at most this many bytes of float32 data.
_CHUNK_BYTES = 64 * 2**20


# ---------------------------------------------------------------------------------------------- sources
def resolve_source(path: str | Path, file_format: FileFormat = "auto") -> tuple[Path, str]:
    """Return ``(path, format)`` of the field source ``path`` names; raises DatasetNotFoundError if absent."""
    path = Path(path)
    if file_format not in ("auto", "hdf5", "zarr"):
        raise ConfigError("file_format", f"must be 'auto', 'hdf5' or 'zarr', got {file_format!r}")
    if not path.exists():
        raise DatasetNotFoundError(path, make_command(path))
    if path.suffix in WELL_SUFFIXES and path.is_file():
        found = "hdf5"
    elif path.suffix == ZARR_SUFFIX or (path / "zarr.json").exists():
        found = "zarr"
    elif path.is_dir():
        stores = sorted(p for p in path.iterdir() if p.suffix == ZARR_SUFFIX and p.is_dir())
        if well_files(path) and file_format in ("auto", "hdf5"):
            return path, "hdf5"
        if stores and file_format in ("auto", "zarr"):
            if len(stores) > 1:
                raise DataFormatError(
                    path,
                    None,
                    f"holds {len(stores)} zarr stores ({', '.join(p.name for p in stores)}); "
                    "set the path to one of them",
                )
            return stores[0], "zarr"
        wanted = {
            "auto": "*.h5/*.hdf5 file or *.zarr store",
            "hdf5": "*.h5/*.hdf5 file",
            "zarr": "*.zarr store",
        }
        raise DataFormatError(path, None, f"directory holds no {wanted[file_format]}")
    else:
        raise DataFormatError(
            path, None, f"unknown field format (expected {', '.join(WELL_SUFFIXES)} or .zarr)"
        )
    if file_format not in ("auto", found):
        raise ConfigError("file_format", f"is {file_format!r} but {path} is a {found} source")
    return path, found


def open_fields(path: str | Path, file_format: FileFormat = "auto") -> FieldReader:
    """Open the field source at ``path`` (metadata only; data is read lazily)."""
    path, found = resolve_source(path, file_format)
    return WellReader(path) if found == "hdf5" else ZarrReader(path)


def select_channels(info: SourceInfo, fields: Sequence[str] | None) -> list[Channel]:
    """Channels of the requested field or channel names (default: every time-varying field, file order)."""
    if fields is None:
        selected = [c for c in info.channels if c.time_varying]
        if not selected:
            raise DataFormatError(
                info.path, None, "holds no time-varying field; name the fields to use in 'fields'"
            )
        return selected
    if isinstance(fields, str):
        fields = [fields]
    selected: list[Channel] = []
    for name in fields:
        match = [c for c in info.channels if c.field == name] or [c for c in info.channels if c.name == name]
        if not match:
            known = ", ".join(
                dict.fromkeys([c.field for c in info.channels] + [c.name for c in info.channels])
            )
            raise ConfigError(
                "fields", f"{name!r} is not a field or channel of {info.path}; available: {known}"
            )
        for channel in match:
            if channel in selected:
                raise ConfigError("fields", f"channel {channel.name!r} is selected twice")
            selected.append(channel)
    return selected


def split_trajectories(
    n_trajectories: int,
    train: Sequence[int] | None = None,
    val: int | Sequence[int] = 1,
    test: int | Sequence[int] = 1,
) -> dict[str, list[int]]:
    """Split trajectory indices into disjoint train/val/test lists.

    Explicit lists are taken as given; counts are taken from the end of the trajectories no list claims
    (test first, then validation); training gets the rest unless listed.
    """
    claimed: dict[str, list[int]] = {}
    for key, value in (("train_trajectories", train), ("val_trajectories", val), ("test_trajectories", test)):
        if value is None or isinstance(value, int):
            if isinstance(value, int) and value < 0:
                raise ConfigError(key, f"must be a count >= 0 or a list of indices, got {value}")
            continue
        indices = [int(i) for i in value]
        for index in indices:
            if not 0 <= index < n_trajectories:
                raise ConfigError(
                    key, f"index {index} is out of range: the data has {n_trajectories} trajectories"
                )
        if len(set(indices)) != len(indices):
            raise ConfigError(key, f"lists a trajectory twice: {indices}")
        for other, taken in claimed.items():
            overlap = sorted(set(indices) & set(taken))
            if overlap:
                raise ConfigError(key, f"trajectories {overlap} are also in {other}")
        claimed[key] = indices
    free = [i for i in range(n_trajectories) if not any(i in v for v in claimed.values())]
    splits = {}
    for key, value in (("test_trajectories", test), ("val_trajectories", val)):
        if isinstance(value, int):
            if value > len(free) - (0 if train is not None else 1):
                raise ConfigError(
                    key,
                    f"asks for {value} trajectories but only {len(free)} of {n_trajectories} are unassigned "
                    "(training needs at least one)",
                )
            splits[key] = free[len(free) - value :] if value else []
            free = free[: len(free) - value]
        else:
            splits[key] = claimed[key]
    splits["train_trajectories"] = claimed.get("train_trajectories", free) if train is not None else free
    if not splits["train_trajectories"]:
        raise ConfigError("train_trajectories", "the training split is empty")
    return {
        "train": splits["train_trajectories"],
        "val": splits["val_trajectories"],
        "test": splits["test_trajectories"],
    }


# ---------------------------------------------------------------------------------------------- dataset
class FieldDataset(Dataset):
    """Windows (``mode="window"``) or whole trajectories (``mode="rollout"``) of a field source.

    ``source`` is a path (format by suffix, see module docstring) or an open reader. The dataset holds no
    open file and pickles cheaply; each process opens the file on its first read.
    """

    def __init__(
        self,
        source: str | Path | FieldReader,
        *,
        fields: Sequence[str] | None = None,
        trajectories: Sequence[int] | None = None,
        t_in: int = 1,
        t_out: int = 1,
        stride: int = 1,
        mode: Literal["window", "rollout"] = "window",
        rollout_steps: int | None = None,
        file_format: FileFormat = "auto",
    ):
        for key, value in (("t_in", t_in), ("t_out", t_out), ("stride", stride)):
            if int(value) < 1:
                raise ConfigError(key, f"must be >= 1, got {value}")
        if rollout_steps is not None and int(rollout_steps) < 1:
            raise ConfigError("rollout_steps", f"must be >= 1 or null, got {rollout_steps}")
        if mode not in ("window", "rollout"):
            raise ConfigError("mode", f"must be 'window' or 'rollout', got {mode!r}")
        self.reader = open_fields(source, file_format) if isinstance(source, str | Path) else source
        info = self.reader.info
        self.channels = select_channels(info, fields)
        self.trajectories = (
            list(range(info.n_trajectories)) if trajectories is None else [int(i) for i in trajectories]
        )
        for index in self.trajectories:
            if not 0 <= index < info.n_trajectories:
                raise ConfigError("trajectories", f"index {index} out of range 0..{info.n_trajectories - 1}")
        self.t_in, self.t_out, self.stride, self.mode = int(t_in), int(t_out), int(stride), mode
        n_steps = info.n_steps
        time_variable = "dimensions/time" if info.format == "hdf5" else "time"
        if mode == "window":
            self.span = (self.t_in + self.t_out - 1) * self.stride + 1
            self.windows_per_trajectory = n_steps - self.span + 1
            if self.windows_per_trajectory < 1:
                raise DataFormatError(
                    info.path,
                    time_variable,
                    f"trajectories hold {n_steps} time steps, too few for t_in={t_in}, t_out={t_out}, "
                    f"stride={stride} (one window spans {self.span} steps)",
                )
        else:
            frames = (n_steps - 1) // self.stride + 1
            if rollout_steps is not None:
                frames = min(frames, self.t_in + int(rollout_steps))
            if frames < self.t_in + 1:
                raise DataFormatError(
                    info.path,
                    time_variable,
                    f"trajectories hold {n_steps} time steps, too few for a rollout from t_in={t_in} "
                    f"frames with stride={stride}",
                )
            self.frames = frames
        self._coords = [torch.tensor(info.coords[d], dtype=torch.float32) for d in info.spatial_dims]

    @property
    def info(self) -> SourceInfo:
        return self.reader.info

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def __len__(self) -> int:
        if self.mode == "rollout":
            return len(self.trajectories)
        return len(self.trajectories) * self.windows_per_trajectory

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        if self.mode == "rollout":
            trajectory = self.trajectories[index]
            times = slice(0, (self.frames - 1) * self.stride + 1, self.stride)
            data = torch.from_numpy(self.reader.read(trajectory, times, self.channels))
            return {"trajectory": data, "time": self._time(trajectory, times), "index": trajectory}
        trajectory = self.trajectories[index // self.windows_per_trajectory]
        start = index % self.windows_per_trajectory
        times = slice(start, start + self.span, self.stride)
        data = torch.from_numpy(
            self.reader.read(trajectory, times, self.channels)
        )  # (C, T_in + T_out, X, Y, Z)
        return {
            "input": data[:, : self.t_in],
            "target": data[:, self.t_in :],
            "coords": list(self._coords),
            "time": self._time(trajectory, times),
            "index": index,
        }

    def _time(self, trajectory: int, times: slice) -> torch.Tensor:
        return torch.as_tensor(self.info.time[trajectory, times], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- statistics
def source_fingerprint(info: SourceInfo) -> str:
    """Cheap content identity of a source: names, sizes and modification times of its files."""
    entries = []
    for file in info.files:
        path = Path(file)
        if path.is_dir():
            for root, _, names in sorted(os.walk(path)):
                for name in sorted(names):
                    stat = os.stat(os.path.join(root, name))
                    entries.append(
                        (os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns)
                    )
        else:
            stat = path.stat()
            entries.append((path.name, stat.st_size, stat.st_mtime_ns))
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def default_stats_path(info: SourceInfo) -> Path:
    """``<stem>.stats.json`` next to a file or store; inside a directory of Well files."""
    path = Path(info.path)
    if info.format == "hdf5" and path.is_dir():
        return path / f"{path.name}.stats.json"
    return path.with_name(f"{path.stem}.stats.json")


def compute_statistics(
    reader: FieldReader,
    channels: Sequence[Channel],
    train: Sequence[int],
    check: Sequence[int] = (),
) -> dict[str, Any]:
    """Per-channel mean and std over every point and step of the ``train`` trajectories.

    The trajectories in ``check`` are read as well (only for their NaN/Inf check). Streams one time
    chunk at a time in float64 with Chan et al.'s pairwise mean/M2 update.
    """
    info = reader.info
    n_c = len(channels)
    points = int(np.prod(info.grid_shape))
    steps_per_chunk = max(1, _CHUNK_BYTES // max(1, 4 * n_c * points))
    count = 0
    mean = np.zeros(n_c)
    m2 = np.zeros(n_c)
    for trajectory in list(dict.fromkeys([*train, *check])):
        for start in range(0, info.n_steps, steps_per_chunk):
            block = reader.read(trajectory, slice(start, start + steps_per_chunk), channels)
            if trajectory not in train:
                continue
            block = block.reshape(n_c, -1).astype(np.float64)  # (C, T * X * Y * Z)
            n_b = block.shape[1]
            mean_b = block.mean(axis=1)
            m2_b = ((block - mean_b[:, None]) ** 2).sum(axis=1)
            total = count + n_b
            delta = mean_b - mean
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
    std = np.sqrt(m2 / count)
    std = np.where(std > 0, std, 1.0)
    return {
        "channels": [c.name for c in channels],
        "mean": mean.tolist(),
        "std": std.tolist(),
        "count": int(count),
        "train_trajectories": list(map(int, train)),
        "checked_trajectories": sorted({*map(int, train), *map(int, check)}),
    }


def load_or_compute_statistics(
    reader: FieldReader,
    channels: Sequence[Channel],
    train: Sequence[int],
    *,
    stats_path: str | Path | None = None,
    full_check_bytes: int = 256 * 2**20,
) -> tuple[dict[str, Any], Path, bool]:
    """Statistics of the training split from the stats file, computing and storing them when absent.

    Returns ``(entry, stats_path, computed)``. A stats file that cannot be written (read-only data)
    only costs a warning: the statistics are then recomputed in every run.
    """
    info = reader.info
    path = Path(stats_path) if stats_path is not None else default_stats_path(info)
    key_material = {
        "version": STATS_VERSION,
        "fingerprint": source_fingerprint(info),
        "format": info.format,
        "channels": [c.name for c in channels],
        "train_trajectories": list(map(int, train)),
    }
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:24]
    stored: dict[str, Any] = {"version": STATS_VERSION, "entries": {}}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            if stored.get("version") != STATS_VERSION or not isinstance(stored.get("entries"), dict):
                stored = {"version": STATS_VERSION, "entries": {}}
        except ValueError:
            stored = {"version": STATS_VERSION, "entries": {}}  # a corrupt cache is recomputed, not trusted
        if key in stored["entries"]:
            return stored["entries"][key], path, False
    data_bytes = 4 * info.n_trajectories * info.n_steps * int(np.prod(info.grid_shape)) * len(channels)
    check = range(info.n_trajectories) if data_bytes <= full_check_bytes else ()
    entry = compute_statistics(reader, channels, train, check=check)
    entry["source"] = info.path
    stored["entries"][key] = entry
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(stored, indent=1))
    except OSError as error:
        rank_zero_warn(
            f"could not store normalization statistics at {path} ({error}); they are recomputed each run"
        )
    return entry, path, True


# ---------------------------------------------------------------------------------------------- data module
class FieldDataModule(pl.LightningDataModule):
    """Train/val/test/predict loaders over one field source (see module docstring).

    Args:
        path: ``.h5``/``.hdf5`` file, ``.zarr`` store, or a directory holding Well files or one store.
        fields: field or channel names to use, in order (default: all time-varying fields).
        t_in, t_out, stride: input frames, target frames, and the step between frames (in snapshots).
        train_trajectories: explicit training trajectories (default: all not in val/test).
        val_trajectories, test_trajectories: a count taken from the end, or explicit indices.
        rollout_steps: cap on the autoregressive steps of rollout samples (``None``: whole trajectory).
        batch_size, num_workers, persistent_workers, pin_memory: DataLoader settings (rollout loaders
            always use batch size 1).
        file_format: "auto" (by suffix), "hdf5" or "zarr".
        stats_path: where the normalization statistics live (default ``<stem>.stats.json`` beside the data).
        full_check_bytes: sources up to this size are checked for NaN/Inf in full when statistics are made.
        generator, generator_args: a built-in generator (``"forced_hit"``) that ``prepare_data`` runs when
            ``path`` does not exist or holds an interrupted generation; without one, a missing path is a
            DatasetNotFoundError.
        shuffle_seed: seed of the per-epoch training permutation.
    """

    prepare_data_per_node = False

    def __init__(
        self,
        path: str,
        fields: list[str] | None = None,
        t_in: int = 1,
        t_out: int = 1,
        stride: int = 1,
        train_trajectories: list[int] | None = None,
        val_trajectories: int | list[int] = 1,
        test_trajectories: int | list[int] = 1,
        rollout_steps: int | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        file_format: FileFormat = "auto",
        stats_path: str | None = None,
        full_check_bytes: int = 256 * 2**20,
        generator: str | None = None,
        generator_args: dict[str, Any] | None = None,
        shuffle_seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if generator is not None:
            from sciml.data.generate import GENERATORS

            if generator not in GENERATORS:
                raise ConfigError(
                    "generator", f"unknown generator {generator!r}; built-in: {', '.join(GENERATORS)}"
                )
        for key, value in (("batch_size", batch_size), ("t_in", t_in), ("t_out", t_out), ("stride", stride)):
            if value < 1:
                raise ConfigError(key, f"must be >= 1, got {value}")
        if num_workers < 0:
            raise ConfigError("num_workers", f"must be >= 0, got {num_workers}")
        self.path = Path(path)
        self.reader: FieldReader | None = None
        self.channels: list[Channel] = []
        self.splits: dict[str, list[int]] = {}
        self.stats_file: Path | None = None
        self._stats: dict[str, Any] | None = None
        self._datasets: dict[str, FieldDataset] = {}

    # ------------------------------------------------------------------ preparation (rank 0 only)
    def prepare_data(self) -> None:
        """Generate what the configured generator has not finished writing; make the statistics.

        First removes what killed atomic writes left in the data folder (see :mod:`sciml.core.atomic`).
        With a generator, a missing path is generated, and so is a directory holding an interrupted
        generation: some output the generator writes there is missing and nothing else is in it (see
        :meth:`_generation_leftovers`).
        """
        hp = self.hparams
        remove_stale_temporaries(self.path if self.path.is_dir() else self.path.parent)
        if hp.generator is None:
            if not self.path.exists():
                raise DatasetNotFoundError(self.path, make_command(self.path))
        else:
            from sciml.data.generate import generate_for_path, planned_outputs

            outputs = planned_outputs(self.path, hp.generator_args or {}, hp.generator)
            missing = [target.name for target in outputs.values() if not target.exists()]
            foreign = self._generation_leftovers(outputs)
            if missing and not foreign:
                generate_for_path(self.path, hp.generator, hp.generator_args or {})
            elif missing:
                self._check_foreign_source(missing, foreign)
        # Statistics on this rank first, so other ranks find them in the stats file.
        self._open()

    def _generation_leftovers(self, outputs: dict[str, Path]) -> list[str]:
        """Entries of a directory ``path`` that the generator did not write (none for a file path).

        The generator writes its outputs, and sciml their statistics files; temporaries of atomic writes
        that are still running (the stale ones are gone by now) are sciml's as well.
        """
        if not self.path.is_dir() or self.path in outputs.values():
            return []
        own = {target.name for target in outputs.values()}
        own |= {f"{target.stem}.stats.json" for target in outputs.values()}  # default_stats_path
        return sorted(p.name for p in self.path.iterdir() if p.name not in own and not is_temporary(p.name))

    def _check_foreign_source(self, missing: list[str], foreign: list[str]) -> None:
        """A folder with content of its own is the user's data: fine if it is a field source, else explain."""
        try:
            resolve_source(self.path, self.hparams.file_format)
        except DataFormatError as error:
            raise DataFormatError(
                self.path,
                None,
                f"holds {', '.join(foreign)} but not {', '.join(missing)} (what generator "
                f"{self.hparams.generator!r} writes there) nor any other field source ({error.problem}); "
                "sciml generates only into a folder that holds nothing but the generator's outputs: move "
                "those entries away to have it generated there, or set 'path' to your data",
            ) from error

    def setup(self, stage: str | None = None) -> None:
        if self.reader is None and self.hparams.generator is not None and self.trainer is None:
            self.prepare_data()  # used outside a Trainer: nobody else calls prepare_data
        self._open()

    def _open(self) -> None:
        if self.reader is not None:
            return
        hp = self.hparams
        reader = open_fields(self.path, hp.file_format)
        channels = select_channels(reader.info, hp.fields)
        splits = split_trajectories(
            reader.info.n_trajectories, hp.train_trajectories, hp.val_trajectories, hp.test_trajectories
        )
        common = {"fields": [c.name for c in channels], "t_in": hp.t_in, "stride": hp.stride}
        datasets = {
            "train": FieldDataset(reader, trajectories=splits["train"], t_out=hp.t_out, **common),
        }
        for split in ("val", "test"):
            if splits[split]:
                datasets[split] = FieldDataset(reader, trajectories=splits[split], t_out=hp.t_out, **common)
                datasets[f"{split}_rollout"] = FieldDataset(
                    reader,
                    trajectories=splits[split],
                    mode="rollout",
                    rollout_steps=hp.rollout_steps,
                    **common,
                )
        stats, self.stats_file, _ = load_or_compute_statistics(
            reader, channels, splits["train"], stats_path=hp.stats_path, full_check_bytes=hp.full_check_bytes
        )
        # Handles opened for the statistics are not kept: DataLoader workers forked later open their own.
        reader.close()
        self.reader, self.channels, self.splits, self._stats, self._datasets = (
            reader,
            channels,
            splits,
            stats,
            datasets,
        )

    # ------------------------------------------------------------------ what the task reads
    @property
    def normalization(self) -> dict[str, torch.Tensor] | None:
        """``{"mean": (C,), "std": (C,)}`` float32 over the training split; ``None`` before setup."""
        if self._stats is None:
            return None
        return {
            "mean": torch.tensor(self._stats["mean"], dtype=torch.float32),
            "std": torch.tensor(self._stats["std"], dtype=torch.float32),
        }

    @property
    def field_info(self) -> dict[str, Any]:
        if self.reader is None:
            raise RuntimeError("FieldDataModule.field_info is available after setup()")
        info, hp = self.reader.info, self.hparams
        snapshot_dt = _uniform_step(info.time)
        return {
            "channel_names": [c.name for c in self.channels],
            "fields": list(dict.fromkeys(c.field for c in self.channels)),
            "spatial_dims": list(info.spatial_dims),
            "grid_shape": list(info.grid_shape),
            "lengths": list(info.lengths),
            # Node coordinates per spatial dim, as the file stores them (non-uniform axes included).
            "coords": {d: [float(v) for v in info.coords[d]] for d in info.spatial_dims},
            # Time between consecutive frames of a sample; None when the file's time steps are not uniform.
            "dt": None if snapshot_dt is None else snapshot_dt * hp.stride,
            "snapshot_dt": snapshot_dt,
            "stride": hp.stride,
            "t_in": hp.t_in,
            "t_out": hp.t_out,
            "n_trajectories": info.n_trajectories,
            "n_steps": info.n_steps,
            "splits": {k: list(v) for k, v in self.splits.items()},
            "path": info.path,
            "format": info.format,
            "dataset_name": info.dataset_name,
            "simulation_parameters": dict(info.parameters),
            "scalars": dict(info.scalars),
            "boundary_conditions": {d: list(v) for d, v in info.boundary_conditions.items()},
            "stats_path": str(self.stats_file) if self.stats_file else None,
        }

    def dataset(self, name: str) -> FieldDataset:
        """``train``, ``val``, ``test``, ``val_rollout`` or ``test_rollout`` (after setup)."""
        if self.reader is None:
            raise RuntimeError("call setup() first")
        if name not in self._datasets:
            raise ConfigError(f"{name.split('_')[0]}_trajectories", f"the {name} split is empty")
        return self._datasets[name]

    # ------------------------------------------------------------------ loaders
    def _sampler(self, dataset: FieldDataset, training: bool) -> ShardedSampler:
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return ShardedSampler(
            len(dataset),
            rank=rank,
            world_size=world_size,
            shuffle=training,
            seed=self.hparams.shuffle_seed,
            drop_tail=training,
        )

    def _loader_options(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "num_workers": hp.num_workers,
            "persistent_workers": hp.persistent_workers and hp.num_workers > 0,
            "pin_memory": hp.pin_memory,
        }

    def _loader(self, dataset: FieldDataset, batch_size: int) -> DataLoader:
        """An evaluation loader: this rank's share, in dataset order (padded: see ShardedSampler)."""
        sampler = self._sampler(dataset, training=False)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **self._loader_options())

    def train_dataloader(self) -> ResumableDataLoader:
        dataset = self.dataset("train")
        sampler = self._sampler(dataset, training=True)
        batch_size = self.hparams.batch_size
        if len(sampler) < batch_size:
            raise ConfigError(
                "batch_size",
                f"{batch_size} per process is more than the {len(sampler)} training windows each of the "
                f"{sampler.num_replicas} process(es) gets from {self.path}; lower it",
            )
        return ResumableDataLoader(dataset, sampler, batch_size=batch_size, **self._loader_options())

    def _evaluation_loaders(self, split: str) -> list[DataLoader]:
        if split not in self._datasets:
            return []
        return [
            self._loader(self._datasets[split], self.hparams.batch_size),
            self._loader(self._datasets[f"{split}_rollout"], 1),
        ]

    def val_dataloader(self) -> list[DataLoader]:
        """``[one-step windows, whole-trajectory rollouts]`` of the validation split."""
        self._require_setup()
        return self._evaluation_loaders("val")

    def test_dataloader(self) -> list[DataLoader]:
        """``[one-step windows, whole-trajectory rollouts]`` of the test split."""
        self._require_setup()
        return self._evaluation_loaders("test")

    def predict_dataloader(self) -> DataLoader:
        """Rollout samples of the test split."""
        return self._loader(self.dataset("test_rollout"), 1)

    def _require_setup(self) -> None:
        if self.reader is None:
            raise RuntimeError("call setup() first")

    def teardown(self, stage: str) -> None:
        if self.reader is not None:
            self.reader.close()


def _uniform_step(time: np.ndarray) -> float | None:
    if time.shape[1] < 2:
        return None
    steps = np.diff(time, axis=1)
    step = float(np.median(steps))
    return step if np.allclose(steps, step, rtol=1e-5, atol=0.0) else None


def make_command(path: str | Path) -> str:
    """The command that makes the turbulence dataset at ``path`` (for DatasetNotFoundError)."""
    path = Path(path)
    if path.suffix in (*WELL_SUFFIXES, ZARR_SUFFIX):
        command = f"python -m sciml.data.generate --out {path.parent}"
        if path.stem != "turbulence":
            command += f" --name {path.stem}"
        return (
            command
            + f" --formats {'zarr' if path.suffix == ZARR_SUFFIX else 'hdf5'}"
            + (f" --hdf5-suffix {path.suffix}" if path.suffix == ".hdf5" else "")
        )
    return f"python -m sciml.data.generate --out {path}"


# ---------------------------------------------------------------------------------------------- writer
class RolloutWriter(BasePredictionWriter):
    """Writes predicted rollouts in the schema of the input data (Well HDF5 or zarr), atomically.

    Receives ``predict_step`` outputs ``{"rollout": (B, C, T, X, Y, Z), "time": (B, T), "index": (B,)}``
    (physical units), collects them, and at the end of the predict epoch writes
    ``<output_dir>/<filename>`` (default ``rollouts.h5`` or ``rollouts.zarr``): channels are regrouped into
    the source's fields (a complete vector becomes a t1 field again), the source's parameters and
    scalars are copied, and the source trajectory of each rollout is stored in the ``source_trajectories``
    attribute. Only global rank 0 writes; predictions are not gathered across processes, so predict runs
    on one device (``sciml predict`` does): under DDP only rank 0's share would be written, which warns.
    """

    def __init__(self, output_dir: str, filename: str | None = None):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.filename = filename
        self._outputs: list[dict[str, torch.Tensor]] = []
        self.written: Path | None = None

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._outputs = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        missing = {"rollout", "time", "index"} - set(prediction)
        if missing:
            raise ValueError(
                f"RolloutWriter: predict_step must return 'rollout', 'time' and 'index'; missing {missing}"
            )
        self._outputs.append(
            {k: torch.as_tensor(prediction[k]).detach().cpu() for k in ("rollout", "time", "index")}
        )

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            rank_zero_warn(
                "RolloutWriter does not gather across processes: only rank 0's rollouts are written"
            )
        if not trainer.is_global_zero or not self._outputs:
            return
        datamodule = trainer.datamodule
        if not isinstance(datamodule, FieldDataModule) or datamodule.reader is None:
            raise RuntimeError(
                "RolloutWriter needs the predictions of a set-up FieldDataModule (trainer.datamodule)"
            )
        self.written = write_rollouts(
            self.output_dir, datamodule.reader.info, datamodule.channels, self._outputs, self.filename
        )
        self._outputs = []


def write_rollouts(
    output_dir: str | Path,
    info: SourceInfo,
    channels: Sequence[Channel],
    outputs: Sequence[dict[str, torch.Tensor]],
    filename: str | None = None,
) -> Path:
    """Write collected rollout outputs in the format of ``info``; returns the written path."""
    rollout = torch.cat([o["rollout"] for o in outputs]).float().numpy()  # (B, C, T, X, Y, Z)
    time = torch.cat([o["time"].reshape(len(o["rollout"]), -1) for o in outputs]).double().numpy()  # (B, T)
    index = torch.cat([o["index"].reshape(-1) for o in outputs]).tolist()
    if rollout.ndim != 3 + len(info.spatial_dims) or rollout.shape[1] != len(channels):
        raise ValueError(
            f"rollouts must be (B, {len(channels)} channels, T, {', '.join(info.spatial_dims)}), "
            f"got {rollout.shape}"
        )
    by_order = _regroup(rollout, channels, len(info.spatial_dims))
    coords = {d: info.coords[d] for d in info.spatial_dims}
    bcs = {d: sides[0] for d, sides in info.boundary_conditions.items()}
    attrs = {"source_path": info.path, "source_trajectories": index, "content": "sciml surrogate rollouts"}
    suffix = ".h5" if info.format == "hdf5" else ZARR_SUFFIX
    target = Path(output_dir) / (filename or f"rollouts{suffix}")
    common = {
        "time": time if not np.all(time == time[:1]) else time[0],
        "coords": coords,
        "dataset_name": info.dataset_name,
        "parameters": info.parameters,
        "scalars": {k: v for k, v in info.scalars.items() if isinstance(v, int | float)},
        "boundary_conditions": bcs,
        "attrs": attrs,
    }
    if info.format == "hdf5":
        return write_well(
            target, t0_fields=by_order[0], t1_fields=by_order[1], t2_fields=by_order[2], **common
        )
    fields = {**by_order[0], **by_order[1], **by_order[2]}
    orders = {name: order for order in (0, 1, 2) for name in by_order[order]}
    return write_zarr(target, fields=fields, orders=orders, **common)


def _regroup(
    rollout: np.ndarray, channels: Sequence[Channel], n_dims: int
) -> dict[int, dict[str, np.ndarray]]:
    """Channels (B, C, T, *S) back into fields (B, T, *S, 3^order); incomplete tensors stay per channel."""
    out: dict[int, dict[str, np.ndarray]] = {0: {}, 1: {}, 2: {}}
    data = np.moveaxis(rollout, 1, -1)  # (B, T, *S, C)
    position = {c.name: i for i, c in enumerate(channels)}
    done: set[str] = set()
    for channel in channels:
        if channel.name in done:
            continue
        members = [c for c in channels if c.field == channel.field and c.order == channel.order]
        full = channel.order > 0 and len(members) == n_dims**channel.order
        if full:
            members.sort(key=lambda c: c.component)
            stacked = data[..., [position[c.name] for c in members]]
            out[channel.order][channel.field] = stacked.reshape(
                *stacked.shape[:-1], *(n_dims,) * channel.order
            )
            done.update(c.name for c in members)
        else:
            out[0][channel.name] = data[..., position[channel.name]]
            done.add(channel.name)
    return out
