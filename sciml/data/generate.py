"""Make the embedded field datasets: filtered forced isotropic turbulence and filtered channel flow.

``python -m sciml.data.generate --out data/turbulence`` runs :func:`sciml.physics.hit.simulate_forced_hit`
(pseudo-spectral DNS of forced HIT, filtered to the LES grid) and writes the same trajectories twice:
``<out>/turbulence.h5`` (The Well schema) and ``<out>/turbulence.zarr`` (zarr v3 / xarray). Both are
deterministic for a seed (same bytes on a rerun) and written atomically, so an output that exists is
complete: :func:`generate_for_path` makes only the missing ones, which lets a data module finish a
generation that was interrupted between the two writes.

The defaults below make the embedded default dataset of ``configs/turbulence.yaml``; they are chosen to
finish within about 3 minutes on 2 CPU cores (see datasets/turbulence/README.md for the measurement).

:func:`make_channel_dataset` (generator ``channel``, ``configs/channel.yaml``) writes filtered turbulent
channel flow the same way; its simulation lives in :mod:`sciml.data.channel_dataset`, whose command line
(``python -m sciml.data.channel_dataset dataset --out data/channel``) makes it outside a data module.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sciml.core.errors import ConfigError
from sciml.core.progress import progress_bar
from sciml.data.formats.well import SUFFIXES as WELL_SUFFIXES
from sciml.data.formats.well import write_well
from sciml.data.formats.zarr_store import SUFFIX as ZARR_SUFFIX
from sciml.data.formats.zarr_store import write_zarr

DATASET_NAME = "forced_hit_les"
DEFAULT_STEM = "turbulence"
CHANNEL_DATASET_NAME = "channel_re180_filtered"
CHANNEL_STEM = "channel"
FORMATS = ("hdf5", "zarr")

#: Simulation settings of the embedded default dataset (arguments of simulate_forced_hit; ``nu=None``
#: lets the solver pick ``k_max eta = 1`` on the DNS grid). Any other argument of simulate_forced_hit
#: (``injection_rate``, ``k_forcing``, ``cfl``, ...) may be given too.
DEFAULTS: dict[str, Any] = {
    "n_dns": 64,
    "n_les": 16,
    "n_trajectories": 5,
    "n_snapshots": 40,
    "snapshot_dt": 0.06,
    "spinup_time": 8.0,
    "nu": None,
    "filter": "sharp",
    "seed": 0,
}


def make_turbulence_dataset(
    out: str | Path,
    *,
    name: str = DEFAULT_STEM,
    formats: Sequence[str] = FORMATS,
    hdf5_suffix: str = ".h5",
    progress: Callable[..., Any] | None = None,
    device: str = "cpu",
    **simulation: Any,
) -> dict[str, Path]:
    """Simulate filtered forced HIT and write it to ``out/<name>.h5`` and/or ``out/<name>.zarr``.

    ``simulation`` overrides :data:`DEFAULTS` (keys of ``simulate_forced_hit``). Returns the written
    paths by format.
    """
    from sciml.physics.hit import simulate_forced_hit

    targets = output_paths(out, name, formats, hdf5_suffix)
    accepted = set(inspect.signature(simulate_forced_hit).parameters) - {"progress", "device"}
    unknown = set(simulation) - accepted
    if unknown:
        raise ConfigError("generator_args", f"unknown keys {sorted(unknown)}; known: {sorted(accepted)}")
    settings = {**DEFAULTS, **simulation}
    sim = simulate_forced_hit(**settings, device=device, progress=progress)

    # Coordinates and times in float64 from their definitions (x_i = i L / n, t_j = j snapshot_dt) rather
    # than the solver's float32 copies, so lengths and dt read back exactly.
    lengths = [float(v) for v in sim.parameters.get("lengths", [2 * math.pi] * 3)]
    shape = sim.velocity.shape[2:5]
    coords = {d: np.arange(n) * (length / n) for d, n, length in zip("xyz", shape, lengths)}
    time = np.arange(sim.velocity.shape[1]) * float(settings["snapshot_dt"])
    # DNS statistics of the run (Re_lambda, eta, ...) travel as root attributes; the wall time does not,
    # because it would make reruns differ byte for byte.
    statistics = {f"dns_{k}": v for k, v in sim.statistics.items() if k != "wall_time_s"}
    common = {
        "time": time,
        "coords": coords,
        "dataset_name": DATASET_NAME,
        "parameters": dict(sim.parameters),
        "scalars": {"nu": float(sim.parameters["nu"])},
        "boundary_conditions": "periodic",
        "attrs": statistics,
    }
    written: dict[str, Path] = {}
    if "hdf5" in targets:
        written["hdf5"] = write_well(targets["hdf5"], t1_fields={"velocity": sim.velocity}, **common)
    if "zarr" in targets:
        written["zarr"] = write_zarr(targets["zarr"], fields={"velocity": sim.velocity}, **common)
    return written


def make_channel_dataset(
    out: str | Path,
    *,
    name: str = CHANNEL_STEM,
    formats: Sequence[str] = FORMATS,
    hdf5_suffix: str = ".h5",
    progress: Callable[..., Any] | None = None,
    device: str = "cpu",
    **simulation: Any,
) -> dict[str, Path]:
    """Simulate filtered turbulent channel flow and write ``out/<name>.h5`` and/or ``out/<name>.zarr``.

    ``simulation`` overrides the defaults of :func:`sciml.data.channel_dataset.simulate_channel`. Both
    files hold ``velocity`` (3 components) and ``pressure`` on the coarse grid, ``WALL`` boundaries in ``y``
    and its Gauss-Lobatto coordinates (ascending) in ``dimensions``. Returns the written paths by format.
    """
    from sciml.data.channel_dataset import simulate_channel

    targets = output_paths(out, name, formats, hdf5_suffix)
    accepted = set(inspect.signature(simulate_channel).parameters) - {"progress", "device"}
    unknown = set(simulation) - accepted
    if unknown:
        raise ConfigError("generator_args", f"unknown keys {sorted(unknown)}; known: {sorted(accepted)}")
    sim = simulate_channel(**simulation, device=device, progress=progress)
    common = {
        "time": sim.time,
        "coords": sim.coords,
        "dataset_name": CHANNEL_DATASET_NAME,
        "parameters": sim.parameters,
        "scalars": {"nu": float(sim.parameters["nu"])},
        "boundary_conditions": {"x": "periodic", "y": "wall", "z": "periodic"},
        "attrs": sim.statistics,
    }
    written: dict[str, Path] = {}
    if "hdf5" in targets:
        written["hdf5"] = write_well(
            targets["hdf5"],
            t0_fields={"pressure": sim.pressure},
            t1_fields={"velocity": sim.velocity},
            **common,
        )
    if "zarr" in targets:
        written["zarr"] = write_zarr(
            targets["zarr"], fields={"velocity": sim.velocity, "pressure": sim.pressure}, **common
        )
    return written


def output_paths(
    out: str | Path, name: str = DEFAULT_STEM, formats: Sequence[str] = FORMATS, hdf5_suffix: str = ".h5"
) -> dict[str, Path]:
    """What a generator writes for these arguments, by format."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError("formats", f"must name 'hdf5' and/or 'zarr', got {fmt!r}")
    if hdf5_suffix not in WELL_SUFFIXES:
        raise ConfigError("hdf5_suffix", f"must be one of {WELL_SUFFIXES}, got {hdf5_suffix!r}")
    suffixes = {"hdf5": hdf5_suffix, "zarr": ZARR_SUFFIX}
    return {fmt: Path(out) / f"{name}{suffixes[fmt]}" for fmt in formats}


