"""What every field-format reader reports and serves, independent of the on-disk layout.

A *source* is a set of trajectories of fields on one fixed Cartesian grid: ``n_trajectories`` runs of
``n_steps`` snapshots each. Fields are tensors of order 0 (scalars), 1 (vectors) or 2 over the spatial
dimensions; the reader exposes them as *channels*, one per tensor component, named like The Well's own
reader names them: ``pressure``, ``velocity_x``, ``stress_xy``. A reader serves
``(C, T, *spatial)`` float32 windows of any channel selection; it knows nothing about splits, windows or
normalization (those live in :mod:`sciml.data.fields`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sciml.core.errors import DataFormatError

#: Formats a source can be stored in.
FORMATS = ("hdf5", "zarr")


@dataclass(frozen=True)
class Channel:
    """One scalar component of a stored field.

    ``component`` indexes the trailing tensor axes of the field (``()`` for a scalar field, ``(0,)`` for the
    x component of a vector, ``(0, 1)`` for the xy component of a rank-2 tensor).
    """

    name: str
    field: str
    order: int
    component: tuple[int, ...]
    time_varying: bool


@dataclass
class SourceInfo:
    """Metadata of a field source, read cheaply at open time (no field data is read)."""

    path: str
    format: str
    dataset_name: str
    spatial_dims: tuple[str, ...]
    coords: dict[str, np.ndarray]  # 1-D float64 node coordinates per spatial dim
    time: np.ndarray  # (n_trajectories, n_steps) float64: every trajectory's own time axis
    channels: list[Channel]
    parameters: dict[str, Any] = field(default_factory=dict)
    scalars: dict[str, Any] = field(default_factory=dict)  # constant scalars (e.g. nu)
    boundary_conditions: dict[str, tuple[str, str]] = field(default_factory=dict)  # dim -> (lower, upper)
    files: list[str] = field(default_factory=list)

    @property
    def n_trajectories(self) -> int:
        return int(self.time.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.time.shape[1])

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(self.coords[d]) for d in self.spatial_dims)

    @property
    def lengths(self) -> tuple[float, ...]:
        """Domain length per spatial dim.

        Periodic axes hold nodes ``x_i = x_0 + i L / n``, so ``L = n dx``; other axes span ``x[-1] - x[0]``.
        """
        out = []
        for dim in self.spatial_dims:
            x = self.coords[dim]
            periodic = all(kind == "PERIODIC" for kind in self.boundary_conditions.get(dim, ("",)))
            if len(x) < 2:
                out.append(0.0)
            elif periodic:
                out.append(float(len(x) * (x[1] - x[0])))
            else:
                out.append(float(x[-1] - x[0]))
        return tuple(out)

    def channel(self, name: str) -> Channel:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(name)

    def field_names(self, time_varying: bool | None = None) -> list[str]:
        names: list[str] = []
        for channel in self.channels:
            if channel.field not in names and (time_varying is None or channel.time_varying == time_varying):
                names.append(channel.field)
        return names


class FieldReader(Protocol):
    """Reads windows of one field source; opens its files lazily, once per process."""

    info: SourceInfo

    def read(self, trajectory: int, times: slice, channels: Sequence[Channel]) -> np.ndarray:
        """Return ``(C, T, *spatial)`` float32 data of ``channels`` at ``time[trajectory, times]``.

        Raises DataFormatError naming the file and variable when a value is NaN or infinite.
        """
        ...

    def close(self) -> None: ...


def component_suffixes(spatial_dims: Sequence[str], order: int) -> list[tuple[tuple[int, ...], str]]:
    """``[(component index, name suffix)]`` of a tensor of ``order`` over ``spatial_dims`` (Well naming)."""
    indices = itertools.product(range(len(spatial_dims)), repeat=order)
    return [(index, "".join(spatial_dims[i] for i in index)) for index in indices]


def channels_of(
    field_name: str, order: int, spatial_dims: Sequence[str], time_varying: bool
) -> list[Channel]:
    return [
        Channel(f"{field_name}_{suffix}" if suffix else field_name, field_name, order, index, time_varying)
        for index, suffix in component_suffixes(spatial_dims, order)
    ]


def check_time_axis(path: str, variable: str, time: np.ndarray) -> None:
    """Time must be finite and strictly increasing along its last axis (every trajectory)."""
    if not np.isfinite(time).all():
        raise DataFormatError(path, variable, "time values contain NaN or Inf")
    if time.shape[-1] >= 2:
        bad = np.argwhere(~(np.diff(time, axis=-1) > 0))
        if len(bad):
            row, col = (int(bad[0][0]), int(bad[0][1])) if time.ndim == 2 else (None, int(bad[0][0]))
            values = time[row] if row is not None else time
            where = f"trajectory {row}: " if row is not None else ""
            raise DataFormatError(
                path,
                variable,
                f"time is not strictly increasing ({where}t[{col}]={float(values[col]):g}, "
                f"t[{col + 1}]={float(values[col + 1]):g})",
            )


def check_coordinate(path: str, variable: str, x: np.ndarray) -> None:
    if x.ndim != 1:
        raise DataFormatError(path, variable, f"expected a 1-D coordinate array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataFormatError(path, variable, "coordinates contain NaN or Inf")
    if len(x) >= 2 and not (np.diff(x) > 0).all():
        raise DataFormatError(path, variable, "coordinates are not strictly increasing")


def check_finite(path: str, variable: str, data: np.ndarray, where: str) -> None:
    """Raise DataFormatError if ``data`` holds NaN or Inf; ``where`` says which part was read."""
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        kinds = []
        if np.isnan(data).any():
            kinds.append("NaN")
        if np.isinf(data).any():
            kinds.append("Inf")
        raise DataFormatError(path, variable, f"{bad} non-finite value(s) ({' and '.join(kinds)}) in {where}")


def steps_in(times: slice, n_steps: int) -> int:
    return len(range(n_steps)[times])


def describe_window(trajectory: int, times: slice, n_steps: int) -> str:
    """``trajectory 3, time steps 2..6 every 2`` for error messages."""
    steps = range(n_steps)[times]
    if len(steps) == 0:
        return f"trajectory {trajectory}, no time steps"
    text = f"trajectory {trajectory}, time steps {steps[0]}..{steps[-1]}"
    return text + (f" every {steps.step}" if steps.step != 1 and len(steps) > 1 else "")


def plain(value: Any) -> Any:
    """Convert numpy / h5py attribute values into JSON-able Python values."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()] if value.ndim else plain(value[()])
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def flatten_parameters(parameters: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested parameter dicts into ``parent_child`` keys with scalar, string or list values.

    Both formats store simulation parameters as flat attributes (HDF5 attributes cannot nest), so the
    same flat dict is what either reader hands back. ``None`` becomes the string ``"None"``.
    """
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_parameters(value, prefix=f"{name}_"))
        elif value is None:
            flat[name] = "None"
        elif isinstance(value, np.ndarray | list | tuple):
            items = [plain(v) for v in np.asarray(value, dtype=object).ravel().tolist()]
            numbers = all(isinstance(v, bool | int | float) for v in items)
            strings = all(isinstance(v, str) for v in items)
            # HDF5 attributes hold homogeneous arrays only; a mixed list is kept as its JSON text.
            flat[name] = items if (numbers or strings) else json.dumps(items)
        else:
            flat[name] = plain(value)
    return flat


def root_attributes(
    path: str | Path,
    schema_attributes: Collection[str],
    parameters: Mapping[str, Any] | None,
    attrs: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(parameters, extra attributes)`` keyed by the root attribute each is stored under.

    Both formats keep parameters as root attributes beside the schema's own (The Well's layout), so a
    parameter named like a schema attribute would overwrite it: a rollout file of one trajectory that
    copies its source's ``n_trajectories`` parameter would claim the source's count, and readers index
    trajectories that are not there. Such a parameter is stored as ``simulation_<name>`` instead (and read
    back under that name). Extra attributes are the writer's own and must not collide with either.
    """
    flat = flatten_parameters(parameters or {})
    stored: dict[str, Any] = {}
    for name, value in flat.items():
        key = f"simulation_{name}" if name in schema_attributes else name
        if key != name and key in flat:
            raise ValueError(
                f"{path}: parameter {name!r} is a schema attribute and {key!r}, its other name, is taken"
            )
        stored[key] = value
    extra = {str(name): plain(value) for name, value in (attrs or {}).items()}
    clash = sorted(set(extra) & ({*schema_attributes} | set(stored)))
    if clash:
        raise ValueError(f"{path}: attributes {clash} would overwrite schema attributes or parameters")
    return stored, extra
