"""MMD, COV and 1-NNA of point-cloud generation (PointFlow definitions), and the full/per_batch protocols."""

import pytest
import torch

from sciml.geometry import chamfer_distance, earth_movers_distance
from sciml.metrics.pointclouds import (
    coverage,
    generation_metrics,
    minimum_matching_distance,
    one_nn_accuracy,
    pair_count,
    pairwise_distances,
)


def _shapes(count: int, n_points: int = 32, seed: int = 0) -> torch.Tensor:
    """Distinct shapes: random anisotropic Gaussian blobs, each with its own scale along each axis."""
    g = torch.Generator().manual_seed(seed)
    scales = 0.2 + torch.rand(count, 1, 3, generator=g)
    return torch.randn(count, n_points, 3, generator=g) * scales


def test_pairwise_distances_match_the_pair_by_pair_definition():
    x, y = _shapes(3, seed=1), _shapes(4, seed=2)
    for metric, distance in (("cd", chamfer_distance), ("emd", earth_movers_distance)):
        matrix = pairwise_distances(x, y, metric=metric, batch_size=5)
        assert matrix.shape == (3, 4)
        expected = torch.stack(
            [torch.cat([distance(x[i : i + 1], y[j : j + 1]) for j in range(4)]) for i in range(3)]
        )
        torch.testing.assert_close(matrix, expected)
        self_matrix = pairwise_distances(x, metric=metric, batch_size=2)  # upper triangle, mirrored
        torch.testing.assert_close(self_matrix, pairwise_distances(x, x, metric=metric))
        assert torch.equal(self_matrix.diagonal(), torch.zeros(3))


