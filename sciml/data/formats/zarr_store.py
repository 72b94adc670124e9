"""Zarr v3 stores holding an xarray Dataset of fields with named dims and coordinates.

Schema (written by :func:`write_zarr`, read by :class:`ZarrReader` through ``xarray.open_zarr``)::

    dims    trajectory, time, x, y, z, component[, component_2]
    coords  trajectory (B,) int64 ; time (T,) float64 ; x (X,), y (Y,), z (Z,) float64 node coordinates ;
            component ("x", "y", "z")
    vars    <scalar field> (trajectory, time, x, y, z)            float32
            <vector field> (trajectory, time, x, y, z, component) float32
            <rank-2 field> (trajectory, time, x, y, z, component, component_2) float32
    attrs   schema, dataset_name, grid_type="cartesian", n_spatial_dims, spatial_dims, n_trajectories,
            field_names, boundary_conditions {dim: type}, scalars {name: value}, simulation_parameters
            [names] and one attr per parameter (flat, as in the Well files; a parameter named like one of
            the attrs before is stored as ``simulation_<name>``, so it cannot overwrite it)

A field without a ``trajectory`` or ``time`` dim is constant over trajectories or time. Chunks hold one
snapshot each, ``(1, 1, X, Y, Z, ...)``.

Stores written elsewhere are read with these rules:

* components are matched to axes by their ``component`` (``component_2``) labels, never by position: a
  label may be the axis name (``x``), ``u``/``v``/``w`` for ``x``/``y``/``z``, the channel name
  (``velocity_x``) or the axis index; any other label is an error. Without labels, components are in axis
  order.
* xarray decodes a time axis with CF units into datetime64 (or timedelta64), whose raw values are counts
  of their unit (for dates: nanoseconds since 1970); it is read as seconds (since the first time for
  datetime64), with a warning.

Missing chunks: zarr returns the array's fill value for a chunk absent from the store, without an error;
and it leaves out chunks that equal the fill value unless ``write_empty_chunks`` is set. The writer
therefore sets ``fill_value=NaN`` on float arrays and writes every chunk, so in a NaN-filled store an
absent chunk is a lost one: the reader (a) checks at open time that every chunk key of such a field exists
in the store (a directory listing, no data read) and (b) rejects NaN in every window it reads, which also
catches a missing inner chunk of a sharded array. In a store with any other fill value (zarr's own default
is 0) an absent chunk is one that held only the fill value, and reads as that.

Writes go to a temporary directory that is renamed into place, and are byte-reproducible.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sciml.core.atomic import atomic_directory
from sciml.core.errors import DataFormatError
from sciml.data.formats.base import (
    Channel,
    SourceInfo,
    channels_of,
    check_coordinate,
    check_finite,
    check_time_axis,
    describe_window,
    plain,
    root_attributes,
    steps_in,
)

SUFFIX = ".zarr"
COMPONENT_DIMS = ("component", "component_2")
SCHEMA = "sciml.fields/1"


# ---------------------------------------------------------------------------------------------- writer
def write_zarr(
    path: str | Path,
    *,
    time: np.ndarray,
    coords: Mapping[str, np.ndarray],
    fields: Mapping[str, np.ndarray],
    orders: Mapping[str, int] | None = None,
    dataset_name: str,
    parameters: Mapping[str, Any] | None = None,
    scalars: Mapping[str, float] | None = None,
    boundary_conditions: str | Mapping[str, str] = "periodic",
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write fields ``(B, T, *spatial, 3^order)`` to a zarr v3 store at ``path`` atomically.

    ``orders`` gives each field's tensor order (default: 0 when the array has no trailing component
    axis, 1 with one, 2 with two). ``time`` is ``(T,)`` (shared by all trajectories).
    """
    import xarray as xr

    path = Path(path)
    dims = list(coords)
    time = np.asarray(time, dtype=np.float64)
    if time.ndim == 2:
        if not np.all(time == time[:1]):
            raise ValueError(f"{path}: zarr stores hold one time axis shared by all trajectories")
        time = time[0]
    if isinstance(boundary_conditions, str):
        boundary_conditions = {d: boundary_conditions for d in dims}
    data_vars = {}
    encoding = {}
    for name, data in fields.items():
        data = np.asarray(data, dtype=np.float32)
        order = (orders or {}).get(name, data.ndim - 2 - len(dims))
        if data.ndim != 2 + len(dims) + order or data.shape[1] != len(time):
            raise ValueError(
                f"{path}: field {name} must be (trajectory, time, {', '.join(dims)}"
                f"{''.join(', ' + c for c in COMPONENT_DIMS[:order])}) with {len(time)} steps, "
                f"got {data.shape}"
            )
        data_vars[name] = (("trajectory", "time", *dims, *COMPONENT_DIMS[:order]), data)
        encoding[name] = {
            "chunks": (1, 1, *data.shape[2:]),
            "fill_value": np.float32(np.nan),
            "write_empty_chunks": True,
        }
    n_traj = next(iter(data_vars.values()))[1].shape[0]
    schema_attrs: dict[str, Any] = {
        "schema": SCHEMA,
        "dataset_name": dataset_name,
        "grid_type": "cartesian",
        "n_spatial_dims": len(dims),
        "spatial_dims": dims,
        "n_trajectories": int(n_traj),
        "field_names": list(data_vars),
        "boundary_conditions": {d: boundary_conditions[d].upper() for d in dims},
        "scalars": {k: float(v) for k, v in (scalars or {}).items()},
        "simulation_parameters": [],
    }
    flat, extra = root_attributes(path, schema_attrs, parameters, attrs)
    dataset_attrs = {**schema_attrs, "simulation_parameters": list(flat), **flat, **extra}
    coordinates = {
        "trajectory": np.arange(n_traj, dtype=np.int64),
        "time": time,
        **{d: np.asarray(coords[d], dtype=np.float64) for d in dims},
    }
    if any(len(v[0]) > 2 + len(dims) for v in data_vars.values()):
        # Object dtype stores the labels as zarr v3 variable-length strings (a specified data type).
        coordinates["component"] = np.array(dims, dtype=object)
    dataset = xr.Dataset(data_vars, coords=coordinates, attrs=dataset_attrs)
    with atomic_directory(path) as tmp:
        dataset.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
    return path


