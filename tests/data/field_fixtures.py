"""Seeded generators of tiny field datasets in the real on-disk layouts (each well under 1 MB).

* :func:`make_well_fixture` — a Well HDF5 file written by sciml's own writer (periodic box, velocity as a
  t1 field, pressure as a t0 field, the constant scalar ``nu``);
* :func:`make_foreign_well_fixture` — a Well file written by hand with h5py the way other producers of
  Well data write them: scalar t0 fields (one of them constant in time and over trajectories, and not
  varying along z), a vector t1 field, a symmetric rank-2 t2 field, wall/open/periodic boundaries, a
  per-trajectory (sample-varying) time axis and scalars;
* :func:`make_zarr_fixture` — a zarr v3 store written by sciml's xarray writer;
* :func:`make_foreign_zarr_fixture` — a zarr v3 store written with xarray directly, the way other
  producers write them: component labels in any order, a time axis of any dtype (datetime64 included),
  zarr's default ``write_empty_chunks=False`` with any fill value, so an all-fill chunk is never written.

Each returns the arrays it wrote so tests can compare what a reader serves against them.
``python tests/data/field_fixtures.py OUT_DIR`` writes the first three.

:func:`make_killed_atomic_write` leaves what a killed run leaves on disk: the temporary of an atomic write.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from sciml.data.formats.well import write_well
from sciml.data.formats.zarr_store import write_zarr

SHAPE = (8, 6, 4)
LENGTHS = (2 * np.pi, np.pi, 1.0)


def periodic_coords(shape=SHAPE, lengths=LENGTHS) -> dict[str, np.ndarray]:
    """Node coordinates ``x_i = i L / n`` (the brief's convention for periodic grids)."""
    return {d: np.arange(n) * (length / n) for d, n, length in zip("xyz", shape, lengths)}


def _fields(seed: int, n_trajectories: int, n_steps: int, shape) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    velocity = rng.standard_normal((n_trajectories, n_steps, *shape, 3)).astype(np.float32)
    # Distinct means per component so per-channel statistics are distinguishable in tests.
    velocity += np.array([1.0, -2.0, 0.5], dtype=np.float32)
    pressure = (3.0 + 0.5 * rng.standard_normal((n_trajectories, n_steps, *shape))).astype(np.float32)
    return velocity, pressure


def make_well_fixture(
    path: str | Path,
    *,
    n_trajectories: int = 4,
    n_steps: int = 6,
    shape=SHAPE,
    seed: int = 0,
    pressure: bool = True,
    dt: float = 0.25,
) -> dict[str, np.ndarray]:
    velocity, p = _fields(seed, n_trajectories, n_steps, shape)
    time = 1.0 + dt * np.arange(n_steps)
    write_well(
        path,
        time=time,
        coords=periodic_coords(shape),
        t0_fields={"pressure": p} if pressure else {},
        t1_fields={"velocity": velocity},
        dataset_name="fixture_hit",
        parameters={"nu": 0.01, "forcing": {"kind": "linear", "coefficient": 0.1}, "seed": seed},
        scalars={"nu": 0.01},
    )
    out = {"velocity": velocity, "time": time, **periodic_coords(shape)}
    if pressure:
        out["pressure"] = p
    return out


def make_zarr_fixture(
    path: str | Path,
    *,
    n_trajectories: int = 4,
    n_steps: int = 6,
    shape=SHAPE,
    seed: int = 0,
    pressure: bool = True,
    dt: float = 0.25,
) -> dict[str, np.ndarray]:
    velocity, p = _fields(seed, n_trajectories, n_steps, shape)
    time = 1.0 + dt * np.arange(n_steps)
    fields = {"pressure": p} if pressure else {}
    fields["velocity"] = velocity
    write_zarr(
        path,
        time=time,
        coords=periodic_coords(shape),
        fields=fields,
        dataset_name="fixture_hit",
        parameters={"nu": 0.01, "forcing": {"kind": "linear", "coefficient": 0.1}, "seed": seed},
        scalars={"nu": 0.01},
    )
    return {
        "velocity": velocity,
        "time": time,
        **periodic_coords(shape),
        **({"pressure": p} if pressure else {}),
    }


def make_foreign_zarr_fixture(
    path: str | Path,
    *,
    labels=("x", "y", "z"),
    time: np.ndarray | None = None,
    fill_value: float = float("nan"),
    seed: int = 2,
) -> dict[str, np.ndarray]:
    """Velocity ``(2, 4, *SHAPE, 3)`` stored with its components in the order ``labels`` names them.

    A label ``x``/``y``/``z`` (or ``u``/``v``/``w``, ``velocity_x``, ...) stores that axis's component at
    its position; other labels keep axis order. Snapshot (trajectory 1, time 2) is all zero, so with
    ``fill_value=0`` zarr never writes its chunk. Returns the velocity in axis order and the time written.
    """
    rng = np.random.default_rng(seed)
    velocity = rng.standard_normal((2, 4, *SHAPE, 3)).astype(np.float32)
    velocity[1, 2] = 0.0
    axis = {"x": 0, "y": 1, "z": 2, "u": 0, "v": 1, "w": 2}
    stored = velocity[..., [axis.get(label.removeprefix("velocity_"), i) for i, label in enumerate(labels)]]
    time = 0.5 * np.arange(4) if time is None else time
    dataset = xr.Dataset(
        {"velocity": (("trajectory", "time", "x", "y", "z", "component"), stored)},
        coords={
            "trajectory": np.arange(2),
            "time": time,
            **periodic_coords(),
            "component": np.array(list(labels), dtype=object),
        },
        attrs={"dataset_name": "foreign_zarr"},
    )
    chunks = {"chunks": (1, 1, *SHAPE, 3), "fill_value": np.float32(fill_value)}
    dataset.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding={"velocity": chunks})
    return {"velocity": velocity, "time": time}


