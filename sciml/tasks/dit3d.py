"""Point-cloud generation with DiT-3D (Mo et al. 2023): train the denoiser, sample shapes, judge them.

Training (the paper's and its code's protocol): eps-prediction MSE of a Gaussian diffusion with ``T = 1000``
linear betas ``1e-4 .. 0.02`` (airplanes: ``warm0.1`` with ``1e-5 .. 0.008``), AdamW at a constant
learning rate (1e-4, no weight decay), class labels replaced by the null class with probability
``label_dropout`` (0.1) so classifier-free guidance can be used; sampling uses the EMA of the weights (the
:class:`sciml.tasks.ema.EMA` callback, decay 0.9999 in the paper configs).

Evaluation, stated in every report:

* ``protocol="full"`` (default): one generated shape per reference shape of the whole split, labels taken
  from the references, all compared at once (PointFlow/PVD); MMD, COV and 1-NNA with Chamfer (squared
  distances, PointFlow) and EMD (mean matched Euclidean distance); shapes in the data's original units
  (the normalization is undone).
* ``protocol="per_batch"``: the metrics of the official test script, computed on each batch of
  ``eval_batch_size`` generated vs reference shapes and averaged over batches.
* EMD method: with ``emd_exact_max_points=None`` (default) exact (Hungarian assignment, CPU threads) when the
  module is on a CPU, where it is also the faster method, and the batched on-device Sinkhorn + auction
  approximation of :mod:`sciml.geometry.distances` (measured and documented there) on a GPU; an integer
  makes EMD exact up to that many points and Sinkhorn above on any device. The report names the one used.

Evaluation is independent of the number of processes, the batch size and the device:

* Seeding: the noise of the shape generated for dataset sample ``i`` (its initial noise, and DDPM's noise at
  every step) comes from its own CPU generator seeded by :func:`sample_seeds` ``(sample_seed, i)``, and is
  moved to the module's device afterwards. The global RNG is never used, so evaluating never changes the
  training RNG stream, and the same checkpoint always produces the same shapes.
* Sharding: every process generates its shard of the split; the shapes of all processes are gathered, each
  sample index kept once (the sampler pads uneven shards by repeating samples) and sorted by index, so every
  process holds the whole split on its own device.
* Distances: the pairs of every distance matrix are split into contiguous blocks, one per process; each
  process computes its block on its device (Chamfer through kaolin when it is importable on CUDA) and the
  partial matrices are summed over the processes, so every process ends with the same full matrices and the
  same metrics. The report's ``ranks`` says how many processes shared the ``n_pairs`` pairs per distance.
* ``save_samples=True`` writes the evaluated shapes, in sample-index order, to
  ``<run dir>/samples/<stage>_epoch<E>.npz`` (``generated``, ``references``, ``labels``, ``index``).

Sampling defaults to DPM-Solver++(2M) with 25 steps on the same trained weights (``sampler``,
``sampling_steps``; ``"ddpm"`` runs all 1000 ancestral steps), optional guidance (``guidance_scale``) and
optional TaylorSeer-style feature caching (``cache_interval > 1``). Prediction seeds each request's shape
with the request's own ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from pytorch_lightning.callbacks import BasePredictionWriter
from rich.console import Console
from torch import Tensor, nn

from sciml.core.atomic import atomic_path
from sciml.diffusion import GaussianDiffusion, TaylorCache, drop_labels
from sciml.geometry.distances import EMDMethod
from sciml.geometry.ply import write_ply
from sciml.metrics.pointclouds import generation_metrics
from sciml.tasks import plots
from sciml.tasks.checkpointing import InjectedNetCheckpoint
from sciml.tasks.gathering import gather_unique

Sampler = Literal["ddpm", "ddim", "dpmpp_2m"]


def sample_seeds(seed: int, indexes: Sequence[int]) -> list[int]:
    """The noise seed of each sample index under ``seed``: a hash of ``(seed, index)`` (numpy SeedSequence),
    so nearby seeds or indexes give unrelated streams and a shape's seed depends on nothing else."""
    return [int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1, np.uint64)[0]) for i in indexes]


