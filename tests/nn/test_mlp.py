"""GeGLU MLP: GELU on the first half gates the second half; layer shapes follow FactFormer's GeAct MLP."""

import torch
import torch.nn.functional as F

from sciml.nn.mlp import GeGLU, GeGLUMLP


def test_geglu_gates_the_second_half_with_the_gelu_of_the_first():
    x = torch.randn(4, 6)
    torch.testing.assert_close(GeGLU()(x), F.gelu(x[:, :3]) * x[:, 3:])


def test_geglu_mlp_shapes_and_output():
    mlp = GeGLUMLP(5, 7, 3)
    assert mlp.fc_in.weight.shape == (14, 5) and mlp.fc_out.weight.shape == (3, 7)
    x = torch.randn(2, 4, 5)
    hidden = mlp.fc_in(x)
    expected = mlp.fc_out(F.gelu(hidden[..., :7]) * hidden[..., 7:])
    torch.testing.assert_close(mlp(x), expected)
