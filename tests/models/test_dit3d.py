"""DiT-3D: the official parameter count, shapes and gradients, golden outputs, per-sample windows,
checkpoints (ours and the official training script's), feature-cache hook, errors.

Regenerate the golden tensors (only after an intended change of the numerics, and say so in the commit):

    .venv/bin/python tests/models/test_dit3d.py --regenerate-golden
"""

from __future__ import annotations

import copy
import sys
import typing
from pathlib import Path

import pytest
import torch
from jaxtyping import jaxtyped

from sciml.core.errors import ConfigError
from sciml.models.dit3d import (
    S4_PARAMETERS,
    S4_TRAINABLE_PARAMETERS,
    DiT3D,
    load_official_state_dict,
    official_state_dict,
)

GOLDEN = Path(__file__).parent / "golden" / "dit3d_tiny.pt"

TINY = dict(
    size="S",
    patch_size=2,
    voxel_size=8,
    num_classes=2,
    depth=3,
    hidden_size=24,
    num_heads=2,
    window_size=3,
    window_blocks=[1],
)


def tiny(seed: int = 0, **overrides) -> DiT3D:
    """A tiny DiT-3D whose zero-initialised layers (adaLN-Zero, output) are randomised so every part acts."""
    torch.manual_seed(seed)
    model = DiT3D(**{**TINY, **overrides})
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad and not parameter.any():
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return model


def inputs(batch: int = 3, points: int = 50, seed: int = 1, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, points, 3, generator=generator, dtype=torch.float64).to(dtype)
    t = torch.randint(0, 1000, (batch,), generator=generator)
    y = torch.randint(0, 2, (batch,), generator=generator)
    return x, t, y


def test_s4_voxel32_has_the_official_parameter_count():
    model = DiT3D(size="S", patch_size=4, voxel_size=32, num_classes=1)
    assert model.parameter_count() == S4_PARAMETERS == 32_807_232
    assert model.parameter_count(trainable_only=True) == S4_TRAINABLE_PARAMETERS == 32_610_624
    assert model.pos_embed.shape == (1, 512, 384) and not model.pos_embed.requires_grad
    assert len(model.blocks) == 12 and model.blocks[0].attn.num_heads == 6


@pytest.mark.parametrize("size,width,depth", [("B", 768, 12), ("L", 1152, 24), ("XL", 1152, 28)])
def test_size_presets(size, width, depth):
    model = DiT3D(size=size, patch_size=8, voxel_size=16)
    assert model.config["hidden_size"] == width and len(model.blocks) == depth


def test_shape_backward_and_every_trainable_parameter_gets_a_gradient():
    model = tiny()
    x, t, y = inputs()
    out = model(x, t, y)
    assert out.shape == x.shape
    (out**2).mean().backward()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert name == "pos_embed"
            continue
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_a_fresh_model_predicts_zero_noise():
    """adaLN-Zero: every block starts as the identity and the output layer at zero."""
    model = DiT3D(**TINY)
    x, t, y = inputs()
    assert torch.equal(model(x, t, y), torch.zeros_like(x))


def test_forward_matches_the_jaxtyping_annotations():
    model = tiny()
    hints = typing.get_type_hints(DiT3D.forward)

    @jaxtyped(typechecker=None)
    def check(x, t, y, out):
        return all(isinstance(v, hints[k]) for k, v in (("x", x), ("t", t), ("return", out)))

    x, t, y = inputs()
    assert check(x, t, y, model(x, t, y))
    assert not check(x, t, y, model(x, t, y)[:1])


def test_golden_outputs():
    golden = torch.load(GOLDEN, weights_only=True)
    model = tiny().double()
    for key, value in golden["state_dict"].items():  # seeded construction reproduces the stored weights
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    model.load_state_dict(golden["state_dict"])
    x, t, y = golden["input"]
    torch.testing.assert_close(model(x, t, y), golden["output"], rtol=1e-10, atol=1e-12)


def test_output_is_invariant_to_point_order_and_labels_matter():
    model = tiny().double()
    x, t, y = inputs(dtype=torch.float64)
    permutation = torch.randperm(x.shape[1])
    torch.testing.assert_close(model(x[:, permutation], t, y), model(x, t, y)[:, permutation])
    assert not torch.allclose(model(x, t, 1 - y), model(x, t, y))
    # no label = the null class
    null = torch.full_like(y, model.null_label)
    torch.testing.assert_close(model(x, t), model(x, t, null))


@pytest.mark.parametrize("window_blocks", [[0, 1, 2], [1]])
def test_changing_one_sample_never_changes_another(window_blocks):
    model = tiny(window_size=2, window_blocks=window_blocks).double()
    x, t, y = inputs(dtype=torch.float64)
    changed = x.clone()
    changed[1] = 3 * torch.randn_like(x[1])
    before, after = model(x, t, y), model(changed, t, y)
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], rtol=0, atol=0)
    assert not torch.allclose(after[1], before[1])


def test_window_size_equal_to_the_token_grid_is_global_attention():
    windowed = tiny(window_size=4, window_blocks=[0, 1, 2]).double()
    plain = DiT3D(**{**TINY, "window_size": 0}).double()
    plain.load_state_dict(windowed.state_dict())
    x, t, y = inputs(dtype=torch.float64)
    torch.testing.assert_close(windowed(x, t, y), plain(x, t, y))
    # a smaller (padded, 4 -> 2 x 3) window does change the result
    assert not torch.allclose(tiny(window_size=3, window_blocks=[0]).double()(x, t, y), plain(x, t, y))


