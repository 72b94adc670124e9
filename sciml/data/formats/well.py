"""HDF5 files in The Well schema (Ohana et al., "The Well", NeurIPS 2024 Datasets and Benchmarks).

Layout (``@`` marks attributes), as read by ``the_well.data.WellDataset``::

    /  @dataset_name @grid_type="cartesian" @n_spatial_dims @n_trajectories
       @simulation_parameters=[names]  @<name>=<value> for each parameter (``simulation_<name>`` for a
       parameter named like one of the schema attributes before, which it must not overwrite)
    dimensions/  @spatial_dims=["x","y","z"]
        time (T,) or (B, T)        @sample_varying @time_varying
        x (X,), y (Y,), z (Z,)     @sample_varying=False @time_varying=False
    boundary_conditions/<dim>_periodic/  @bc_type="PERIODIC" @associated_dims=[dim] @associated_fields=[]
                                         @sample_varying @time_varying ; mask (X,) bool, True on the boundary
    scalars/     @field_names ; <name> () with @sample_varying @time_varying
    t0_fields/   @field_names ; <name> ([B,] [T,] X, Y, Z)   @dim_varying @sample_varying @time_varying
    t1_fields/   @field_names ; <name> ([B,] [T,] X, Y, Z, 3)
    t2_fields/   @field_names ; <name> ([B,] [T,] X, Y, Z, 3, 3)

An axis appears only if the matching ``*_varying`` flag is set (a field with ``dim_varying=[True, False,
True]`` has no y axis and is broadcast over y). The reader accepts all of that (any number of files in a
directory, sample-varying time, constant fields, wall/open boundaries); the writer writes the subset our
datasets need: every field varies over trajectories, time and all three axes.

Writes are reproducible byte for byte: no object timestamps (``track_times=False``), fixed library
version bounds, fixed chunking and attribute order; and atomic (temporary file, then rename). Field
datasets carry Fletcher-32 checksums, so a corrupted chunk fails loudly when read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sciml.core.atomic import atomic_path
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

SUFFIXES = (".h5", ".hdf5")
#: Root attributes of the schema; parameters of these names are stored as ``simulation_<name>``.
ROOT_ATTRIBUTES = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters")
FIELD_GROUPS = ("t0_fields", "t1_fields", "t2_fields")
BC_TYPES = ("PERIODIC", "WALL", "OPEN")
# HDF5 format bounds: readable by HDF5 >= 1.10 (2017) and stable across library versions, so that the
# same data gives the same bytes.
LIBVER = ("earliest", "v110")
_STRING = h5py.string_dtype()


# ---------------------------------------------------------------------------------------------- writer
def write_well(
    path: str | Path,
    *,
    time: np.ndarray,
    coords: Mapping[str, np.ndarray],
    t0_fields: Mapping[str, np.ndarray] | None = None,
    t1_fields: Mapping[str, np.ndarray] | None = None,
    t2_fields: Mapping[str, np.ndarray] | None = None,
    dataset_name: str,
    parameters: Mapping[str, Any] | None = None,
    scalars: Mapping[str, float] | None = None,
    boundary_conditions: str | Mapping[str, str] = "periodic",
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write one Well-schema HDF5 file atomically and reproducibly; returns ``path``.

    ``coords`` maps each spatial dim (in axis order) to its 1-D node coordinates. Field arrays are
    ``(B, T, *spatial, 3^order)`` and stored as float32; ``time`` is ``(T,)`` or ``(B, T)`` (one time axis
    per trajectory). ``parameters`` become root attributes listed in ``@simulation_parameters`` (nested
    dicts are flattened to ``parent_child`` names; one named like a schema attribute, such as a generator's
    ``n_trajectories``, is stored as ``simulation_<name>``); ``attrs`` are further root attributes, which
    must not collide with either; ``scalars`` are constant scalars (e.g. ``nu``).
    ``boundary_conditions`` is one type for every axis or a type per axis (periodic, wall or open).
    """
    path = Path(path)
    dims = list(coords)
    shape = tuple(len(np.asarray(coords[d])) for d in dims)
    groups = {
        "t0_fields": dict(t0_fields or {}),
        "t1_fields": dict(t1_fields or {}),
        "t2_fields": dict(t2_fields or {}),
    }
    time = np.asarray(time, dtype=np.float64)
    n_traj = _check_writer_input(path, dims, shape, time, groups)
    if isinstance(boundary_conditions, str):
        boundary_conditions = {d: boundary_conditions for d in dims}
    flat, extra = root_attributes(path, ROOT_ATTRIBUTES, parameters, attrs)

    with atomic_path(path) as tmp:
        _write(
            tmp, dims, coords, time, groups, n_traj, dataset_name, flat, extra, boundary_conditions, scalars
        )
    return path


