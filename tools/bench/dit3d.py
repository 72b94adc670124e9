"""Benchmark DiT-3D (a script, not a test): network cost at the paper size, and samplers on trained weights.

1. Network, DiT-S/4 at voxel 32 with 2048 points (random weights; timings do not depend on them), batch 4
   and 16, ``torch.set_num_threads(--threads)``: training step (forward, backward, AdamW), denoising
   forward (no autograd), peak memory, parameter count. Baseline in the same run: the same weights with
   attention written out as ``softmax(q k^T / sqrt(d)) v`` (what the official code runs through timm on
   torch 1.7) instead of ``scaled_dot_product_attention``; ratios are ours / baseline.
2. Sampling, on the EMA weights of a trained checkpoint (default: the newest ``last.ckpt`` of
   ``configs/dit3d.yaml`` under ``runs/dit3d``): wall time, network evaluations (NFE) and the 1-NNA
   (Chamfer and EMD; 50% is ideal) against the test shapes, for 1000-step DDPM, DDIM and DPM-Solver++(2M)
   at ``--steps`` steps, each with and without Taylor feature caching. One generated shape per test shape
   (the full-test-set protocol), the same seed for every sampler.
3. Evaluation cost of the full protocol at the paper's scale (``--eval-shapes`` 1000 generated x 1000
   reference shapes of ``--eval-points`` 2048): seconds per distance pair measured on a sample of pairs of
   synthetic chairs and airplanes (``--cd-pairs`` / ``--emd-pairs`` per side, squared), through
   ``pairwise_distances`` as the task calls it, then multiplied by the protocol's pair count per distance,
   S R + S (S - 1) / 2 + R (R - 1) / 2 = 1,999,000 for 1000 x 1000. EMD uses the method the task picks on
   that device: exact (Hungarian, ``--threads`` threads) on the CPU, Sinkhorn + auction on a GPU. The CPU is
   always measured, a GPU when CUDA is available. With W processes each computes 1 / W of the pairs.

Each measurement repeats ``--repeats`` times and keeps the minimum (shared machines are noisy: compare the
ratios from one run, not the seconds). Memory on CPU is the growth of the process's peak RSS during the
first repeat of each configuration, which runs in a fresh subprocess; on CUDA ``max_memory_allocated``.

    .venv/bin/python tools/bench/dit3d.py [--device cpu|cuda] [--ckpt PATH] [--quick] [--json out.json]
    .venv/bin/python tools/bench/dit3d.py --no-network --no-sampling   # only the evaluation cost

JSON goes to stdout (and ``--json``), the tables to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def _explicit_attention(q, k, v, attn_mask=None, **_):
    weights = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if attn_mask is not None:
        weights = weights.masked_fill(~attn_mask, float("-inf"))
    return weights.softmax(dim=-1) @ v


def _peak_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def network_worker(spec: dict) -> dict:
    """One configuration in this (fresh) process: returns times, memory, parameter counts."""
    from sciml.diffusion import GaussianDiffusion
    from sciml.models.dit3d import DiT3D
    from sciml.nn import attention

    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    torch.manual_seed(0)
    if spec["attention"] == "explicit":
        attention.F.scaled_dot_product_attention = _explicit_attention  # the baseline's attention
    net = DiT3D(size="S", patch_size=4, voxel_size=32, num_classes=1).to(device)
    diffusion = GaussianDiffusion.from_schedule()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(spec["batch"], 2048, 3, device=device)
    labels = torch.zeros(spec["batch"], dtype=torch.long, device=device)
    t = torch.randint(0, 1000, (spec["batch"],), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")

    def train_step():
        with autocast:
            loss = diffusion.training_loss(net, x, labels).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def forward():
        with autocast:
            net(x, t, labels)

    def timed(function) -> float:
        best = float("inf")
        for _ in range(spec["repeats"]):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            function()
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        return best

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _peak_bytes(device) if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    train_step()  # warm-up, and the memory measurement
    peak = (
        _peak_bytes(device)
        if device == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    )
    forward()
    return {
        "train_step_s": timed(train_step),
        "forward_s": timed(forward),
        "peak_memory_mb": peak / 2**20,
        "parameters": net.parameter_count(),
        "trainable_parameters": net.parameter_count(trainable_only=True),
    }


def network_benchmark(args) -> list[dict]:
    rows = []
    for batch in (4, 16):
        for attention in ("sdpa", "explicit"):
            spec = dict(
                batch=batch,
                attention=attention,
                device=args.device,
                threads=args.threads,
                repeats=args.repeats,
            )
            print(f"[network] batch {batch}, {attention} attention", file=sys.stderr, flush=True)
            command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append({**spec, **json.loads(done.stdout.strip().splitlines()[-1])})
    return rows


def _latest_checkpoint() -> Path:
    found = sorted(
        Path("runs/dit3d").glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
    )
    if not found:
        raise SystemExit(
            "no trained checkpoint under runs/dit3d: run `python -m sciml fit --config dit3d.yaml` first "
            "or pass --ckpt"
        )
    return found[-1]


def _load_ema_task(path: Path, device: str):
    from sciml.tasks.dit3d import DiT3DTask

    task = DiT3DTask.load_from_checkpoint(path, map_location="cpu")
    stored = torch.load(path, map_location="cpu", weights_only=False)
    averages = [s["average"] for key, s in stored.get("callbacks", {}).items() if key.startswith("EMA")]
    if averages and averages[0] is not None:
        task.load_state_dict(averages[0])
    return task.to(device).eval(), stored


def sampling_benchmark(args) -> dict:
    from sciml.data.pointclouds import PointCloudDataModule
    from sciml.metrics.pointclouds import generation_metrics

    path = Path(args.ckpt) if args.ckpt else _latest_checkpoint()
    task, stored = _load_ema_task(path, args.device)
    data_args = dict(stored["datamodule_hyper_parameters"])
    data_args["generator"] = None  # the run made its data; never remake it here
    module = PointCloudDataModule(**{k: v for k, v in data_args.items() if not k.startswith("_")})
    module.setup("test")
    test = module.dataset("test")
    count = min(len(test), args.shapes)
    items = [test[i] for i in range(count)]
    references = task.denormalize(torch.stack([item["points"] for item in items]).to(args.device))
    labels = torch.stack([item["label"] for item in items]).to(args.device)
    variants = [("ddpm", 1000, 0)] if not args.quick else []
    for sampler in ("ddim", "dpmpp_2m"):
        variants += [(sampler, args.steps, 0), (sampler, args.steps, args.cache_interval)]
    rows = []
    for sampler, steps, interval in variants:
        task.hparams.cache_interval = interval
        best, generated, nfe = float("inf"), None, 0
        for _ in range(args.repeats if sampler != "ddpm" else 1):
            start = time.perf_counter()
            generated, nfe = task.generate(labels, references.shape[1], seed=0, sampler=sampler, steps=steps)
            if args.device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        # the EMD method DiT3DTask picks on this device: exact on the CPU, Sinkhorn + auction on a GPU
        method = "exact" if args.device == "cpu" else "sinkhorn"
        metrics = generation_metrics(
            generated.float(), references.float(), metrics=("cd", "emd"), emd_method=method
        )
        label = f"{sampler} {steps}" + (f" + cache/{interval}" if interval > 1 else "")
        print(f"[sampling] {label}: {best:.2f} s", file=sys.stderr, flush=True)
        rows.append(
            dict(
                sampler=label,
                nfe=nfe,
                wall_s=best,
                nna_cd=metrics["1nna_cd"],
                nna_emd=metrics["1nna_emd"],
                mmd_cd=metrics["mmd_cd"],
                emd_method=metrics["emd_method"],
            )
        )
    return {
        "checkpoint": str(path),
        "shapes": count,
        "points": int(references.shape[1]),
        "categories": module.category_names,
        "rows": rows,
    }


def _timed_pairs(x, y, metric: str, method: str, batch_size: int, device: str, repeats: int) -> float:
    from sciml.metrics.pointclouds import pairwise_distances

    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        pairwise_distances(x, y, metric=metric, batch_size=batch_size, emd_method=method)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def evaluation_benchmark(args) -> dict:
    """Seconds of the full protocol's CD and EMD matrices, extrapolated from a measured sample of pairs."""
    import numpy as np

    from sciml.data.shapes import make_shape
    from sciml.geometry.distances import kaolin_pointcloud
    from sciml.metrics.pointclouds import pair_count

    side = max(args.cd_pairs, args.emd_pairs)
    clouds = np.stack(
        [
            make_shape(("chair", "airplane")[i % 2], split="test", index=i, points=args.eval_points)[0]
            for i in range(2 * side)
        ]
    )  # (2 side, P, 3): the first half against the second, never a shape against itself
    pairs = pair_count(args.eval_shapes, args.eval_shapes)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        points = torch.from_numpy(clouds).to(device)
        for metric, per_side in (("cd", args.cd_pairs), ("emd", args.emd_pairs)):
            method = "exact" if device == "cpu" else "sinkhorn"  # what DiT3DTask picks on that device
            x, y = points[:per_side], points[side : side + per_side]
            repeats = args.repeats if metric == "cd" else 1
            batch = args.pair_batch_size if device == "cuda" else 64
            seconds = _timed_pairs(x, y, metric, method, batch, device, repeats)
            per_pair = seconds / per_side**2
            if metric == "cd":
                name = "kaolin" if device == "cuda" and kaolin_pointcloud() is not None else "torch"
            else:
                name = method
            print(
                f"[evaluation] {device} {metric} ({name}): {per_pair * 1e3:.2f} ms per pair", file=sys.stderr
            )
            rows.append(
                dict(
                    device=device,
                    distance=metric,
                    method=name,
                    sample_pairs=per_side**2,
                    seconds_per_pair=per_pair,
                    full_protocol_s=per_pair * pairs,
                )
            )
    return {"shapes": args.eval_shapes, "points": args.eval_points, "pairs_per_distance": pairs, "rows": rows}


