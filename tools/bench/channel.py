"""Benchmark the channel-flow DNS (a script, not a test): steps per second against the periodic-box solver.

Measures :class:`sciml.physics.channel.ChannelFlow` (Fourier x Chebyshev, Kim-Moin-Moser velocity-vorticity,
three-substage Spalart-Moser-Rogers step) at ``--shapes`` (default 32x33x32 and 64x65x64) in float32 and
float64, on the CPU (``torch.set_num_threads(--threads)``) and on CUDA when it is available. Baseline in the
same run: the periodic-box pseudo-spectral solver :class:`sciml.physics.navier_stokes.NavierStokes3D` on a
grid of exactly the same shape (so the same number of points), box ``(Lx, 2, Lz)``, rotational form,
2/3-rule dealiasing, integrating-factor viscosity. Its time scheme is ``--periodic-scheme`` (default
``rk3``: three nonlinear evaluations per step, like the channel's three substages; ``rk4`` is the solver's
own default). The ratio is channel / periodic of grid points x steps per second (> 1: the channel is faster
per point-step). A second comparison times CFL-adaptive stepping, ``ChannelFlow.advance(dt=None)``, against
the same steps with a new ``dt`` every step (what an exact CFL step costs: every new ``dt`` builds the
per-substage implicit operators).

Both solvers start from a seeded divergence-free flow (perturbed Poiseuille flow; a random isotropic field)
and step with a fixed ``dt``: their own CFL limit at the start (``stable_dt``), so no step rebuilds cached
operators. Setup is reported separately and excluded from the rates: construction, and the first step
(the channel builds and caches its per-substage ``(modes, ny, ny)`` implicit operators for a new ``dt``; the
periodic solver its integrating factors). Then ``--warmup`` untimed steps, then ``--repeats`` timed samples
of ``--steps`` steps each, the two solvers alternating sample by sample (which goes first alternates too);
the rates use the median sample. On CUDA every sample is bracketed by ``torch.cuda.synchronize``.

Every (device, shape, dtype) configuration runs in a fresh subprocess with ``OMP_WAIT_POLICY=PASSIVE``
unless the environment sets it (spinning OpenMP waiters are slow on a shared machine; see
``tools/bench/ifactformer.py``). Timings on shared machines are noisy: compare the ratios, measured in the
same run, not the seconds.

    .venv/bin/python tools/bench/channel.py [--shapes 32x33x32 64x65x64] [--dtypes float32 float64]
        [--devices cpu cuda] [--threads 2] [--repeats 7] [--steps 4] [--json out.json]

JSON goes to stdout (and ``--json``), the table to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

from machine import cpu_name  # tools/bench/machine.py: scripts run from this folder

DEFAULT_SHAPES = ("32x33x32", "64x65x64")
DTYPES = ("float32", "float64")
# Channel with Re = U_c h / nu = 2000 (a transitional-flow setting); the rates hardly depend on it.
NU = 5e-4
LENGTHS = (4.0 * math.pi, 4.0 * math.pi / 3.0)  # ChannelFlow's default (Lx, Lz)
AMPLITUDE = 0.1
PERIODIC_ENERGY = 0.5 * AMPLITUDE**2 * 3  # random field with rms velocity ~ the channel perturbation


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected NXxNYxNZ such as 32x33x32, got {text!r}")
    shape = tuple(int(p) for p in parts)
    if shape[1] < 5 or min(shape) < 2:
        raise argparse.ArgumentTypeError(f"need ny >= 5 and every size >= 2, got {text!r}")
    return shape


# ---------------------------------------------------------------------------------------------- worker
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, run) -> float:
    _sync(device)
    start = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - start


def _channel(spec: dict, device, dtype) -> dict:
    import torch

    from sciml.physics.channel import ChannelFlow

    holder = {}

    def construct():
        holder["solver"] = ChannelFlow(tuple(spec["shape"]), NU, lengths=LENGTHS, dtype=dtype, device=device)
        generator = torch.Generator().manual_seed(0)
        holder["state"] = holder["solver"].perturbed_state(spec["batch"], AMPLITUDE, generator=generator)

    construct_s = _timed(device, construct)
    solver = holder["solver"]
    dt = solver.stable_dt(holder["state"])

    def step():
        holder["state"] = solver.step(holder["state"], dt)

    def finite() -> bool:
        state = holder["state"]
        return bool(
            torch.isfinite(torch.view_as_real(state.phi)).all() and torch.isfinite(state.mean_u).all()
        )

    return dict(solver=solver, step=step, dt=dt, construct_s=construct_s, finite=finite)


def _periodic(spec: dict, device, dtype) -> dict:
    import torch

    from sciml.physics.initial_conditions import random_isotropic
    from sciml.physics.navier_stokes import NavierStokes3D
    from sciml.physics.spectral import SpectralGrid

    shape = tuple(spec["shape"])
    lengths = (LENGTHS[0], 2.0, LENGTHS[1])  # the channel's box, the wall-normal direction made periodic
    holder = {}

    def construct():
        grid = SpectralGrid(shape, lengths=lengths, device=device, dtype=dtype)
        holder["solver"] = solver = NavierStokes3D(grid, NU, scheme=spec["periodic_scheme"])
        generator = torch.Generator().manual_seed(0)
        u0 = random_isotropic(
            SpectralGrid(shape, lengths=lengths, dtype=dtype),
            energy=PERIODIC_ENERGY,
            generator=generator,
            batch_shape=(spec["batch"],),
        )
        holder["u_hat"] = solver.to_spectral(u0.to(device))

    construct_s = _timed(device, construct)
    solver = holder["solver"]
    dt = solver.stable_dt(holder["u_hat"])

    def step():
        holder["u_hat"] = solver.step(holder["u_hat"], dt)

    def finite() -> bool:
        return bool(torch.isfinite(torch.view_as_real(holder["u_hat"])).all())

    return dict(solver=solver, step=step, dt=dt, construct_s=construct_s, finite=finite)


def _adaptive_steps(spec: dict, device, dtype) -> dict:
    """CFL-adaptive stepping: ``ChannelFlow.advance(dt=None)`` (the step on a geometric ladder, cached
    implicit operators reused) against the same steps with a new ``dt`` every step (each one builds the
    operators, as an exact CFL step would), alternating sample by sample from the same flow."""
    import torch

    from sciml.physics.channel import ChannelFlow

    solver = ChannelFlow(tuple(spec["shape"]), NU, lengths=LENGTHS, dtype=dtype, device=device)
    initial = solver.perturbed_state(spec["batch"], AMPLITUDE, generator=torch.Generator().manual_seed(0))
    base = solver.stable_dt(initial)
    state = {"ladder": initial, "new_dt": initial}
    jitter = iter(range(1, 1 << 30))

    def ladder():
        state["ladder"], _ = solver.advance(state["ladder"], 1e9, max_steps=spec["steps"])

    def new_dt():
        for _ in range(spec["steps"]):
            state["new_dt"] = solver.step(state["new_dt"], base * (1.0 - 1e-7 * next(jitter)))

    ladder()  # builds the first rung's operators, like the first step of the main comparison
    samples = {"ladder": [], "new_dt": []}
    for repeat in range(spec["repeats"]):
        order = (("ladder", ladder), ("new_dt", new_dt))
        for name, run in order if repeat % 2 == 0 else order[::-1]:
            samples[name].append(_timed(device, run) / spec["steps"])
    ladder_s, new_dt_s = statistics.median(samples["ladder"]), statistics.median(samples["new_dt"])
    return dict(
        ladder_steps_per_s=1.0 / ladder_s,
        new_dt_steps_per_s=1.0 / new_dt_s,
        speedup=new_dt_s / ladder_s,
        ladder_times_s=samples["ladder"],
        new_dt_times_s=samples["new_dt"],
        operator_builds=solver.operator_builds,
    )


def run_worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    dtype = {"float32": torch.float32, "float64": torch.float64}[spec["dtype"]]
    solvers = {"channel": _channel(spec, device, dtype), "periodic": _periodic(spec, device, dtype)}
    result = {}
    for name, solver in solvers.items():
        first_step_s = _timed(device, solver["step"])  # builds and caches the dt-dependent operators
        for _ in range(spec["warmup"]):
            solver["step"]()
        result[name] = dict(dt=solver["dt"], construct_s=solver["construct_s"], first_step_s=first_step_s)

    def sample(name):
        run = solvers[name]["step"]

        def steps():
            for _ in range(spec["steps"]):
                run()

        return _timed(device, steps) / spec["steps"]

    samples = {"channel": [], "periodic": []}
    for repeat in range(spec["repeats"]):
        order = ("channel", "periodic") if repeat % 2 == 0 else ("periodic", "channel")
        for name in order:
            samples[name].append(sample(name))

    points = spec["batch"] * math.prod(spec["shape"])
    for name, entry in result.items():
        times = samples[name]
        median = statistics.median(times)
        entry.update(
            step_times_s=times,
            step_median_s=median,
            step_min_s=min(times),
            steps_per_s=1.0 / median,
            point_steps_per_s=points / median,
            # the first step minus a steady one: what building the cached operators costs
            operator_build_s=max(0.0, entry["first_step_s"] - median),
            setup_s=entry["construct_s"] + entry["first_step_s"],
            finite=solvers[name]["finite"](),
        )
    result["channel"]["n_modes"] = solvers["channel"]["solver"].n_modes
    result["adaptive"] = _adaptive_steps(spec, device, dtype)
    pairs = [p / c for c, p in zip(samples["channel"], samples["periodic"])]
    result["ratio"] = dict(
        point_steps_per_s=result["channel"]["point_steps_per_s"] / result["periodic"]["point_steps_per_s"],
        paired_median=statistics.median(pairs),
    )
    result["points"] = points
    return result


# ---------------------------------------------------------------------------------------------- driver
def _worker_env() -> dict:
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}


def spawn(spec: dict) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=_worker_env())
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"worker failed (exit {done.returncode}): {' | '.join(tail)}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def config_name(spec: dict) -> str:
    return f"{spec['device']}/{'x'.join(map(str, spec['shape']))}/{spec['dtype']}"


def print_table(results: dict[str, dict], meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"channel DNS vs periodic box ({meta['threads']} threads, batch {meta['batch']}, "
        f"periodic {meta['periodic_scheme']}, median of {meta['repeats']} x {meta['steps']} steps, "
        f"load {meta['load']})"
    )
    table = Table(title=title)
    columns = (
        "configuration",
        "channel steps/s",
        "channel Mpt*steps/s",
        "periodic steps/s",
        "periodic Mpt*steps/s",
        "ratio ch/per",
        "paired",
        "channel setup [s]",
        "(ops build)",
        "periodic setup [s]",
        "CFL steps/s: ladder",
        "new dt each step",
    )
    for column in columns:
        first = column == "configuration"
        table.add_column(column, justify="left" if first else "right", no_wrap=first)
    for name, entry in results.items():
        if "error" in entry:
            table.add_row(name, *["-"] * (len(columns) - 2), entry["error"])
            continue
        channel, periodic = entry["channel"], entry["periodic"]
        table.add_row(
            name,
            f"{channel['steps_per_s']:.2f}",
            f"{channel['point_steps_per_s'] / 1e6:.3f}",
            f"{periodic['steps_per_s']:.2f}",
            f"{periodic['point_steps_per_s'] / 1e6:.3f}",
            f"{entry['ratio']['point_steps_per_s']:.3f}",
            f"{entry['ratio']['paired_median']:.3f}",
            f"{channel['setup_s']:.3f}",
            f"{channel['operator_build_s']:.3f}",
            f"{periodic['setup_s']:.3f}",
            f"{entry['adaptive']['ladder_steps_per_s']:.2f}",
            f"{entry['adaptive']['new_dt_steps_per_s']:.2f}",
        )
    console = Console(stderr=True, width=200)
    console.print(table)
    console.print(
        "ratio ch/per: channel / periodic grid points x steps per second (> 1: channel faster); "
        "paired: median over samples of the ratio of adjacent channel and periodic samples. "
        "setup: construction + first step (excluded from the rates); ops build: first step minus a "
        "steady step. CFL steps/s: ChannelFlow.advance(dt=None), whose step sits on a geometric ladder so "
        "the cached implicit operators are reused, against a new dt every step (operators rebuilt each step)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes", nargs="+", type=parse_shape, default=[parse_shape(s) for s in DEFAULT_SHAPES]
    )
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument(
        "--devices",
        nargs="+",
        choices=("cpu", "cuda"),
        default=None,
        help="default: cpu, and cuda if available",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every worker")
    parser.add_argument("--batch", type=int, default=1, help="flows advanced together")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (setup) step")
    parser.add_argument("--repeats", type=int, default=7, help="timed samples per solver (median)")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed sample")
    parser.add_argument("--periodic-scheme", choices=("rk3", "rk4"), default="rk3")
    parser.add_argument("--json", default=None, help="also write the JSON result to this path")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0
    if min(args.threads, args.batch, args.repeats, args.steps) < 1 or args.warmup < 0:
        parser.error("--threads, --batch, --repeats and --steps must be >= 1, --warmup >= 0")

    import torch

    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    if "cuda" in devices and not torch.cuda.is_available():
        parser.error("--devices cuda: CUDA is not available")
    common = dict(
        threads=args.threads,
        batch=args.batch,
        warmup=args.warmup,
        repeats=args.repeats,
        steps=args.steps,
        periodic_scheme=args.periodic_scheme,
    )
    plan = [
        dict(common, device=device, shape=list(shape), dtype=dtype)
        for device in devices
        for shape in args.shapes
        for dtype in args.dtypes
    ]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    results = {}
    for spec in plan:
        name = config_name(spec)
        print(f"[bench] {name}", file=sys.stderr, flush=True)
        results[name] = spawn(spec)
    meta = dict(
        devices=[d if d == "cpu" else torch.cuda.get_device_name() for d in devices],
        cpu=cpu_name(),
        torch=torch.__version__,
        load=f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
        wall_s=time.perf_counter() - start,
        omp_wait_policy=_worker_env()["OMP_WAIT_POLICY"],
        nu=NU,
        lengths_channel=LENGTHS,
        lengths_periodic=(LENGTHS[0], 2.0, LENGTHS[1]),
        **common,
    )
    report = {"meta": meta, "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        from sciml.core.atomic import write_text_atomic

        write_text_atomic(args.json, text + "\n")
    print_table(results, meta)
    return 0 if all("error" not in entry for entry in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
