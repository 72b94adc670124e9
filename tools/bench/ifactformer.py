"""Benchmark IFactFormer-m (a script, not a test): our block against a reference-style block, and the
surrogate against the DNS solver.

Measures, at the paper configuration (32 x 33 x 16 grid, dim 96, 5 heads x 96, kernel multiplier 3,
10 tied applications) with ``torch.set_num_threads(2)`` by default:

* train step (forward + backward + AdamW step) time and peak memory, batch 1 and 4: ``ours`` (defaults,
  ``recompute_mixing=True``), ``ours+ckpt`` (``checkpoint_block=True``), ``ours/store`` (batch 1,
  ``recompute_mixing=False``: the axis products are kept for backward);
* inference time per step (one forward, no autograd);
* a baseline in the same run: the same weights pushed through a reference-style block (the data flow of
  the authors' code: full-field projections before averaging, materialized head permutes, einsum mode
  products, concatenation, ``InstanceNorm3d`` on a channel-first copy) -- the ratios are ours/baseline;
* surrogate vs solver: one surrogate step on the 32^3 LES grid against the pseudo-spectral DNS
  (:class:`sciml.physics.navier_stokes.NavierStokes3D`, the forced-HIT settings of
  :mod:`sciml.physics.hit`) advancing the same physical time (the dataset's ``snapshot_dt``) at 64^3 with
  its CFL time step.

Every configuration runs in a fresh subprocess. Time: wall clock and process CPU time (all threads) per
step; configurations are interleaved over ``--rounds`` rounds and the minimum is reported (shared
machines are noisy: compare the ratios, measured in the same run, not the seconds). Memory: "RSS peak" is
the step's ``ru_maxrss`` minus the resident size before it (interpreter, torch, model, optimizer, data);
"live peak" is the same from a one-step probe run with a fixed 1 MiB glibc mmap threshold, which tracks
the live tensors rather than what the allocator keeps cached. On a GPU, ``torch.cuda.max_memory_allocated``.
Workers run with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (see ``_worker_env``).

    .venv/bin/python tools/bench/ifactformer.py [--quick] [--device cpu|cuda] [--json out.json]

JSON goes to stdout (and ``--json``), the table to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

from machine import cpu_name  # tools/bench/machine.py: scripts run from this folder

from sciml.data.generate import DEFAULTS as DATASET_DEFAULTS

PAPER = dict(
    in_channels=3,
    out_channels=3,
    in_steps=1,
    dim=96,
    heads=5,
    dim_head=96,
    kernel_multiplier=3,
    n_layer=10,
    grid_shape=(32, 33, 16),
    domain_lengths=(4 * math.pi, 2.0, 4 * math.pi / 3),
    coordinates="linspace",
)
# One surrogate step on a 32^3 LES grid of the forced-HIT dataset, against the DNS that makes it, over the
# dataset's snapshot interval (sciml.data.generate.DEFAULTS).
SURROGATE = dict(PAPER, grid_shape=(32, 32, 32), domain_lengths=(2 * math.pi,) * 3, coordinates="periodic")
SNAPSHOT_DT = DATASET_DEFAULTS["snapshot_dt"]
N_DNS = DATASET_DEFAULTS["n_dns"]


# ---------------------------------------------------------------------------------------------- baseline
def reference_style_block(block, u, coords):
    """The IFactFormer-m/-o block written the way the reference code computes it, with ``block``'s weights.

    Same mathematics as :class:`sciml.nn.factorized_attention.FactorizedAttentionBlock` (the bench checks
    the outputs agree); only the data flow differs.
    """
    import torch
    import torch.nn.functional as F

    b, nx, ny, nz, _ = u.shape
    heads, dim_head = block.heads, block.dim_head
    h = block.norm(u)
    v = block.to_v(h)
    t = block.to_in(h)
    fields = [t, t.permute(0, 2, 1, 3, 4), t.permute(0, 3, 1, 2, 4)]  # reference: Rearrange per axis
    kernels = []
    for axis in range(3):
        integral, kernel = block.integrals[axis], block.kernels[axis]
        # full-field projection, then the mean over the two other axes
        phi = integral.mlp(integral.norm(integral.proj(fields[axis]).mean(dim=(2, 3))))
        n = phi.shape[1]
        q = kernel.to_q(phi).view(b, n, heads, -1).permute(0, 2, 1, 3)
        k = kernel.to_k(phi).view(b, n, heads, -1).permute(0, 2, 1, 3)
        theta = torch.outer(
            coords[axis] * (kernel.rotary.scale / kernel.rotary.min_freq), kernel.rotary.inv_freq
        )
        freqs = torch.cat([theta, theta], dim=-1)
        q1, q2 = q.chunk(2, dim=-1)
        k1, k2 = k.chunk(2, dim=-1)
        q = q * freqs.cos() + torch.cat([-q2, q1], dim=-1) * freqs.sin()
        k = k * freqs.cos() + torch.cat([-k2, k1], dim=-1) * freqs.sin()
        kernels.append(torch.einsum("bhid,bhjd->bhij", q, k) * kernel.scaling)
    u_phi = v.view(b, nx, ny, nz, heads, dim_head).permute(0, 4, 1, 2, 3, 5)  # b h i l r c
    if block.variant == "m":
        u_phi = torch.cat(
            [
                torch.einsum("bhij,bhjmsc->bhimsc", kernels[0], u_phi),
                torch.einsum("bhlm,bhimsc->bhilsc", kernels[1], u_phi),
                torch.einsum("bhrs,bhilsc->bhilrc", kernels[2], u_phi),
            ],
            dim=5,
        )
    else:
        u_phi = torch.einsum("bhij,bhjmsc->bhimsc", kernels[0], u_phi)
        u_phi = torch.einsum("bhlm,bhimsc->bhilsc", kernels[1], u_phi)
        u_phi = torch.einsum("bhrs,bhilsc->bhilrc", kernels[2], u_phi)
    channels = u_phi.shape[-1]
    u_phi = u_phi.permute(0, 1, 5, 2, 3, 4).reshape(b, heads * channels, nx, ny, nz)  # b (h c) i l r
    u_phi = F.instance_norm(u_phi, eps=block.norm_eps).permute(0, 2, 3, 4, 1)  # b i l r (h c)
    return block.out_fc(F.gelu(block.out_proj(u_phi)))


# ---------------------------------------------------------------------------------------------- worker
def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(spec: dict, device):
    import torch

    from sciml.models.ifactformer import IFactFormer

    torch.manual_seed(0)
    model = IFactFormer(**spec["model"], **spec.get("options", {})).to(device)
    if spec.get("impl") == "baseline":
        model.block.forward = functools.partial(reference_style_block, model.block)
    return model


def _measure(spec: dict, device, run) -> dict:
    """Wall and CPU time of ``run`` over warmup + repeats, and the peak memory of the process."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
    else:
        before = _rss_mb()
    wall, cpu = [], []
    for _ in range(spec["warmup"] + spec["repeats"]):
        _sync(device)
        start, start_cpu = time.perf_counter(), _cpu_s()
        run()
        _sync(device)
        wall.append(time.perf_counter() - start)
        cpu.append(_cpu_s() - start_cpu)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    skip = spec["warmup"]
    return dict(times_s=wall[skip:], cpu_s=cpu[skip:], peak_mb=peak, step_peak_mb=peak - before)