# ---------------------------------------------------------------------------------------------- reader
class ZarrReader:
    """Reads windows of a zarr v3 store through xarray; the store is opened lazily once per process."""

    format = "zarr"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.info, self._layouts = _inspect(self.path)
        self._dataset = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_dataset"] = None
        state["_pid"] = None
        return state

    def _open(self):
        if self._pid != os.getpid() or self._dataset is None:
            self._dataset = _open_dataset(self.path)
            self._pid = os.getpid()
        return self._dataset

    def close(self) -> None:
        if self._dataset is not None and self._pid == os.getpid():
            self._dataset.close()
        self._dataset = None

    def read(self, trajectory: int, times: slice, channels: Sequence[Channel]) -> np.ndarray:
        dataset = self._open()
        n_t = steps_in(times, self.info.n_steps)
        grid = self.info.grid_shape
        out = np.empty((len(channels), n_t, *grid), dtype=np.float32)
        where = describe_window(trajectory, times, self.info.n_steps)
        grouped: dict[str, list[tuple[int, Channel]]] = {}
        for position, channel in enumerate(channels):
            grouped.setdefault(channel.field, []).append((position, channel))
        for name, positions in grouped.items():
            layout = self._layouts[name]
            variable = dataset[name]
            selection = {}
            if "trajectory" in layout["dims"]:
                selection["trajectory"] = trajectory
            if "time" in layout["dims"]:
                selection["time"] = times
            try:
                block = np.asarray(variable.isel(selection).values)
            except Exception as error:  # zarr raises codec/IO errors of many types for a corrupt chunk
                raise DataFormatError(self.path, name, f"could not be read ({where}): {error}") from error
            check_finite(str(self.path), name, block, where)
            kept = [d for d in layout["dims"] if d != "trajectory"]
            if "time" not in layout["dims"]:
                block, kept = block[None], ["time", *kept]
            # Put axes in (time, *spatial, components) order and broadcast over absent spatial dims.
            for dim in self.info.spatial_dims:
                if dim not in kept:
                    block, kept = np.expand_dims(block, -1), [*kept, dim]
            order = ["time", *self.info.spatial_dims, *COMPONENT_DIMS[: layout["order"]]]
            block = np.transpose(block, [kept.index(d) for d in order])
            block = np.broadcast_to(block, (n_t, *grid, *block.shape[1 + len(grid) :]))
            for position, channel in positions:
                stored = [axes[axis] for axes, axis in zip(layout["components"], channel.component)]
                out[position] = block[(..., *stored)]
        return out


