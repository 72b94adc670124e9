"""Diagnostic figures (surrogate rollouts, generated point clouds), written atomically as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # runs on headless cluster nodes and in CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sciml.core.atomic import atomic_path  # noqa: E402


def save_figure(figure: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_spectra(
    k: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    steps: list[int],
    dt: float,
    path: Path,
    title: str | None = None,
) -> Path:
    """Predicted vs true energy spectra at several rollout steps; ``true``/``pred`` are (steps, K).

    ``title`` replaces the default one, e.g. to say which axes a wall-bounded spectrum is taken over.
    """
    figure, axis = plt.subplots(figsize=(6, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(steps)))
    for color, step in zip(colors, steps):
        label = f"t = {(step + 1) * dt:.3g}"
        axis.loglog(k[1:], true[step, 1:], color=color, lw=2, alpha=0.5, label=f"true {label}")
        axis.loglog(k[1:], pred[step, 1:], color=color, lw=1.2, ls="--", label=f"pred {label}")
    axis.set_xlabel("wavenumber k")
    axis.set_ylabel("E(k)")
    axis.set_title(title or "Energy spectrum along the rollout (solid: true, dashed: surrogate)")
    axis.legend(fontsize=7, ncol=2)
    axis.grid(True, which="both", alpha=0.3)
    return save_figure(figure, path)


def plot_midplane_slices(
    true: np.ndarray, pred: np.ndarray, steps: list[int], channel_names: list[str], path: Path
) -> Path:
    """Mid-plane (z = Z/2) slices of the first channel: truth, prediction and error per rollout step.

    ``true``/``pred`` are (steps, C, X, Y, Z).
    """
    z_mid = true.shape[-1] // 2
    figure, axes = plt.subplots(3, len(steps), figsize=(2.6 * len(steps), 7.2), squeeze=False)
    for column, step in enumerate(steps):
        truth, guess = true[step, 0, :, :, z_mid], pred[step, 0, :, :, z_mid]
        limit = float(np.nanmax(np.abs(truth))) or 1.0
        panels = [(truth, "true"), (guess, "surrogate"), (guess - truth, "error")]
        for row, (image, title) in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(image.T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{title}, step {step + 1}", fontsize=8)
    figure.suptitle(f"{channel_names[0]} on the mid-plane z = Z/2")
    return save_figure(figure, path)


def plot_rollout_curves(curves: dict[str, np.ndarray], threshold: float, path: Path) -> Path:
    """Error and drift versus rollout step; each curve is (trajectories, steps)."""
    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for axis, (name, values) in zip(axes[0], curves.items()):
        steps = np.arange(1, values.shape[-1] + 1)
        for trajectory in values:
            axis.plot(steps, trajectory, color="0.6", lw=0.8)
        axis.plot(steps, np.nanmean(values, axis=0), color="C0", lw=2, label="mean")
        if name == "spectrum_error":
            axis.axhline(threshold, color="C3", ls=":", label=f"{threshold:.0%} tolerance")
        axis.set_xlabel("rollout step")
        axis.set_title(name.replace("_", " "))
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    return save_figure(figure, path)


def plot_point_clouds(
    clouds: list[np.ndarray], titles: list[str], path: Path, columns: int = 4, title: str | None = None
) -> Path:
    """A grid of point-cloud renders (3-D scatter, y up as in ShapeNet, equal axes, one shared view)."""
    rows = max(1, -(-len(clouds) // columns))
    figure = plt.figure(figsize=(2.6 * columns, 2.6 * rows))
    for position, (cloud, name) in enumerate(zip(clouds, titles), start=1):
        axis = figure.add_subplot(rows, columns, position, projection="3d")
        x, y, z = cloud[:, 0], cloud[:, 1], cloud[:, 2]
        axis.scatter(z, x, y, s=0.6, c=y, cmap="viridis", depthshade=False, linewidths=0)
        # Framed on the bulk of the points: a few stray points of a young model would shrink the shape.
        centre = np.median(cloud, axis=0)
        radius = float(np.quantile(np.abs(cloud - centre), 0.99)) or 1.0
        axis.set_xlim(centre[2] - radius, centre[2] + radius)
        axis.set_ylim(centre[0] - radius, centre[0] + radius)
        axis.set_zlim(centre[1] - radius, centre[1] + radius)
        axis.set_box_aspect((1, 1, 1))
        axis.view_init(elev=20, azim=-50)
        axis.set_axis_off()
        axis.set_title(name, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def plot_render_comparison(
    prediction: np.ndarray, target: np.ndarray, depth: np.ndarray, path: Path, title: str = ""
) -> Path:
    """Rendered image, ground truth, per-pixel error and rendered depth side by side (images (H, W, 3))."""
    figure, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    error = np.abs(prediction - target).mean(axis=-1)
    panels = [
        (np.clip(prediction, 0, 1), "render", None),
        (np.clip(target, 0, 1), "ground truth", None),
        (error, f"|error| (mean {error.mean():.3f})", "magma"),
        (depth, "depth", "viridis"),
    ]
    for axis, (image, name, cmap) in zip(axes, panels):
        shown = axis.imshow(image, cmap=cmap)
        if cmap is not None:
            figure.colorbar(shown, ax=axis, fraction=0.046)
        axis.set_title(name, fontsize=9)
        axis.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def save_gif(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    """Write ``(H, W, 3)`` uint8 frames as a looping GIF at ``fps`` frames per second (atomically)."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0
        )
    return path
