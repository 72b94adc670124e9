"""Real spherical harmonics: orthonormality by exact quadrature, scipy's harmonics, hand values."""

import math

import numpy as np
import pytest
import scipy.special
import torch

from sciml.rendering import MAX_DEGREE, num_sh_coefficients, spherical_harmonics

F64 = torch.float64


def _random_directions(n: int, seed: int) -> torch.Tensor:
    directions = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return directions / directions.norm(dim=-1, keepdim=True)


def test_orthonormal_on_the_sphere():
    # Gauss-Legendre in z = cos(theta) is exact for polynomials of degree <= 2 * 12 - 1 in z, the uniform
    # phi rule for trigonometric polynomials of degree < 24; products of two degree-4 harmonics have degree 8.
    nodes, weights = np.polynomial.legendre.leggauss(12)
    phi = np.arange(24) * 2 * np.pi / 24
    z, phi = np.meshgrid(nodes, phi, indexing="ij")
    rho = np.sqrt(1 - z**2)
    directions = torch.tensor(np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=-1), dtype=F64)
    quadrature = torch.tensor(np.repeat(weights[:, None], 24, axis=1) * 2 * np.pi / 24, dtype=F64)
    basis = spherical_harmonics(directions, 4).reshape(-1, 25)  # (12 * 24, 25)
    gram = basis.T @ (quadrature.reshape(-1, 1) * basis)
    torch.testing.assert_close(gram, torch.eye(25, dtype=F64), rtol=0, atol=1e-12)


def _scipy_real_harmonics(directions: torch.Tensor, degree: int) -> torch.Tensor:
    """sqrt(2) Re / Im of scipy's complex harmonics (Condon-Shortley phase included), m from -l to l."""
    x, y, z = directions.numpy().T
    theta, phi = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    columns = []
    for l in range(degree + 1):
        for m in range(-l, l + 1):
            complex_y = scipy.special.sph_harm_y(l, abs(m), theta, phi)
            if m > 0:
                columns.append(np.sqrt(2) * complex_y.real)
            elif m < 0:
                columns.append(np.sqrt(2) * complex_y.imag)
            else:
                columns.append(complex_y.real)
    return torch.tensor(np.stack(columns, axis=-1), dtype=F64)


def test_matches_scipy_in_the_graphics_sign_convention():
    directions = _random_directions(200, seed=0)
    torch.testing.assert_close(
        spherical_harmonics(directions, 4), _scipy_real_harmonics(directions, 4), rtol=0, atol=1e-12
    )


def test_addition_theorem():
    # sum_m Y_lm(a) Y_lm(b) = (2l + 1) / (4 pi) P_l(a . b), whatever the sign convention
    a, b = _random_directions(50, seed=1), _random_directions(50, seed=2)
    ya, yb = spherical_harmonics(a, 4), spherical_harmonics(b, 4)
    cosine = (a * b).sum(dim=-1).numpy()
    for l in range(5):
        block = slice(l * l, (l + 1) ** 2)
        expected = (2 * l + 1) / (4 * math.pi) * scipy.special.eval_legendre(l, cosine)
        torch.testing.assert_close(
            (ya[:, block] * yb[:, block]).sum(dim=-1), torch.tensor(expected, dtype=F64)
        )


def test_hand_values():
    directions = _random_directions(10, seed=3)
    x, y, z = directions.unbind(-1)
    values = spherical_harmonics(directions, 1)
    torch.testing.assert_close(values[:, 0], torch.full((10,), 0.28209479177387814, dtype=F64))
    torch.testing.assert_close(values[:, 1:], 0.4886025119029199 * torch.stack([-y, z, -x], dim=-1))
    # at the north pole only m = 0 survives: Y_l^0(+z) = sqrt((2l + 1) / (4 pi))
    pole = spherical_harmonics(torch.tensor([0.0, 0.0, 1.0], dtype=F64), 4)
    expected = torch.zeros(25, dtype=F64)
    for l in range(5):
        expected[l * l + l] = math.sqrt((2 * l + 1) / (4 * math.pi))
    torch.testing.assert_close(pole, expected, rtol=0, atol=1e-15)
    # along +x the sectoral m = l terms are the 3DGS / Plenoxels constants (with their signs)
    along_x = spherical_harmonics(torch.tensor([1.0, 0.0, 0.0], dtype=F64), 4)
    assert along_x[8].item() == pytest.approx(0.5462742152960396, rel=1e-14)  # Y_2^2 = C (x^2 - y^2)
    assert along_x[15].item() == pytest.approx(-0.5900435899266435, rel=1e-14)  # Y_3^3 = -C x (x^2 - 3y^2)
    assert along_x[24].item() == pytest.approx(0.6258357354491761, rel=1e-14)  # Y_4^4
    diagonal = spherical_harmonics(torch.tensor([1.0, 1.0, 1.0], dtype=F64) / math.sqrt(3), 3)
    assert diagonal[10].item() == pytest.approx(2.890611442640554 / 3**1.5, rel=1e-14)  # Y_3^-2 = C xyz


def test_degrees_are_prefixes_and_batch_shapes_are_kept():
    directions = _random_directions(30, seed=4).reshape(2, 3, 5, 3).float()
    full = spherical_harmonics(directions, 4)
    assert full.shape == (2, 3, 5, 25) and full.dtype == torch.float32
    for degree in range(MAX_DEGREE + 1):
        count = num_sh_coefficients(degree)
        assert count == (degree + 1) ** 2
        torch.testing.assert_close(spherical_harmonics(directions, degree), full[..., :count])


@pytest.mark.parametrize("degree", [-1, 5, True, 2.0])
def test_degree_outside_0_to_4_is_an_error(degree):
    with pytest.raises(ValueError, match=r"degree: expected an int in 0\.\.4"):
        spherical_harmonics(torch.tensor([0.0, 0.0, 1.0]), degree)


def test_direction_shape_error():
    with pytest.raises(ValueError, match=r"directions: expected \(\.\.\., 3\), got \(4, 2\)"):
        spherical_harmonics(torch.zeros(4, 2), 2)
