"""Channel LES at Re_tau 180 with each closure, against the filtered DNS on the same coarse grid.

Setup: the box ``2 pi x 2 x 4 pi / 3`` (half-height ``h = 1``), ``-dP/dx = 1`` (so the nominal
``u_tau = 1``, times in ``h / u_tau``) and the viscosity of the saved DNS state (``--dns-state``, a
:meth:`ChannelFlow.save` file, e.g. ``64 x 65 x 80``, ``nu = 1 / 186.34``; it should be developed
turbulence). The DNS runs on from it for ``--dns-time`` and is sampled every ``--sample-interval`` twice:
as is, and filtered to the LES grid (``--les-grid``, default ``16 x 33 x 16``, proportional to the
``32 x 33 x 16`` of a ``4 pi`` box) with the LES grid's own filter: the sharp cutoff in ``x, z`` of its
2/3 rule and every second Gauss-Lobatto point in ``y`` (the LES ``ny - 1`` must divide the DNS's).
The statistics of that filtered field (:class:`ChannelStatisticsAccumulator` on the coarse grid) are
what a perfect LES on that grid would give.

Each LES (``--models``: ``none``, ``smagorinsky`` with ``C_s = --cs`` and van Driest damping,
``dynamic`` Smagorinsky with the channel's x-z test filter and plane averaging, ``wale``) starts from
the filtered initial DNS state (:meth:`ChannelFlow.regrid`, which interpolates ``v, omega_y`` in ``y``),
runs ``--les-spin-up`` to forget it, then averages for ``--les-time``. Printed and written atomically to
``--out``: ``results.md`` (Re_tau, centreline U+, mean relative U+ error for ``y+ >= 1``, peaks of
``u', v', w'`` and ``-<u'v'>`` in wall units, each against the filtered DNS and against
``Re180.prof``), ``summary.json`` and ``profiles.png``. Every run takes its own ``u_tau`` from its mean
wall shear, as a wall-resolved LES would be judged.

    python tools/validate_channel_les.py --dns-time 10 --les-spin-up 10 --les-time 20 \\
        --out docs/validation/channel_les_re180
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

# Run as a script, tools/ is on sys.path: the Re180.prof reader and its comparison live there.
from validate_channel import PEAKS, REFERENCE, compare, read_reference

from sciml.core.atomic import atomic_path, write_text_atomic
from sciml.core.errors import ConfigError
from sciml.physics.channel import ChannelFlow, wall_parallel_cutoff
from sciml.physics.channel_statistics import ChannelProfiles, ChannelStatisticsAccumulator
from sciml.physics.les import WALE, DynamicSmagorinsky, NoModel, Smagorinsky

MODELS = ("none", "smagorinsky", "dynamic", "wale")
#: The committed developed 64 x 65 x 80 flow of the 2 pi x 2 x 4 pi/3 box the comparison starts from.
DNS_STATE = Path(__file__).resolve().parents[1] / "docs" / "validation" / "channel_les_re180" / "dns_state.pt"
QUANTITIES = (
    ("re_tau", "Re_tau"),
    ("u_plus_centre", "U+ centreline"),
    *((f"{name}_peak", f"peak {label}") for name, label in PEAKS),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dns-state", type=Path, default=DNS_STATE, help=f"default {DNS_STATE}")
    parser.add_argument("--les-grid", type=int, nargs=3, default=(16, 33, 16), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--cs", type=float, default=0.1, help="Smagorinsky constant (with van Driest)")
    parser.add_argument("--dns-time", type=float, default=10.0, help="DNS averaging time, h/u_tau")
    parser.add_argument("--les-spin-up", type=float, default=10.0, help="LES time before averaging")
    parser.add_argument("--les-time", type=float, default=20.0, help="LES averaging time, h/u_tau")
    parser.add_argument("--sample-interval", type=float, default=0.2, help="h/u_tau between snapshots")
    parser.add_argument("--cfl", type=float, default=0.5)
    parser.add_argument("--dns-dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--out", type=Path, default=Path("runs/validate_channel_les"))
    return parser.parse_args(argv)


def closure(name: str, c_s: float):
    """The closure behind a ``--models`` name, set up for the channel."""
    if name == "none":
        return NoModel()
    if name == "smagorinsky":
        return Smagorinsky(c_s=c_s, wall_damped=True)
    if name == "dynamic":
        return DynamicSmagorinsky(average_dims=(-3, -1))  # x-z planes; the channel supplies the test filter
    return WALE()


def filtered_velocity(dns: ChannelFlow, state, les: ChannelFlow) -> torch.Tensor:
    """The DNS velocity seen on the LES grid, (B, 3, nx, ny, nz): the Fourier modes the LES retains (its
    2/3 rule, a sharp cutoff) and every ``(dns.ny - 1) / (les.ny - 1)``-th Gauss-Lobatto point."""
    retained = ((les.nx - 1) // 3, (les.nz - 1) // 3)  # 3 |m| < n
    return wall_parallel_cutoff(dns.velocity(state).double(), (les.nx, les.ny, les.nz), retained)


def les_solver(name: str, args, dns: ChannelFlow) -> ChannelFlow:
    return ChannelFlow(
        tuple(args.les_grid),
        nu=dns.nu,
        lengths=(dns.lx, dns.lz),
        driving="pressure_gradient",
        pressure_gradient=dns.pressure_gradient,
        cfl=args.cfl,
        dtype=torch.float64,
        les=closure(name, args.cs),
    )


def run_dns(args, dns: ChannelFlow, state, coarse: ChannelFlow):
    """``(statistics of the DNS, statistics of the filtered DNS, steps, seconds)``."""
    full = ChannelStatisticsAccumulator.for_solver(dns)
    filtered = ChannelStatisticsAccumulator.for_solver(coarse)
    samples = math.floor(args.dns_time / args.sample_interval + 1e-9) + 1
    steps, started = 0, time.perf_counter()
    for index in range(samples):
        if index > 0:
            state, taken = dns.advance(state, args.sample_interval)
            steps += taken
        full.update(dns.velocity(state))
        filtered.update(filtered_velocity(dns, state, coarse))
        if index % 5 == 0 or index == samples - 1:
            print(
                f"DNS  t = {state.time:8.3f}  Re_tau {float(dns.re_tau(state)[0]):6.2f}  {steps} steps "
                f"({dns.operator_builds} operator builds)  {time.perf_counter() - started:7.1f} s",
                flush=True,
            )
    return full, filtered, steps, time.perf_counter() - started


def run_les(name: str, args, dns: ChannelFlow, initial) -> tuple[ChannelStatisticsAccumulator, dict]:
    solver = les_solver(name, args, dns)
    state = solver.regrid(initial, dns)
    accumulator = ChannelStatisticsAccumulator.for_solver(solver)
    start = state.time + args.les_spin_up
    samples = math.floor(args.les_time / args.sample_interval + 1e-9) + 1
    steps, started = 0, time.perf_counter()
    state, taken = solver.advance(state, args.les_spin_up)
    steps += taken
    for index in range(samples):
        if index > 0:
            state, taken = solver.advance(state, args.sample_interval)
            steps += taken
        accumulator.update(solver.velocity(state))
        if index % 25 == 0 or index == samples - 1:
            print(
                f"LES {name:12s} t = {state.time:8.3f} (averaging from {start:.2f})  "
                f"Re_tau {float(solver.re_tau(state)[0]):6.2f}  {steps} steps  "
                f"{time.perf_counter() - started:6.1f} s",
                flush=True,
            )
    info = {"steps": steps, "seconds": round(time.perf_counter() - started, 1)}
    nu_t = solver.eddy_viscosity(state).mean(dim=(0, 1, 3))  # (ny,) plane-averaged
    info["mean_nu_t_over_nu_max"] = float(nu_t.max()) / solver.nu
    return accumulator, info


def agreement(profiles: ChannelProfiles, target: ChannelProfiles) -> float:
    """Mean relative ``U+`` difference from ``target`` at its points with ``y+ >= 1`` (own wall units)."""
    mask = target.y_plus >= 1.0
    ours = profiles.interpolate("u_mean", target.y_plus[mask])
    return float(np.mean(np.abs(ours / target.u_mean[mask] - 1.0)))


def results_table(summaries: dict, columns: list[str], against: str) -> str:
    """Markdown table: each quantity for each column, with the relative difference from ``against``."""
    lines = ["| quantity | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for key, label in QUANTITIES:
        cells = []
        for column in columns:
            value, base = summaries[column][key], summaries[against][key]
            cells.append(f"{value:.3f}" if column == against else f"{value:.3f} ({value / base - 1:+.1%})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    error_key = "u_plus_error_vs_filtered" if against == "filtered DNS" else "u_plus_mean_relative_error"
    cells = ["" if column == against else f"{summaries[column][error_key]:.2%}" for column in columns]
    lines.append("| U+ mean relative error, y+ >= 1 | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(path: Path, profiles: dict[str, ChannelProfiles], reference: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = (
        ("u_mean", "U+"),
        ("u_rms", "u'+"),
        ("v_rms", "v'+ and w'+ (dotted)"),
        ("reynolds_shear", "-<u'v'>+"),
    )
    styles = {"Re180.prof": ("k", "--"), "DNS": ("grey", "-"), "filtered DNS": ("k", "-")}
    for axis, (name, label) in zip(axes.flat, panels):
        axis.plot(reference["y_plus"][1:], reference[name][1:], "k--", lw=1, label="Re180.prof")
        for index, (run, values) in enumerate(profiles.items()):
            colour, line = styles.get(run, (f"C{index}", "-"))
            inside = values.y_plus > 0
            axis.plot(
                values.y_plus[inside],
                getattr(values, name)[inside],
                line,
                color=colour,
                marker=".",
                label=run,
            )
            if name == "v_rms":
                axis.plot(values.y_plus[inside], values.w_rms[inside], ":", color=colour)
        if name == "v_rms":
            axis.plot(reference["y_plus"][1:], reference["w_rms"][1:], "k:", lw=1)
        axis.set(xscale="log" if name == "u_mean" else "linear", xlabel="y+", ylabel=label)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("Channel LES on the coarse grid vs the DNS filtered to it (Re_tau 180)")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    reference = read_reference(args.reference)
    dns_dtype = torch.float64 if args.dns_dtype == "float64" else torch.float32
    saved, state = ChannelFlow.load(args.dns_state, dtype=dns_dtype)
    parameters = {
        **saved.parameters(),
        "driving": "pressure_gradient",
        "pressure_gradient": 1.0,
        "cfl": args.cfl,
        "max_dt": None,
        "les": None,
    }
    dns = ChannelFlow(**parameters, dtype=dns_dtype)
    coarse = les_solver("none", args, dns)
    if (dns.lx, dns.lz) != (coarse.lx, coarse.lz) or (dns.ny - 1) % (coarse.ny - 1):
        raise ConfigError("les_grid", f"ny - 1 must divide the DNS's {dns.ny - 1}, got {coarse.ny - 1}")
    print(
        f"DNS {(dns.nx, dns.ny, dns.nz)} box {dns.lx:.4f} x 2 x {dns.lz:.4f} nu {dns.nu:.6g} from "
        f"{args.dns_state} at t = {state.time:.3f}; LES {tuple(args.les_grid)}",
        flush=True,
    )
    profiles: dict[str, ChannelProfiles] = {}
    info: dict[str, dict] = {}
    for name in args.models:
        accumulator, info[name] = run_les(name, args, dns, state)
        profiles[name] = accumulator.profiles()
    full, filtered, steps, seconds = run_dns(args, dns, state, coarse)
    profiles = {"DNS": full.profiles(), "filtered DNS": filtered.profiles(), **profiles}
    info["DNS"] = {"steps": steps, "seconds": round(seconds, 1)}

    summaries = {}
    for run, values in profiles.items():
        summary = compare(values, reference)
        summary["u_plus_error_vs_filtered"] = agreement(values, profiles["filtered DNS"])
        summaries[run] = {**summary, **info.get(run, {})}
    columns = list(profiles)
    filtered_table = results_table(summaries, ["filtered DNS", *args.models], "filtered DNS")
    reference_summary = {key: summaries["DNS"][f"{key}_reference"] for key, _ in QUANTITIES}
    reference_summary["u_plus_mean_relative_error"] = 0.0
    reference_table = results_table(
        {**summaries, "Re180.prof": reference_summary}, ["Re180.prof", *columns], "Re180.prof"
    )
    settings = {
        "DNS state": f"{args.dns_state} at t = {state.time:.3f}",
        "DNS grid": (dns.nx, dns.ny, dns.nz),
        "LES grid": tuple(args.les_grid),
        "box (Lx, Ly, Lz) / h": (round(dns.lx, 4), 2.0, round(dns.lz, 4)),
        "nu": dns.nu,
        "driving": "-dP/dx = 1 (pressure gradient)",
        "cfl": args.cfl,
        "DNS dtype": args.dns_dtype,
        "LES dtype": "float64",
        "DNS averaging / (h/u_tau)": args.dns_time,
        "LES spin-up, averaging / (h/u_tau)": (args.les_spin_up, args.les_time),
        "sample interval / (h/u_tau)": args.sample_interval,
        "Smagorinsky C_s (van Driest A+ = 26)": args.cs,
    }
    cost = "\n".join(
        f"| {run} | {values['steps']} | {values['seconds']} |"
        + (f" {values['mean_nu_t_over_nu_max']:.3f} |" if "mean_nu_t_over_nu_max" in values else " |")
        for run, values in info.items()
    )
    text = (
        "# Channel LES against the filtered DNS, Re_tau 180\n\n"
        + "\n".join(f"- {key}: {value}" for key, value in settings.items())
        + "\n\n## Against the DNS filtered to the LES grid (relative difference in brackets)\n\n"
        + filtered_table
        + "\n\n## Against Re180.prof (relative difference in brackets)\n\n"
        + reference_table
        + "\n\n## Cost\n\n| run | steps | wall time / s | max plane-mean nu_t / nu at the end |\n"
        + "|---|---|---|---|\n"
        + cost
        + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "results.md", text)
    write_text_atomic(
        args.out / "summary.json",
        json.dumps({"settings": settings, "runs": summaries}, indent=2, default=str),
    )
    plot(args.out / "profiles.png", profiles, reference)
    print("\n" + text, flush=True)
    print(f"wrote {args.out / 'results.md'}, {args.out / 'profiles.png'}", flush=True)
    return summaries


if __name__ == "__main__":
    main()
