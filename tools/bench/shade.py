"""Benchmark SHaDe against the HexPlane-style baseline (a script, not a test).

Both models are built exactly as ``configs/shade.yaml`` and ``configs/shade_hexplane.yaml`` build them
(field, prior and task settings read from the files), on the generated dynamic scene
(:mod:`sciml.data.dynamic_scenes`, 64 x 64):

1. Throughput, ``torch.set_num_threads(--threads)``: training rays per second (one full optimizer step of
   ``rays_per_batch`` rays: render, losses, backward, Adam; SHaDe in stage 1 and stage 2, with the prior
   in every step and at the config's ``prior_every``), rendering rays per second (whole 64 x 64 images,
   no autograd), parameter count and size in MB (float32) of the field and of the prior. Each timing
   repeats ``--repeats`` times after a warm-up and keeps the minimum.
2. Quality at equal wall-clock budget (``--budget`` seconds of training each): every model trains for
   ``budget / (its measured seconds per step)`` steps (so its learning-rate decay completes; SHaDe's
   stage 2 starts half way) with the dense views (100 training cameras) and with sparse views (the same
   100 frames from ``--sparse-cameras`` cameras), then is scored on the 20 test views (PSNR, SSIM) and on
   the 24-frame video of one held-out camera (temporal error, lower is better; video PSNR).

Shared machines are noisy: compare the ratios of one run, not the seconds.

    .venv/bin/python tools/bench/shade.py [--budget 240] [--quick] [--json out.json]

JSON goes to stdout (and ``--json``), the tables to stderr. Datasets are made under ``--data`` (default
``data/bench_shade``) when missing.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"SHaDe": ROOT / "configs" / "shade.yaml", "HexPlane": ROOT / "configs" / "shade_hexplane.yaml"}


def build_task(config_path: Path, **overrides):
    """The ShadeTask (field and prior included) and the data module arguments of a config file."""
    from sciml.tasks.checkpointing import build_net
    from sciml.tasks.shade import ShadeTask

    config = yaml.safe_load(config_path.read_text())
    model = copy.deepcopy(config["model"]["init_args"])
    field = build_net(model.pop("field"))
    prior = model.pop("prior", None)
    prior = None if prior is None else build_net(prior)
    model.update(overrides)
    return ShadeTask(field, prior=prior, **model), config["data"]["init_args"]


def make_data(root: Path, sparse_cameras: int | None):
    from sciml.data.dynamic_scenes import make_dynamic_scene

    name = "dense" if sparse_cameras is None else f"sparse{sparse_cameras}"
    path = root / name
    if not path.exists():
        make_dynamic_scene(path, train_cameras=sparse_cameras, progress=False)
    return path


def _attach(task, data):
    """A trainer-less task reads its scene bounds from the data module as ``fit`` would."""
    task.scene_box.copy_(data.scene_box)
    task.near_far.copy_(torch.tensor([data.near, data.far]))
    task.background.copy_(data.background)


def _best(seconds: list[float]) -> float:
    return min(seconds)


def throughput(name: str, path: Path, repeats: int) -> list[dict]:
    from sciml.data.captures import CaptureDataModule

    rows = []
    task, data_args = build_task(CONFIGS[name])
    data = CaptureDataModule(str(path), rays_per_batch=data_args["rays_per_batch"], steps_per_epoch=64)
    data.setup("fit")
    _attach(task, data)
    rays = data_args["rays_per_batch"]
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-3)
    batches = [data.dataset("train")[(i, 0)] for i in range(repeats + 1)]
    variants = [("stage 1", 1, task.hparams.prior_every), ("stage 2", 2, task.hparams.prior_every)]
    if task.prior is not None and task.hparams.prior_every > 1:
        variants += [("stage 2, prior every step", 2, 1)]
    if task.prior is None:
        variants = variants[1:]  # without a prior the stages differ only by the temporal loss
    for label, stage, every in variants:
        seconds = []
        for i, batch in enumerate(batches):
            start = time.perf_counter()
            optimizer.zero_grad()
            loss = _training_loss(task, batch, stage)
            loss.backward()
            optimizer.step()
            if i:  # the first is a warm-up
                seconds.append(time.perf_counter() - start)
        step = _best(seconds)
        if task.prior is not None:  # the prior's share at one step in `every`
            prior_seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                optimizer.zero_grad()
                task._prior_losses(stage)["loss"].backward()
                optimizer.step()
                prior_seconds.append(time.perf_counter() - start)
            step = step - _best(prior_seconds) * (1 - 1 / every)
        rows.append({"model": name, "what": f"train, {label}", "seconds": step, "rays_per_s": rays / step})
        print(f"[throughput] {name} train {label}: {rays / step:,.0f} rays/s", file=sys.stderr, flush=True)
    image = data.dataset("val")[0]
    task.eval()
    seconds = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        task.render_image(image["origins"], image["directions"], float(image["time"]))
        if i:
            seconds.append(time.perf_counter() - start)
    pixels = image["origins"].shape[0] * image["origins"].shape[1]
    render = _best(seconds)
    rows.append({"model": name, "what": "render", "seconds": render, "rays_per_s": pixels / render})
    print(f"[throughput] {name} render: {pixels / render:,.0f} rays/s", file=sys.stderr, flush=True)
    return rows


def _training_loss(task, batch, stage: int) -> torch.Tensor:
    """What ``ShadeTask.training_step`` optimizes in ``stage`` at a step with the prior's losses, without a
    trainer (no logging)."""
    origins, directions, times, target = batch["origins"], batch["directions"], batch["time"], batch["rgb"]
    rendered = task.render_rays(origins, directions, times, perturb=True)
    step = (0 if stage == 1 else task.hparams.joint_start) * task.hparams.prior_every
    return task.objective(rendered, origins, directions, times, target, step)[0]


def sizes(name: str) -> dict:
    task, _ = build_task(CONFIGS[name])
    field = sum(p.numel() for p in task.field.parameters())
    prior = 0 if task.prior is None else sum(p.numel() for p in task.prior.parameters())
    return {
        "model": name,
        "field_parameters": field,
        "field_mb": field * 4 / 2**20,
        "prior_parameters": prior,
        "prior_mb": prior * 4 / 2**20,
    }


def quality(name: str, path: Path, views: str, budget: float, step_seconds: float) -> dict:
    from sciml.data.captures import CaptureDataModule

    steps = max(int(budget / step_seconds), 2)
    overrides = {"val_orbit_frames": 0, "render_count": 0}
    task, data_args = build_task(CONFIGS[name], **overrides)
    if task.prior is not None:
        task.hparams.joint_start = steps // 2
    data = CaptureDataModule(str(path), rays_per_batch=data_args["rays_per_batch"], steps_per_epoch=steps)
    print(f"[quality] {name}, {views} views: {steps} steps (~{budget:.0f} s)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(
            accelerator="cpu",
            max_steps=steps,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
        )
        start = time.perf_counter()
        trainer.fit(task, data)
        seconds = time.perf_counter() - start
        trainer.test(task, data, verbose=False)
    summary = task.summary
    return {
        "model": name,
        "views": views,
        "steps": steps,
        "train_seconds": seconds,
        "psnr": summary["psnr"],
        "ssim": summary["ssim"],
        "temporal_error": summary.get("temporal error"),
        "video_psnr": summary.get("video psnr"),
    }


def print_tables(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title=f"Throughput ({report['threads']} threads, 64 x 64 images)")
    for column in ("model", "what", "rays/s", "ratio to HexPlane"):
        table.add_column(column)
    base = {row["what"]: row["rays_per_s"] for row in report["throughput"] if row["model"] == "HexPlane"}
    for row in report["throughput"]:
        reference = base.get(row["what"]) or base.get(
            "train, stage 2" if row["what"].startswith("train") else ""
        )
        ratio = f"{row['rays_per_s'] / reference:.2f}" if reference else ""
        table.add_row(row["model"], row["what"], f"{row['rays_per_s']:,.0f}", ratio)
    console.print(table)
    table = Table(title="Model size (float32)")
    for column in ("model", "field parameters", "field MB", "prior parameters", "prior MB"):
        table.add_column(column)
    for row in report["sizes"]:
        table.add_row(
            row["model"],
            f"{row['field_parameters']:,}",
            f"{row['field_mb']:.2f}",
            f"{row['prior_parameters']:,}",
            f"{row['prior_mb']:.2f}",
        )
    console.print(table)
    if report.get("quality"):
        table = Table(title=f"Quality at equal budget ({report['budget_s']:.0f} s of training each)")
        for column in ("views", "model", "steps", "train s", "PSNR", "SSIM", "temporal error", "video PSNR"):
            table.add_column(column)
        for row in report["quality"]:
            table.add_row(
                row["views"],
                row["model"],
                str(row["steps"]),
                f"{row['train_seconds']:.0f}",
                f"{row['psnr']:.2f}",
                f"{row['ssim']:.3f}",
                f"{row['temporal_error']:.4f}",
                f"{row['video_psnr']:.2f}",
            )
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per model and setting")
    parser.add_argument(
        "--sparse-cameras", type=int, default=4, help="training cameras of the sparse setting"
    )
    parser.add_argument("--data", default="data/bench_shade", help="where the benchmark scenes are made")
    parser.add_argument("--no-quality", action="store_true", help="only throughput and size")
    parser.add_argument("--quick", action="store_true", help="2 repeats, 20 s budget")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.budget = 2, 20.0
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    root = Path(args.data)
    dense = make_data(root, None)
    report: dict = {"threads": args.threads, "budget_s": args.budget, "sparse_cameras": args.sparse_cameras}
    report["throughput"] = [row for name in CONFIGS for row in throughput(name, dense, args.repeats)]
    report["sizes"] = [sizes(name) for name in CONFIGS]
    if not args.no_quality:
        step = {
            row["model"]: row["seconds"] for row in report["throughput"] if row["what"] == "train, stage 2"
        }
        settings = {"dense": dense, f"sparse ({args.sparse_cameras})": make_data(root, args.sparse_cameras)}
        report["quality"] = []
        for views, path in settings.items():
            for name in CONFIGS:
                pl.seed_everything(0, verbose=False)
                report["quality"].append(quality(name, path, views, args.budget, step[name]))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        from sciml.core.atomic import write_text_atomic

        write_text_atomic(args.json, text + "\n")
    print_tables(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