def _model_worker(spec: dict) -> dict:
    import torch

    device = torch.device(spec["device"])
    model = _build(spec, device)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(spec["batch"], 3, 1, *model.grid_shape, generator=generator).to(device)
    target = torch.randn(spec["batch"], 3, *model.grid_shape, generator=generator).to(device)
    if spec["kind"] == "train":
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)

        def run():
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x), target)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def run():
            with torch.inference_mode():
                model(x)

    result = _measure(spec, device, run)
    if spec["kind"] == "infer" and spec.get("impl") == "baseline":
        # the baseline must compute the same function as ours
        ours = _build(dict(spec, impl="ours"), device).eval()
        with torch.inference_mode():
            result["max_abs_diff_vs_ours"] = float((model(x) - ours(x)).abs().max())
    return result


def _solver_worker(spec: dict) -> dict:
    import torch

    from sciml.physics.forcing import BandForcing
    from sciml.physics.hit import (
        DEFAULT_INJECTION_RATE,
        DEFAULT_K_FORCING,
        STATIONARY_ENERGY,
        default_viscosity,
    )
    from sciml.physics.initial_conditions import model_spectrum_for, random_isotropic
    from sciml.physics.navier_stokes import NavierStokes3D
    from sciml.physics.spectral import SpectralGrid

    dtype = {"float64": torch.float64, "float32": torch.float32}[spec["dtype"]]
    device = torch.device(spec["device"])
    n = spec["n_dns"]
    nu = default_viscosity(n, DEFAULT_INJECTION_RATE)
    grid = SpectralGrid(n, device="cpu", dtype=dtype)
    spectrum = model_spectrum_for(
        DEFAULT_INJECTION_RATE, nu, integral_length=STATIONARY_ENERGY**1.5 / DEFAULT_INJECTION_RATE
    )
    generator = torch.Generator().manual_seed(0)
    u0 = random_isotropic(grid, energy=STATIONARY_ENERGY, spectrum=spectrum, generator=generator).to(device)
    solver = NavierStokes3D(
        SpectralGrid(n, device=device, dtype=dtype),
        nu,
        forcing=BandForcing(DEFAULT_INJECTION_RATE, DEFAULT_K_FORCING),
        cfl=1.0,
    )
    state = {"u_hat": solver.to_spectral(u0), "steps": []}

    def run():
        state["u_hat"], n_steps = solver.advance(state["u_hat"], spec["duration"])
        state["steps"].append(n_steps)

    result = _measure(spec, device, run)
    result.update(steps=state["steps"][spec["warmup"] :], nu=nu)
    return result


