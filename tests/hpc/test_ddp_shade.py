"""SHaDe's evaluation does not depend on the number of processes: one checkpoint validated by 1 process and
by 2 gloo processes (DDP on CPU) scores the same views with the same PSNR, SSIM and temporal error. The 3
held-out views shard as 2 + 1 over 2 processes, so the second shard is padded with a repeat of view 0."""

import csv

import pytest
from conftest import fit_two_steps, run_sciml

from sciml.data.dynamic_scenes import make_dynamic_scene

#: shade.yaml at its smallest: no prior (evaluation does not use it), 8 samples per ray, no orbit GIF.
TINY = [
    "--config",
    "shade.yaml",
    "--trainer.accelerator=cpu",
    "--model.init_args.prior=null",
    "--model.init_args.num_samples=8",
    "--model.init_args.val_orbit_frames=0",
    "--model.init_args.render_count=0",
    "--model.init_args.field.init_args.resolution=16",
    "--model.init_args.field.init_args.deformation_resolution=8",
    "--data.init_args.rays_per_batch=256",
]
VIEWS = 3  # odd: 2 processes get 2 views each, one of them a repeat


def validate(root, data, checkpoint, devices):
    """``python -m sciml validate`` in ``root``: ``(metrics.csv rows, per-view table rows)``."""
    run_sciml(
        "validate",
        [*TINY, f"--data.init_args.path={data}", f"--ckpt_path={checkpoint}"],
        root,
        devices,
        cwd=root,
    )
    run = root / "shade" / "version_0"
    metrics = list(csv.DictReader((run / "metrics.csv").open()))
    (table,) = (run / "plots" / "val").glob("views_epoch*.csv")
    return metrics, list(csv.DictReader(table.open()))


def test_one_and_two_gloo_processes_score_the_same_views_alike(tmp_path, monkeypatch):
    data = tmp_path / "scene"
    make_dynamic_scene(data, height=16, width=16, train=2, val=VIEWS, test=1, video=3, progress=False)
    monkeypatch.chdir(tmp_path)
    checkpoint = fit_two_steps([*TINY, f"--data.init_args.path={data}"], tmp_path / "fit", "shade")
    (single := tmp_path / "single").mkdir()
    (double := tmp_path / "ddp").mkdir()
    single_metrics, single_views = validate(single, data, checkpoint, devices=1)
    double_metrics, double_views = validate(double, data, checkpoint, devices=2)

    # The same views, each once, at the same times with the same scores.
    assert [row["view"] for row in single_views] == [row["view"] for row in double_views] == ["0", "1", "2"]
    for a, b in zip(single_views, double_views):
        assert float(a["time"]) == float(b["time"])
        assert float(a["psnr"]) == pytest.approx(float(b["psnr"]), rel=1e-6)
        assert float(a["ssim"]) == pytest.approx(float(b["ssim"]), rel=1e-6, abs=1e-7)
    # The logged metrics: one validation row each, the plain means over the views, and the video metric.
    for metrics, views in ((single_metrics, single_views), (double_metrics, double_views)):
        (row,) = [row for row in metrics if row.get("val/psnr")]
        assert float(row["val/psnr"]) == pytest.approx(sum(float(v["psnr"]) for v in views) / VIEWS, rel=1e-6)
        assert float(row["val/ssim"]) == pytest.approx(
            sum(float(v["ssim"]) for v in views) / VIEWS, rel=1e-6, abs=1e-7
        )
    (a,) = [row for row in single_metrics if row.get("val/psnr")]
    (b,) = [row for row in double_metrics if row.get("val/psnr")]
    assert float(a["val/temporal_error"]) > 0
    for key in ("val/psnr", "val/ssim", "val/temporal_error"):
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-6), key