class DiT3DTask(InjectedNetCheckpoint):
    """Trains ``net(points (B, N, 3), t (B,), labels (B,)) -> eps`` and evaluates generated shapes.

    Args:
        net: the denoiser (e.g. :class:`sciml.models.dit3d.DiT3D`); must expose ``null_label`` when
            ``label_dropout > 0`` or ``guidance_scale != 1``, and ``num_classes``.
        beta_schedule, num_timesteps, beta_start, beta_end: the diffusion process
            (:func:`sciml.diffusion.beta_schedule`).
        lr, weight_decay, adam_betas: AdamW at a constant learning rate.
        label_dropout: probability of training on the null class.
        sampler, sampling_steps: how shapes are drawn for evaluation and prediction.
        guidance_scale: classifier-free guidance scale (1: plain conditional sampling).
        cache_interval, cache_order: feature caching (``cache_interval <= 1``: off).
        metrics: distances for the generation metrics, ``"cd"`` and/or ``"emd"``.
        protocol, eval_batch_size: evaluation protocol (module docstring).
        pair_batch_size: distance pairs computed at once (more keeps a GPU busy; EMD chunks by memory itself).
        emd_exact_max_points: None: exact EMD on a CPU, Sinkhorn on a GPU; else the largest point count
            for which EMD is exact (module docstring).
        sample_seed: seed of the evaluation noise (:func:`sample_seeds`).
        render_count: shapes shown in the validation PNG grid.
        save_samples: write the evaluated shapes to the run directory (module docstring).
    """

    def __init__(
        self,
        net: nn.Module,
        beta_schedule: str = "linear",
        num_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        label_dropout: float = 0.1,
        sampler: Sampler = "dpmpp_2m",
        sampling_steps: int = 25,
        guidance_scale: float = 1.0,
        cache_interval: int = 0,
        cache_order: int = 1,
        metrics: tuple[str, ...] = ("cd", "emd"),
        protocol: Literal["full", "per_batch"] = "full",
        eval_batch_size: int = 16,
        pair_batch_size: int = 64,
        emd_exact_max_points: int | None = None,
        sample_seed: int = 0,
        render_count: int = 16,
        save_samples: bool = False,
    ):
        super().__init__()
        if sample_seed < 0:
            raise ValueError(f"sample_seed: expected an integer >= 0, got {sample_seed}")
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.diffusion = GaussianDiffusion.from_schedule(beta_schedule, num_timesteps, beta_start, beta_end)
        # The data's normalization travels in the checkpoint so predictions come out in its units.
        self.register_buffer("points_mean", torch.zeros(3))
        self.register_buffer("points_std", torch.ones(()))
        self._generated: list[Tensor] = []
        self._references: list[Tensor] = []
        self._rows: list[Tensor] = []
        self.summary: dict[str, object] = {}

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        normalization = getattr(datamodule, "normalization", None)
        if normalization is not None and stage == "fit":
            self.points_mean.copy_(normalization["mean"])
            self.points_std.copy_(normalization["std"])
        classes = getattr(datamodule, "num_classes", None)
        if classes is not None and classes > int(self.net.num_classes):
            raise ValueError(
                f"the data has {classes} categories {getattr(datamodule, 'category_names', '')} but "
                f"model.init_args.net.init_args.num_classes is {self.net.num_classes}"
            )

    def forward(
        self,
        x: Float[Tensor, "B N 3"],
        t: Int[Tensor, " B"],
        labels: Int[Tensor, " B"] | None = None,
    ) -> Float[Tensor, "B N 3"]:
        return self.net(x, t, labels)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        labels = batch["label"]
        if self.hparams.label_dropout > 0:
            labels = drop_labels(labels, self.hparams.label_dropout, self.net.null_label)
        loss = self.diffusion.training_loss(self.net, batch["points"], labels).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=labels.shape[0])
        return loss

    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(
            trainable,
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            betas=self.hparams.adam_betas,
        )

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(
        self,
        labels: Int[Tensor, " B"],
        num_points: int,
        seed: int | Sequence[int] | Int[Tensor, " B"],
        sampler: Sampler | None = None,
        steps: int | None = None,
        progress: bool = False,
    ) -> tuple[Float[Tensor, "B N 3"], int]:
        """Shapes for ``labels`` in the data's units, and the network evaluations it took.

        ``seed``: one seed per shape; shape ``b``'s noise (initial and per step) is drawn on the CPU from a
        generator seeded with ``seed[b]`` and moved to the labels' device, so it depends on that seed alone,
        not on the batch, its size or the device. An int ``s`` stands for ``sample_seeds(s, range(B))``, the
        seeds evaluation gives samples ``0 .. B-1``. The global RNG is untouched.
        """
        hp = self.hparams
        sampler = sampler or hp.sampler
        steps = None if sampler == "ddpm" else (steps or hp.sampling_steps)
        if isinstance(seed, (int, np.integer)):
            seeds = sample_seeds(seed, range(labels.shape[0]))
        else:
            seeds = [int(value) for value in seed]
        if len(seeds) != labels.shape[0]:
            raise ValueError(
                f"seed: expected an int or one seed per shape ({labels.shape[0]}), got {len(seeds)}"
            )
        generators = [torch.Generator().manual_seed(value) for value in seeds]
        guided = hp.guidance_scale != 1.0
        null = torch.full_like(labels, self.net.null_label) if guided else None
        cache = (
            TaylorCache(interval=hp.cache_interval, order=hp.cache_order) if hp.cache_interval > 1 else None
        )
        normalized, nfe = self.diffusion.sample(
            self.net,
            (labels.shape[0], num_points, 3),
            cond=labels,
            sampler=sampler,
            steps=steps,
            guidance_scale=hp.guidance_scale,
            null_cond=null,
            generator=generators,
            cache=cache,
            progress=progress,
            device=labels.device,
            return_nfe=True,
        )
        return self.denormalize(normalized), nfe

    def denormalize(self, points: Tensor) -> Tensor:
        return points * self.points_std + self.points_mean

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch)

    def _evaluation_step(self, batch: dict[str, Tensor]) -> None:
        references = batch["points"]
        seeds = sample_seeds(self.hparams.sample_seed, batch["index"].tolist())
        generated, _ = self.generate(batch["label"], references.shape[1], seeds)
        self._generated.append(generated.float())
        self._references.append(self.denormalize(references).float())
        self._rows.append(torch.stack([batch["index"], batch["label"]], dim=1).long())

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def _emd_method(self) -> tuple[EMDMethod, int]:
        """The EMD method and exact-size threshold for :func:`generation_metrics` (module docstring)."""
        if self.hparams.emd_exact_max_points is not None:
            return "auto", self.hparams.emd_exact_max_points
        return ("sinkhorn" if self.device.type == "cuda" else "exact"), 0

    def _sum_over_ranks(self, matrix: Tensor) -> Tensor:
        """Each rank computed its block of the pairs, zeros elsewhere: the sum is the full matrix."""
        return self.trainer.strategy.reduce(matrix, reduce_op="sum")

    def _evaluation_epoch_end(self, prefix: str) -> None:
        if not self._generated:
            return
        # Every rank ends with the whole split on its device, each sample index once, in index order.
        rows, generated, references = gather_unique(
            self, torch.cat(self._rows), torch.cat(self._generated), torch.cat(self._references)
        )
        indexes, labels = rows[:, 0], rows[:, 1]
        self._generated, self._references, self._rows = [], [], []
        if self.trainer.sanity_checking:
            return
        hp = self.hparams
        method, exact_max_points = self._emd_method()
        results = generation_metrics(
            generated,
            references,
            metrics=tuple(hp.metrics),
            protocol=hp.protocol,
            batch_size=hp.eval_batch_size,
            emd_method=method,
            exact_max_points=exact_max_points,
            pair_batch_size=hp.pair_batch_size,
            share=(self.trainer.global_rank, self.trainer.world_size),
            combine=self._sum_over_ranks,
        )
        numbers = {key: float(value) for key, value in results.items() if isinstance(value, (int, float))}
        for key, value in numbers.items():
            if key not in ("n_samples", "n_refs", "n_points", "n_chunks", "n_pairs", "ranks"):
                # Identical on every rank after the gather; sync_dist only keeps Lightning's DDP check quiet.
                self.log(f"{prefix}/{key}", value, sync_dist=True, prog_bar=key.startswith("1nna"))
        self.summary = {
            "stage": prefix,
            "epoch": self.current_epoch,
            **{key: results[key] for key in results},
            "sampler": f"{hp.sampler} ({hp.sampling_steps} steps)" if hp.sampler != "ddpm" else "ddpm (1000)",
            "guidance scale": hp.guidance_scale,
        }
        # Trainer.log_dir broadcasts from rank 0: every rank must ask for it, or rank 0 waits forever.
        run_directory = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        if self.trainer.is_global_zero:
            generated, references, labels = generated.cpu(), references.cpu(), labels.cpu()
            self.summary["plots"] = str(self._render(run_directory, prefix, generated, references, labels))
            if hp.save_samples:
                shapes = (generated, references, labels, indexes.cpu())
                self.summary["samples"] = str(self._save(run_directory, prefix, *shapes))

    def _save(
        self,
        run_directory: Path,
        prefix: str,
        generated: Tensor,
        references: Tensor,
        labels: Tensor,
        indexes: Tensor,
    ) -> Path:
        path = run_directory / "samples" / f"{prefix}_epoch{self.current_epoch:04d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                generated=generated.numpy(),
                references=references.numpy(),
                labels=labels.numpy(),
                index=indexes.numpy(),
            )
        return path

    def _render(
        self, run_directory: Path, prefix: str, generated: Tensor, references: Tensor, labels: Tensor
    ) -> Path:
        count = min(self.hparams.render_count, len(generated))
        names = self._category_names()
        clouds, titles = [], []
        for i in range(count):
            name = names[int(labels[i])] if names else f"class {int(labels[i])}"
            clouds += [generated[i].numpy(), references[i].numpy()]
            titles += [f"generated {name}", f"reference {name}"]
        directory = run_directory / "plots" / prefix
        directory.mkdir(parents=True, exist_ok=True)
        return plots.plot_point_clouds(
            clouds,
            titles,
            directory / f"samples_epoch{self.current_epoch:04d}.png",
            columns=4,
            title=f"{prefix}: generated vs reference shapes, epoch {self.current_epoch}",
        )

    def _category_names(self) -> list[str]:
        return list(getattr(getattr(self.trainer, "datamodule", None), "category_names", None) or [])

    # ------------------------------------------------------------------ prediction
    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        # Each request's own seed: a request's shape does not depend on the batch it lands in.
        generated, _ = self.generate(batch["label"], int(batch["n_points"][0]), batch["seed"].tolist())
        return {"points": generated.cpu(), "label": batch["label"].cpu(), "index": batch["index"].cpu()}