def make_killed_atomic_write(target: str | Path, *, directory: bool = False) -> Path:
    """Start an atomic write of ``target`` in a process that is SIGKILLed mid-write; return its leftover.

    The temporary carries the dead writer's pid and this host, as a run killed by the OOM killer or a
    scheduler's time limit leaves it.
    """
    target = Path(target)
    code = (
        "import os, signal, sys\n"
        "from sciml.core.atomic import atomic_directory, atomic_path\n"
        "directory = sys.argv[2] == 'directory'\n"
        "with (atomic_directory if directory else atomic_path)(sys.argv[1]) as tmp:\n"
        "    (tmp / 'part' if directory else tmp).write_text('half-written')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    before = set(target.parent.iterdir())
    kind = "directory" if directory else "file"
    process = subprocess.run([sys.executable, "-c", code, str(target), kind], capture_output=True, text=True)
    assert process.returncode == -9, process.stderr
    (left,) = set(target.parent.iterdir()) - before
    return left


def make_foreign_well_fixture(path: str | Path, *, seed: int = 1) -> dict[str, np.ndarray]:
    """A Well file as a third party writes it, with h5py directly (not sciml's writer)."""
    rng = np.random.default_rng(seed)
    n_traj, n_steps, (nx, ny, nz) = 3, 5, (6, 5, 4)
    x = np.linspace(0.0, 1.0, nx)  # wall-bounded: nodes on both walls
    y = np.linspace(-1.0, 1.0, ny)  # open
    z = np.arange(nz) * (2.0 / nz)  # periodic
    # Every trajectory has its own time axis (different start and step).
    time = np.stack([b * 10.0 + (0.1 + 0.05 * b) * np.arange(n_steps) for b in range(n_traj)])
    density = (1.0 + 0.1 * rng.standard_normal((n_traj, n_steps, nx, ny, nz))).astype(np.float32)
    mask = (rng.random((nx, ny)) > 0.5).astype(np.float32)  # constant over trajectories/time, no z axis
    viscosity = rng.random((n_traj, nx, ny, nz)).astype(np.float32)  # per trajectory, constant in time
    velocity = rng.standard_normal((n_traj, n_steps, nx, ny, nz, 3)).astype(np.float32)
    a = rng.standard_normal((n_traj, n_steps, nx, ny, nz, 3, 3)).astype(np.float32)
    stress = 0.5 * (a + np.swapaxes(a, -1, -2))
    string = h5py.string_dtype()

    with h5py.File(path, "w") as f:
        f.attrs["dataset_name"] = "foreign_channel"
        f.attrs["grid_type"] = "cartesian"
        f.attrs["n_spatial_dims"] = 3
        f.attrs["n_trajectories"] = n_traj
        f.attrs["simulation_parameters"] = np.array(["Re", "Pr"], dtype=string)
        f.attrs["Re"] = 180.0
        f.attrs["Pr"] = 0.71

        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = np.array(["x", "y", "z"], dtype=string)
        t = dims.create_dataset("time", data=time.astype(np.float32))
        t.attrs["sample_varying"] = True
        for name, values in (("x", x), ("y", y), ("z", z)):
            d = dims.create_dataset(name, data=values.astype(np.float32))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False

        bcs = f.create_group("boundary_conditions")
        for group_name, dim, kind, n in (
            ("x_wall", "x", "WALL", nx),
            ("y_open", "y", "OPEN", ny),
            ("z_periodic", "z", "PERIODIC", nz),
        ):
            g = bcs.create_group(group_name)
            g.attrs["associated_dims"] = np.array([dim], dtype=string)
            g.attrs["associated_fields"] = np.array([], dtype=string)
            g.attrs["bc_type"] = kind
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            m = np.zeros(n, dtype=bool)
            m[[0, -1]] = True
            g.create_dataset("mask", data=m)

        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = np.array(["Re", "inflow"], dtype=string)
        s = scalars.create_dataset("Re", data=np.float32(180.0))
        s.attrs["sample_varying"] = False
        s.attrs["time_varying"] = False
        s = scalars.create_dataset("inflow", data=rng.random((n_traj, n_steps)).astype(np.float32))
        s.attrs["sample_varying"] = True
        s.attrs["time_varying"] = True

        def field(group, name, data, dim_varying, sample_varying, time_varying, **extra):
            d = group.create_dataset(name, data=data)
            d.attrs["dim_varying"] = np.array(dim_varying)
            d.attrs["sample_varying"] = sample_varying
            d.attrs["time_varying"] = time_varying
            for key, value in extra.items():
                d.attrs[key] = value

        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = np.array(["density", "mask", "viscosity"], dtype=string)
        field(t0, "density", density, [True, True, True], True, True)
        field(t0, "mask", mask, [True, True, False], False, False)
        field(t0, "viscosity", viscosity, [True, True, True], True, False)
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = np.array(["velocity"], dtype=string)
        field(t1, "velocity", velocity, [True, True, True], True, True)
        t2 = f.create_group("t2_fields")
        t2.attrs["field_names"] = np.array(["stress"], dtype=string)
        field(t2, "stress", stress, [True, True, True], True, True, symmetric=True, antisymmetric=False)

    return {
        "time": time.astype(np.float32).astype(np.float64),
        "density": density,
        "mask": mask,
        "viscosity": viscosity,
        "velocity": velocity,
        "stress": stress,
        "x": x,
        "y": y,
        "z": z,
    }


def main(out: str) -> None:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    make_well_fixture(root / "fixture.h5")
    make_zarr_fixture(root / "fixture.zarr")
    make_foreign_well_fixture(root / "foreign.hdf5")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures")


def tree_digests(root) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path: two stores compare equal byte for byte."""
    root = Path(root)
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
