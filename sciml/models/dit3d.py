"""DiT-3D: a plain diffusion transformer on voxelized point clouds (S. Mo, E. Xie, R. Chu, L. Hong,
M. Niessner & Z. Li, "DiT-3D: Exploring Plain Diffusion Transformers for 3D Shape Generation", NeurIPS 2023).

    points (B, N, 3) --voxelize--> (B, 3, V, V, V) --Conv3d(k = s = p)--> (B, (V/p)^3, D) + sincos3d
    c = TimestepEmbed(t) + LabelEmbed(y)
    tokens --depth x adaLN-Zero block(c)--> final adaLN layer(c) -> (B, (V/p)^3, p^3 * 3)
    --unpatchify--> (B, 3, V, V, V) --trilinear devoxelize at the points--> eps prediction (B, N, 3)

Voxelization (:func:`sciml.geometry.voxelize`) centres each shape, scales it by twice its largest radius
and averages point features (here the noisy coordinates themselves) per voxel, as the official code's
PVCNN voxelization does; the per-point output is read back by trilinear interpolation at the unrounded
voxel coordinates.

Sizes follow the official code (models/dit3d.py): S = (depth 12, width 384, 6 heads), B = (12, 768, 12),
L = (24, 1152, 16), XL = (28, 1152, 16) -- its L uses width 1152, not DiT's 1024, because the 3-D sin-cos
embedding needs a width divisible by 6 -- with patch 2, 4 or 8 and voxel grids 16, 32 or 64. At S/4,
voxel 32, one class the model has 32,807,232 parameters, of which 32,610,624 train (the position embedding
is a frozen parameter, as in the official code).

Choices and differences from the official code (all configurable where it matters):

* GELU is exact (erf), as the official code runs it (``gelu_approximate="tanh"`` gives DiT's).
* The label table has a null row (``null_class=True``, row ``num_classes``) for classifier-free guidance;
  label dropout is the training task's job (:func:`sciml.diffusion.drop_labels`), not the network's.
* Window attention (``window_size``, ``window_blocks``) partitions each sample's token grid on its own
  and masks padding (:mod:`sciml.nn.attention`); the official code parses the block indexes as characters
  (so windows are never used) and, if they were, would modulate tokens across the batch. The official
  window variant's optional relative position terms are not implemented.
* ``forward(..., cache=)`` accepts a sampling-time feature cache (:class:`sciml.diffusion.TaylorCache`):
  the whole block stack's residual ``h_L - h_0`` is computed or forecast as one feature, which equals
  forecasting every block's branch outputs because a Taylor forecast is linear.
* :func:`load_official_state_dict` reads checkpoints saved by the official training script (key names
  unchanged, ``model.module.`` prefixes stripped, the EMA weights preferred).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from sciml.core.errors import ConfigError
from sciml.geometry import devoxelize, voxelize
from sciml.nn.adaln import AdaLNFinalLayer, AdaLNZeroBlock
from sciml.nn.embeddings import LabelEmbedder, PatchEmbed3d, TimestepEmbedder, sincos_3d

Size = Literal["S", "B", "L", "XL"]

#: (depth, width, heads) of each size in the official code.
SIZES: dict[str, tuple[int, int, int]] = {
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1152, 16),
    "XL": (28, 1152, 16),
}

#: Parameters of the official DiT-S/4 at voxel 32 with one class: all, and those that train.
S4_PARAMETERS, S4_TRAINABLE_PARAMETERS = 32_807_232, 32_610_624


class FeatureCache(Protocol):
    def __call__(self, key: str, compute: Any) -> Tensor: ...


class DiT3D(nn.Module):
    """Denoiser ``net(points, t, labels) -> eps`` for point clouds (see module docstring).

    Args:
        size: preset S, B, L or XL (depth, width, heads); ``depth``/``hidden_size``/``num_heads`` override it.
        patch_size: edge of the cubic voxel patch one token covers.
        voxel_size: voxel grid edge ``V`` (a multiple of ``patch_size``).
        num_classes: shape categories (labels ``0 .. num_classes - 1``).
        null_class: add the "no label" row used for classifier-free guidance.
        mlp_ratio: MLP width over token width.
        window_size: 3-D attention window edge in tokens (0: global attention everywhere).
        window_blocks: indexes of the blocks that use windows (all blocks when ``None``).
        in_channels: per-point channels (3: xyz).
        gelu_approximate: GELU form, ``"none"`` (official DiT-3D) or ``"tanh"`` (DiT).
    """

    pos_embed: nn.Parameter

    def __init__(
        self,
        size: Size = "S",
        patch_size: int = 4,
        voxel_size: int = 32,
        num_classes: int = 1,
        null_class: bool = True,
        depth: int | None = None,
        hidden_size: int | None = None,
        num_heads: int | None = None,
        mlp_ratio: float = 4.0,
        window_size: int = 0,
        window_blocks: list[int] | None = None,
        in_channels: int = 3,
        gelu_approximate: Literal["none", "tanh"] = "none",
    ):
        super().__init__()
        if size not in SIZES:
            raise ConfigError("size", f"expected one of {', '.join(SIZES)}, got {size!r}")
        preset_depth, preset_width, preset_heads = SIZES[size]
        depth = preset_depth if depth is None else depth
        hidden_size = preset_width if hidden_size is None else hidden_size
        num_heads = preset_heads if num_heads is None else num_heads
        _check(patch_size, voxel_size, num_classes, depth, hidden_size, num_heads, window_size, window_blocks)
        window_blocks = list(range(depth)) if window_blocks is None else [int(i) for i in window_blocks]
        self.config: dict[str, Any] = dict(
            size=size,
            patch_size=patch_size,
            voxel_size=voxel_size,
            num_classes=num_classes,
            null_class=null_class,
            depth=depth,
            hidden_size=hidden_size,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            window_size=window_size,
            window_blocks=window_blocks,
            in_channels=in_channels,
            gelu_approximate=gelu_approximate,
        )
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.voxel_size = voxel_size
        self.num_classes = num_classes
        self.token_grid = (voxel_size // patch_size,) * 3

        self.x_embedder = PatchEmbed3d(in_channels, hidden_size, patch_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, null_class=null_class)
        # A frozen parameter rather than a buffer: the official models count it and store it under this key.
        self.pos_embed = nn.Parameter(sincos_3d(hidden_size, self.token_grid)[None], requires_grad=False)
        self.blocks = nn.ModuleList(
            AdaLNZeroBlock(
                hidden_size,
                num_heads,
                mlp_ratio,
                window_size=window_size if i in window_blocks else 0,
                gelu_approximate=gelu_approximate,
            )
            for i in range(depth)
        )
        self.final_layer = AdaLNFinalLayer(hidden_size, patch_size**3 * in_channels)
        self._initialize()

    def _initialize(self) -> None:
        # DiT's initialization: Xavier-uniform linear layers (the patch embedding as a flattened linear
        # map), N(0, 0.02) label table and timestep MLP; adaLN regressions and the output layer at zero.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        weight = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        for layer in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[1].weight)
            nn.init.zeros_(block.adaLN_modulation[1].bias)
        for layer in (self.final_layer.adaLN_modulation[1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def null_label(self) -> int:
        """The label that means "no class" (classifier-free guidance's unconditional branch)."""
        return self.y_embedder.null_label

    def parameter_count(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def forward(
        self,
        x: Float[Tensor, "B N C"],
        t: Int[Tensor, " B"],
        cond: Int[Tensor, " B"] | None = None,
        cache: FeatureCache | None = None,
    ) -> Float[Tensor, "B N C"]:
        """Predict the noise of noisy points ``x`` at timesteps ``t`` for class labels ``cond``.

        ``cond=None`` means the null class (unconditional).
        """
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"expected points (B, N, {self.in_channels}), got {tuple(x.shape)}")
        batch = x.shape[0]
        if t.shape != (batch,):
            raise ValueError(f"expected timesteps (B,) = ({batch},), got {tuple(t.shape)}")
        if cond is None:
            cond = torch.full((batch,), self.null_label, dtype=torch.long, device=x.device)
        grid, coords = voxelize(x, x, self.voxel_size)  # (B, C, V, V, V), (B, N, 3) in [0, V-1]
        tokens = self.x_embedder(grid) + self.pos_embed  # (B, G^3, D)
        c = self.t_embedder(t) + self.y_embedder(cond)  # (B, D)
        if cache is None:
            tokens = self._trunk(tokens, c)
        else:
            tokens = tokens + cache("trunk", lambda: self._trunk(tokens, c) - tokens)
        patches = self.final_layer(tokens, c)  # (B, G^3, p^3 C)
        return devoxelize(self._unpatchify(patches), coords)

    def _trunk(self, tokens: Tensor, c: Tensor) -> Tensor:
        for block in self.blocks:
            tokens = block(tokens, c, self.token_grid)
        return tokens

    def _unpatchify(self, patches: Float[Tensor, "B L F"]) -> Float[Tensor, "B C V V V"]:
        g, p, channels = self.token_grid[0], self.patch_size, self.in_channels
        batch = patches.shape[0]
        # (B, gx gy gz, p p p C) -> (B, C, gx, p, gy, p, gz, p) -> (B, C, V, V, V)
        voxels = patches.view(batch, g, g, g, p, p, p, channels).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return voxels.reshape(batch, channels, g * p, g * p, g * p)


def _check(
    patch_size: int,
    voxel_size: int,
    num_classes: int,
    depth: int,
    hidden_size: int,
    num_heads: int,
    window_size: int,
    window_blocks: list[int] | None,
) -> None:
    for key, value in (
        ("patch_size", patch_size),
        ("voxel_size", voxel_size),
        ("num_classes", num_classes),
        ("depth", depth),
        ("num_heads", num_heads),
    ):
        if value < 1:
            raise ConfigError(key, f"must be >= 1, got {value}")
    if voxel_size % patch_size:
        raise ConfigError("voxel_size", f"{voxel_size} is not a multiple of patch_size={patch_size}")
    if hidden_size % 6 or hidden_size % num_heads:
        raise ConfigError(
            "hidden_size",
            f"{hidden_size} must be divisible by 6 (3-D sin-cos embedding) and by num_heads={num_heads}",
        )
    if window_size < 0:
        raise ConfigError("window_size", f"must be >= 0, got {window_size}")
    if window_blocks is not None:
        bad = [i for i in window_blocks if not isinstance(i, int) or not 0 <= i < depth]
        if bad:
            raise ConfigError("window_blocks", f"block indexes must be integers in [0, {depth}), got {bad}")


# ------------------------------------------------------------------------------------ official checkpoints
_PREFIXES = ("model.module.", "module.", "model.")


def official_state_dict(checkpoint: Mapping[str, Any] | str | Path) -> dict[str, Tensor]:
    """The network weights of a checkpoint written by the official DiT-3D training script.

    The script saves ``{"epoch", "model_state", "optimizer_state"[, "ema"]}`` where the states belong to a
    wrapper ``Model`` holding the network as ``model`` inside DistributedDataParallel, so keys read
    ``model.module.blocks.0.attn.qkv.weight``. The EMA weights are taken when present; the wrapper
    prefixes are stripped; a bare state dict is accepted too. Key names are otherwise the same as ours.
    """
    if not isinstance(checkpoint, Mapping):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for key in ("ema", "model_state", "state_dict"):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            checkpoint = checkpoint[key]
            break
    state = {}
    for key, value in checkpoint.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        state[key] = value
    if any(".rel_pos_" in key for key in state):
        raise ValueError(
            "checkpoint uses relative position terms (use_rel_pos), which sciml does not implement"
        )
    return state


def load_official_state_dict(checkpoint: Mapping[str, Any] | str | Path, **overrides: Any) -> DiT3D:
    """Build a :class:`DiT3D` matching an official checkpoint and load its weights.

    Depth, width, patch size, voxel grid and class count are read from the weight shapes; the head count
    from the size preset of that width (``overrides`` may set it, or window settings, explicitly).
    """
    state = official_state_dict(checkpoint)
    try:
        hidden, in_channels, patch = state["x_embedder.proj.weight"].shape[:3]
        tokens = state["pos_embed"].shape[1]
        rows = state["y_embedder.embedding_table.weight"].shape[0]
    except KeyError as error:
        raise ValueError(f"not a DiT-3D state dict: {error.args[0]!r} missing") from None
    depth = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
    grid = round(tokens ** (1 / 3))
    heads = {width: h for _, width, h in SIZES.values()}.get(hidden)
    null_class = overrides.pop("null_class", True)
    config = dict(
        patch_size=patch,
        voxel_size=grid * patch,
        num_classes=rows - int(null_class),
        null_class=null_class,
        depth=depth,
        hidden_size=hidden,
        num_heads=heads,
        in_channels=in_channels,
    )
    config.update(overrides)
    if config["num_heads"] is None:
        raise ValueError(f"width {hidden} matches no size preset: pass num_heads=")
    model = DiT3D(**config)
    mismatched = {
        key: (tuple(value.shape), tuple(model.state_dict()[key].shape))
        for key, value in state.items()
        if key in model.state_dict() and value.shape != model.state_dict()[key].shape
    }
    if mismatched:
        raise ValueError(f"shapes (checkpoint, model) differ: {mismatched}")
    model.load_state_dict(state)
    return model