class PointCloudWriter(BasePredictionWriter):
    """Writes generated shapes as ``<output_dir>/samples.npy`` (S, N, 3) with ``labels.npy``, one
    ``ply/<index>_<category>.ply`` per shape, and a PNG grid of renders ``samples.png``.

    Args:
        output_dir: where to write (created).
        render_count: shapes in the PNG grid.
    """

    def __init__(self, output_dir: str = "predictions/dit3d", render_count: int = 16):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.render_count = render_count
        self._batches: list[dict[str, Tensor]] = []

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self._batches = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ):
        self._batches.append(prediction)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        rows = torch.cat([torch.stack([b["index"], b["label"]], dim=1) for b in self._batches])  # (S, 2)
        rows, points = gather_unique(pl_module, rows, torch.cat([b["points"] for b in self._batches]))
        if not trainer.is_global_zero:
            return
        points, labels = points.cpu().numpy(), rows[:, 1].cpu().numpy()
        names = list(getattr(trainer.datamodule, "category_names", None) or [])
        self.write(points, labels, names)

    def write(self, points: np.ndarray, labels: np.ndarray, names: list[str]) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for name, array in (
            ("samples.npy", points.astype(np.float32)),
            ("labels.npy", labels.astype(np.int64)),
        ):
            with atomic_path(self.output_dir / name) as tmp, open(tmp, "wb") as handle:
                np.save(handle, array)
        category = [names[int(label)] if names else f"class{int(label)}" for label in labels]
        for i, (cloud, name) in enumerate(zip(points, category)):
            write_ply(self.output_dir / "ply" / f"{i:04d}_{name}.ply", cloud)
        count = min(self.render_count, len(points))
        plots.plot_point_clouds(
            [points[i] for i in range(count)],
            [f"{i}: {category[i]}" for i in range(count)],
            self.output_dir / "samples.png",
            title=f"{len(points)} generated shapes ({count} shown)",
        )
        Console().print(
            f"[bold]sciml[/]: wrote {len(points)} shapes of {points.shape[1]} points to {self.output_dir}/ "
            "(samples.npy, labels.npy, ply/, samples.png)"
        )
        return self.output_dir
