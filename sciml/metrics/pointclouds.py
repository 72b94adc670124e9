"""Point-cloud generation metrics of PointFlow (G. Yang et al., ICCV 2019, section 5.1), as reported by PVD
(L. Zhou et al., ICCV 2021) and DiT-3D (S. Mo et al., 2023): MMD, COV and 1-NNA under Chamfer (CD) and Earth
Mover's (EMD) distances (:mod:`sciml.geometry.distances` gives their conventions).

With ``D[s, r]`` the distance between generated shape ``s`` (of S) and reference shape ``r`` (of R):

* MMD (minimum matching distance) = mean over references r of min_s D[s, r]: fidelity.
* COV (coverage) = |{argmin_r D[s, r] : s}| / R, the fraction of references that are the nearest reference
  of at least one sample: diversity.
* 1-NNA = accuracy of the leave-one-out 1-nearest-neighbour classifier over the union of samples and
  references (labels: generated or reference), using the S x S, R x R and S x R distance matrices. 50 % is
  ideal (the sets are indistinguishable); 100 % means every shape's nearest neighbour is in its own set.
  ``1nna_<metric>_refs`` / ``1nna_<metric>_samples`` are the accuracies on the references / on the samples
  (PointFlow's ``1-NN-<M>-acc_t`` / ``acc_f``). Ties in the nearest neighbour go to the first of
  ``[refs, samples]`` in that order (references first, as in the official ``knn(M_rr, M_rs, M_ss)``), so a
  sample that is an exact copy of a reference is each other's nearest neighbour and both are misclassified.

Protocols (``generation_metrics``):

* ``"full"``: PointFlow/PVD and DiT-3D's first release (``test_generation.py``): one generated shape per
  test shape (S == R), all metrics over the whole test set at once (their ``batch_size`` only batches the
  pairwise distances). MMD, COV and 1-NNA depend on the set size; this is the protocol of the published
  tables of PointFlow and PVD.
* ``"per_batch"``: the current official DiT-3D ``test.py`` (``generate_eval``): for each test batch of
  ``batch_size`` shapes it generates as many, calls ``compute_all_metrics`` on that batch alone and averages
  the results over batches. Here: consecutive chunks, sample chunk i against reference chunk i, each
  evaluated like ``"full"`` and averaged with equal weight (a shorter last chunk counts as much as the
  others). Much cheaper (S * batch_size pairs instead of 3 S^2); 1-NNA over 2 x 16 shapes is far noisier and
  its numbers are not comparable with ``"full"``.

Distances between pairs are computed ``batch_size`` pairs at a time (``pair_batch_size`` in
``generation_metrics``); S x S and R x R matrices are computed on the upper triangle only (both distances are
symmetric; the diagonal is 0 by definition), so the full protocol costs S R + S (S - 1) / 2 + R (R - 1) / 2
pairs per distance.

Sharing the pairs between processes: with ``share=(rank, world_size)`` a process computes only the ``rank``-th
of ``world_size`` contiguous, equal (to one pair) blocks of each matrix's pair list and leaves the other
entries 0; ``combine`` (e.g. a sum over processes, which the caller provides: this module knows nothing of
the distributed setup) turns the partial matrices into the full one on every process. Every pair is computed
by exactly one process and added to zeros, so the matrices, and the metrics, are the same for any number of
processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.geometry.distances import EMDMethod, chamfer_distance, earth_movers_distance
from sciml.geometry.distances import emd_method as resolve_emd_method

Metric = Literal["cd", "emd"]
_METRICS = ("cd", "emd")


def _check_shapes(name: str, clouds: Tensor) -> None:
    if clouds.ndim != 3 or clouds.shape[-1] != 3:
        raise ValueError(f"{name}: expected (S, N, 3), got {tuple(clouds.shape)}")


def _distance(
    a: Tensor, b: Tensor, metric: str, emd_method_name: EMDMethod, exact_max_points: int
) -> Float[Tensor, " B"]:
    if metric == "cd":
        return chamfer_distance(a, b)
    return earth_movers_distance(a, b, method=emd_method_name, exact_max_points=exact_max_points)


def _check_share(share: tuple[int, int] | None) -> tuple[int, int]:
    if share is None:
        return 0, 1
    rank, world_size = share
    if not (isinstance(rank, int) and isinstance(world_size, int) and 0 <= rank < world_size):
        raise ValueError(f"share: expected (rank, world_size) with 0 <= rank < world_size, got {share}")
    return rank, world_size


def pairwise_distances(
    x: Float[Tensor, "P N 3"],
    y: Float[Tensor, "Q M 3"] | None = None,
    metric: Metric = "cd",
    batch_size: int = 64,
    emd_method: EMDMethod = "auto",
    exact_max_points: int = 1024,
    share: tuple[int, int] | None = None,
) -> Float[Tensor, "P Q"]:
    """Matrix ``D[i, j] = metric(x[i], y[j])``, ``batch_size`` pairs at a time, on ``x``'s device.

    ``y=None`` means ``x`` against itself: only pairs ``i < j`` are computed and mirrored, the diagonal is 0.
    ``share=(rank, world_size)``: only the ``rank``-th of ``world_size`` contiguous blocks of the pair list
    (row-major ``(i, j)``) is computed, every other entry is 0; summing the matrices of all ranks gives the
    full matrix (module docstring).
    """
    rank, world_size = _check_share(share)
    _check_shapes("x", x)
    if y is not None:
        _check_shapes("y", y)
    if metric not in _METRICS:
        raise ValueError(f"metric: expected one of {_METRICS}, got {metric!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    symmetric = y is None
    other = x if y is None else y
    if symmetric:
        rows, cols = torch.triu_indices(len(x), len(x), offset=1, device=x.device)  # (pairs,), (pairs,)
    else:
        rows, cols = torch.cartesian_prod(
            torch.arange(len(x), device=x.device), torch.arange(len(other), device=x.device)
        ).unbind(dim=1)
    # Block boundaries rank * pairs // world_size: sizes differ by at most one pair, and the blocks of all
    # ranks tile the list exactly.
    start, stop = rank * len(rows) // world_size, (rank + 1) * len(rows) // world_size
    rows, cols = rows[start:stop], cols[start:stop]
    values = [
        _distance(
            x[rows[k : k + batch_size]], other[cols[k : k + batch_size]], metric, emd_method, exact_max_points
        )
        for k in range(0, len(rows), batch_size)
    ]
    matrix = x.new_zeros(len(x), len(other))
    if values:
        flat = torch.cat(values).to(matrix.dtype)
        matrix[rows, cols] = flat
        if symmetric:
            matrix[cols, rows] = flat
    return matrix


def pair_count(n_samples: int, n_refs: int) -> int:
    """Distance pairs of one metric on one set: S R + S (S - 1) / 2 + R (R - 1) / 2 (S x R, two triangles)."""
    return n_samples * n_refs + n_samples * (n_samples - 1) // 2 + n_refs * (n_refs - 1) // 2


def _unchanged(matrix: Tensor) -> Tensor:
    return matrix


def minimum_matching_distance(dist: Float[Tensor, "S R"]) -> Float[Tensor, ""]:
    """MMD: for each reference (column) the smallest distance to any sample (row), averaged."""
    return dist.amin(dim=0).mean()


def coverage(dist: Float[Tensor, "S R"]) -> Float[Tensor, ""]:
    """COV: fraction of references (columns) that are the nearest reference of at least one sample (row)."""
    nearest = dist.argmin(dim=1)  # (S,)
    return torch.tensor(nearest.unique().numel() / dist.shape[1], dtype=dist.dtype, device=dist.device)


def one_nn_accuracy(
    dist_ss: Float[Tensor, "S S"], dist_rr: Float[Tensor, "R R"], dist_sr: Float[Tensor, "S R"]
) -> dict[str, Float[Tensor, ""]]:
    """Leave-one-out 1-NN accuracy over references and samples: ``accuracy``, ``refs`` and ``samples``."""
    n_s, n_r = dist_ss.shape[0], dist_rr.shape[0]
    if dist_ss.shape != (n_s, n_s) or dist_rr.shape != (n_r, n_r) or dist_sr.shape != (n_s, n_r):
        raise ValueError(
            f"expected dist_ss (S, S), dist_rr (R, R), dist_sr (S, R), got {tuple(dist_ss.shape)}, "
            f"{tuple(dist_rr.shape)}, {tuple(dist_sr.shape)}"
        )
    full = torch.cat(
        [torch.cat([dist_rr, dist_sr.T], dim=1), torch.cat([dist_sr, dist_ss], dim=1)], dim=0
    )  # (R + S, R + S), references first
    full = full.fill_diagonal_(float("inf"))
    is_ref = torch.cat([torch.ones(n_r, dtype=torch.bool), torch.zeros(n_s, dtype=torch.bool)]).to(
        full.device
    )
    correct = (is_ref[full.argmin(dim=1)] == is_ref).to(full.dtype)  # argmin: first minimum on ties
    return {"accuracy": correct.mean(), "refs": correct[:n_r].mean(), "samples": correct[n_r:].mean()}


def _set_metrics(
    samples: Tensor,
    refs: Tensor,
    metrics: Sequence[str],
    batch_size: int,
    method: EMDMethod,
    exact_max: int,
    share: tuple[int, int] | None,
    combine: Callable[[Tensor], Tensor],
) -> dict[str, float]:
    results: dict[str, float] = {}
    for metric in metrics:
        common = {
            "metric": metric,
            "batch_size": batch_size,
            "emd_method": method,
            "exact_max_points": exact_max,
            "share": share,
        }
        dist_sr = combine(pairwise_distances(samples, refs, **common))
        dist_ss = combine(pairwise_distances(samples, **common))
        dist_rr = combine(pairwise_distances(refs, **common))
        nna = one_nn_accuracy(dist_ss, dist_rr, dist_sr)
        results[f"mmd_{metric}"] = minimum_matching_distance(dist_sr).item()
        results[f"cov_{metric}"] = coverage(dist_sr).item()
        results[f"1nna_{metric}"] = nna["accuracy"].item()
        results[f"1nna_{metric}_refs"] = nna["refs"].item()
        results[f"1nna_{metric}_samples"] = nna["samples"].item()
    return results


def generation_metrics(
    samples: Float[Tensor, "S N 3"],
    refs: Float[Tensor, "R N 3"],
    metrics: Sequence[Metric] = ("cd", "emd"),
    protocol: Literal["full", "per_batch"] = "full",
    batch_size: int = 64,
    emd_method: EMDMethod = "auto",
    exact_max_points: int = 1024,
    pair_batch_size: int | None = None,
    share: tuple[int, int] | None = None,
    combine: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float | int | str | None]:
    """MMD, COV and 1-NNA of generated ``samples`` against ``refs`` (module docstring for the protocols).

    ``batch_size`` is the chunk size of ``"per_batch"``; distances are computed ``pair_batch_size`` pairs at
    a time (default ``batch_size``). ``share=(rank, world_size)`` computes this process's share of the pairs
    and ``combine`` must then turn each partial distance matrix into the full one (a sum over the processes,
    e.g. an all-reduce); the inputs must be the same on every process.

    Keys: ``mmd_<m>``, ``cov_<m>``, ``1nna_<m>``, ``1nna_<m>_refs``, ``1nna_<m>_samples`` for each metric
    ``m`` in ``metrics``, plus ``protocol``, ``n_samples``, ``n_refs``, ``n_points``, ``n_chunks``,
    ``n_pairs`` (distance pairs per metric), ``ranks`` (processes that shared them) and ``emd_method``
    (``"exact"`` or ``"sinkhorn"``, None without EMD).
    """
    _check_shapes("samples", samples)
    _check_shapes("refs", refs)
    if samples.shape[1] != refs.shape[1]:
        raise ValueError(
            f"refs: expected (R, N, 3) with N = {samples.shape[1]} as in samples, got {tuple(refs.shape)}"
        )
    unknown = [m for m in metrics if m not in _METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics: expected a non-empty subset of {_METRICS}, got {tuple(metrics)}")
    if protocol not in ("full", "per_batch"):
        raise ValueError(f"protocol: expected 'full' or 'per_batch', got {protocol!r}")
    if len(samples) == 0:
        raise ValueError("samples: expected (S, N, 3) with S >= 1, got no shapes")
    if len(samples) != len(refs):
        raise ValueError(
            f"protocol {protocol!r} pairs one generated shape with each reference: expected as many samples "
            f"as references, got {len(samples)} samples and {len(refs)} references"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    pair_batch_size = batch_size if pair_batch_size is None else pair_batch_size
    if pair_batch_size < 1:
        raise ValueError(f"pair_batch_size: expected >= 1, got {pair_batch_size}")
    _, world_size = _check_share(share)
    if combine is None:
        if world_size > 1:
            raise ValueError(
                f"share={share} computes only part of each distance matrix: pass combine, the sum of the "
                "partial matrices over the processes"
            )
        combine = _unchanged
    n_points = samples.shape[1]
    chosen = resolve_emd_method(n_points, emd_method, exact_max_points) if "emd" in metrics else None
    if protocol == "full":
        chunks = [(samples, refs)]
    else:
        chunks = [
            (samples[k : k + batch_size], refs[k : k + batch_size])
            for k in range(0, len(samples), batch_size)
        ]
    per_chunk = [
        _set_metrics(s, r, metrics, pair_batch_size, emd_method, exact_max_points, share, combine)
        for s, r in chunks
    ]
    results: dict[str, float | int | str | None] = {
        key: sum(chunk[key] for chunk in per_chunk) / len(per_chunk) for key in per_chunk[0]
    }
    results.update(
        protocol=protocol,
        n_samples=len(samples),
        n_refs=len(refs),
        n_points=n_points,
        n_chunks=len(chunks),
        n_pairs=sum(pair_count(len(s), len(r)) for s, r in chunks),
        ranks=world_size,
        emd_method=chosen,
    )
    return results
