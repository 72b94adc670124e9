"""LES of Wray's decaying isotropic turbulence with each closure, against the 512^3 DNS.

Reference (``../shared/reference/decaying_isotropic_wray`` relative to the repository root, read at run
time; A. A. Wray 1997, AGARD-AR-345 case HOM02): a ``(2 pi)^3`` box, ``nu = 3.5014006e-4``, 3-d energy
spectra ``E(k, t)`` on integer shells at 28 times from ``t = 1.0045`` (file ``CB512.es``).

The LES starts at the first spectrum time from the reference spectrum filtered at the LES cutoff
``k_c = (n - 1) // 3`` (the 2/3-rule cutoff of the ``n^3`` grid; shells ``k <= k_c`` kept), with random
phases (seeded), and runs to the last spectrum time with no model, Smagorinsky (``C_s = 0.17``),
dynamic Smagorinsky and WALE (``C_w = 0.325``). At every reference time it prints the resolved energy
``sum_{1 <= k <= k_c} E(k)`` of each run against the same sum of the reference, and at the end the
spectra and the mean ``|log(E_les / E_ref)|`` over ``k_c / 2 <= k <= k_c`` (the shells a closure controls).
Random phases carry no energy transfer, so every run first under-dissipates for about an eddy turnover
while the cascade builds up; the decay ratio ``E(t_end) / E(t_settled)`` (``--settled``, default 2.0) compares
the closures after that transient.

    python tools/validate_les_wray.py --n 32
    python tools/validate_les_wray.py --n 64

The issue asks for both grids; their outputs are ``docs/validation/les_wray_32.md`` and ``les_wray_64.md``
(``k_c = 10`` and ``21``). At ``64^3`` the runs take about 20 times the ``32^3`` time (8 times the points,
about twice the steps): tens of minutes for the four closures on one CPU thread.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from sciml.physics.initial_conditions import random_isotropic
from sciml.physics.les import WALE, DynamicSmagorinsky, NoModel, Smagorinsky
from sciml.physics.navier_stokes import NavierStokes3D
from sciml.physics.spectral import SpectralGrid
from sciml.physics.statistics import energy_spectrum

NU = 3.5014006e-4
REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "decaying_isotropic_wray"
MODELS = {
    "none": NoModel,
    "smagorinsky": Smagorinsky,
    "dynamic": DynamicSmagorinsky,
    "wale": WALE,
}


def read_spectra(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``CB512.es`` -> (times (T,), spectra (T, nk)) with ``spectra[t, k] = E(k, t)``."""
    lines = path.read_text().splitlines()
    times, spectra, i = [], [], 0
    while i < len(lines):
        parts = lines[i].split()
        # A block header is "nk t" with an integer nk; the free-text header has no such line.
        if len(parts) == 2 and parts[0].isdigit():
            nk = int(parts[0])
            times.append(float(parts[1]))
            spectra.append([float(v) for v in lines[i + 1 : i + 1 + nk]])
            i += nk + 1
        else:
            i += 1
    return np.array(times), np.array(spectra)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=32, help="LES grid points per axis")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cfl", type=float, default=0.5)
    parser.add_argument("--t-end", type=float, default=None, help="stop after this time (default: last)")
    parser.add_argument("--settled", type=float, default=2.0, help="start of the decay-ratio comparison")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    times, spectra = read_spectra(args.reference / "CB512.es")
    if args.t_end is not None:
        keep = times <= args.t_end + 1e-9
        times, spectra = times[keep], spectra[keep]
    grid = SpectralGrid(args.n)
    k_cut = (args.n - 1) // 3
    initial = torch.tensor(spectra[0], dtype=torch.float64)

    def filtered_spectrum(k):
        index = k.round().long()
        return torch.where(index <= k_cut, initial[index.clamp_max(len(initial) - 1)], 0.0)

    u0 = random_isotropic(
        grid, energy=None, spectrum=filtered_spectrum, generator=torch.Generator().manual_seed(args.seed)
    )
    reference_energy = spectra[:, 1 : k_cut + 1].sum(1)
    energies, final_spectra = {}, {}
    for name in args.models:
        model = MODELS[name]()
        solver = NavierStokes3D(grid, NU, cfl=args.cfl, les=model)
        u_hat = solver.to_spectral(u0)
        resolved, steps, started = [], 0, time.perf_counter()
        for i, t in enumerate(times):
            if i > 0:
                u_hat, taken = solver.advance(u_hat, t - times[i - 1], t0=times[i - 1])
                steps += taken
            _, spectrum = energy_spectrum(solver.to_physical(u_hat))
            resolved.append(float(spectrum[1 : k_cut + 1].sum()))
        final_spectra[name] = spectrum[: k_cut + 1].numpy()
        energies[name] = resolved
        print(f"{name:12s} {steps} steps, {time.perf_counter() - started:.1f} s", flush=True)

    print(f"\nResolved energy sum_(1<=k<={k_cut}) E(k, t), {args.n}^3 LES vs 512^3 DNS (Wray 1997)")
    print(f"{'t':>7s} {'DNS':>9s} " + " ".join(f"{name:>18s}" for name in args.models))
    for i, t in enumerate(times):
        cells = [
            f"{energies[m][i]:9.5f} ({energies[m][i] / reference_energy[i] - 1:+6.1%})" for m in args.models
        ]
        print(f"{t:7.3f} {reference_energy[i]:9.5f} " + " ".join(f"{c:>18s}" for c in cells))
    print(f"\nSpectra at t = {times[-1]:.3f}")
    print(f"{'k':>3s} {'DNS':>10s} " + " ".join(f"{name:>12s}" for name in args.models))
    for k in range(1, k_cut + 1):
        print(
            f"{k:3d} {spectra[-1, k]:10.3e} " + " ".join(f"{final_spectra[m][k]:12.3e}" for m in args.models)
        )
    band = slice(max(1, k_cut // 2), k_cut + 1)
    print(f"\nmean |log(E_les / E_dns)| over {band.start} <= k <= {k_cut} at t = {times[-1]:.3f}:")
    for name in args.models:
        error = np.mean(np.abs(np.log(final_spectra[name][band] / spectra[-1, band])))
        print(f"  {name:12s} {error:.3f}  (factor {math.exp(error):.2f})")
    settled = int(np.searchsorted(times, args.settled - 1e-9))
    if settled < len(times) - 1:
        dns_ratio = reference_energy[-1] / reference_energy[settled]
        print(f"\ndecay ratio E({times[-1]:.3f}) / E({times[settled]:.3f}): DNS {dns_ratio:.4f}")
        for name in args.models:
            ratio = energies[name][-1] / energies[name][settled]
            print(f"  {name:12s} {ratio:.4f}  ({ratio / dns_ratio - 1:+.1%})")


if __name__ == "__main__":
    main()