#: Generators a FieldDataModule can name in its config (``generator: forced_hit``), and the file stem each
#: uses in a directory when ``generator_args`` names none.
GENERATORS: dict[str, Callable[..., dict[str, Path]]] = {
    "forced_hit": make_turbulence_dataset,
    "channel": make_channel_dataset,
}
DEFAULT_STEMS = {"forced_hit": DEFAULT_STEM, "channel": CHANNEL_STEM}


def generate_for_path(path: str | Path, generator: str, generator_args: dict[str, Any]) -> Path:
    """Run ``generator`` so that the field source ``path`` exists, with a rich progress bar.

    A ``.h5``/``.hdf5``/``.zarr`` path makes that one file or store (its stem is the dataset name); a
    directory gets both formats (``generator_args`` may choose ``name``, ``formats`` and ``hdf5_suffix``).
    Outputs that exist are kept: each was written atomically, so it is complete.
    """
    if generator not in GENERATORS:
        raise ConfigError("generator", f"unknown generator {generator!r}; built-in: {', '.join(GENERATORS)}")
    path = Path(path)
    args = _arguments_for(path, generator_args, generator)
    missing = [fmt for fmt, target in output_paths(**args).items() if not target.exists()]
    if missing:
        with _ProgressBar(f"generating {generator} dataset -> {path}") as progress:
            GENERATORS[generator](progress=progress, **{**generator_args, **args, "formats": missing})
    return path


