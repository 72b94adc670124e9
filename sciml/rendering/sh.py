"""Real spherical harmonics up to degree 4, the view-dependent colour basis of Plenoxels, 3DGS and SHaDe.

``spherical_harmonics(d, L)`` evaluates the ``(L + 1)^2`` real harmonics ``Y_l^m``, ``l = 0..L``,
``m = -l..l``, at unit directions ``d = (x, y, z)``, as explicit polynomials of ``x, y, z``. A
view-dependent colour is then ``c(d) = sum_k k_k Y_k(d)`` with learned coefficients ``k`` (usually passed
through a sigmoid, or offset by 0.5 as in 3DGS).

Ordering: degree-major, and within a degree ``m`` from ``-l`` to ``l``: index ``l^2 + l + m`` (0: ``Y_0^0``;
1, 2, 3: ``Y_1^{-1}, Y_1^0, Y_1^1``; ...; 24: ``Y_4^4``).

Normalization: orthonormal on the unit sphere, ``integral Y_k Y_k' dOmega = delta_kk'``.

Sign convention (the one of Plenoxels' ``eval_sh`` and 3DGS's ``sh_utils``, i.e. "graphics" real SH): with
the complex harmonics ``Y_l^m`` *including* the Condon-Shortley phase ``(-1)^m`` (scipy's ``sph_harm_y``),
polar angle ``theta`` from +z and azimuth ``phi`` from +x towards +y,

    Y_{l,m} = sqrt(2) Re Y_l^m     (m > 0)
    Y_{l,0} = Y_l^0
    Y_{l,m} = sqrt(2) Im Y_l^|m|   (m < 0)

so degree 1 is ``sqrt(3 / 4 pi) (-y, z, -x)``. This differs from the usual physics real harmonics by a
factor ``(-1)^m``; coefficients are not interchangeable with code that uses the other convention.

The polynomials use ``x^2 + y^2 + z^2 = 1`` (for example ``7 z^2 - 1`` instead of ``7 z^2 - r^2``), so
directions must have unit length; they are not normalized here.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

MAX_DEGREE = 4

_PI = math.pi
# Normalization constants, named by degree and |m|.
_C00 = 0.5 / math.sqrt(_PI)  # 0.28209479177387814
_C1 = math.sqrt(3.0 / (4.0 * _PI))  # 0.4886025119029199
_C2_1 = 0.5 * math.sqrt(15.0 / _PI)  # |m| = 1 and m = -2: 1.0925484305920792
_C2_0 = 0.25 * math.sqrt(5.0 / _PI)  # 0.31539156525252005
_C2_2 = 0.25 * math.sqrt(15.0 / _PI)  # m = 2: 0.5462742152960396
_C3_3 = 0.25 * math.sqrt(35.0 / (2.0 * _PI))  # 0.5900435899266435
_C3_n2 = 0.5 * math.sqrt(105.0 / _PI)  # m = -2: 2.890611442640554
_C3_1 = 0.25 * math.sqrt(21.0 / (2.0 * _PI))  # 0.4570457994644658
_C3_0 = 0.25 * math.sqrt(7.0 / _PI)  # 0.3731763325901154
_C3_2 = 0.25 * math.sqrt(105.0 / _PI)  # m = 2: 1.445305721320277
_C4_n4 = 0.75 * math.sqrt(35.0 / _PI)  # m = -4: 2.5033429417967046
_C4_3 = 0.75 * math.sqrt(35.0 / (2.0 * _PI))  # 1.7701307697799304
_C4_n2 = 0.75 * math.sqrt(5.0 / _PI)  # m = -2: 0.9461746957575601
_C4_1 = 0.75 * math.sqrt(5.0 / (2.0 * _PI))  # 0.6690465435572892
_C4_0 = (3.0 / 16.0) / math.sqrt(_PI)  # 0.10578554691520431
_C4_2 = 0.375 * math.sqrt(5.0 / _PI)  # m = 2: 0.47308734787878004
_C4_4 = (3.0 / 16.0) * math.sqrt(35.0 / _PI)  # m = 4: 0.6258357354491761


def num_sh_coefficients(degree: int) -> int:
    """``(degree + 1)^2``, the number of harmonics of degrees ``0..degree``."""
    _check_degree(degree)
    return (degree + 1) ** 2


def _check_degree(degree: int) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree: expected an int in 0..{MAX_DEGREE}, got {degree!r}")


def spherical_harmonics(directions: Float[Tensor, "*batch 3"], degree: int) -> Float[Tensor, "*batch K"]:
    """Real SH basis ``(..., (degree + 1)^2)`` at unit ``directions`` ``(..., 3)`` (module docstring)."""
    _check_degree(degree)
    if directions.ndim < 1 or directions.shape[-1] != 3:
        raise ValueError(f"directions: expected (..., 3), got {tuple(directions.shape)}")
    x, y, z = directions.unbind(-1)
    terms = [torch.full_like(x, _C00)]
    if degree >= 1:
        terms += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        terms += [
            _C2_1 * xy,
            -_C2_1 * yz,
            _C2_0 * (2.0 * zz - xx - yy),
            -_C2_1 * xz,
            _C2_2 * (xx - yy),
        ]
    if degree >= 3:
        terms += [
            -_C3_3 * y * (3.0 * xx - yy),
            _C3_n2 * xy * z,
            -_C3_1 * y * (4.0 * zz - xx - yy),
            _C3_0 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            -_C3_1 * x * (4.0 * zz - xx - yy),
            _C3_2 * z * (xx - yy),
            -_C3_3 * x * (xx - 3.0 * yy),
        ]
    if degree >= 4:
        terms += [
            _C4_n4 * xy * (xx - yy),
            -_C4_3 * yz * (3.0 * xx - yy),
            _C4_n2 * xy * (7.0 * zz - 1.0),
            -_C4_1 * yz * (7.0 * zz - 3.0),
            _C4_0 * (zz * (35.0 * zz - 30.0) + 3.0),
            -_C4_1 * xz * (7.0 * zz - 3.0),
            _C4_2 * (xx - yy) * (7.0 * zz - 1.0),
            -_C4_3 * xz * (xx - 3.0 * yy),
            _C4_4 * (xx * (xx - 3.0 * yy) - yy * (3.0 * xx - yy)),
        ]
    return torch.stack(terms, dim=-1)  # (..., (degree + 1)^2)
