"""Pseudo-spectral Navier-Stokes in periodic boxes and plane channels, LES closures and filters, and
turbulence statistics.

Modules: :mod:`~sciml.physics.spectral` (grids, FFT helpers), :mod:`~sciml.physics.navier_stokes`
(the periodic-box solver), :mod:`~sciml.physics.channel` (the Fourier-Chebyshev channel solver),
:mod:`~sciml.physics.les` (Smagorinsky, dynamic Smagorinsky, WALE), :mod:`~sciml.physics.forcing`,
:mod:`~sciml.physics.initial_conditions`, :mod:`~sciml.physics.filters`, :mod:`~sciml.physics.statistics`
and :mod:`~sciml.physics.hit` (forced isotropic turbulence datasets). Velocity fields are
``(..., 3, X, Y, Z)`` tensors.
"""

from sciml.physics.channel import ChannelFlow, ChannelState, orr_sommerfeld_eigen
from sciml.physics.filters import coarse_grain, spectral_filter
from sciml.physics.forcing import BandForcing, LinearForcing
from sciml.physics.hit import HITSimulation, simulate_forced_hit
from sciml.physics.initial_conditions import random_isotropic, taylor_green
from sciml.physics.les import WALE, DynamicSmagorinsky, NoModel, Smagorinsky
from sciml.physics.navier_stokes import NavierStokes3D, SimulationResult
from sciml.physics.spectral import SpectralGrid

__all__ = [
    "WALE",
    "BandForcing",
    "ChannelFlow",
    "ChannelState",
    "DynamicSmagorinsky",
    "HITSimulation",
    "LinearForcing",
    "NavierStokes3D",
    "NoModel",
    "SimulationResult",
    "Smagorinsky",
    "SpectralGrid",
    "coarse_grain",
    "orr_sommerfeld_eigen",
    "random_isotropic",
    "simulate_forced_hit",
    "spectral_filter",
    "taylor_green",
]