def _write(tmp, dims, coords, time, groups, n_traj, dataset_name, flat, extra, boundary_conditions, scalars):
    """The HDF5 content of :func:`write_well` (into the temporary file ``tmp``)."""
    with h5py.File(tmp, "w", libver=LIBVER) as f:
        f.attrs["dataset_name"] = dataset_name
        f.attrs["grid_type"] = "cartesian"
        f.attrs["n_spatial_dims"] = len(dims)
        f.attrs["n_trajectories"] = n_traj
        f.attrs["simulation_parameters"] = _strings(flat)
        for name, value in {**flat, **extra}.items():
            f.attrs[name] = _attr(value)

        dimensions = f.create_group("dimensions")
        dimensions.attrs["spatial_dims"] = _strings(dims)
        t = _dataset(dimensions, "time", time)
        t.attrs["sample_varying"] = time.ndim == 2
        t.attrs["time_varying"] = True
        for dim in dims:
            x = _dataset(dimensions, dim, np.asarray(coords[dim], dtype=np.float64))
            x.attrs["sample_varying"] = False
            x.attrs["time_varying"] = False

        bcs = f.create_group("boundary_conditions")
        for dim in dims:
            kind = boundary_conditions[dim].upper()
            if kind not in BC_TYPES:
                raise ValueError(f"boundary condition of {dim} must be one of {BC_TYPES}, got {kind!r}")
            group = bcs.create_group(f"{dim}_{kind.lower()}")
            group.attrs["associated_dims"] = _strings([dim])
            group.attrs["associated_fields"] = _strings([])
            group.attrs["bc_type"] = kind
            group.attrs["sample_varying"] = False
            group.attrs["time_varying"] = False
            mask = np.zeros(len(coords[dim]), dtype=bool)
            mask[[0, -1]] = True
            _dataset(group, "mask", mask)

        scalar_group = f.create_group("scalars")
        scalar_group.attrs["field_names"] = _strings(list(scalars or {}))
        for name, value in (scalars or {}).items():
            s = _dataset(scalar_group, name, np.asarray(value, dtype=np.float64).reshape(()))
            s.attrs["sample_varying"] = False
            s.attrs["time_varying"] = False

        for group_name, fields in groups.items():
            group = f.create_group(group_name)
            group.attrs["field_names"] = _strings(list(fields))
            for name, data in fields.items():
                data = np.asarray(data, dtype=np.float32)
                # One chunk per snapshot: windows read whole snapshots, never partial ones.
                ds = _dataset(group, name, data, chunks=(1, 1, *data.shape[2:]))
                ds.attrs["dim_varying"] = np.ones(len(dims), dtype=bool)
                ds.attrs["sample_varying"] = True
                ds.attrs["time_varying"] = True
                if group_name == "t2_fields":
                    ds.attrs["symmetric"] = False
                    ds.attrs["antisymmetric"] = False


def _check_writer_input(path: Path, dims, shape, time, groups) -> int:
    if not any(groups.values()):
        raise ValueError(f"{path}: nothing to write, every field group is empty")
    n_traj = None
    for group_name, fields in groups.items():
        order = int(group_name[1])
        for name, data in fields.items():
            data_shape = np.shape(data)
            expected_tail = (*shape, *(len(dims),) * order)
            if len(data_shape) != 2 + len(expected_tail) or data_shape[2:] != expected_tail:
                raise ValueError(
                    f"{path}: {group_name}/{name} must be (B, T, {', '.join(dims)}"
                    f"{', ' + ', '.join(['component'] * order) if order else ''}) = (B, T, "
                    f"{', '.join(map(str, expected_tail))}), got {data_shape}"
                )
            if n_traj is not None and data_shape[0] != n_traj:
                raise ValueError(
                    f"{path}: {group_name}/{name} has {data_shape[0]} trajectories, expected {n_traj}"
                )
            n_traj = data_shape[0]
            n_time = time.shape[-1]
            if data_shape[1] != n_time:
                raise ValueError(
                    f"{path}: {group_name}/{name} has {data_shape[1]} steps but time has {n_time}"
                )
    if time.ndim == 2 and time.shape[0] != n_traj:
        raise ValueError(f"{path}: time is {time.shape} but the fields hold {n_traj} trajectories")
    return int(n_traj)


