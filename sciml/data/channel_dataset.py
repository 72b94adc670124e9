"""Filtered turbulent channel flow at Re_tau 180 for the channel surrogate (the data of IFactFormer-m).

The data are sciml's own DNS (:class:`sciml.physics.channel.ChannelFlow`, Kim, Moin & Moser 1987), driven
by a constant pressure gradient ``-dP/dx = 1`` in units ``h = 1``, ``u_tau = 1`` (so ``nu = 1 / Re_tau``,
times in ``h / u_tau``), filtered and sampled to a coarse LES-like grid:

* ``x``, ``z``: a sharp spectral cut-off to the coarse grid's Fourier modes (``|m| < n_coarse / 2``; the
  coarse Nyquist mode, which a real ``+-m`` pair cannot fill, is dropped), evaluated on the coarse points
  ``x_i = i Lx / n``. The coarse field is therefore the band-limited interpolant of the filtered DNS field.
* ``y``: no filter; the Gauss-Lobatto points of the coarse grid are a subset of the DNS ones
  (``cos(pi j / N_c) = cos(pi (N / N_c) j / N)``), so the DNS values are sampled there.
* ``y`` is stored ascending, from the lower wall ``-1`` to the upper wall ``+1``: the solver's
  Gauss-Lobatto points ``cos(pi j / N_c)`` (float64) in reverse order.

A turbulent channel takes far longer to develop from laminar flow than the default dataset may take to
generate, so trajectories start from *seed states*: developed turbulent flows made once by
:func:`make_seed_states` and shipped as package data (:data:`SEED_STATES`, a ``ChannelFlow.save`` file
holding a batch of states). ``python -m sciml.data.channel_dataset seeds`` remakes them;
``python -m sciml.data.channel_dataset dataset --out data/channel`` makes the dataset
(datasets/channel/README.md gives the parameters and measured statistics).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sciml.core.errors import ConfigError
from sciml.physics.channel import ChannelFlow, ChannelState, chebyshev_points, wall_parallel_cutoff
from sciml.physics.channel_statistics import ChannelProfiles, ChannelStatisticsAccumulator

#: The packaged seed states of the CPU default box (see :func:`make_seed_states`).
SEED_STATES = Path(__file__).resolve().parent / "assets" / "channel_re180_states.pt"
#: The committed developed 64 x 65 x 64 flow in the 4 pi x 2 x 4 pi/3 box the seed states are cut from.
SOURCE_STATE = Path("docs/validation/channel_re180_64x65x64/checkpoint/state.pt")

#: Settings of :func:`make_seed_states` for the packaged file: half the paper box in x and z at the DNS
#: resolution of the committed source flow (dx+ 35, dz+ 12 at Re_tau 180).
SEED_DEFAULTS: dict[str, Any] = {
    "shape": (32, 65, 32),
    "lengths": (2.0 * math.pi, 2.0 * math.pi / 3.0),
    "re_tau": 180.0,
    "n_states": 4,
    "spinup_time": 6.0,
    "interval": 3.0,
    "cfl": 0.5,
}

#: Settings of :func:`simulate_channel` for the embedded default dataset (about 4 minutes on 2 cores,
#: see datasets/channel/README.md). ``coarse_shape`` is proportional to the paper's 32 x 33 x 16 for the
#: full box.
DEFAULTS: dict[str, Any] = {
    "n_trajectories": 4,
    "n_snapshots": 12,
    "snapshot_dt": 0.2,
    "spinup_time": 0.4,
    "coarse_shape": (16, 33, 8),
    "cfl": 0.5,
    "seed_states": None,
}


# --------------------------------------------------------------------------------------- batches and profiles
def _concatenate(states: Sequence[ChannelState]) -> ChannelState:
    """One batch of the flows of ``states`` (the time of the last)."""
    return ChannelState(
        phi=torch.cat([s.phi for s in states]),
        omega=torch.cat([s.omega for s in states]),
        mean_u=torch.cat([s.mean_u for s in states]),
        mean_w=torch.cat([s.mean_w for s in states]),
        pi=torch.cat([s.pi for s in states]),
        time=states[-1].time,
    )


def state_profiles(solver: ChannelFlow, state: ChannelState) -> list[ChannelProfiles]:
    """Wall-unit profiles of each flow of the batch on its own (one snapshot: plane averages only)."""
    velocity = solver.velocity(state)
    profiles = []
    for index in range(velocity.shape[0]):
        accumulator = ChannelStatisticsAccumulator.for_solver(solver)
        accumulator.update(velocity[index : index + 1])
        profiles.append(accumulator.profiles())
    return profiles


def rms_peak(profiles: ChannelProfiles, name: str = "u_rms") -> tuple[float, float]:
    """``(peak value, y+ of the peak)`` of a profile on the grid points."""
    values = getattr(profiles, name)
    index = int(np.argmax(values))
    return float(values[index]), float(profiles.y_plus[index])


# ---------------------------------------------------------------------------------------------- seed states
def make_seed_states(
    out: str | Path = SEED_STATES,
    *,
    source: str | Path = SOURCE_STATE,
    shape: Sequence[int] = SEED_DEFAULTS["shape"],
    lengths: Sequence[float] = SEED_DEFAULTS["lengths"],
    re_tau: float = SEED_DEFAULTS["re_tau"],
    n_states: int = SEED_DEFAULTS["n_states"],
    spinup_time: float = SEED_DEFAULTS["spinup_time"],
    interval: float = SEED_DEFAULTS["interval"],
    cfl: float = SEED_DEFAULTS["cfl"],
    device: str = "cpu",
    progress: Callable[..., Any] | None = None,
    log: Callable[[str], Any] | None = None,
) -> Path:
    """Developed turbulent states for the box ``lengths`` on the DNS grid ``shape``, saved as one batch.

    The developed flow ``source`` (a ``ChannelFlow.save`` file, same ``ny``) is carried to this grid and box
    (``ChannelFlow.regrid``: spectral interpolation, or its periodic part for a box that divides the
    source box), run at ``nu = 1 / re_tau`` under ``-dP/dx = 1`` for ``spinup_time`` (the modes the smaller
    box lacks regrow and the flow adapts to ``nu``), then a state is kept every ``interval`` h/u_tau:
    ``n_states`` states of one trajectory, each several eddy turnover times after the last. The batch is
    written atomically in float32 (``ChannelFlow.save``).
    """
    if isinstance(n_states, bool) or not isinstance(n_states, int) or n_states < 1:
        raise ConfigError("n_states", f"must be a positive int, got {n_states!r}")
    if not (spinup_time >= 0 and interval > 0):
        raise ConfigError(
            "interval", f"need spinup_time >= 0 and interval > 0, got {spinup_time}, {interval}"
        )
    source_solver, source_state = ChannelFlow.load(source, device=device, dtype=torch.float32)
    solver = ChannelFlow(
        tuple(int(n) for n in shape),
        nu=1.0 / float(re_tau),
        lengths=tuple(float(length) for length in lengths),
        driving="pressure_gradient",
        pressure_gradient=1.0,
        cfl=cfl,
        device=device,
        dtype=torch.float32,
    )
    state = solver.regrid(source_state, source_solver)  # the identity on the source's own grid and box
    state = replace(state, time=0.0)
    # Chunks of at most one h/u_tau, for the progress bar.
    targets = [spinup_time + k * interval for k in range(n_states)]
    chunk_ends = sorted({*np.arange(1.0, targets[-1], 1.0).round(9).tolist(), *targets} - {0.0})
    kept = []
    for done, end in enumerate(chunk_ends, start=1):
        state, _ = solver.advance(state, end - state.time)
        if any(abs(end - t) < 1e-9 for t in targets):
            kept.append(state)
            if log is not None:
                profile = state_profiles(solver, state)[0]
                peak, where = rms_peak(profile)
                log(f"t = {end:g}: Re_tau {profile.re_tau:.1f}, u'+ peak {peak:.2f} at y+ {where:.1f}")
        if progress is not None:
            now = float(solver.re_tau(state)[0])
            progress(done, len(chunk_ends), f"t = {end:g} h/u_tau, Re_tau {now:.1f}")
    solver.save(_concatenate(kept), out)
    return Path(out)


def _select(state: ChannelState, indices: Sequence[int]) -> ChannelState:
    index = torch.as_tensor(list(indices), device=state.phi.device)
    return ChannelState(
        phi=state.phi[index],
        omega=state.omega[index],
        mean_u=state.mean_u[index],
        mean_w=state.mean_w[index],
        pi=state.pi[index],
        time=state.time,
    )


# ---------------------------------------------------------------------------------------------- filter
def coarse_y(ny_coarse: int) -> np.ndarray:
    """The stored ``y`` coordinates: the Gauss-Lobatto points of ``ny_coarse`` nodes, ascending (float64)."""
    return chebyshev_points(ny_coarse - 1)[::-1].copy()


def check_coarse_shape(dns_shape: Sequence[int], coarse_shape: Sequence[int]) -> tuple[int, int, int]:
    """``coarse_shape`` as ints, if the filter of :func:`filter_to_coarse` can make it from ``dns_shape``."""
    if len(coarse_shape) != 3 or any(isinstance(n, bool) or not isinstance(n, int) for n in coarse_shape):
        raise ConfigError("coarse_shape", f"expected three ints (nx, ny, nz), got {coarse_shape!r}")
    nx, ny, nz = dns_shape
    cx, cy, cz = coarse_shape
    if not (2 <= cx <= nx and 2 <= cz <= nz):
        raise ConfigError("coarse_shape", f"nx, nz must lie in [2, DNS grid {nx}, {nz}], got {cx}, {cz}")
    if cy < 3 or (ny - 1) % (cy - 1):
        raise ConfigError(
            "coarse_shape",
            f"ny - 1 must divide the DNS's {ny - 1} Chebyshev intervals (ny >= 3) so its Gauss-Lobatto "
            f"points are DNS points, got ny = {cy}",
        )
    return int(cx), int(cy), int(cz)


def filter_to_coarse(field: Tensor, coarse_shape: Sequence[int]) -> Tensor:
    """DNS fields ``(B, C, X, Y, Z)`` (solver layout, ``y`` descending) -> coarse ``(B, C, Xc, Yc, Zc)``.

    Sharp spectral cut-off in ``x`` and ``z`` to the coarse grid's modes ``|m| <= (n_c - 1) // 2``
    (:func:`~sciml.physics.channel.wall_parallel_cutoff`) and every ``(ny - 1) / (Yc - 1)``-th
    Gauss-Lobatto point in ``y``, returned ascending.
    """
    cx, cy, cz = check_coarse_shape(field.shape[2:], coarse_shape)
    return wall_parallel_cutoff(field, (cx, cy, cz), ((cx - 1) // 2, (cz - 1) // 2)).flip(3)


# ---------------------------------------------------------------------------------------------- dataset
@dataclass
class ChannelSimulation:
    """Filtered channel trajectories on the coarse grid (``y`` ascending)."""

    velocity: np.ndarray  # (B, T, X, Y, Z, 3) float32
    pressure: np.ndarray  # (B, T, X, Y, Z) float32, static pressure without the driving -Pi x
    time: np.ndarray  # (T,) float64, time since the first snapshot
    coords: dict[str, np.ndarray]  # "x", "y", "z": float64 node coordinates
    parameters: dict
    statistics: dict  # DNS and coarse-data statistics over all snapshots, in wall units


def simulate_channel(
    *,
    n_trajectories: int = DEFAULTS["n_trajectories"],
    n_snapshots: int = DEFAULTS["n_snapshots"],
    snapshot_dt: float = DEFAULTS["snapshot_dt"],
    spinup_time: float = DEFAULTS["spinup_time"],
    coarse_shape: Sequence[int] = DEFAULTS["coarse_shape"],
    cfl: float = DEFAULTS["cfl"],
    seed_states: str | Path | None = DEFAULTS["seed_states"],
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> ChannelSimulation:
    """Run ``n_trajectories`` channel DNS from the first seed states and return filtered snapshots.

    Each trajectory runs ``spinup_time`` h/u_tau from its seed state, then ``n_snapshots`` snapshots are
    taken ``snapshot_dt`` apart (the first at the end of the spin-up). ``seed_states`` is a
    ``ChannelFlow.save`` file of a batch of developed flows (default: the packaged :data:`SEED_STATES`);
    its solver parameters (grid, box, ``nu``, driving) are the DNS's. ``progress(done, total)`` is called
    after each spin-up chunk and each snapshot.
    """
    for name, value in (("n_trajectories", n_trajectories), ("n_snapshots", n_snapshots)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(name, f"must be a positive int, got {value!r}")
    for name, value in (("snapshot_dt", snapshot_dt), ("cfl", cfl)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(name, f"must be a positive number, got {value!r}")
    if isinstance(spinup_time, bool) or not isinstance(spinup_time, (int, float)) or spinup_time < 0:
        raise ConfigError("spinup_time", f"must be a number >= 0, got {spinup_time!r}")
    source = SEED_STATES if seed_states is None else Path(seed_states)
    if not source.is_file():
        raise ConfigError(
            "seed_states",
            f"{source} does not exist; make it with "
            f"python -m sciml.data.channel_dataset seeds --out {source}",
        )
    loaded, states = ChannelFlow.load(source, device=device, dtype=torch.float32)
    available = states.phi.shape[0]
    if n_trajectories > available:
        raise ConfigError(
            "n_trajectories", f"{source} holds {available} seed states, fewer than {n_trajectories}"
        )
    solver = ChannelFlow(**{**loaded.parameters(), "cfl": float(cfl)}, device=device, dtype=torch.float32)
    coarse = check_coarse_shape((solver.nx, solver.ny, solver.nz), list(coarse_shape))
    state = replace(_select(states, range(n_trajectories)), time=0.0)

    spinup_chunks = math.ceil(spinup_time / snapshot_dt - 1e-9)
    total = spinup_chunks + n_snapshots
    done = 0
    for chunk in range(1, spinup_chunks + 1):
        state, _ = solver.advance(state, min(chunk * snapshot_dt, spinup_time) - state.time)
        done += 1
        if progress is not None:
            progress(done, total)
    dns_statistics = ChannelStatisticsAccumulator.for_solver(solver)
    velocity, pressure = [], []
    for index in range(n_snapshots):
        state, _ = solver.advance(state, max(spinup_time + index * snapshot_dt - state.time, 0.0))
        dns_velocity = solver.velocity(state)  # (B, 3, X, Y, Z)
        dns_statistics.update(dns_velocity)
        velocity.append(filter_to_coarse(dns_velocity, coarse))
        pressure.append(filter_to_coarse(solver.pressure(state)[:, None], coarse)[:, 0])
        done += 1
        if progress is not None:
            progress(done, total)
    velocity_array = torch.stack(velocity, dim=1).permute(0, 1, 3, 4, 5, 2)  # (B, T, X, Y, Z, 3)
    pressure_array = torch.stack(pressure, dim=1)  # (B, T, X, Y, Z)

    lengths = (solver.lx, 2.0, solver.lz)
    coords = {
        "x": np.arange(coarse[0]) * (solver.lx / coarse[0]),
        "y": coarse_y(coarse[1]),
        "z": np.arange(coarse[2]) * (solver.lz / coarse[2]),
    }
    re_tau = 1.0 / solver.nu
    parameters = {
        "re_tau_nominal": re_tau,
        "nu": solver.nu,
        "driving": solver.driving,
        "pressure_gradient": solver.pressure_gradient,
        "lengths": list(lengths),
        "dns_shape": [solver.nx, solver.ny, solver.nz],
        "coarse_shape": list(coarse),
        "filter": "sharp spectral cut-off in x and z to |m| <= (n_coarse - 1) // 2; y sampled at the "
        "coarse Gauss-Lobatto points (no filter); y ascending",
        "n_trajectories": n_trajectories,
        "n_snapshots": n_snapshots,
        "snapshot_dt": float(snapshot_dt),
        "spinup_time": float(spinup_time),
        "cfl": float(cfl),
        "seed_states": "packaged" if seed_states is None else str(seed_states),
        **{
            f"dns_{k}": v for k, v in grid_spacing((solver.nx, solver.ny, solver.nz), lengths, re_tau).items()
        },
        **{f"coarse_{k}": v for k, v in grid_spacing(coarse, lengths, re_tau).items()},
    }
    statistics = {
        **{f"dns_{k}": v for k, v in summarise(dns_statistics.profiles()).items()},
        **{f"coarse_{k}": v for k, v in summarise(_coarse_profiles(velocity_array, solver, coarse)).items()},
    }
    return ChannelSimulation(
        velocity=velocity_array.cpu().numpy().astype(np.float32),
        pressure=pressure_array.cpu().numpy().astype(np.float32),
        time=np.arange(n_snapshots) * float(snapshot_dt),
        coords=coords,
        parameters=parameters,
        statistics=statistics,
    )


def grid_spacing(shape: Sequence[int], lengths: Sequence[float], re_tau: float) -> dict[str, float]:
    """Grid spacings in wall units: ``dx+``, ``dz+`` and the smallest and largest Gauss-Lobatto ``dy+``."""
    dy = np.abs(np.diff(chebyshev_points(int(shape[1]) - 1))) * re_tau
    return {
        "dx_plus": lengths[0] / shape[0] * re_tau,
        "dy_plus_min": float(dy.min()),
        "dy_plus_max": float(dy.max()),
        "dz_plus": lengths[2] / shape[2] * re_tau,
    }


def summarise(profiles: ChannelProfiles) -> dict[str, float]:
    """Headline numbers of a profile set: Re_tau, centreline U+, rms and shear-stress peaks and their y+."""
    result = {"re_tau": profiles.re_tau, "u_plus_centre": float(profiles.u_mean[-1])}
    for name in ("u_rms", "v_rms", "w_rms", "reynolds_shear"):
        result[f"{name}_peak"], result[f"{name}_peak_y_plus"] = rms_peak(profiles, name)
    return result


def _coarse_profiles(velocity: Tensor, solver: ChannelFlow, coarse: Sequence[int]) -> ChannelProfiles:
    """Profiles of the coarse data (``(B, T, X, Y, Z, 3)``, ``y`` ascending), in its own wall units."""
    accumulator = ChannelStatisticsAccumulator(tuple(coarse), solver.nu, (solver.lx, solver.lz))
    for snapshot in velocity.unbind(1):  # (B, X, Y, Z, 3)
        accumulator.update(snapshot.permute(0, 4, 1, 2, 3).flip(3).double())  # solver layout, y descending
    return accumulator.profiles()


# ---------------------------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """``seeds``: remake the packaged seed states; ``dataset``: write the filtered dataset (both formats)."""
    from sciml.data.generate import CHANNEL_STEM, FORMATS, _ProgressBar, make_channel_dataset, output_paths

    parser = argparse.ArgumentParser(
        prog="python -m sciml.data.channel_dataset",
        description="Filtered turbulent channel flow at Re_tau 180: seed states and the dataset.",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu")
    commands = parser.add_subparsers(dest="command", required=True)
    seeds = commands.add_parser("seeds", help="developed turbulent states the dataset starts from")
    seeds.add_argument("--out", type=Path, default=SEED_STATES, help=f"default {SEED_STATES}")
    seeds.add_argument("--source", type=Path, default=SOURCE_STATE, help=f"default {SOURCE_STATE}")
    seeds.add_argument("--shape", type=int, nargs=3, default=list(SEED_DEFAULTS["shape"]), help="nx ny nz")
    seeds.add_argument("--lengths", type=float, nargs=2, default=list(SEED_DEFAULTS["lengths"]), help="Lx Lz")
    for key in ("re_tau", "n_states", "spinup_time", "interval", "cfl"):
        kind = type(SEED_DEFAULTS[key])
        seeds.add_argument(f"--{key.replace('_', '-')}", type=kind, default=SEED_DEFAULTS[key])
    dataset = commands.add_parser("dataset", help="the filtered dataset (Well HDF5 and zarr)")
    dataset.add_argument("--out", type=Path, required=True, help="output directory (created)")
    dataset.add_argument("--name", default=CHANNEL_STEM, help=f"file stem (default: {CHANNEL_STEM})")
    dataset.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    dataset.add_argument("--force", action="store_true", help="overwrite existing outputs")
    dataset.add_argument("--coarse-shape", type=int, nargs=3, default=list(DEFAULTS["coarse_shape"]))
    dataset.add_argument("--seed-states", type=Path, default=None, help="default: the packaged states")
    for key in ("n_trajectories", "n_snapshots", "snapshot_dt", "spinup_time", "cfl"):
        kind = type(DEFAULTS[key])
        dataset.add_argument(f"--{key.replace('_', '-')}", type=kind, default=DEFAULTS[key])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.command == "seeds":
        with _ProgressBar(f"channel seed states -> {args.out}") as progress:
            written = {
                "seeds": make_seed_states(
                    args.out,
                    source=args.source,
                    shape=args.shape,
                    lengths=args.lengths,
                    re_tau=args.re_tau,
                    n_states=args.n_states,
                    spinup_time=args.spinup_time,
                    interval=args.interval,
                    cfl=args.cfl,
                    device=args.device,
                    progress=progress,
                    log=lambda line: print(line, file=sys.stderr),
                )
            }
    else:
        existing = [str(t) for t in output_paths(args.out, args.name, args.formats).values() if t.exists()]
        if existing and not args.force:
            parser.exit(1, f"{', '.join(existing)} exist(s); pass --force to overwrite\n")
        simulation = {
            key: getattr(args, key)
            for key in ("n_trajectories", "n_snapshots", "snapshot_dt", "spinup_time", "cfl", "seed_states")
        }
        with _ProgressBar(f"channel flow -> {args.out}") as progress:
            written = make_channel_dataset(
                args.out,
                name=args.name,
                formats=args.formats,
                device=args.device,
                progress=progress,
                coarse_shape=tuple(args.coarse_shape),
                **simulation,
            )
    for what, path in written.items():
        print(f"wrote {what}: {path}", file=sys.stderr)
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