def run_worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    if spec["kind"] == "solver":
        return _solver_worker(spec)
    return _model_worker(spec)


# ---------------------------------------------------------------------------------------------- driver
def _available_gb() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return math.inf


# Rough activation memory per sample of a paper-configuration train step (GB, measured on CPU), used
# to avoid starting a run that would push a shared machine into swapping or the OOM killer.
_TRAIN_GB_PER_SAMPLE = {"baseline": 4.3, "ours/store": 1.8, "ours": 0.9, "ours+ckpt": 0.4}


def _train_spec(common: dict, label: str, batch: int, repeats: int) -> dict:
    impl = "baseline" if label == "baseline" else "ours"
    options = {
        "baseline": {},
        "ours": {},
        "ours+ckpt": {"checkpoint_block": True},
        "ours/store": {"recompute_mixing": False},
    }[label]
    return dict(
        common,
        name=f"train/{label}/b{batch}",
        label=label,
        kind="train",
        impl=impl,
        options=options,
        batch=batch,
        model=PAPER,
        warmup=1,
        repeats=repeats,
    )


def build_plan(args) -> list[dict]:
    common = dict(device=args.device, threads=args.threads)
    repeats = 1 if args.quick else 2
    plan = [
        _train_spec(common, label, 1, repeats) for label in ("ours", "ours+ckpt", "ours/store", "baseline")
    ]
    if not args.quick:
        plan += [_train_spec(common, label, 4, repeats) for label in ("ours", "ours+ckpt", "baseline")]
    for impl in ("ours", "baseline"):
        infer = dict(kind="infer", impl=impl, batch=1, model=PAPER, warmup=1, repeats=repeats + 1)
        plan.append(dict(common, name=f"infer/{impl}/b1", **infer))
    surrogate = dict(kind="infer", impl="ours", batch=1, model=SURROGATE, warmup=1, repeats=repeats + 1)
    plan.append(dict(common, name="surrogate/32^3", **surrogate))
    for dtype in ("float64", "float32"):
        solver = dict(
            kind="solver", n_dns=N_DNS, dtype=dtype, duration=SNAPSHOT_DT, warmup=1, repeats=repeats
        )
        plan.append(dict(common, name=f"solver/{N_DNS}^3/{dtype}", **solver))
    return plan


