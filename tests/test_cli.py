"""python -m sciml: help, bare config names, and config errors that stop the run before any work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from field_fixtures import make_well_fixture

from sciml.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "turbulence.yaml"
#: turbulence.yaml at its smallest, on the ``flow`` fixture.
TINY = [
    "--config",
    str(SHIPPED),
    "--data.init_args.path=flow.h5",
    "--trainer.accelerator=cpu",
    "--model.init_args.net.init_args.grid_shape=[8, 8, 8]",
    "--model.init_args.net.init_args.dim=24",
    "--model.init_args.net.init_args.n_layer=1",
]


@pytest.fixture
def flow(tmp_path, monkeypatch):
    """A 4-trajectory 8^3 Well file ``flow.h5`` in the working directory (a fresh ``tmp_path``)."""
    monkeypatch.chdir(tmp_path)
    make_well_fixture(tmp_path / "flow.h5", n_trajectories=4, n_steps=5, shape=(8, 8, 8), pressure=False)
    return tmp_path / "flow.h5"


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "sciml", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "fit" in result.stdout and "predict" in result.stdout


@pytest.mark.parametrize("name", ["turbulence.yaml", "turbulence"])
def test_bare_config_name_resolves_to_the_shipped_config_from_anywhere(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", name, "--print_config"])
    assert stop.value.code == 0
    captured = capsys.readouterr()
    assert "using the shipped config" in captured.err
    assert str(SHIPPED.name) in captured.err
    assert "sciml.models.ifactformer.IFactFormer" in captured.out


def test_a_local_file_wins_over_the_shipped_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "turbulence.yaml").write_text(SHIPPED.read_text().replace("max_epochs: 28", "max_epochs: 77"))
    with pytest.raises(SystemExit):
        main(["fit", "--config", "turbulence.yaml", "--print_config"])
    captured = capsys.readouterr()
    assert "shipped" not in captured.err
    assert "max_epochs: 77" in captured.out


def test_unknown_config_name_lists_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", "turbulense.yaml"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "turbulense.yaml" in err and "turbulence.yaml" in err


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model:\n  init_args:\n    learning_rate: 0.1\n", "learning_rate"),  # unknown key
        ("model:\n  init_args:\n    lr: fast\n", "lr"),  # wrong type
        ("data:\n  init_args:\n    batch_size: 2.5\n", "batch_size"),  # wrong type
        ("trainer:\n  max_epoch: 3\n", "max_epoch"),  # unknown trainer key
    ],
)
def test_config_errors_name_the_key_before_any_work(override, named, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "override.yaml").write_text(override)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(SHIPPED), "--config", "override.yaml"])
    assert stop.value.code == 2
    assert named in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["override.yaml"], "nothing may be written"


def test_missing_required_value_names_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "no_path.yaml"
    config.write_text(
        "model:\n  class_path: sciml.tasks.surrogate.SurrogateTask\n  init_args:\n    net:\n"
        "      class_path: sciml.models.ifactformer.IFactFormer\n"
        "data:\n  class_path: sciml.data.fields.FieldDataModule\n"
    )
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(config)])
    assert stop.value.code == 2
    assert "required" in (err := capsys.readouterr().err) and "path" in err


def test_missing_data_without_a_generator_names_the_command_that_makes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "fit",
                "--config",
                str(SHIPPED),
                "--data.init_args.path=nowhere/flow.h5",
                "--data.init_args.generator=null",
                "--trainer.accelerator=cpu",
            ]
        )
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "nowhere/flow.h5" in err and "python -m sciml.data.generate" in err


def test_fit_then_predict_writes_rollouts_in_the_input_schema(flow, tmp_path):
    import h5py
    import numpy as np

    from sciml.data.fields import open_fields

    main(["fit", *TINY, "--trainer.max_epochs=1"])
    checkpoint = tmp_path / "runs" / "turbulence" / "version_0" / "checkpoints" / "last.ckpt"
    assert checkpoint.exists()
    main(["predict", *TINY, f"--ckpt_path={checkpoint}"])

    written = tmp_path / "runs" / "turbulence" / "predictions" / "rollouts.h5"
    source, rollouts = open_fields(flow), open_fields(written)
    assert [c.name for c in rollouts.info.channels] == [c.name for c in source.info.channels]
    with h5py.File(written) as out, h5py.File(flow) as inp:
        predicted, truth = out["t1_fields/velocity"][:], inp["t1_fields/velocity"][:]
        assert predicted.shape == (1, 5, 8, 8, 8, 3)  # the test trajectory, whole length
        test_trajectory = int(out.attrs["source_trajectories"][0])
        # The rollout starts from the true first frame and then departs from the truth.
        np.testing.assert_allclose(predicted[0, 0], truth[test_trajectory, 0], rtol=1e-6)
        assert not np.allclose(predicted[0, 1:], truth[test_trajectory, 1:])
    # The Well's own reader takes the file as written: one trajectory, every window, our values.
    from the_well.data import WellDataset

    well = WellDataset(path=str(written.parent), n_steps_input=1, n_steps_output=1, use_normalization=False)
    assert well.metadata.n_trajectories_per_file == [1] and len(well) == 4
    np.testing.assert_array_equal(well[3]["output_fields"][0].numpy(), predicted[0, 4])


@pytest.mark.parametrize(
    ("config", "override", "message"),
    [
        (
            "dit3d.yaml",
            "--data.init_args.batch_size=0",
            "config key 'batch_size': expected an integer >= 1, got 0",
        ),
        (
            "turbulence.yaml",
            "--data.init_args.generator=forced_hitt",
            "config key 'generator': unknown generator 'forced_hitt'; built-in: forced_hit",
        ),
        (
            "dit3d.yaml",
            "--data.init_args.categories=[chiar, airplane]",
            "config key 'categories': the shapes generator cannot make 'chiar'",
        ),
    ],
)
def test_a_value_a_data_module_rejects_prints_one_line(
    config, override, message, tmp_path, monkeypatch, capsys
):
    """jsonargparse wraps what a class's __init__ raises in its own ValueError; sciml prints the cause."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", config, override, "--trainer.accelerator=cpu"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}")
    assert "Traceback" not in err and "Union subtypes" not in err


