"""sciml: PyTorch Lightning modules for scientific 3D/4D generation, dynamic reconstruction and surrogates."""

__version__ = "0.1.0"
