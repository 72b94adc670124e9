"""Distances between point clouds: Chamfer distance and Earth Mover's distance, in the conventions of the
point-cloud generation literature (PointFlow, G. Yang et al., ICCV 2019; PVD, L. Zhou et al., ICCV 2021;
DiT-3D, S. Mo et al., 2023).

Chamfer distance (CD), per pair of clouds ``a`` (N points) and ``b`` (M points), with squared distances:

    CD(a, b) = mean_{x in a} min_{y in b} ||x - y||^2 + mean_{y in b} min_{x in a} ||x - y||^2

This is PointFlow's ``dl.mean(1) + dr.mean(1)`` and kaolin's ``chamfer_distance(p1, p2)`` with its default
weights ``w1 = w2 = 1`` (squared distances), which is used when kaolin is importable and the clouds are on a
CUDA device. Otherwise the distances come from coordinate differences (:func:`squared_distances`, never the
``|x|^2 + |y|^2 - 2 x.y`` expansion, so identical points are exactly 0 apart), in chunks of rows so that at
most ``max_pair_elements`` distances exist at once. 0.13 ms per pair of 2048-point clouds on an H100.

Earth Mover's distance (EMD) between clouds of equal size N, with Euclidean (not squared) costs:

    EMD(a, b) = min over bijections pi of (1 / N) sum_i ||a_i - b_pi(i)||_2

the PointFlow convention (``emd / N``). The official PVD/DiT-3D evaluation calls PyTorchEMD's approximate
matching without dividing by N; that scales MMD-EMD by N and leaves COV-EMD and 1-NNA-EMD unchanged. EMD
carries no gradient here (it is an evaluation metric). Three methods:

* ``"exact"``: ``scipy.optimize.linear_sum_assignment`` on the float64 cost matrix, one pair per CPU thread
  (``workers``, default: every core the process may use; scipy releases the GIL).
* ``"sinkhorn"``: batched, on the clouds' device. (1) log-domain Sinkhorn between the uniform measures with
  epsilon scaling: eps annealed by ``sinkhorn_scaling`` per stage from the largest cost down to
  ``sinkhorn_blur * diameter`` (diameter: the largest cost of the pair), ``sinkhorn_iters`` updates per
  stage, each stage warm-started from the previous potentials. (2) Rounding to a bijection by Bertsekas'
  forward auction (Jacobi form), prices initialised from the Sinkhorn potentials, with its own eps scaling
  from ``sinkhorn_blur`` down to ``auction_eps`` (times the diameter, by factors of about
  ``auction_factor``). The result is the mean cost of a real bijection: never below the exact EMD, and above
  it by at most ``auction_eps * diameter`` (eps-complementary slackness). Why the auction: the transport
  cost of the Sinkhorn plan itself (made feasible by Altschuler-Weed-Rigollet rounding) was measured 2-26 %
  off the exact EMD for 1024 points even after 600 Sinkhorn updates at eps = 1e-3 diameter, and greedy
  rounding of the plan to a permutation 3-15 % off; the warm start from Sinkhorn saves the auction only a
  few of its rounds.
* ``"auto"``: exact when ``N <= exact_max_points`` else sinkhorn; :func:`emd_method` says which one runs.

Measured with the defaults (``sinkhorn_blur=1e-2``, ``auction_eps=1e-3``), relative error
``(sinkhorn - exact) / exact`` over pairs of Gaussian blobs, uniform cubes, torus vs torus, torus vs a
scaled and shifted torus, and torus vs sphere surface:

* 256 and 1024 points (CPU, 4 pairs per kind): 2.5e-4 to 8.9e-4, never negative;
* 2048 points (H100, 16 pairs per kind, 80 in all): 4.4e-4 to 1.6e-3 (largest on torus vs torus, whose EMD
  is smallest), mean 8.6e-4, never negative.

Speed for 2048 points: ``"sinkhorn"`` 69-78 ms per pair on an H100 in batches of 128-512 pairs (the auction's
rounds dominate; 8 GiB peak with the default ``max_pair_elements``); ``"exact"`` 0.6-2.3 s per pair on one
CPU core, 0.06-0.26 s per pair with 16 threads. On a CPU the exact method is also the faster one (1024
points: 0.06 s per pair against 0.35 s), so set ``exact_max_points`` high there.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from scipy.optimize import linear_sum_assignment
from torch import Tensor

EMDMethod = Literal["auto", "exact", "sinkhorn"]
_EMD_METHODS = ("auto", "exact", "sinkhorn")


def _check_clouds(a: Tensor, b: Tensor, same_size: bool) -> None:
    for name, cloud in (("a", a), ("b", b)):
        if cloud.ndim != 3 or cloud.shape[-1] != 3:
            raise ValueError(f"{name}: expected (B, N, 3), got {tuple(cloud.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"b: expected (B, M, 3) with B = {a.shape[0]} as in a, got {tuple(b.shape)}")
    if same_size and a.shape[1] != b.shape[1]:
        raise ValueError(
            f"b: expected (B, N, 3) with N = {a.shape[1]} as in a (EMD matches points one to one), "
            f"got {tuple(b.shape)}"
        )


@functools.cache
def kaolin_pointcloud() -> ModuleType | None:
    """``kaolin.metrics.pointcloud`` when kaolin is installed, else None (the one place kaolin is imported).

    kaolin has no wheel for current torch and its ops are CUDA-only, so it is optional; an installed but
    broken kaolin raises here, loudly.
    """
    if importlib.util.find_spec("kaolin") is None:
        return None
    return importlib.import_module("kaolin.metrics.pointcloud")


def squared_distances(a: Float[Tensor, "B N 3"], b: Float[Tensor, "B M 3"]) -> Float[Tensor, "B N M"]:
    """All squared distances ``||a_i - b_j||^2`` from coordinate differences (exactly 0 between equal points).

    On CPU through ``torch.cdist`` without the matmul expansion; on CUDA, where that kernel is slow (5 ms per
    pair of 2048-point clouds on an H100), as three broadcast differences accumulated in place.
    """
    if not a.is_cuda:
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()
    squared = (a[:, :, None, 0] - b[:, None, :, 0]).square()  # (B, N, M)
    for axis in (1, 2):
        squared += (a[:, :, None, axis] - b[:, None, :, axis]).square()
    return squared


def _chamfer_torch(a: Tensor, b: Tensor, max_pair_elements: int) -> Tensor:
    batch, n, _ = a.shape
    m = b.shape[1]
    rows = max(1, max_pair_elements // max(1, batch * m))
    a_to_b = []
    b_to_a = torch.full((batch, m), math.inf, dtype=a.dtype, device=a.device)
    for start in range(0, n, rows):
        squared = squared_distances(a[:, start : start + rows], b)  # (B, rows, M)
        a_to_b.append(squared.amin(dim=2))  # (B, rows)
        b_to_a = torch.minimum(b_to_a, squared.amin(dim=1))  # (B, M)
    return torch.cat(a_to_b, dim=1).mean(dim=1) + b_to_a.mean(dim=1)


def chamfer_distance(
    a: Float[Tensor, "B N 3"],
    b: Float[Tensor, "B M 3"],
    backend: Literal["auto", "torch", "kaolin"] = "auto",
    max_pair_elements: int = 2**24,
) -> Float[Tensor, " B"]:
    """Chamfer distance with squared distances, summed over both directions (module docstring).

    ``backend="auto"`` uses kaolin for CUDA tensors when it is importable, else the chunked torch path;
    ``"kaolin"`` without kaolin raises ImportError.
    """
    _check_clouds(a, b, same_size=False)
    if backend not in ("auto", "torch", "kaolin"):
        raise ValueError(f"backend: expected 'auto', 'torch' or 'kaolin', got {backend!r}")
    kaolin = kaolin_pointcloud() if backend != "torch" else None
    if backend == "kaolin" and kaolin is None:
        raise ImportError(
            "backend='kaolin' needs kaolin (NVIDIA), which is not installed; use backend='torch'"
        )
    if kaolin is not None and (backend == "kaolin" or a.is_cuda):
        return kaolin.chamfer_distance(a, b)
    return _chamfer_torch(a, b, max_pair_elements)


def emd_method(n_points: int, method: EMDMethod = "auto", exact_max_points: int = 1024) -> str:
    """The EMD method (``"exact"`` or ``"sinkhorn"``) that :func:`earth_movers_distance` uses for N points."""
    if method not in _EMD_METHODS:
        raise ValueError(f"method: expected one of {_EMD_METHODS}, got {method!r}")
    if method == "auto":
        return "exact" if n_points <= exact_max_points else "sinkhorn"
    return method


def _exact_pair(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))  # (N, N) float64
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def _emd_exact(a: Tensor, b: Tensor, workers: int | None) -> Tensor:
    a64 = a.detach().cpu().double().numpy()
    b64 = b.detach().cpu().double().numpy()
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(workers, len(a64)))
    if workers == 1:
        values = [_exact_pair(x, y) for x, y in zip(a64, b64)]
    else:  # scipy's assignment solver releases the GIL, so threads run pairs in parallel
        with ThreadPoolExecutor(workers) as pool:
            values = list(pool.map(_exact_pair, a64, b64))
    return torch.tensor(values, dtype=a.dtype, device=a.device)


def sinkhorn_potentials(
    cost: Float[Tensor, "B N N"], eps_final: Float[Tensor, " B"], scaling: float = 0.7, iters_per_eps: int = 3
) -> tuple[Float[Tensor, "B N"], Float[Tensor, "B N"]]:
    """Dual potentials ``(f, g)`` of entropic OT between uniform measures: log-domain Sinkhorn, eps scaling.

    eps starts at the largest cost of each pair and shrinks by ``scaling`` per stage down to ``eps_final``;
    each stage runs ``iters_per_eps`` alternating updates, warm-started from the previous stage's potentials:

        f_i = -eps log (1/N) sum_j exp((g_j - C_ij) / eps)
        g_j = -eps log (1/N) sum_i exp((f_i - C_ij) / eps)
    """
    if not 0 < scaling < 1:
        raise ValueError(f"scaling: expected a factor in (0, 1), got {scaling}")
    batch, n, _ = cost.shape
    eps_final = eps_final.clamp_min(torch.finfo(cost.dtype).tiny)
    eps_start = cost.flatten(1).amax(dim=1).clamp_min(eps_final)  # (B,)
    stages = int(math.ceil(torch.log(eps_start / eps_final).amax().item() / -math.log(scaling))) + 1
    log_n = math.log(n)
    f = cost.new_zeros(batch, n)
    g = cost.new_zeros(batch, n)
    for stage in range(stages):
        eps = torch.maximum(eps_start * scaling**stage, eps_final)[:, None]  # (B, 1)
        for _ in range(iters_per_eps):
            f = -eps * (torch.logsumexp((g[:, None, :] - cost) / eps[..., None], dim=2) - log_n)
            g = -eps * (torch.logsumexp((f[:, :, None] - cost) / eps[..., None], dim=1) - log_n)
    return f, g


def auction_assignment(
    cost: Float[Tensor, "B N N"],
    prices: Float[Tensor, "B N"],
    eps: Float[Tensor, " B"],
    assignment: Tensor | None = None,
    max_rounds: int = 1_000_000,
) -> tuple[Tensor, Float[Tensor, "B N"]]:
    """Bijection ``assignment[b, i] = j`` nearly minimizing ``sum_i cost[b, i, j]``: a Jacobi forward auction.

    Every unassigned row bids for its best column under the current prices (value ``-cost - price``), raising
    that price by (best value - second best value + eps); each column goes to its highest bidder, whose
    previous owner becomes unassigned. At termination every row holds a column within ``eps`` of its best
    value (eps-complementary slackness), so the total cost is within ``N * eps`` of the optimum (D. P.
    Bertsekas, "The auction algorithm: a distributed relaxation method for the assignment problem", Ann. Oper.
    Res. 14, 1988). A given ``assignment`` (``-1`` = unassigned) is kept where it satisfies eps-CS under
    ``prices``, which is what makes eps scaling cheap. Returns the assignment and the final prices; raises
    RuntimeError if some row is still unassigned after ``max_rounds`` rounds.
    """
    batch, n, _ = cost.shape
    if n == 1:
        return torch.zeros(batch, 1, dtype=torch.long, device=cost.device), prices
    # Flat state over the B N rows and B N columns, with one spare slot at the end that absorbs the writes of
    # "nobody": each round is then a fixed sequence of kernels with a single host sync (the free-row list).
    slots = batch * n
    device = cost.device
    spare = torch.tensor(slots, device=device)
    slot = torch.arange(slots, device=device)
    sample_start = slot - slot % n  # (B N,) b N of row / column slot b N + k
    column_of_slot = slot % n  # (B N,) j of column slot b N + j
    flat_cost = cost.reshape(slots, n)  # (B N, N) row slot -> costs to the N columns of its sample
    flat_prices = prices.reshape(slots).clone()  # (B N,) column slot b N + j
    owner = torch.full((slots,), -1, dtype=torch.long, device=device)  # local row owning each column
    assigned = torch.full((slots + 1,), -1, dtype=torch.long, device=device)  # local column of each row
    if assignment is not None:
        values = -cost - flat_prices.view(batch, 1, n)  # (B, N, N)
        held = values.gather(2, assignment.clamp_min(0)[..., None])[..., 0]  # (B, N)
        keep = ((assignment >= 0) & (held >= values.amax(dim=2) - eps[:, None])).reshape(slots)
        kept_column = torch.where(keep, sample_start + assignment.reshape(slots), spare)
        assigned[:slots] = torch.where(keep, assignment.reshape(slots), -1)
        owner = torch.cat([owner, owner[:1]]).index_put_((kept_column,), slot - sample_start)[:slots]
    for _ in range(max_rounds):
        free = (assigned[:slots] < 0).nonzero()[:, 0]  # (K,) free row slots; the round's one host sync
        if free.numel() == 0:
            return assigned[:slots].view(batch, n), flat_prices.view(batch, n)
        free_start = sample_start[free]  # (K,)
        values = -flat_cost[free] - flat_prices.view(batch, n)[free // n]  # (K, N)
        top = values.topk(2, dim=1)
        column = free_start + top.indices[:, 0]  # (K,) column slot each free row bids for
        bid = flat_prices[column] + (top.values[:, 0] - top.values[:, 1]) + eps[free // n]
        highest = torch.full_like(flat_prices, -math.inf).scatter_reduce(0, column, bid, "amax")
        candidate = torch.where(bid == highest[column], free, -1)  # ties: the largest row slot wins
        winner = torch.full_like(owner, -1).scatter_reduce(0, column, candidate, "amax")  # (B N,) row slot
        sold = winner >= 0
        evicted = torch.where(sold & (owner >= 0), sample_start + owner, spare)
        assigned.index_put_((evicted,), torch.tensor(-1, device=device))
        assigned.index_put_((torch.where(sold, winner, spare),), column_of_slot)
        owner = torch.where(sold, winner - sample_start, owner)
        flat_prices = torch.where(sold, highest, flat_prices)
    raise RuntimeError(f"auction left rows unassigned after max_rounds={max_rounds}; raise auction_eps")


def _emd_sinkhorn(
    a: Tensor,
    b: Tensor,
    blur: float,
    scaling: float,
    iters_per_eps: int,
    auction_eps: float,
    auction_factor: float,
) -> Tensor:
    cost = squared_distances(a, b).sqrt_()  # (B, N, N)
    diameter = cost.flatten(1).amax(dim=1)  # (B,)
    diameter = torch.where(diameter > 0, diameter, 1.0)  # all points coincide: any bijection costs 0
    _, g = sinkhorn_potentials(cost, blur * diameter, scaling, iters_per_eps)
    prices = -g  # a column's price is minus its dual potential: value -C_ij - p_j = g_j - C_ij
    n_phases = max(1, math.ceil(math.log(blur / auction_eps) / -math.log(auction_factor)))
    assignment = None
    for phase in range(n_phases + 1):  # eps from blur down to auction_eps, geometrically
        eps = blur * (auction_eps / blur) ** (phase / n_phases)
        assignment, prices = auction_assignment(cost, prices, eps * diameter, assignment)
    return cost.gather(2, assignment[..., None])[..., 0].mean(dim=1)  # (B,)


def earth_movers_distance(
    a: Float[Tensor, "B N 3"],
    b: Float[Tensor, "B N 3"],
    method: EMDMethod = "auto",
    exact_max_points: int = 1024,
    sinkhorn_blur: float = 1e-2,
    sinkhorn_scaling: float = 0.7,
    sinkhorn_iters: int = 3,
    auction_eps: float = 1e-3,
    auction_factor: float = 0.3,
    max_pair_elements: int | None = None,
    workers: int | None = None,
) -> Float[Tensor, " B"]:
    """Mean Euclidean distance between matched points under the optimal bijection (``emd / N``).

    ``method`` (module docstring): ``"exact"`` (scipy, CPU, float64), ``"sinkhorn"`` (batched torch on the
    clouds' device; ``sinkhorn_*`` set its Sinkhorn stage, ``auction_eps`` (relative to the largest cost of
    the pair) and ``auction_factor`` (eps ratio between auction phases) its rounding to a bijection), or
    ``"auto"``. The sinkhorn path works on pairs in chunks of at most ``max_pair_elements`` costs.

    Relative error of ``"sinkhorn"`` against ``"exact"`` with the defaults, measured on random and
    shape-like sets (module docstring): 2.5e-4 to 8.9e-4 for 256-1024 points, 4.4e-4 to 1.6e-3 for 2048,
    always an overestimate. ``workers`` is the number of CPU threads of the exact method (None: all cores).
    """
    _check_clouds(a, b, same_size=True)
    chosen = emd_method(a.shape[1], method, exact_max_points)
    if chosen == "exact":
        return _emd_exact(a, b, workers)
    if not 0 < auction_eps <= sinkhorn_blur:
        raise ValueError(
            f"auction_eps: expected 0 < auction_eps <= sinkhorn_blur = {sinkhorn_blur}, got {auction_eps}"
        )
    if not 0 < auction_factor < 1:
        raise ValueError(f"auction_factor: expected a factor in (0, 1), got {auction_factor}")
    batch, n, _ = a.shape
    if max_pair_elements is None:
        max_pair_elements = 2**29 if a.is_cuda else 2**24
    chunk = max(1, max_pair_elements // (n * n))
    with torch.no_grad():
        return torch.cat(
            [
                _emd_sinkhorn(
                    a[start : start + chunk],
                    b[start : start + chunk],
                    sinkhorn_blur,
                    sinkhorn_scaling,
                    sinkhorn_iters,
                    auction_eps,
                    auction_factor,
                )
                for start in range(0, batch, chunk)
            ]
        )
