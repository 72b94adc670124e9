"""sciml: PyTorch Lightning modules for scientific 3D/4D generation, dynamic reconstruction and surrogates."""

import os

# OpenMP workers that spin while waiting for each other stall badly when another process holds a core (a
# shared login node, a laptop with a browser open): a CPU training step of the main job measured 7.9 s with
# spinning workers and 0.43 s with passive ones on 2 busy cores. This must be set before torch loads its
# OpenMP runtime; a value the user exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