def _dataset(group: h5py.Group, name: str, data: np.ndarray, chunks=None) -> h5py.Dataset:
    # Fletcher-32 checksums on chunked (field) data turn a corrupted chunk into a read error instead of
    # silently wrong numbers; every HDF5 reader supports this built-in filter.
    return group.create_dataset(
        name, data=data, chunks=chunks, fletcher32=chunks is not None, track_times=False
    )


def _strings(values) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=_STRING)


def _attr(value: Any) -> Any:
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            return _strings(value)
        return np.asarray(value, dtype=np.float64 if not value else None)
    return value


# ---------------------------------------------------------------------------------------------- reader
def well_files(path: str | Path) -> list[Path]:
    """The Well files a path names: the file itself, or the ``*.h5``/``*.hdf5`` files of a directory."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    return [path]


class WellReader:
    """Reads windows of one or more Well files (trajectories of all files, in file-name order).

    Metadata is read and validated at construction (files are opened and closed again); field data is
    read through handles opened lazily on first use, once per process, and never pickled: the reader
    can be sent to DataLoader workers, and each worker opens its own handles.
    """

    format = "hdf5"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        files = well_files(self.path)
        if not files:
            raise DataFormatError(self.path, None, "directory holds no *.h5 or *.hdf5 file")
        infos = [_inspect(file) for file in files]
        self.info = _merge(self.path, infos)
        # trajectory -> (file index, trajectory inside that file)
        self._where = [(i, b) for i, (info, _) in enumerate(infos) for b in range(info.n_trajectories)]
        self._layouts = [layout for _, layout in infos]
        self._handles: dict[int, h5py.File] = {}
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_pid"] = None
        return state

    def _file(self, index: int) -> h5py.File:
        if self._pid != os.getpid():
            # A handle inherited through fork shares the parent's file state: never reuse it.
            self._handles = {}
            self._pid = os.getpid()
        if index not in self._handles:
            self._handles[index] = _open(Path(self.info.files[index]))
        return self._handles[index]

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles = {}

    def read(self, trajectory: int, times: slice, channels: Sequence[Channel]) -> np.ndarray:
        file_index, local = self._where[trajectory]
        f = self._file(file_index)
        path = self.info.files[file_index]
        n_t = steps_in(times, self.info.n_steps)
        out = np.empty((len(channels), n_t, *self.info.grid_shape), dtype=np.float32)
        where = describe_window(trajectory, times, self.info.n_steps)
        for field_name, positions in _group_by_field(channels).items():
            layout = self._layouts[file_index][field_name]
            variable = f"{layout['group']}/{field_name}"
            index: tuple = ()
            if layout["sample_varying"]:
                index += (local,)
            if layout["time_varying"]:
                index += (times,)
            try:
                block = np.asarray(f[variable][index])
            except (OSError, RuntimeError, ValueError) as error:
                raise DataFormatError(path, variable, f"could not be read ({where}): {error}") from error
            check_finite(path, variable, block, where)
            if not layout["time_varying"]:
                block = block[None]
            # Re-insert axes the field does not vary along, then broadcast over them.
            for axis, varies in enumerate(layout["dim_varying"]):
                if not varies:
                    block = np.expand_dims(block, 1 + axis)
            block = np.broadcast_to(
                block, (n_t, *self.info.grid_shape, *block.shape[1 + len(self.info.grid_shape) :])
            )
            for position, channel in positions:
                out[position] = block[(..., *channel.component)]
        return out


def _group_by_field(channels: Sequence[Channel]) -> dict[str, list[tuple[int, Channel]]]:
    grouped: dict[str, list[tuple[int, Channel]]] = {}
    for position, channel in enumerate(channels):
        grouped.setdefault(channel.field, []).append((position, channel))
    return grouped


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise DataFormatError(path, None, "file does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataFormatError(
            path, None, f"cannot be opened as HDF5 (truncated or corrupt file?): {error}"
        ) from error


def _require(node: h5py.Group | h5py.Dataset, key: str, path: Path, variable: str) -> Any:
    if key not in node.attrs:
        raise DataFormatError(path, variable, f"missing attribute @{key} required by the Well schema")
    return plain(node.attrs[key])


def _member(group: h5py.Group, key: str, path: Path, what: str) -> Any:
    name = f"{group.name.strip('/')}/{key}".strip("/")
    if key not in group:
        raise DataFormatError(path, name, f"missing {what} required by the Well schema")
    return group[key]


def _inspect(path: Path) -> tuple[SourceInfo, dict[str, dict]]:
    """Validate one file's metadata and return its SourceInfo plus the per-field storage layout."""
    with _open(path) as f:
        root = "/"
        grid_type = _require(f, "grid_type", path, root)
        if str(grid_type).lower() != "cartesian":
            raise DataFormatError(
                path, "@grid_type", f"only cartesian grids are supported, got {grid_type!r}"
            )
        dataset_name = str(_require(f, "dataset_name", path, root))
        n_dims = int(_require(f, "n_spatial_dims", path, root))
        n_traj = int(_require(f, "n_trajectories", path, root))

        dimensions = _member(f, "dimensions", path, "group")
        spatial_dims = tuple(str(d) for d in _require(dimensions, "spatial_dims", path, "dimensions"))
        if len(spatial_dims) != n_dims:
            raise DataFormatError(
                path,
                "dimensions@spatial_dims",
                f"lists {len(spatial_dims)} dims but @n_spatial_dims is {n_dims}",
            )
        coords = {}
        for dim in spatial_dims:
            ds = _member(dimensions, dim, path, "coordinate dataset")
            if bool(ds.attrs.get("sample_varying", False)) or bool(ds.attrs.get("time_varying", False)):
                raise DataFormatError(
                    path, f"dimensions/{dim}", "sample- or time-varying grids are not supported"
                )
            x = np.asarray(ds[()], dtype=np.float64)
            check_coordinate(str(path), f"dimensions/{dim}", x)
            coords[dim] = x
        grid = tuple(len(coords[d]) for d in spatial_dims)

        time_ds = _member(dimensions, "time", path, "dataset")
        time = np.asarray(time_ds[()], dtype=np.float64)
        sample_varying_time = bool(time_ds.attrs.get("sample_varying", time.ndim == 2))
        expected_rank = 2 if sample_varying_time else 1
        if time.ndim != expected_rank or (sample_varying_time and time.shape[0] != n_traj):
            want = f"(n_trajectories={n_traj}, T)" if sample_varying_time else "(T,)"
            raise DataFormatError(path, "dimensions/time", f"expected shape {want}, got {time.shape}")
        check_time_axis(str(path), "dimensions/time", time)
        if not sample_varying_time:
            time = np.broadcast_to(time, (n_traj, time.shape[0])).copy()
        n_steps = time.shape[1]

        channels: list[Channel] = []
        layouts: dict[str, dict] = {}
        for group_name in FIELD_GROUPS:
            if group_name not in f:
                continue  # an absent group holds no fields (The Well always writes all three)
            group = f[group_name]
            order = int(group_name[1])
            for name in _require(group, "field_names", path, group_name) or []:
                name = str(name)
                variable = f"{group_name}/{name}"
                ds = _member(group, name, path, f"dataset listed in {group_name}@field_names")
                if not isinstance(ds, h5py.Dataset):
                    raise DataFormatError(path, variable, "expected a dataset, found a group")
                layout = {
                    "group": group_name,
                    "dim_varying": [
                        bool(v) for v in np.atleast_1d(_require(ds, "dim_varying", path, variable))
                    ],
                    "sample_varying": bool(_require(ds, "sample_varying", path, variable)),
                    "time_varying": bool(_require(ds, "time_varying", path, variable)),
                }
                if len(layout["dim_varying"]) != n_dims:
                    raise DataFormatError(
                        path,
                        variable,
                        f"@dim_varying has {len(layout['dim_varying'])} entries, expected {n_dims}",
                    )
                expected, names = [], []
                if layout["sample_varying"]:
                    expected.append(n_traj)
                    names.append("trajectory")
                if layout["time_varying"]:
                    expected.append(n_steps)
                    names.append("time")
                for dim, size, varies in zip(spatial_dims, grid, layout["dim_varying"]):
                    if varies:
                        expected.append(size)
                        names.append(dim)
                expected += [n_dims] * order
                names += ["component"] * order
                if tuple(ds.shape) != tuple(expected):
                    raise DataFormatError(
                        path,
                        variable,
                        f"expected rank {len(expected)} shape {tuple(expected)} ({', '.join(names)}), "
                        f"got rank {len(ds.shape)} shape {tuple(ds.shape)}",
                    )
                if ds.dtype.kind not in "fiu":
                    raise DataFormatError(path, variable, f"expected a numeric dtype, got {ds.dtype}")
                layouts[name] = layout
                channels += channels_of(name, order, spatial_dims, layout["time_varying"])
        if not channels:
            raise DataFormatError(path, "t0_fields/t1_fields/t2_fields", "the file holds no fields")

        parameters = {}
        for name in plain(f.attrs.get("simulation_parameters", [])) or []:
            parameters[str(name)] = plain(_require(f, str(name), path, "@simulation_parameters"))
        scalars = {}
        if "scalars" in f:
            for name in plain(f["scalars"].attrs.get("field_names", [])) or []:
                ds = _member(f["scalars"], str(name), path, "dataset listed in scalars@field_names")
                if not ds.attrs.get("time_varying", False) and not ds.attrs.get("sample_varying", False):
                    scalars[str(name)] = plain(np.asarray(ds[()]).reshape(-1)[0]) if ds.size else None
        bcs = _boundary_conditions(f, path, spatial_dims)

    info = SourceInfo(
        path=str(path),
        format="hdf5",
        dataset_name=dataset_name,
        spatial_dims=spatial_dims,
        coords=coords,
        time=time,
        channels=channels,
        parameters=parameters,
        scalars=scalars,
        boundary_conditions=bcs,
        files=[str(path)],
    )
    return info, layouts