def spawn(spec: dict, memory_limit_gb: float, env: dict | None = None) -> dict:
    if spec["kind"] == "train" and spec["device"] == "cpu":
        need = _TRAIN_GB_PER_SAMPLE[spec["label"]] * spec["batch"] + 0.5
        if need > memory_limit_gb:
            return {
                "error": f"not run: needs ~{need:.0f} GB, limit {memory_limit_gb:.0f} GB (--memory-limit-gb)"
            }
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env={**_worker_env(), **(env or {})})
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"worker failed (exit {done.returncode}): {' | '.join(tail)}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker_env() -> dict:
    # On a shared, loaded machine, OpenMP threads that spin while waiting for each other made 2-thread
    # steps 2-3x slower than 1-thread ones (and a 15 ms tiny forward take ~1 s); sleeping waiters do not.
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}


# glibc keeps freed blocks below its (adaptive, up to 32 MiB) mmap threshold in the heap, so the RSS peak
# depends on allocation order. A fixed 1 MiB threshold returns every large buffer to the OS on free: the
# RSS peak then tracks the live tensors. Memory probes run one step with it.
_LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**20)}


def aggregate(plan: list[dict], runs: dict[str, list[dict]], probes: dict[str, dict]) -> dict[str, dict]:
    summary = {}
    for spec in plan:
        good = [r for r in runs[spec["name"]] if "error" not in r]
        if not good:
            summary[spec["name"]] = {"error": runs[spec["name"]][-1]["error"]}
            continue
        times = [t for r in good for t in r["times_s"]]
        cpu = [t for r in good for t in r["cpu_s"]]
        entry = dict(
            time_s=min(times),
            time_median_s=statistics.median(times),
            cpu_s=min(cpu),
            samples=len(times),
            peak_mb=max(r["peak_mb"] for r in good),
            step_peak_mb=max(r["step_peak_mb"] for r in good),
        )
        probe = probes.get(spec["name"], {})
        if "step_peak_mb" in probe:
            entry["live_step_peak_mb"] = probe["step_peak_mb"]
        for key in ("steps", "nu", "max_abs_diff_vs_ours"):
            if key in good[0]:
                entry[key] = good[0][key]
        summary[spec["name"]] = entry
    return summary


def ratios(summary: dict[str, dict]) -> dict[str, float]:
    out = {}

    def ratio(name, numerator, denominator, key):
        a, b = summary.get(numerator, {}), summary.get(denominator, {})
        if key in a and key in b and b[key] > 0:
            out[name] = a[key] / b[key]

    for batch in (1, 4):
        base = f"train/baseline/b{batch}"
        for label in ("ours", "ours+ckpt", "ours/store"):
            ours = f"train/{label}/b{batch}"
            ratio(f"train wall time {label} / baseline, b{batch}", ours, base, "time_s")
            ratio(f"train CPU time {label} / baseline, b{batch}", ours, base, "cpu_s")
            ratio(f"train live memory {label} / baseline, b{batch}", ours, base, "live_step_peak_mb")
            ratio(f"train RSS peak {label} / baseline, b{batch}", ours, base, "step_peak_mb")
    ratio("inference wall time ours / baseline, b1", "infer/ours/b1", "infer/baseline/b1", "time_s")
    ratio("inference CPU time ours / baseline, b1", "infer/ours/b1", "infer/baseline/b1", "cpu_s")
    for dtype in ("float64", "float32"):
        solver = f"solver/{N_DNS}^3/{dtype}"
        ratio(f"DNS {N_DNS}^3 {dtype} / surrogate, wall time per dt", solver, "surrogate/32^3", "time_s")
    return out


