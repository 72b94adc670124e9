import numpy as np
import pytest

from sciml.core.errors import ConfigError
from sciml.physics.hit import default_viscosity, simulate_forced_hit, trajectory_seeds

TINY = dict(
    n_dns=32, n_les=8, n_trajectories=2, n_snapshots=3, snapshot_dt=0.1, spinup_time=0.7, fine_spinup_time=0.2
)


def test_forced_hit_is_deterministic_and_well_formed():
    calls = []
    first = simulate_forced_hit(**TINY, seed=11, progress=lambda done, total: calls.append((done, total)))
    second = simulate_forced_hit(**TINY, seed=11, num_threads=2, workers=1)
    assert first.velocity.dtype == np.float32
    assert first.velocity.shape == (2, 3, 8, 8, 8, 3)
    assert np.array_equal(first.velocity, second.velocity), "same seed must give bit-identical output"
    assert np.allclose(first.time, [0.0, 0.1, 0.2])
    assert np.allclose(first.coords["x"], np.arange(8) * 2 * np.pi / 8)
    # Progress: 1 coarse chunk (0.5 of spin-up on 16^3), 1 fine chunk (0.2), 3 snapshots.
    assert calls == [(i, 5) for i in range(1, 6)]
    params = first.parameters
    assert params["coarse_spinup_grid"] == 16 and params["coarse_spinup_time"] == pytest.approx(0.5)
    assert params["nu"] == pytest.approx(default_viscosity(32))
    assert params["trajectory_seeds"] == trajectory_seeds(11, 2)
    assert params["forcing"] == {"kind": "band", "injection_rate": 0.1, "k_forcing": 2.0}
    # Trajectories differ from each other and snapshots change in time.
    assert not np.allclose(first.velocity[0], first.velocity[1])
    assert not np.allclose(first.velocity[0, 0], first.velocity[0, 1])
    assert np.all(np.isfinite(first.velocity))
    assert first.statistics["kmax_eta"] > 0.7


def test_forced_hit_seed_changes_the_data():
    a = simulate_forced_hit(**TINY, seed=1)
    b = simulate_forced_hit(**TINY, seed=2)
    assert not np.allclose(a.velocity, b.velocity)


def test_les_field_is_the_filtered_dns_field():
    """The LES snapshot velocity field has the energy of the DNS field below the coarse cutoff only."""
    result = simulate_forced_hit(**dict(TINY, n_les=16), seed=3, filter="gaussian")
    u = result.velocity.astype(np.float64)
    les_energy = 0.5 * (u**2).sum(-1).mean(axis=(2, 3, 4))  # (B, T)
    assert np.all(les_energy < result.statistics["kinetic_energy"] * 1.5)
    assert np.all(les_energy > 0.2 * result.statistics["kinetic_energy"])
    # Coarse-grained fields stay divergence-free (spectral truncation of a solenoidal field).
    spectrum = np.fft.rfftn(u[0, 0], axes=(0, 1, 2))  # (X, Y, Zr, 3)
    k = np.fft.fftfreq(16, 1 / 16)
    kz = np.fft.rfftfreq(16, 1 / 16)
    div = k[:, None, None] * spectrum[..., 0] + k[None, :, None] * spectrum[..., 1] + kz * spectrum[..., 2]
    assert np.abs(div).max() < 1e-4 * np.abs(spectrum).max()


def test_forced_hit_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="n_les"):
        simulate_forced_hit(**dict(TINY, n_les=64))
    with pytest.raises(ConfigError, match="filter"):
        simulate_forced_hit(**TINY, filter="median")
    with pytest.raises(ConfigError, match="n_trajectories"):
        simulate_forced_hit(**dict(TINY, n_trajectories=0))