def _open_dataset(path: Path):
    import xarray as xr

    if not path.exists():
        raise DataFormatError(path, None, "store does not exist")
    if not (path / "zarr.json").exists():
        raise DataFormatError(path, "zarr.json", "not a zarr v3 store (no root zarr.json)")
    try:
        # chunks=None: lazily indexed backend arrays, no dask; only the chunks a window needs are read.
        return xr.open_zarr(path, consolidated=False, chunks=None, zarr_format=3)
    except Exception as error:  # zarr/xarray raise many types for broken metadata
        raise DataFormatError(path, None, f"cannot be opened as a zarr v3 store: {error}") from error


def _inspect(path: Path) -> tuple[SourceInfo, dict[str, dict]]:
    dataset = _open_dataset(path)
    try:
        attrs = dict(dataset.attrs)
        spatial_dims = tuple(attrs.get("spatial_dims", [d for d in ("x", "y", "z") if d in dataset.dims]))
        coords = {}
        for dim in spatial_dims:
            if dim not in dataset.coords:
                raise DataFormatError(path, dim, "missing coordinate variable of a spatial dim")
            x = np.array(dataset[dim].values, dtype=np.float64)
            check_coordinate(str(path), dim, x)
            coords[dim] = x
        if "time" not in dataset.coords:
            raise DataFormatError(path, "time", "missing time coordinate")
        time = np.asarray(dataset["time"].values)
        if time.ndim != 1:
            raise DataFormatError(path, "time", f"expected a 1-D time coordinate, got shape {time.shape}")
        time = _seconds(path, time)
        check_time_axis(str(path), "time", time)
        n_traj = int(dataset.sizes.get("trajectory", attrs.get("n_trajectories", 1)))

        channels: list[Channel] = []
        layouts: dict[str, dict] = {}
        # Channel order as in the Well reader: scalar fields, then vectors, then rank-2 tensors; within an
        # order, the order the writer listed (``field_names``), else alphabetical.
        listed = [str(n) for n in attrs.get("field_names", [])]
        names = sorted(
            (str(n) for n in dataset.data_vars),
            key=lambda n: (
                sum(d in COMPONENT_DIMS for d in dataset[n].dims),
                listed.index(n) if n in listed else len(listed),
                n,
            ),
        )
        for name in names:
            variable = dataset[name]
            dims = tuple(variable.dims)
            if not any(d in spatial_dims for d in dims):
                continue  # not a field (e.g. a per-trajectory scalar)
            order = sum(d in COMPONENT_DIMS for d in dims)
            allowed = ("trajectory", "time", *spatial_dims, *COMPONENT_DIMS[:order])
            expected_order = [d for d in allowed if d in dims]
            if list(dims) != expected_order or set(dims) - set(allowed):
                raise DataFormatError(path, name, f"dims {dims} are not in the order/subset of {allowed}")
            for d in COMPONENT_DIMS[:order]:
                if dataset.sizes[d] != len(spatial_dims):
                    raise DataFormatError(
                        path, name, f"dim {d} has size {dataset.sizes[d]}, expected {len(spatial_dims)}"
                    )
            if variable.dtype.kind not in "fiu":
                raise DataFormatError(path, name, f"expected a numeric dtype, got {variable.dtype}")
            layouts[name] = {
                "dims": dims,
                "order": order,
                "components": _component_positions(path, dataset, str(name), dims, spatial_dims),
            }
            channels += channels_of(str(name), order, spatial_dims, "time" in dims)
            # Only a NaN fill tells a lost chunk from an all-fill one that zarr did not write (docstring).
            if _is_nan(variable.encoding.get("fill_value", np.nan)):
                _check_chunks(path, str(name))
        if not channels:
            raise DataFormatError(
                path, None, f"the store holds no field over the spatial dims {spatial_dims}"
            )
        parameters = {str(n): plain(attrs[n]) for n in attrs.get("simulation_parameters", []) if n in attrs}
        bcs = {d: (str(kind).upper(),) * 2 for d, kind in dict(attrs.get("boundary_conditions", {})).items()}
        info = SourceInfo(
            path=str(path),
            format="zarr",
            dataset_name=str(attrs.get("dataset_name", path.stem)),
            spatial_dims=spatial_dims,
            coords=coords,
            time=np.broadcast_to(time, (n_traj, len(time))).copy(),
            channels=channels,
            parameters=parameters,
            scalars=dict(attrs.get("scalars", {})),
            boundary_conditions={d: bcs.get(d, ("OPEN", "OPEN")) for d in spatial_dims},
            files=[str(path)],
        )
    finally:
        dataset.close()
    return info, layouts


