"""Turbulent channel flow at Re_tau ~ 180 with :class:`~sciml.physics.channel.ChannelFlow`, against the DNS.

Reference (``../shared/reference/channel_dns/Re180.prof`` relative to the repository root, read at run
time): del Alamo & Jimenez (2003) / Hoyas et al. profiles in wall units, ``Re_tau = 186`` (the ``y+`` of
its centreline point). Columns used: ``y/h, y+, U+, u'+, v'+, w'+`` and ``uv'+`` (= ``<u'v'>+``).

Units: ``h = 1`` and the nominal ``u_tau = 1``, so ``nu = 1 / Re_tau`` and times are in ``h / u_tau``. The
flow is driven at constant flow rate with the reference's bulk velocity ``U_b+ = (1/h) int_0^h U+ dy`` (the
measured ``Re_tau`` is then an outcome, compared in the table; it overshoots after transition and relaxes
slowly), or with ``--driving pressure_gradient`` at ``-dP/dx = 1``, which fixes the long-time ``Re_tau``.
It starts from the reference mean profile plus seeded divergence-free perturbations of peak
``--amplitude`` (``ChannelFlow.perturbed_state``), spins up for ``--spin-up`` and then samples the velocity
every ``--sample-interval`` for ``--averaging`` into a
:class:`~sciml.physics.channel_statistics.ChannelStatisticsAccumulator` (averaged over x, z, both halves
and time). Each interval is integrated by ``ChannelFlow.advance``: steps of ``--dt``, or the CFL step
(``--cfl``) rounded down to the solver's geometric ladder, so that the implicit operators are reused.

Every ``--checkpoint-every`` (and at the end) ``OUT/checkpoint/`` is replaced atomically by the solver state
(``state.pt``), the statistics (``statistics.pt``) and the run schedule (``run.json``); ``--restart
OUT/checkpoint`` resumes there (``--averaging`` may grow), and ``--restart state.pt`` (a file written by
``ChannelFlow.save``) starts a new spin-up and averaging from a saved flow, carried over to the ``--nx``,
``--nz``, ``--lx``, ``--lz`` and ``--driving`` given (``ChannelFlow.regrid``: spectral interpolation, or
the periodic part for a box that divides the saved one). Results, written atomically to
``--out``: ``results.md`` (settings, resolution in wall units, the error table), ``profiles.png``,
``spectra.png`` (premultiplied streamwise and spanwise spectra at a few ``y+``) and ``summary.json``;
the log goes to ``validate_channel.log``.

    python tools/validate_channel.py --nx 64 --ny 65 --nz 64 --spin-up 40 --averaging 20 --out runs/channel180

At 64 x 65 x 64, float64, 2 CPU threads, CFL 0.5: about 10.7 steps/s and 650-750 steps per ``h / u_tau``
after transition (about 70 s of wall time per ``h / u_tau``; float32 about 1.6 times faster).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator

from sciml.core.atomic import atomic_directory, atomic_path, write_text_atomic
from sciml.core.progress import progress_bar
from sciml.physics.channel import ChannelFlow, chebyshev_points
from sciml.physics.channel_statistics import ChannelProfiles, ChannelSpectra, ChannelStatisticsAccumulator

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "channel_dns" / "Re180.prof"
COLUMNS = {"y": 0, "y_plus": 1, "u_mean": 2, "u_rms": 3, "v_rms": 4, "w_rms": 5, "uv": 10}
PEAKS = (("u_rms", "u'+"), ("v_rms", "v'+"), ("w_rms", "w'+"), ("reynolds_shear", "-<u'v'>+"))
#: Heights of the one-dimensional spectra in ``spectra.png``: viscous sublayer, near the u' peak, buffer
#: and log layer, centreline (the nearest grid points are used).
SPECTRA_Y_PLUS = (5.0, 15.0, 30.0, 100.0, math.inf)
log = logging.getLogger("validate_channel")


def read_reference(path: Path) -> dict[str, np.ndarray]:
    """The ``Re180.prof`` columns used here; ``reynolds_shear = -uv'+``."""
    rows = [
        [float(value) for value in line.split()]
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("%")
    ]
    table = np.array(rows)
    columns = {name: table[:, index] for name, index in COLUMNS.items()}
    columns["reynolds_shear"] = -columns.pop("uv")
    return columns


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    grid = "(default %s; with --restart STATE.pt: the saved one, else the state is carried over)"
    parser.add_argument("--nx", type=int, default=None, help="Fourier points in x " + grid % 64)
    parser.add_argument(
        "--ny", type=int, default=65, help="Gauss-Lobatto points (ny - 1 Chebyshev intervals)"
    )
    parser.add_argument("--nz", type=int, default=None, help="Fourier points in z " + grid % 64)
    parser.add_argument("--lx", type=float, default=None, help="streamwise box length / h " + grid % "4 pi")
    parser.add_argument("--lz", type=float, default=None, help="spanwise box length / h " + grid % "4 pi / 3")
    parser.add_argument(
        "--re-tau", type=float, default=None, help="nominal Re_tau (default: the reference's)"
    )
    parser.add_argument(
        "--driving",
        choices=("flow_rate", "pressure_gradient"),
        default=None,
        help="constant bulk velocity (the reference's U_b+) or constant -dP/dx = u_tau^2 / h = 1 "
        "(default flow_rate; with --restart STATE.pt: the saved one)",
    )
    parser.add_argument("--cfl", type=float, default=0.5)
    parser.add_argument(
        "--dt", type=float, default=None, help="time step (default: the CFL limit at each interval's start)"
    )
    parser.add_argument("--max-dt", type=float, default=None)
    parser.add_argument("--amplitude", type=float, default=4.0, help="peak initial perturbation / u_tau")
    parser.add_argument(
        "--spin-up", type=float, default=40.0, help="transition time before averaging, h/u_tau"
    )
    parser.add_argument("--averaging", type=float, default=20.0, help="averaging time, h/u_tau")
    parser.add_argument("--sample-interval", type=float, default=0.2, help="h/u_tau between snapshots")
    parser.add_argument("--checkpoint-every", type=float, default=2.0, help="h/u_tau between checkpoints")
    parser.add_argument(
        "--restart", type=Path, default=None, help="a checkpoint folder or a saved state file"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--out", type=Path, default=Path("runs/validate_channel"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------- setup and checkpoints
def _initial_state(solver: ChannelFlow, reference: dict, amplitude: float, seed: int):
    """The reference mean profile (``y+ = (1 - |y|) Re_tau``) plus seeded perturbations."""
    generator = torch.Generator().manual_seed(seed)
    state = solver.perturbed_state(1, amplitude, generator=generator)
    re_tau = 1.0 / solver.nu
    wall_distance = (1.0 - np.abs(chebyshev_points(solver.ny - 1))) * re_tau
    profile = PchipInterpolator(reference["y_plus"], reference["u_mean"], extrapolate=True)(wall_distance)
    profile[[0, -1]] = 0.0
    mean_u = torch.from_numpy(profile).to(solver.device, solver.dtype)[None]
    return replace(state, mean_u=mean_u)


def _reference_bulk(reference: dict) -> float:
    """``U_b+ = (1/Re_tau) int_0^{Re_tau} U+ dy+`` by the trapezoidal rule on the reference points."""
    return float(np.trapezoid(reference["u_mean"], reference["y_plus"]) / reference["y_plus"][-1])


def save_checkpoint(folder: Path, solver: ChannelFlow, state, accumulator, run: dict) -> None:
    with atomic_directory(folder) as tmp:
        solver.save(state, tmp / "state.pt")
        accumulator.save(tmp / "statistics.pt")
        (tmp / "run.json").write_text(json.dumps(run, indent=2))


def _start(args, reference: dict, dtype: torch.dtype):
    """``(solver, state, accumulator, run)`` for a new run, a saved state or a checkpoint."""
    restart = args.restart
    if restart is not None and restart.is_dir():
        solver, state = ChannelFlow.load(restart / "state.pt", device=args.device, dtype=dtype)
        solver = _with_cfl(solver, args)
        accumulator = ChannelStatisticsAccumulator.load(restart / "statistics.pt")
        run = json.loads((restart / "run.json").read_text())
        log.info("resumed %s at t = %.4f with %d samples", restart, state.time, accumulator.samples)
        return solver, state, accumulator, run
    if restart is not None:
        solver, state = ChannelFlow.load(restart, device=args.device, dtype=dtype)
        solver = _with_cfl(solver, args)
        log.info("restarted from the state %s at t = %.4f", restart, state.time)
        regridded = _carried_over(solver, args, reference)
        if regridded is not solver:
            state, solver = regridded.regrid(state, solver), regridded
            log.info(
                "carried the state over to %s, box %.4g x %.4g, %s driving",
                solver.parameters()["shape"],
                solver.lx,
                solver.lz,
                solver.driving,
            )
    else:
        re_tau = args.re_tau if args.re_tau is not None else float(reference["y_plus"][-1])
        solver = ChannelFlow(
            (args.nx or 64, args.ny, args.nz or 64),
            nu=1.0 / re_tau,
            lengths=(args.lx or 4 * math.pi, args.lz or 4 * math.pi / 3),
            driving=args.driving or "flow_rate",
            pressure_gradient=1.0,
            bulk_velocity=_reference_bulk(reference),
            cfl=args.cfl,
            max_dt=args.max_dt,
            device=args.device,
            dtype=dtype,
        )
        state = _initial_state(solver, reference, args.amplitude, args.seed)
    run = {
        "averaging_start": state.time + args.spin_up,
        "samples_taken": 0,
        "sample_interval": args.sample_interval,
    }
    return solver, state, ChannelStatisticsAccumulator.for_solver(solver), run


def _with_cfl(solver: ChannelFlow, args) -> ChannelFlow:
    """The loaded solver with this run's CFL number and ``max_dt``."""
    parameters = {**solver.parameters(), "cfl": args.cfl, "max_dt": args.max_dt}
    if parameters == solver.parameters():
        return solver
    return ChannelFlow(**parameters, device=solver.device, dtype=solver.dtype)


def _carried_over(solver: ChannelFlow, args, reference: dict) -> ChannelFlow:
    """The loaded solver on the grid, box and driving given on the command line (itself if unchanged).

    Switching to ``flow_rate`` holds the reference's bulk velocity, as a new run does.
    """
    shape = (args.nx or solver.nx, solver.ny, args.nz or solver.nz)
    lengths = (args.lx or solver.lx, args.lz or solver.lz)
    driving = args.driving or solver.driving
    parameters = {**solver.parameters(), "shape": shape, "lengths": lengths, "driving": driving}
    if driving != solver.driving and driving == "flow_rate":
        parameters["bulk_velocity"] = _reference_bulk(reference)
    if parameters == {**solver.parameters(), "shape": (solver.nx, solver.ny, solver.nz)}:
        return solver
    return ChannelFlow(**parameters, device=solver.device, dtype=solver.dtype)


# ---------------------------------------------------------------------- comparison
def compare(profiles: ChannelProfiles, reference: dict) -> dict:
    """Errors of the profiles against the reference (interpolated to the reference ``y+``)."""
    top = min(profiles.re_tau, float(reference["y_plus"][-1]))
    mask = (reference["y_plus"] >= 1.0) & (reference["y_plus"] <= top)
    ours = profiles.interpolate("u_mean", reference["y_plus"][mask])
    relative = np.abs(ours - reference["u_mean"][mask]) / np.abs(reference["u_mean"][mask])
    result = {
        "re_tau": profiles.re_tau,
        "re_tau_reference": float(reference["y_plus"][-1]),
        "samples": profiles.samples,
        "u_plus_max_relative_error": float(relative.max()),
        "u_plus_mean_relative_error": float(relative.mean()),
        "u_plus_worst_y_plus": float(reference["y_plus"][mask][relative.argmax()]),
        "u_plus_centre": float(profiles.u_mean[-1]),
        "u_plus_centre_reference": float(reference["u_mean"][-1]),
        "stress_residual_max": float(np.abs(profiles.stress_residual).max()),
    }
    dense = np.linspace(0.0, top, 4001)
    for name, _ in PEAKS:
        values = profiles.interpolate(name, dense)
        ref_values = PchipInterpolator(reference["y_plus"], reference[name])(dense)
        peak, ref_peak = float(values.max()), float(ref_values.max())
        result[f"{name}_peak"] = peak
        result[f"{name}_peak_y_plus"] = float(dense[values.argmax()])
        result[f"{name}_peak_reference"] = ref_peak
        result[f"{name}_peak_y_plus_reference"] = float(dense[ref_values.argmax()])
        result[f"{name}_peak_relative_error"] = (peak - ref_peak) / ref_peak
    return result


def resolution(solver: ChannelFlow, re_tau: float) -> dict:
    """Grid spacings in wall units (collocation points; the 2/3 rule keeps 2/3 of the Fourier modes)."""
    spacing = np.abs(np.diff(chebyshev_points(solver.ny - 1))) * re_tau
    return {
        "dx_plus": solver.lx / solver.nx * re_tau,
        "dz_plus": solver.lz / solver.nz * re_tau,
        "dy_plus_min": float(spacing.min()),
        "dy_plus_max": float(spacing.max()),
    }


def table(summary: dict) -> str:
    lines = [
        "| quantity | sim | reference | error |",
        "|---|---|---|---|",
        f"| Re_tau | {summary['re_tau']:.2f} | {summary['re_tau_reference']:.2f} | "
        f"{summary['re_tau'] / summary['re_tau_reference'] - 1:+.2%} |",
        f"| U+ relative error, y+ >= 1 (max, at y+ = {summary['u_plus_worst_y_plus']:.1f}) | | | "
        f"{summary['u_plus_max_relative_error']:.2%} |",
        f"| U+ relative error, y+ >= 1 (mean) | | | {summary['u_plus_mean_relative_error']:.2%} |",
        f"| U+ centreline | {summary['u_plus_centre']:.3f} | {summary['u_plus_centre_reference']:.3f} | "
        f"{summary['u_plus_centre'] / summary['u_plus_centre_reference'] - 1:+.2%} |",
    ]
    for name, label in PEAKS:
        lines.append(
            f"| peak {label} (at y+) | "
            f"{summary[name + '_peak']:.3f} ({summary[name + '_peak_y_plus']:.1f}) | "
            f"{summary[name + '_peak_reference']:.3f} ({summary[name + '_peak_y_plus_reference']:.1f}) | "
            f"{summary[name + '_peak_relative_error']:+.2%} |"
        )
    lines.append(f"| max total-stress residual | {summary['stress_residual_max']:.2e} | 0 | |")
    return "\n".join(lines)


def write_results(
    out: Path, summary: dict, accumulator: ChannelStatisticsAccumulator, reference: dict
) -> None:
    profiles = accumulator.profiles()
    settings = "\n".join(f"- {key}: {value}" for key, value in summary["settings"].items())
    grid = summary["resolution"]
    text = (
        "# Channel flow validation against Re180.prof\n\n"
        f"{settings}\n\n"
        f"Resolution (wall units of the measured Re_tau): dx+ = {grid['dx_plus']:.2f}, "
        f"dz+ = {grid['dz_plus']:.2f}, dy+ min = {grid['dy_plus_min']:.3f}, "
        f"dy+ max = {grid['dy_plus_max']:.2f}\n\n"
        f"Averaged over {summary['averaging_time']:g} h/u_tau, {summary['samples']} samples.\n\n"
        f"{table(summary)}\n"
    )
    write_text_atomic(out / "results.md", text)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    _plot(out / "profiles.png", profiles, reference)
    heights = [min(y_plus, profiles.re_tau) for y_plus in SPECTRA_Y_PLUS]
    _plot_spectra(out / "spectra.png", accumulator.spectra(heights))


def _plot(path: Path, profiles: ChannelProfiles, reference: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    inside = profiles.y_plus > 0
    left.semilogx(profiles.y_plus[inside], profiles.u_mean[inside], "o-", ms=3, label="sciml")
    ref = reference["y_plus"] > 0
    left.semilogx(reference["y_plus"][ref], reference["u_mean"][ref], "k--", label="Re180.prof")
    y_plus = np.logspace(-1, math.log10(max(profiles.re_tau, 2.0)), 200)
    left.semilogx(y_plus[y_plus < 12], y_plus[y_plus < 12], ":", color="grey", label="U+ = y+")
    left.semilogx(
        y_plus[y_plus > 20], np.log(y_plus[y_plus > 20]) / 0.41 + 5.2, "-.", color="grey", label="log law"
    )
    left.set(xlabel="y+", ylabel="U+", title=f"mean velocity, Re_tau = {profiles.re_tau:.1f}")
    left.legend()
    for (name, label), colour in zip(PEAKS, ("C0", "C1", "C2", "C3")):
        right.plot(profiles.y_plus, getattr(profiles, name), "o-", ms=3, color=colour, label=label)
        right.plot(reference["y_plus"], reference[name], "--", color=colour)
    right.set(
        xlabel="y+", ylabel="wall units", title="rms velocities and Reynolds shear stress (dashed: ref)"
    )
    right.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def _plot_spectra(path: Path, spectra: ChannelSpectra) -> None:
    """Premultiplied one-dimensional spectra ``k E(k)`` against the wavelength in wall units, per height."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    directions = (("x", spectra.kx_plus, spectra.streamwise), ("z", spectra.kz_plus, spectra.spanwise))
    for row, (axis_name, k_plus, values) in zip(axes, directions):
        # Not the mean (k = 0, no wavelength), nor the modes the 2/3 rule removes (zero to rounding).
        kept = np.flatnonzero(values.max(axis=(0, 1)) > 1e-8 * values.max())
        kept = kept[kept > 0]
        wavelength = 2 * math.pi / k_plus[kept]
        for column, (axis, component) in enumerate(zip(row, ("u", "v", "w"))):
            for height, spectrum in zip(spectra.y_plus, values[:, column]):
                premultiplied = k_plus[kept] * spectrum[kept] / k_plus[1]
                axis.semilogx(wavelength, premultiplied, ".-", label=f"y+ {height:.1f}")
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.set(
                xlabel=f"lambda_{axis_name}+",
                ylabel=f"k_{axis_name} E_{component}{component} / u_tau^2",
                title=f"{component}'{component}' over k_{axis_name}",
            )
    axes[0, 0].legend(fontsize=8)
    figure.suptitle("Premultiplied one-dimensional spectra (per discrete mode, times k / k_1)")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------------- main
def _setup_logging(out: Path) -> logging.FileHandler:
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "validate_channel.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    reference = read_reference(args.reference)
    handler = _setup_logging(args.out)
    try:
        return _run(args, reference, dtype)
    finally:
        log.removeHandler(handler)
        handler.close()


def _run(args, reference: dict, dtype: torch.dtype) -> dict:
    solver, state, accumulator, run = _start(args, reference, dtype)
    interval = float(run["sample_interval"])
    end = run["averaging_start"] + args.averaging
    checkpoint = args.out / "checkpoint"
    next_checkpoint = state.time + args.checkpoint_every
    nominal = resolution(solver, 1.0 / solver.nu)
    log.info(
        "grid %s box %.4g x 2 x %.4g nu %.6g; nominal %s",
        (solver.nx, solver.ny, solver.nz),
        solver.lx,
        solver.lz,
        solver.nu,
        nominal,
    )
    spin_up_chunks = math.ceil(max(run["averaging_start"] - state.time, 0.0) / interval - 1e-9)
    samples_left = math.floor((end - run["averaging_start"]) / interval + 1e-9) + 1 - run["samples_taken"]
    chunks = spin_up_chunks + max(samples_left, 0)
    bar = None if args.no_progress else progress_bar("channel DNS (h/u_tau chunks)", total=chunks)
    total_steps, started = 0, time.perf_counter()
    try:
        while True:
            next_sample = run["averaging_start"] + run["samples_taken"] * interval
            if next_sample > end + 1e-9 * max(1.0, end):
                break
            target = min(state.time + interval, next_sample) if state.time < next_sample else next_sample
            state, steps = solver.advance(state, max(target - state.time, 0.0), dt=args.dt)
            total_steps += steps
            if abs(state.time - next_sample) <= 1e-9 * max(1.0, next_sample):
                accumulator.update(solver.velocity(state))
                run["samples_taken"] += 1
            log.info(
                "t = %.4f steps %d (%.2f steps/s) Re_tau %.2f Pi %.4f samples %d",
                state.time,
                total_steps,
                total_steps / max(time.perf_counter() - started, 1e-9),
                float(solver.re_tau(state)[0]),
                float(state.pi[0]),
                accumulator.samples,
            )
            if bar is not None:
                bar.advance(bar.task_ids[0])
            if state.time >= next_checkpoint:
                save_checkpoint(checkpoint, solver, state, accumulator, run)
                next_checkpoint = state.time + args.checkpoint_every
    finally:
        if bar is not None:
            bar.stop()
    save_checkpoint(checkpoint, solver, state, accumulator, run)
    elapsed = time.perf_counter() - started
    if accumulator.samples == 0:
        log.info("no sample yet (t = %.4f); nothing to compare", state.time)
        return {}
    profiles = accumulator.profiles()
    summary = compare(profiles, reference)
    summary["averaging_time"] = (run["samples_taken"] - 1) * interval
    summary["resolution"] = resolution(solver, profiles.re_tau)
    summary["settings"] = {
        "grid (nx, ny, nz)": (solver.nx, solver.ny, solver.nz),
        "box (Lx, Ly, Lz) / h": (round(solver.lx, 4), 2.0, round(solver.lz, 4)),
        "nu": solver.nu,
        "driving": solver.driving,
        "bulk velocity / u_tau (nominal)": solver.bulk_target,
        "cfl": solver.cfl,
        "dt": args.dt,
        "dtype": args.dtype,
        "sample interval / (h/u_tau)": interval,
        "averaging start / (h/u_tau)": run["averaging_start"],
        "time / (h/u_tau)": state.time,
        "steps this run": total_steps,
        "wall time this run / s": round(elapsed, 1),
    }
    write_results(args.out, summary, accumulator, reference)
    grid = summary["resolution"]
    print(
        f"Re_tau {profiles.re_tau:.2f} (reference {summary['re_tau_reference']:.2f}), "
        f"{profiles.samples} samples "
        f"over {summary['averaging_time']:g} h/u_tau; dx+ {grid['dx_plus']:.2f}, dz+ {grid['dz_plus']:.2f}, "
        f"dy+ {grid['dy_plus_min']:.3f} .. {grid['dy_plus_max']:.2f}"
    )
    print(table(summary))
    print(f"wrote {args.out / 'results.md'}, {args.out / 'profiles.png'}, {args.out / 'spectra.png'}")
    return summary


if __name__ == "__main__":
    main()