def planned_outputs(
    path: str | Path, generator_args: dict[str, Any], generator: str = "forced_hit"
) -> dict[str, Path]:
    """The files or stores :func:`generate_for_path` writes for the field source ``path``, by format.

    ``generator`` decides the file stem in a directory ``path`` whose ``generator_args`` name none.
    """
    return output_paths(**_arguments_for(Path(path), generator_args, generator))


def _arguments_for(path: Path, generator_args: dict[str, Any], generator: str) -> dict[str, Any]:
    """The output arguments of a generator that make the field source ``path``."""
    if path.suffix in WELL_SUFFIXES:
        return {"out": path.parent, "name": path.stem, "formats": ("hdf5",), "hdf5_suffix": path.suffix}
    if path.suffix == ZARR_SUFFIX:
        return {"out": path.parent, "name": path.stem, "formats": ("zarr",)}
    keys = ("name", "formats", "hdf5_suffix")
    return {
        "out": path,
        "name": DEFAULT_STEMS.get(generator, DEFAULT_STEM),
        **{key: generator_args[key] for key in keys if key in generator_args},
    }


class _ProgressBar:
    """A rich progress bar exposed as ``progress(completed, total, description=None)``."""

    def __init__(self, title: str):
        self._title = title
        self._bar = None

    def __enter__(self):
        self._bar = progress_bar(self._title)
        return self

    def __call__(self, completed: float, total: float | None = None, description: str | None = None) -> None:
        update: dict[str, Any] = {"completed": completed}
        if total is not None:
            update["total"] = total
        if description is not None:
            update["description"] = f"{self._title}: {description}"
        self._bar.update(self._bar.task_ids[0], **update)

    def __exit__(self, *exc) -> None:
        self._bar.stop()


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m sciml.data.generate",
        description="Make the filtered forced-HIT turbulence dataset (Well HDF5 and zarr).",
    )
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--name", default=DEFAULT_STEM, help=f"file stem (default: {DEFAULT_STEM})")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--hdf5-suffix", default=".h5", choices=WELL_SUFFIXES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    for key, value in DEFAULTS.items():
        kind = float if key == "nu" else type(value)
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=value, help=f"default {value}")
    args = parser.parse_args(argv)
    out = Path(args.out)
    targets = output_paths(out, args.name, args.formats, args.hdf5_suffix)
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not args.force:
        parser.exit(1, f"{', '.join(existing)} exist(s); pass --force to overwrite\n")
    simulation = {key: getattr(args, key) for key in DEFAULTS}
    start = time.perf_counter()
    with _ProgressBar(f"forced HIT -> {out}") as progress:
        written = make_turbulence_dataset(
            out,
            name=args.name,
            formats=args.formats,
            hdf5_suffix=args.hdf5_suffix,
            device=args.device,
            progress=progress,
            **simulation,
        )
    elapsed = time.perf_counter() - start
    for fmt, path in written.items():
        print(f"wrote {fmt}: {path}", file=sys.stderr)
    print(f"done in {elapsed:.1f} s", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