@pytest.mark.parametrize("world_size", [2, 3, 7])
def test_shares_of_the_pairs_tile_the_matrix_exactly(world_size):
    """Each rank's block is disjoint from the others and together they are the whole matrix, bit for bit."""
    x, y = _shapes(4, seed=1), _shapes(3, seed=2)
    for metric in ("cd", "emd"):
        for other in (y, None):
            full = pairwise_distances(x, other, metric=metric, batch_size=2)
            parts = [
                pairwise_distances(x, other, metric=metric, batch_size=2, share=(rank, world_size))
                for rank in range(world_size)
            ]
            assert torch.equal(sum(parts), full)
            computed = torch.stack(
                [part != 0 for part in parts]
            )  # (world, P, Q): distinct shapes, CD/EMD > 0
            assert computed.sum(dim=0).max() <= 1, "a pair computed by two ranks"
            sizes = [int(part.count_nonzero()) // (2 if other is None else 1) for part in parts]
            assert max(sizes) - min(sizes) <= 1, sizes


def test_metrics_from_shared_pairs_equal_the_single_process_ones():
    """Two simulated ranks: each computes its block, ``combine`` adds the other rank's block."""
    samples, refs = _shapes(5, seed=7), _shapes(5, seed=8)
    single = generation_metrics(samples, refs, pair_batch_size=3)
    other_blocks: list[torch.Tensor] = []

    def record_other_rank(partial):
        return partial + other_blocks.pop(0)

    # in the order rank 0's generation_metrics asks for them: S x R, S x S, R x R, for CD then EMD
    for metric in ("cd", "emd"):
        for x, y in ((samples, refs), (samples, None), (refs, None)):
            other_blocks.append(pairwise_distances(x, y, metric=metric, batch_size=3, share=(1, 2)))
    shared = generation_metrics(samples, refs, pair_batch_size=3, share=(0, 2), combine=record_other_rank)
    assert not other_blocks
    assert shared.pop("ranks") == 2 and single.pop("ranks") == 1
    assert shared == single
    assert single["n_pairs"] == pair_count(5, 5) == 25 + 2 * 10
    with pytest.raises(ValueError, match="pass combine"):
        generation_metrics(samples, refs, share=(0, 2))
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        pairwise_distances(samples, share=(2, 2))


def test_mmd_cov_and_1nna_on_hand_made_matrices():
    dist_sr = torch.tensor([[1.0, 4.0, 3.0], [2.0, 0.5, 6.0]])  # 2 samples x 3 references
    # per reference: min over samples = 1, 0.5, 3 -> MMD = 1.5; nearest references of the samples: {0, 1}
    torch.testing.assert_close(minimum_matching_distance(dist_sr), torch.tensor(1.5))
    torch.testing.assert_close(coverage(dist_sr), torch.tensor(2 / 3))
    dist_ss = torch.tensor([[0.0, 0.8], [0.8, 0.0]])
    dist_rr = torch.tensor([[0.0, 2.0, 2.5], [2.0, 0.0, 0.2], [2.5, 0.2, 0.0]])
    # nearest neighbours: ref0 -> sample0 (1 < 2) wrong; ref1 -> ref2 right; ref2 -> ref1 right;
    # sample0 -> sample1 (0.8 < 1) right; sample1 -> ref1 (0.5 < 0.8) wrong
    result = one_nn_accuracy(dist_ss, dist_rr, dist_sr)
    torch.testing.assert_close(result["accuracy"], torch.tensor(3 / 5))
    torch.testing.assert_close(result["refs"], torch.tensor(2 / 3))
    torch.testing.assert_close(result["samples"], torch.tensor(1 / 2))


def test_exact_copies_give_mmd_0_cov_1_and_1nna_0():
    refs = _shapes(6)
    results = generation_metrics(refs.clone(), refs, batch_size=4)
    for metric in ("cd", "emd"):
        assert results[f"mmd_{metric}"] == 0.0
        assert results[f"cov_{metric}"] == 1.0
        # Each shape's nearest neighbour (distance 0) is its twin in the other set: every one misclassified.
        assert results[f"1nna_{metric}"] == 0.0
    assert results["protocol"] == "full" and results["emd_method"] == "exact"
    assert (results["n_samples"], results["n_refs"], results["n_points"], results["n_chunks"]) == (
        6,
        6,
        32,
        1,
    )


def test_samples_from_the_reference_distribution_approach_1nna_one_half():
    samples, refs = _shapes(40, n_points=16, seed=3), _shapes(40, n_points=16, seed=4)
    results = generation_metrics(samples, refs, metrics=("cd",), batch_size=256)
    assert 0.35 <= results["1nna_cd"] <= 0.65
    assert results["emd_method"] is None and "mmd_emd" not in results


def test_samples_far_from_the_references_give_1nna_1():
    refs = _shapes(5)
    samples = _shapes(5, seed=9) + 100.0
    results = generation_metrics(samples, refs)
    for metric in ("cd", "emd"):
        assert results[f"1nna_{metric}"] == 1.0
        assert results[f"1nna_{metric}_refs"] == 1.0 and results[f"1nna_{metric}_samples"] == 1.0


def test_collapsed_samples_cover_one_reference():
    refs = _shapes(5)
    samples = refs[:1].expand(5, -1, -1).clone()
    results = generation_metrics(samples, refs, metrics=("cd",))
    assert results["cov_cd"] == pytest.approx(1 / 5)
    # MMD: each reference's distance to reference 0 (the only shape generated), averaged.
    expected = chamfer_distance(refs[:1].expand(5, -1, -1), refs).mean().item()
    assert results["mmd_cd"] == pytest.approx(expected, rel=1e-6)


def test_per_batch_protocol_averages_full_metrics_over_chunks():
    samples, refs = _shapes(7, seed=5), _shapes(7, seed=6)
    full = generation_metrics(samples, refs, protocol="full", batch_size=3)
    one_chunk = generation_metrics(samples, refs, protocol="per_batch", batch_size=7)
    assert one_chunk["n_chunks"] == 1
    for key, value in full.items():
        if key != "protocol":
            assert one_chunk[key] == pytest.approx(value), key
    chunked = generation_metrics(samples, refs, protocol="per_batch", batch_size=3)
    parts = [generation_metrics(samples[k : k + 3], refs[k : k + 3]) for k in (0, 3, 6)]
    assert chunked["n_chunks"] == 3 and chunked["protocol"] == "per_batch"
    for key in ("mmd_cd", "cov_emd", "1nna_cd", "1nna_emd_refs"):
        assert chunked[key] == pytest.approx(sum(part[key] for part in parts) / 3), key


def test_invalid_inputs_raise_with_the_expected_shape():
    refs = _shapes(4)
    with pytest.raises(ValueError, match="expected as many samples as references, got 3 samples and 4"):
        generation_metrics(_shapes(3), refs)
    with pytest.raises(ValueError, match=r"refs: expected \(R, N, 3\) with N = 16"):
        generation_metrics(_shapes(4, n_points=16), refs)
    with pytest.raises(ValueError, match=r"samples: expected \(S, N, 3\), got \(4, 32\)"):
        generation_metrics(refs[..., 0], refs)
    with pytest.raises(ValueError, match="metrics: expected a non-empty subset"):
        generation_metrics(refs, refs, metrics=("f1",))
    with pytest.raises(ValueError, match="protocol: expected 'full' or 'per_batch'"):
        generation_metrics(refs, refs, protocol="chunks")
