"""SHaDe (dynamic reconstruction with tri-plane deformation, an SH-attention rendering head and a latent
diffusion prior) and its HexPlane-style baseline, as plain ``nn.Module``s."""

from sciml.models.shade.deformation import TimeModulation, TriPlaneDeformation
from sciml.models.shade.field import HexPlaneField, ShadeField
from sciml.models.shade.latent_prior import LatentDenoiser, LatentPrior, PlaneAutoencoder
from sciml.models.shade.sh_head import SHAttentionHead

__all__ = [
    "HexPlaneField",
    "LatentDenoiser",
    "LatentPrior",
    "PlaneAutoencoder",
    "SHAttentionHead",
    "ShadeField",
    "TimeModulation",
    "TriPlaneDeformation",
]
