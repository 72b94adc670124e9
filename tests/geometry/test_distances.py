"""Chamfer distance (PointFlow convention, squared) and EMD (mean matched Euclidean distance)."""

import itertools
import math
import types

import pytest
import torch

from sciml.geometry import chamfer_distance, earth_movers_distance, emd_method
from sciml.geometry import distances as distances_module
from sciml.geometry.distances import auction_assignment, kaolin_pointcloud


def _torus(n: int, generator: torch.Generator) -> torch.Tensor:
    """Points on a torus surface (radii 0.5 and 0.2): a shape-like set for EMD accuracy checks."""
    u, v = torch.rand(2, n, generator=generator, dtype=torch.float64) * 2 * math.pi
    ring = 0.5 + 0.2 * torch.cos(v)
    return torch.stack([ring * torch.cos(u), ring * torch.sin(u), 0.2 * torch.sin(v)], dim=-1)


def test_chamfer_of_identical_sets_is_exactly_zero():
    points = torch.randn(3, 100, 3)
    assert torch.equal(chamfer_distance(points, points), torch.zeros(3))


def test_chamfer_closed_form_on_tiny_sets():
    a = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    b = torch.tensor([[[0.0, 0.0, 0.0]], [[3.0, 4.0, 0.0]]])
    # pair 0: a->b squared NN distances (0, 1) mean 0.5, b->a 0; pair 1: 25 both ways
    torch.testing.assert_close(chamfer_distance(a, b), torch.tensor([0.5, 50.0]))


def test_chamfer_is_symmetric_and_chunking_does_not_change_it():
    torch.manual_seed(0)
    a, b = torch.randn(2, 70, 3, dtype=torch.float64), torch.randn(2, 45, 3, dtype=torch.float64)
    full = chamfer_distance(a, b)
    torch.testing.assert_close(chamfer_distance(b, a), full)
    torch.testing.assert_close(chamfer_distance(a, b, max_pair_elements=7), full)
    brute = torch.stack(
        [
            ((a[i, :, None] - b[i, None]) ** 2).sum(-1).amin(1).mean()
            + ((a[i, :, None] - b[i, None]) ** 2).sum(-1).amin(0).mean()
            for i in range(2)
        ]
    )
    torch.testing.assert_close(full, brute)


def test_kaolin_is_used_only_for_cuda_tensors_or_when_asked(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(
        chamfer_distance=lambda p1, p2: calls.append((p1, p2)) or torch.full((len(p1),), 7.0)
    )
    monkeypatch.setattr(distances_module, "kaolin_pointcloud", lambda: fake)
    a, b = torch.zeros(2, 4, 3), torch.ones(2, 5, 3)
    torch.testing.assert_close(chamfer_distance(a, b), torch.full((2,), 6.0))  # CPU: the torch path
    assert calls == []
    torch.testing.assert_close(chamfer_distance(a, b, backend="kaolin"), torch.full((2,), 7.0))
    assert len(calls) == 1
    torch.testing.assert_close(chamfer_distance(a, b, backend="torch"), torch.full((2,), 6.0))


@pytest.mark.skipif(kaolin_pointcloud() is not None, reason="kaolin is installed")
def test_asking_for_kaolin_without_it_raises_import_error():
    with pytest.raises(ImportError, match="kaolin"):
        chamfer_distance(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), backend="kaolin")


def test_exact_emd_equals_brute_force_over_all_permutations():
    torch.manual_seed(1)
    for n in (1, 2, 4, 6):
        a, b = torch.randn(3, n, 3, dtype=torch.float64), torch.randn(3, n, 3, dtype=torch.float64)
        cost = torch.cdist(a, b)
        brute = torch.stack(
            [
                min(
                    cost[i, torch.arange(n), torch.tensor(perm)].mean()
                    for perm in itertools.permutations(range(n))
                )
                for i in range(3)
            ]
        )
        torch.testing.assert_close(earth_movers_distance(a, b, method="exact"), brute)


@pytest.mark.parametrize("method", ["exact", "sinkhorn"])
def test_emd_of_a_translated_copy_is_the_translation_length(method):
    torch.manual_seed(2)
    a = torch.randn(2, 128, 3, dtype=torch.float64)
    shift = torch.tensor([[0.3, -0.4, 1.2], [0.0, 0.05, 0.0]], dtype=torch.float64)
    emd = earth_movers_distance(a, a + shift[:, None], method=method)
    torch.testing.assert_close(emd, shift.norm(dim=1), rtol=1e-6 if method == "exact" else 1e-3, atol=1e-9)