def test_a_data_error_in_a_dataloader_worker_prints_one_line(flow, capsys):
    import h5py
    import numpy as np

    with h5py.File(flow, "a") as f:  # the validation trajectory (the data module's split)
        f["t1_fields/velocity"][2, 3, 1, 2, 3, 0] = np.nan
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "fit",
                *TINY,
                "--data.init_args.num_workers=1",
                "--data.init_args.full_check_bytes=0",  # a large file: checked only where it is read
                "--trainer.max_epochs=1",
            ]
        )
    assert stop.value.code == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert errors == [
        "error: flow.h5: t1_fields/velocity: 1 non-finite value(s) (NaN) in trajectory 2, time steps 2..3"
    ]
    assert "Traceback" not in err and "DataLoader worker" not in err


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write to: permission bits for a normal user, a read-only mount for root (whom
    permission bits do not stop)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_run_folder_stops_fit_before_any_work(read_only_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = read_only_folder / "runs"
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "fit",
                "--config",
                str(SHIPPED),
                f"--trainer.default_root_dir={run}",
                "--trainer.accelerator=cpu",
            ]
        )
    assert stop.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert (
        f"error: config key 'trainer.default_root_dir': cannot write to {run} (Read-only file system at "
        f"{read_only_folder}); choose a folder you can write to" in err
        if os.geteuid() == 0
        else f"cannot write to {run} (Permission denied at {read_only_folder})" in err
    )
    assert not (tmp_path / "data").exists(), "no data may be generated before the check"


def test_a_read_only_predictions_folder_stops_predict_before_any_rollout(
    read_only_folder, flow, tmp_path, monkeypatch, capsys
):
    from sciml.tasks.surrogate import SurrogateTask

    main(["fit", *TINY, "--trainer.max_steps=1"])
    checkpoint = tmp_path / "runs" / "turbulence" / "version_0" / "checkpoints" / "last.ckpt"
    rollouts = []
    monkeypatch.setattr(SurrogateTask, "predict_step", lambda *args, **kwargs: rollouts.append(args))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "predict",
                *TINY,
                f"--ckpt_path={checkpoint}",
                f"--trainer.callbacks.output_dir={read_only_folder / 'predictions'}",
            ]
        )
    assert stop.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "error: config key 'trainer.callbacks (RolloutWriter) output_dir': cannot write to" in err
    assert rollouts == [], "predict must stop before it rolls anything out"