def test_checkpoint_round_trip_needs_only_the_file(tmp_path):
    model = tiny()
    x, t, y = inputs()
    path = tmp_path / "net.pt"
    torch.save({"config": model.config, "state_dict": model.state_dict()}, path)
    saved = torch.load(path, weights_only=True)
    restored = DiT3D(**saved["config"])
    restored.load_state_dict(saved["state_dict"])
    torch.testing.assert_close(restored(x, t, y), model(x, t, y), rtol=0, atol=0)


#: Key names of the official DiT-3D network (models/dit3d.py of github.com/DiT-3D/DiT-3D) for one block.
OFFICIAL_KEYS = {
    "pos_embed",
    "x_embedder.proj.weight",
    "x_embedder.proj.bias",
    "t_embedder.mlp.0.weight",
    "t_embedder.mlp.0.bias",
    "t_embedder.mlp.2.weight",
    "t_embedder.mlp.2.bias",
    "y_embedder.embedding_table.weight",
    "blocks.0.attn.qkv.weight",
    "blocks.0.attn.qkv.bias",
    "blocks.0.attn.proj.weight",
    "blocks.0.attn.proj.bias",
    "blocks.0.mlp.fc1.weight",
    "blocks.0.mlp.fc1.bias",
    "blocks.0.mlp.fc2.weight",
    "blocks.0.mlp.fc2.bias",
    "blocks.0.adaLN_modulation.1.weight",
    "blocks.0.adaLN_modulation.1.bias",
    "final_layer.linear.weight",
    "final_layer.linear.bias",
    "final_layer.adaLN_modulation.1.weight",
    "final_layer.adaLN_modulation.1.bias",
}


def test_official_training_checkpoint_loads_through_the_converter(tmp_path):
    """A file laid out like the official train.py's: DDP-wrapped `Model` states, EMA preferred."""
    source = tiny(depth=1, num_classes=55, window_size=0, window_blocks=None)
    assert set(source.state_dict()) == OFFICIAL_KEYS
    ema = tiny(seed=7, depth=1, num_classes=55, window_size=0, window_blocks=None)
    shapes = {k: tuple(v.shape) for k, v in source.state_dict().items()}
    assert shapes["y_embedder.embedding_table.weight"] == (56, 24)  # 55 classes + the guidance row
    official = {
        "epoch": 9999,
        "model_state": {f"model.module.{k}": v for k, v in source.state_dict().items()},
        "optimizer_state": {},
        "ema": {f"model.module.{k}": v for k, v in ema.state_dict().items()},
    }
    path = tmp_path / "epoch_9999.pth"
    torch.save(official, path)
    assert set(official_state_dict(path)) == OFFICIAL_KEYS
    loaded = load_official_state_dict(path, num_heads=2)
    assert loaded.config["num_classes"] == 55 and loaded.config["voxel_size"] == 8
    assert loaded.config["patch_size"] == 2 and loaded.config["depth"] == 1
    x, t, _ = inputs()
    y = torch.tensor([0, 17, 54])
    torch.testing.assert_close(loaded(x, t, y), ema(x, t, y), rtol=0, atol=0)
    # without EMA weights the trained ones are used
    del official["ema"]
    torch.save(official, path)
    torch.testing.assert_close(load_official_state_dict(path, num_heads=2)(x, t, y), source(x, t, y))


def test_converter_reports_shape_mismatches():
    state = tiny(depth=1, window_size=0, window_blocks=None).state_dict()
    with pytest.raises(ValueError, match="qkv.weight"):
        load_official_state_dict(state, num_heads=2, hidden_size=30)
    with pytest.raises(ValueError, match="num_heads"):
        load_official_state_dict(state)


def test_feature_cache_hook_wraps_the_block_stack():
    model = tiny().double()
    x, t, y = inputs(dtype=torch.float64)
    calls = []

    def computing_cache(key, compute):
        calls.append(key)
        return compute()

    torch.testing.assert_close(model(x, t, y, cache=computing_cache), model(x, t, y))
    assert calls == ["trunk"]
    # a cache that forecasts "no change from the blocks" gives the model without its blocks
    skipped = model(x, t, y, cache=lambda key, compute: torch.zeros(1, dtype=torch.float64))
    without_blocks = copy.deepcopy(model)
    without_blocks.blocks = torch.nn.ModuleList()
    torch.testing.assert_close(skipped, without_blocks(x, t, y))
    assert not torch.allclose(skipped, model(x, t, y))


def test_invalid_configuration_names_the_key():
    with pytest.raises(ConfigError, match="'voxel_size'.*multiple of patch_size=3"):
        DiT3D(**{**TINY, "patch_size": 3})
    with pytest.raises(ConfigError, match="'hidden_size'"):
        DiT3D(**{**TINY, "hidden_size": 20})
    with pytest.raises(ConfigError, match="'window_blocks'"):
        DiT3D(**{**TINY, "window_blocks": [5]})
    with pytest.raises(ConfigError, match="'size'"):
        DiT3D(size="M")


def test_wrong_input_shapes_fail_fast():
    model = tiny()
    x, t, y = inputs()
    with pytest.raises(ValueError, match=r"expected points \(B, N, 3\), got \(3, 3, 50\)"):
        model(x.transpose(1, 2), t, y)
    with pytest.raises(ValueError, match=r"expected timesteps \(B,\) = \(3,\), got \(2,\)"):
        model(x, t[:2], y)


def _regenerate_golden() -> None:
    model = tiny().double()
    x, t, y = inputs(dtype=torch.float64)
    with torch.no_grad():
        output = model(x, t, y)
    torch.save({"state_dict": model.state_dict(), "input": (x, t, y), "output": output}, GOLDEN)
    print(f"wrote {GOLDEN}")


if __name__ == "__main__" and "--regenerate-golden" in sys.argv:
    _regenerate_golden()