def print_tables(report: dict) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    if report.get("network"):
        _print_network(console, report)
    if report.get("sampling"):
        _print_sampling(console, report["sampling"])
    if report.get("evaluation"):
        _print_evaluation(console, report)


def _print_evaluation(console, report: dict) -> None:
    from rich.table import Table

    evaluation = report["evaluation"]
    table = Table(
        title=f"full protocol, {evaluation['shapes']} x {evaluation['shapes']} shapes of "
        f"{evaluation['points']} points: {evaluation['pairs_per_distance']:,} pairs per distance "
        f"(CPU: {report['threads']} threads)"
    )
    for column in (
        "device",
        "distance",
        "method",
        "pairs measured",
        "ms per pair",
        "full protocol s",
        "hours",
    ):
        table.add_column(column)
    for row in evaluation["rows"]:
        table.add_row(
            row["device"],
            row["distance"],
            row["method"],
            str(row["sample_pairs"]),
            f"{row['seconds_per_pair'] * 1e3:.2f}",
            f"{row['full_protocol_s']:.3g}",
            f"{row['full_protocol_s'] / 3600:.3g}",
        )
    console.print(table)


def _print_network(console, report: dict) -> None:
    from rich.table import Table

    network = Table(title=f"DiT-S/4, voxel 32, 2048 points ({report['device']}, {report['threads']} threads)")
    for column in ("batch", "attention", "train step s", "forward s", "peak MB", "train ratio", "fwd ratio"):
        network.add_column(column)
    rows = {(r["batch"], r["attention"]): r for r in report["network"]}
    for (batch, attention), row in rows.items():
        base = rows[(batch, "explicit")]
        network.add_row(
            str(batch),
            attention,
            f"{row['train_step_s']:.3f}",
            f"{row['forward_s']:.3f}",
            f"{row['peak_memory_mb']:.0f}",
            f"{row['train_step_s'] / base['train_step_s']:.2f}",
            f"{row['forward_s'] / base['forward_s']:.2f}",
        )
    console.print(network)
    first = report["network"][0]
    console.print(f"parameters {first['parameters']:,} (trainable {first['trainable_parameters']:,})")


