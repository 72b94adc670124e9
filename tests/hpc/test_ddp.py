"""DDP correctness on CPU: 2 processes (gloo) with batch B train to the same weights, and report the same
validation metrics, as 1 process with batch 2B; only rank 0 writes. Both runs must have trained: their
weights moved away from the seeded initial weights that `fit` builds from the config."""

import csv

import torch
from conftest import TINY_CONFIG, run_sciml

from sciml.cli import SciMLCLI, _run

MAX_STEPS = 20


def fit(root, data, devices, batch_size):
    # 4 epochs of 5 steps: the last checkpoint is the final state
    arguments = [
        "--config",
        str(TINY_CONFIG),
        f"--data.init_args.path={data}",
        f"--data.init_args.batch_size={batch_size}",
        f"--trainer.max_steps={MAX_STEPS}",
    ]
    return run_sciml("fit", arguments, root, devices, cwd=root.parent)


class _BuildOnly(SciMLCLI):
    """Seeds and builds everything exactly as ``fit`` does, then stops before training."""

    def _run_subcommand(self, subcommand: str) -> None:
        pass


def initial_parameters(data) -> dict[str, torch.Tensor]:
    """The weights every run of TINY_CONFIG starts from (seed_everything, then the model is built)."""
    arguments = ["fit", "--config", str(TINY_CONFIG), f"--data.init_args.path={data}"]
    cli = _run(
        [*arguments, "--trainer.devices=1", "--trainer.strategy=auto", "--trainer.logger=false"], _BuildOnly
    )
    return {name: value.detach().clone() for name, value in cli.model.named_parameters()}


def final_validation(root):
    rows = list(csv.DictReader((root / "tiny" / "version_0" / "metrics.csv").open()))
    return [(row["step"], float(row["val/rel_l2"])) for row in rows if row.get("val/rel_l2")]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_data):
    single, double = tmp_path / "single", tmp_path / "ddp"
    fit(single, tiny_data, devices=1, batch_size=4)
    fit(double, tiny_data, devices=2, batch_size=2)

    a = torch.load(single / "tiny/version_0/checkpoints/last.ckpt", weights_only=False)
    b = torch.load(double / "tiny/version_0/checkpoints/last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == MAX_STEPS
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], value, rtol=1e-4, atol=1e-6, msg=name)

    # Equal weights prove nothing if neither run trained: every parameter must have moved far beyond the
    # tolerance above (measured: 0.014 to 0.034), but no further than AdamW can move it in MAX_STEPS steps
    # at most lr each, so initial_parameters really is where the runs started (other seeds give lift
    # weights U(-1, 1) apart): an Adam step changes an entry by at most lr * (1 - beta1) / sqrt(1 - beta2),
    # about 3.2 lr (Kingma & Ba 2015, section 2.1), plus a negligible decoupled weight decay.
    reachable = MAX_STEPS * 3.2 * a["hyper_parameters"]["lr"]
    for name, initial in initial_parameters(tiny_data).items():
        moved = (a["state_dict"][name] - initial).abs().max().item()
        assert 1e-3 < moved < reachable, (name, moved, reachable)

    # Validation over 1 rollout and 7 windows, sharded 4 + 3 (+1 padding repeat), counted once each.
    single_val, double_val = final_validation(single), final_validation(double)
    assert len(single_val) == len(double_val) == 2
    for (step_a, value_a), (step_b, value_b) in zip(single_val, double_val):
        assert step_a == step_b
        assert abs(value_a - value_b) <= 1e-4 * value_a

    # Only rank 0 wrote: one log directory, one set of figures.
    assert sorted(p.name for p in (double / "tiny").iterdir()) == ["version_0"]
    assert sorted(p.name for p in (double / "tiny/version_0/plots/val").iterdir()) == [
        "midplane_slices.png",
        "rollout_error.png",
        "spectra.png",
    ]