def _seconds(path: Path, time: np.ndarray) -> np.ndarray:
    """A time axis as float64 seconds; datetime64 and timedelta64 values are converted from their unit."""
    if time.dtype.kind not in "mM" or len(time) == 0:
        return np.array(time, dtype=np.float64)
    if time.dtype.kind == "M":
        # Absolute dates as numbers would be seconds since 1970: count from the first time instead.
        seconds = (time - time[0]) / np.timedelta64(1, "s")
        origin = f"seconds since the first time ({time[0]})"
    else:
        seconds = time / np.timedelta64(1, "s")
        origin = "seconds"
    # stacklevel 4: _seconds <- _inspect <- ZarrReader() <- the code that opened the store.
    warnings.warn(f"{path}: time: {time.dtype} values are read as {origin}", stacklevel=4)
    return seconds.astype(np.float64)


#: Component labels that name an axis besides its own name (velocity components u, v, w of x, y, z).
_AXIS_LETTERS = {"u": "x", "v": "y", "w": "z"}


def _component_positions(
    path: Path, dataset, name: str, dims: Sequence[str], spatial_dims: Sequence[str]
) -> list[tuple[int, ...]]:
    """Per component dim of field ``name``: the stored index of each spatial axis, found by label.

    A store written elsewhere may order its components differently (``["z", "y", "x"]``); reading them by
    position would serve z as x. Labels may be the axis name, ``u``/``v``/``w``, the channel name
    (``velocity_x``) or the axis index; a dim without a coordinate is in axis order.
    """
    positions = []
    for dim in (d for d in dims if d in COMPONENT_DIMS):
        if dim not in dataset.coords:
            positions.append(tuple(range(len(spatial_dims))))
            continue
        labels = [plain(label) for label in np.asarray(dataset[dim].values).tolist()]
        axes = [_axis_of(label, name, spatial_dims) for label in labels]
        if sorted(axis for axis in axes if axis is not None) != list(range(len(spatial_dims))):
            raise DataFormatError(
                path,
                name,
                f"{dim} labels {labels} do not name the axes {', '.join(spatial_dims)} once each "
                f"(a label is the axis name, u/v/w for x/y/z, {name}_<axis> or the axis index)",
            )
        positions.append(tuple(axes.index(axis) for axis in range(len(spatial_dims))))
    return positions


def _axis_of(label: Any, field: str, spatial_dims: Sequence[str]) -> int | None:
    if isinstance(label, int) and not isinstance(label, bool):
        return label if 0 <= label < len(spatial_dims) else None
    text = str(label).lower()
    text = _AXIS_LETTERS.get(text, text)
    for axis, dim in enumerate(spatial_dims):
        if text in (dim.lower(), f"{field}_{dim}".lower()):
            return axis
    return None


def _is_nan(value: Any) -> bool:
    return np.asarray(value).dtype.kind in "fc" and bool(np.isnan(value))


def _check_chunks(path: Path, name: str) -> None:
    """Every chunk of the NaN-filled array ``name`` must exist in the store.

    zarr would fill a missing one with NaN, which the read check would blame on the data, not on the lost
    chunk, and only once a window that needs it is read.
    """
    meta_file = path / name / "zarr.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as error:
        raise DataFormatError(path, name, f"unreadable array metadata {meta_file.name}: {error}") from error
    if any(codec.get("name") == "sharding_indexed" for codec in meta.get("codecs", [])):
        return  # inner chunks of shards are covered by the NaN check on read (fill value NaN)
    shape = meta["shape"]
    chunk_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    encoding = meta.get("chunk_key_encoding", {"name": "default"})
    separator = encoding.get("configuration", {}).get(
        "separator", "/" if encoding["name"] == "default" else "."
    )
    grid = [-(-s // c) for s, c in zip(shape, chunk_shape)]
    present = set()
    for root, _, files in os.walk(path / name):
        for file in files:
            present.add(os.path.relpath(os.path.join(root, file), path / name).replace(os.sep, "/"))
    missing = []
    for index in itertools.product(*(range(g) for g in grid)):
        parts = [str(i) for i in index] or ["0"]
        key = (
            ("c" + separator + separator.join(parts))
            if encoding["name"] == "default"
            else separator.join(parts)
        )
        if key.replace(separator, "/") not in present and key not in present:
            missing.append(key)
    if missing:
        raise DataFormatError(
            path,
            name,
            f"{len(missing)} of {int(np.prod(grid))} chunks missing from the store "
            f"(first: {name}/{missing[0]}); zarr would silently return the fill value for them",
        )