def _boundary_conditions(f: h5py.File, path: Path, spatial_dims) -> dict[str, tuple[str, str]]:
    """(lower, upper) boundary type per axis, decided from the masks as the_well does (default OPEN)."""
    sides = {d: ["OPEN", "OPEN"] for d in spatial_dims}
    if "boundary_conditions" not in f:
        return {d: tuple(s) for d, s in sides.items()}
    for name, bc in f["boundary_conditions"].items():
        variable = f"boundary_conditions/{name}"
        kind = str(_require(bc, "bc_type", path, variable)).upper()
        if kind not in BC_TYPES:
            raise DataFormatError(path, variable, f"@bc_type must be one of {BC_TYPES}, got {kind!r}")
        dims = [str(d) for d in np.atleast_1d(_require(bc, "associated_dims", path, variable))]
        mask = np.asarray(_member(bc, "mask", path, "dataset")[()], dtype=bool)
        if mask.ndim != len(dims):
            raise DataFormatError(
                path, f"{variable}/mask", f"expected {len(dims)} dims, got shape {mask.shape}"
            )
        for axis, dim in enumerate(dims):
            if dim not in sides:
                raise DataFormatError(path, variable, f"associated dim {dim!r} is not one of {spatial_dims}")
            for side, position in ((0, 0), (1, -1)):
                edge = np.take(mask, position, axis=axis)
                # Walls must cover the whole edge; open/periodic count if any point is on it (as the_well).
                if edge.all() if kind == "WALL" else edge.any():
                    sides[dim][side] = kind
    return {d: tuple(s) for d, s in sides.items()}


def _merge(path: Path, infos: list[tuple[SourceInfo, dict]]) -> SourceInfo:
    """Join several files of one dataset into one source; they must agree on grid, fields and steps."""
    first, _ = infos[0]
    for info, _ in infos[1:]:
        for what, a, b in (
            ("spatial dims", first.spatial_dims, info.spatial_dims),
            ("grid shape", first.grid_shape, info.grid_shape),
            ("fields", [c.name for c in first.channels], [c.name for c in info.channels]),
            ("number of time steps", first.n_steps, info.n_steps),
        ):
            if a != b:
                raise DataFormatError(info.path, None, f"{what} {b} differ from {a} in {first.path}")
    if len(infos) == 1:
        return first
    return SourceInfo(
        path=str(path),
        format="hdf5",
        dataset_name=first.dataset_name,
        spatial_dims=first.spatial_dims,
        coords=first.coords,
        time=np.concatenate([info.time for info, _ in infos]),
        channels=first.channels,
        parameters=first.parameters,
        scalars=first.scalars,
        boundary_conditions=first.boundary_conditions,
        files=[info.path for info, _ in infos],
    )