def print_table(summary: dict[str, dict], derived: dict[str, float], meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"IFactFormer-m benchmark ({meta['device']}, {meta['threads']} threads, load {meta['load']})"
    table = Table(title=title)
    columns = (
        "configuration",
        "wall [s]",
        "wall median",
        "CPU [s]",
        "RSS peak [MB]",
        "live peak [MB]",
        "note",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("configuration", "note") else "right")
    for name, entry in summary.items():
        if "error" in entry:
            table.add_row(name, "-", "-", "-", "-", "-", entry["error"])
            continue
        note = ""
        if "steps" in entry:
            note = f"{entry['steps'][0]} RK4 steps over dt = {SNAPSHOT_DT}"
        if "max_abs_diff_vs_ours" in entry:
            note = f"max |baseline - ours| = {entry['max_abs_diff_vs_ours']:.1e}"
        live = entry.get("live_step_peak_mb")
        table.add_row(
            name,
            f"{entry['time_s']:.3f}",
            f"{entry['time_median_s']:.3f}",
            f"{entry['cpu_s']:.2f}",
            f"{entry['step_peak_mb']:.0f}",
            "-" if live is None else f"{live:.0f}",
            note,
        )
    ratio_table = Table(title="ratios (< 1: ours is faster / leaner)")
    ratio_table.add_column("ratio")
    ratio_table.add_column("value", justify="right")
    for name, value in derived.items():
        ratio_table.add_row(name, f"{value:.3f}")
    console = Console(stderr=True, width=160)
    console.print(table)
    console.print(ratio_table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every worker")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 2, quick 1)")
    parser.add_argument("--quick", action="store_true", help="batch 1 only, one round, one timed repeat")
    parser.add_argument("--json", default=None, help="also write the JSON result to this path")
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=None,
        help="skip CPU train runs estimated to need more (default: half of MemAvailable)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0

    import torch

    memory_limit = args.memory_limit_gb if args.memory_limit_gb is not None else 0.5 * _available_gb()
    plan = build_plan(args)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {spec["name"]: [] for spec in plan}
    probes: dict[str, dict] = {}
    for round_index in range(rounds):
        for spec in plan:
            print(f"[round {round_index + 1}/{rounds}] {spec['name']}", file=sys.stderr, flush=True)
            runs[spec["name"]].append(spawn(spec, memory_limit))
            if round_index == 0 and spec["device"] == "cpu" and spec["kind"] != "solver":
                probe = dict(spec, warmup=0, repeats=1)
                probes[spec["name"]] = spawn(probe, memory_limit, env=_LIVE_MEMORY_ENV)
    summary = aggregate(plan, runs, probes)
    derived = ratios(summary)
    meta = dict(
        device=args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        cpu=cpu_name(),
        threads=args.threads,
        rounds=rounds,
        quick=args.quick,
        load=f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
        torch=torch.__version__,
        omp_wait_policy=_worker_env()["OMP_WAIT_POLICY"],
        memory_limit_gb=memory_limit,
        paper_config=PAPER,
        surrogate_config=SURROGATE,
        solver=dict(n_dns=N_DNS, duration=SNAPSHOT_DT, cfl=1.0, scheme="rk4", forcing="band P=0.1, |k|<=2"),
    )
    report = {"meta": meta, "results": summary, "ratios": derived, "runs": runs, "memory_probes": probes}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        from sciml.core.atomic import write_text_atomic

        write_text_atomic(args.json, text + "\n")
    print_table(summary, derived, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