def test_sinkhorn_is_within_its_documented_tolerance_of_exact():
    # Measured (module docstring): relative error below 1e-3 on random and shape-like sets of 256-2048
    # points, and never below the exact value (the result is the cost of a real bijection). 2e-3 leaves room.
    g = torch.Generator().manual_seed(3)
    n = 256
    a = torch.cat(
        [
            torch.randn(2, n, 3, generator=g, dtype=torch.float64),
            torch.stack([_torus(n, g) for _ in range(2)]),
        ]
    )
    b = torch.cat(
        [torch.rand(2, n, 3, generator=g, dtype=torch.float64), torch.stack([_torus(n, g) for _ in range(2)])]
    )
    b[3] = b[3] * 1.2 + 0.1
    exact = earth_movers_distance(a, b, method="exact")
    approx = earth_movers_distance(a, b, method="sinkhorn")
    relative = (approx - exact) / exact
    assert (relative > -1e-9).all(), relative
    assert (relative < 2e-3).all(), relative


def test_emd_batches_and_chunks_match_single_pairs():
    torch.manual_seed(4)
    a, b = torch.randn(3, 40, 3), torch.randn(3, 40, 3)
    for method in ("exact", "sinkhorn"):
        batched = earth_movers_distance(a, b, method=method)
        single = torch.cat(
            [earth_movers_distance(a[i : i + 1], b[i : i + 1], method=method) for i in range(3)]
        )
        torch.testing.assert_close(batched, single)
    chunked = earth_movers_distance(a, b, method="sinkhorn", max_pair_elements=1)
    torch.testing.assert_close(chunked, earth_movers_distance(a, b, method="sinkhorn"))


def test_exact_emd_gives_the_same_values_on_one_thread_and_several():
    torch.manual_seed(8)
    a, b = torch.randn(5, 50, 3), torch.randn(5, 50, 3)
    serial = earth_movers_distance(a, b, method="exact", workers=1)
    torch.testing.assert_close(earth_movers_distance(a, b, method="exact", workers=3), serial)


def test_sinkhorn_emd_of_coincident_points_is_zero():
    a = torch.ones(2, 20, 3)
    assert torch.equal(earth_movers_distance(a, a.clone(), method="sinkhorn"), torch.zeros(2))


def test_emd_method_auto_switches_at_exact_max_points():
    assert emd_method(1024) == "exact"
    assert emd_method(1025) == "sinkhorn"
    assert emd_method(10, exact_max_points=5) == "sinkhorn"
    assert emd_method(5000, "exact") == "exact"
    with pytest.raises(ValueError, match="method: expected one of"):
        emd_method(10, "hungarian")


def test_auto_emd_uses_sinkhorn_above_the_threshold():
    torch.manual_seed(5)
    a, b = torch.randn(1, 30, 3), torch.randn(1, 30, 3)
    auto = earth_movers_distance(a, b, exact_max_points=10)
    torch.testing.assert_close(auto, earth_movers_distance(a, b, method="sinkhorn"))


def test_auction_finds_the_optimal_assignment_when_eps_is_below_the_gap():
    torch.manual_seed(6)
    cost = torch.rand(2, 7, 7, dtype=torch.float64)
    assignment, _ = auction_assignment(cost, torch.zeros(2, 7, dtype=torch.float64), torch.full((2,), 1e-6))
    for i in range(2):
        assert sorted(assignment[i].tolist()) == list(range(7))
        best = min(cost[i, torch.arange(7), torch.tensor(p)].sum() for p in itertools.permutations(range(7)))
        torch.testing.assert_close(cost[i, torch.arange(7), assignment[i]].sum(), best)


def test_emd_of_different_sizes_and_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"expected \(B, N, 3\) with N = 5"):
        earth_movers_distance(torch.zeros(1, 5, 3), torch.zeros(1, 6, 3))
    with pytest.raises(ValueError, match=r"a: expected \(B, N, 3\), got \(5, 3\)"):
        chamfer_distance(torch.zeros(5, 3), torch.zeros(1, 6, 3))
    with pytest.raises(ValueError, match=r"b: expected \(B, M, 3\) with B = 1"):
        chamfer_distance(torch.zeros(1, 5, 3), torch.zeros(2, 6, 3))