def _print_sampling(console, sampling: dict) -> None:
    from rich.table import Table

    table = Table(
        title=f"sampling {sampling['shapes']} shapes x {sampling['points']} points "
        f"({', '.join(sampling['categories'])}); 1-NNA: 0.5 is ideal"
    )
    for column in ("sampler", "NFE", "wall s", "speed-up vs DDPM", "1-NNA CD", "1-NNA EMD"):
        table.add_column(column)
    reference = next((r for r in sampling["rows"] if r["sampler"].startswith("ddpm")), None)
    for row in sampling["rows"]:
        speedup = f"{reference['wall_s'] / row['wall_s']:.1f}x" if reference else "-"
        table.add_row(
            row["sampler"],
            str(row["nfe"]),
            f"{row['wall_s']:.2f}",
            speedup,
            f"{row['nna_cd']:.3f}",
            f"{row['nna_emd']:.3f}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ckpt", default=None, help="trained DiT-3D checkpoint for the sampling part")
    parser.add_argument("--shapes", type=int, default=16, help="test shapes generated per sampler")
    parser.add_argument("--steps", type=int, default=25, help="steps of DDIM and DPM-Solver++")
    parser.add_argument("--cache-interval", type=int, default=3, help="full steps every N with caching")
    parser.add_argument("--no-sampling", action="store_true", help="skip the sampling part")
    parser.add_argument("--no-network", action="store_true", help="skip the network part")
    parser.add_argument("--no-evaluation", action="store_true", help="skip the evaluation-cost part")
    parser.add_argument("--eval-shapes", type=int, default=1000, help="S = R of the extrapolated protocol")
    parser.add_argument(
        "--eval-points", type=int, default=2048, help="points per shape of the evaluation part"
    )
    parser.add_argument("--cd-pairs", type=int, default=8, help="CD measured on this many squared pairs")
    parser.add_argument("--emd-pairs", type=int, default=3, help="EMD measured on this many squared pairs")
    parser.add_argument("--pair-batch-size", type=int, default=256, help="pairs per batch on a GPU")
    parser.add_argument("--quick", action="store_true", help="one repeat, no 1000-step DDPM")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(network_worker(json.loads(args.worker))))
        return 0
    if args.quick:
        args.repeats = 1
    torch.set_num_threads(args.threads)
    report = {"device": args.device, "threads": args.threads}
    if not args.no_network:
        report["network"] = network_benchmark(args)
    if not args.no_sampling:
        report["sampling"] = sampling_benchmark(args)
    if not args.no_evaluation:
        report["evaluation"] = evaluation_benchmark(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        from sciml.core.atomic import write_text_atomic

        write_text_atomic(args.json, text + "\n")
    print_tables(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
