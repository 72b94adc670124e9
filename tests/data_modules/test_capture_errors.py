"""Every kind of bad capture gives one clear error naming the file and the frame (D-NeRF and nerfstudio)."""

import json
import re
import shutil

import capture_fixtures  # importable through tests/conftest.py, which puts tests/data on sys.path
import numpy as np
import pytest
from PIL import Image

from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from sciml.data import CaptureDataModule, read_capture


def _raises(error_type, *fragments):
    """pytest.raises whose message must contain every fragment (in order)."""
    return pytest.raises(error_type, match=".*".join(re.escape(str(f)) for f in fragments))


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("capture_errors")
    capture_fixtures.make_dnerf_fixture(root / "dnerf")
    capture_fixtures.make_nerfstudio_fixture(root / "nerfstudio")
    return root


@pytest.fixture
def dnerf(originals, tmp_path):
    """A private copy of the D-NeRF fixture that a test may damage."""
    return shutil.copytree(originals / "dnerf", tmp_path / "dnerf")


@pytest.fixture
def nerfstudio(originals, tmp_path):
    return shutil.copytree(originals / "nerfstudio", tmp_path / "nerfstudio")


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _edit_frame(path, index, **values):
    def change(meta):
        for key, value in values.items():
            if value is None:
                del meta["frames"][index][key]
            else:
                meta["frames"][index][key] = value

    _edit(path, change)


# ---------------------------------------------------------------------------------------------- images
def test_missing_image_names_the_json_the_frame_and_the_image(dnerf, nerfstudio):
    (dnerf / "train" / "r_003.png").unlink()
    with _raises(
        DataFormatError,
        dnerf / "transforms_train.json",
        "frames[3] (./train/r_003)",
        "image ",
        "r_003.png",
        "does not exist",
    ):
        read_capture(dnerf, "train")
    (nerfstudio / "val" / "r_001.png").unlink()
    # nerfstudio frames are numbered in the one file: 6 training frames, then validation
    with _raises(
        DataFormatError, nerfstudio / "transforms.json", "frames[7] (val/r_001.png)", "does not exist"
    ):
        read_capture(nerfstudio, "val")


def test_unreadable_image_names_the_frame(dnerf, nerfstudio):
    (dnerf / "val" / "r_001.png").write_bytes(b"not a png at all")
    with _raises(
        DataFormatError, "transforms_val.json", "frames[1] (./val/r_001)", "r_001.png", "not a readable image"
    ):
        read_capture(dnerf, "val")
    png = (nerfstudio / "train" / "r_002.png").read_bytes()
    (nerfstudio / "train" / "r_002.png").write_bytes(png[: len(png) // 2])  # truncated
    with _raises(DataFormatError, "transforms.json", "frames[2] (train/r_002.png)", "not a readable image"):
        read_capture(nerfstudio, "train")


def test_sixteen_bit_images_are_refused_with_the_mode(dnerf):
    Image.fromarray(np.zeros((16, 16), dtype=np.uint16)).save(dnerf / "test" / "r_000.png")
    with _raises(
        DataFormatError, "transforms_test.json", "frames[0]", "has pixel mode I;16; expected 8-bit"
    ) as info:
        read_capture(dnerf, "test")
    assert "not a readable image" not in str(info.value)  # one error, not one wrapped in another


def test_dnerf_frames_of_another_size_name_both_images(dnerf):
    Image.fromarray(np.zeros((8, 12, 4), dtype=np.uint8)).save(dnerf / "train" / "r_004.png")
    with _raises(
        DataFormatError,
        "transforms_train.json",
        "frames[4] (./train/r_004)",
        "is 12x8 (W x H)",
        "r_000.png is 16x16",
    ):
        read_capture(dnerf, "train")


def test_nerfstudio_size_must_match_w_and_h(nerfstudio):
    _edit(nerfstudio / "transforms.json", lambda meta: meta.update(w=20))
    with _raises(
        DataFormatError, "transforms.json", "frames[0] (train/r_000.png)", "w x h = 20 x 16", "is 16 x 16"
    ):
        read_capture(nerfstudio, "train")


def test_nerfstudio_per_frame_size_override_is_checked(nerfstudio):
    _edit_frame(nerfstudio / "transforms.json", 9, h=15)
    with _raises(DataFormatError, "transforms.json", "frames[9] (test/r_001.png)", "w x h = 16 x 15"):
        read_capture(nerfstudio, "test")


def test_nerfstudio_missing_intrinsics_or_distortion_name_the_frame(nerfstudio):
    _edit(nerfstudio / "transforms.json", lambda meta: meta.pop("fl_y"))
    with _raises(DataFormatError, "transforms.json", "frames[0] (train/r_000.png)", "no 'fl_y'"):
        read_capture(nerfstudio, "train")
    _edit(nerfstudio / "transforms.json", lambda meta: meta.update(fl_y=20.0))
    _edit_frame(nerfstudio / "transforms.json", 1, k1=0.1)
    with _raises(DataFormatError, "frames[1] (train/r_001.png)", "lens distortion {'k1': 0.1}", "undistort"):
        read_capture(nerfstudio, "train")
    _edit(nerfstudio / "transforms.json", lambda meta: meta.update(camera_model="OPENCV_FISHEYE"))
    with _raises(DataFormatError, "transforms.json: camera_model", "'OPENCV_FISHEYE' is not supported"):
        read_capture(nerfstudio, "val")


# ---------------------------------------------------------------------------------------------- poses
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.__setitem__((0, 0), 2.0 * m[0, 0]), "rotation must be orthonormal"),  # scaled
        (lambda m: m.__setitem__((slice(None), 0), -m[:, 0]), "det R = -1"),  # a reflection
        (lambda m: m.__setitem__((1, 3), np.nan), "NaN or infinite"),
        (lambda m: m.__setitem__((3, 0), 0.5), "last row must be 0 0 0 1"),
    ],
    ids=["scaled", "reflected", "nan", "last-row"],
)
def test_a_bad_pose_names_the_frame(dnerf, nerfstudio, change, problem):
    for root, json_name, index, label, split in (
        (dnerf, "transforms_train.json", 2, "frames[2] (./train/r_002)", "train"),
        (nerfstudio, "transforms.json", 8, "frames[8] (test/r_000.png)", "test"),
    ):
        meta = json.loads((root / json_name).read_text())
        matrix = np.array(meta["frames"][index]["transform_matrix"])
        change(matrix)
        _edit_frame(root / json_name, index, transform_matrix=[[float(x) for x in row] for row in matrix])
        with _raises(DataFormatError, root / json_name, label, "'transform_matrix'", problem):
            read_capture(root, split)


def test_a_missing_or_misshapen_pose_names_the_frame(dnerf):
    _edit_frame(dnerf / "transforms_val.json", 0, transform_matrix=None)
    with _raises(DataFormatError, "transforms_val.json", "frames[0] (./val/r_000)", "no 'transform_matrix'"):
        read_capture(dnerf, "val")
    _edit_frame(dnerf / "transforms_val.json", 0, transform_matrix=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with _raises(DataFormatError, "frames[0] (./val/r_000)", "must be 4x4, got shape (3, 3)"):
        read_capture(dnerf, "val")


def test_small_rounding_in_a_pose_is_accepted(dnerf):
    meta = json.loads((dnerf / "transforms_train.json").read_text())
    matrix = np.array(meta["frames"][0]["transform_matrix"])
    matrix[:3, :3] *= 1.0002  # within the 1e-3 tolerance
    _edit_frame(dnerf / "transforms_train.json", 0, transform_matrix=matrix.tolist())
    assert len(read_capture(dnerf, "train")) == 6


# ---------------------------------------------------------------------------------------------- times
@pytest.mark.parametrize(
    ("time", "problem"),
    [
        (1.5, "'time' must lie in [0, 1], got 1.5"),
        (-0.1, "got -0.1"),
        (None, "has no 'time'"),
        ("0.5", "finite number 'time'"),
    ],
    ids=["above", "below", "missing", "string"],
)
def test_a_bad_time_names_the_frame(dnerf, nerfstudio, time, problem):
    _edit_frame(dnerf / "transforms_test.json", 1, time=time)
    with _raises(DataFormatError, dnerf / "transforms_test.json", "frames[1] (./test/r_001)", problem):
        read_capture(dnerf, "test")
    _edit_frame(nerfstudio / "transforms.json", 4, time=time)
    with _raises(DataFormatError, nerfstudio / "transforms.json", "frames[4] (train/r_004.png)", problem):
        read_capture(nerfstudio, "train")


# ------------------------------------------------------------------------------------------ splits and files
def test_an_empty_split_is_named(dnerf, nerfstudio):
    _edit(dnerf / "transforms_val.json", lambda meta: meta.update(frames=[]))
    with _raises(DataFormatError, "transforms_val.json: frames", "the val split has no frames"):
        read_capture(dnerf, "val")
    _edit(nerfstudio / "transforms.json", lambda meta: meta.update(test_filenames=[]))
    with _raises(DataFormatError, "transforms.json: frames", "the test split has no frames"):
        read_capture(nerfstudio, "test")


def test_nerfstudio_split_lists_must_be_complete_and_name_real_frames(nerfstudio):
    _edit(nerfstudio / "transforms.json", lambda meta: meta["val_filenames"].append("val/r_009.png"))
    with _raises(
        DataFormatError,
        "transforms.json: val_filenames",
        "names 1 image(s) that no frame has",
        "val/r_009.png",
    ):
        read_capture(nerfstudio, "val")
    _edit(nerfstudio / "transforms.json", lambda meta: meta.pop("val_filenames"))
    with _raises(
        DataFormatError, "transforms.json: val_filenames", "is missing", "train_filenames, test_filenames"
    ):
        read_capture(nerfstudio, "val")


def test_missing_transforms_json_is_dataset_not_found(dnerf, nerfstudio, tmp_path):
    (dnerf / "transforms_test.json").unlink()
    command = f"python -m sciml.data.dynamic_scenes --out {dnerf}"
    with _raises(DatasetNotFoundError, dnerf / "transforms_test.json", command):
        read_capture(dnerf, "test")
    with _raises(DatasetNotFoundError, nerfstudio / "transforms_train.json"):
        read_capture(nerfstudio, "train", format="dnerf")
    (nerfstudio / "transforms.json").unlink()
    with _raises(DatasetNotFoundError, "transforms_train.json (D-NeRF) or transforms.json (nerfstudio)"):
        read_capture(nerfstudio, "train")
    with _raises(DatasetNotFoundError, nerfstudio / "transforms.json"):
        read_capture(nerfstudio, "train", format="nerfstudio")


def test_malformed_json_names_the_file(dnerf):
    (dnerf / "transforms_train.json").write_text("{not json")
    with _raises(DataFormatError, "transforms_train.json", "not readable JSON"):
        read_capture(dnerf, "train")
    (dnerf / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": {}}))
    with _raises(DataFormatError, "transforms_train.json: frames", "expected a list of frames"):
        read_capture(dnerf, "train")
    (dnerf / "transforms_train.json").write_text(json.dumps({"frames": []}))
    with _raises(DataFormatError, "transforms_train.json: camera_angle_x", "expected a finite number"):
        read_capture(dnerf, "train")


def test_bad_scene_bounds_in_the_file_are_named(dnerf):
    _edit(dnerf / "transforms_train.json", lambda meta: meta.update(near=3.0, far=2.0))
    with _raises(DataFormatError, "transforms_train.json: far", "must be larger than near (3.0)"):
        read_capture(dnerf, "train")
    _edit(dnerf / "transforms_train.json", lambda meta: meta.update(near=1.0, scene_box=[1, 2, 3]))
    with _raises(DataFormatError, "transforms_train.json: scene_box", "expected [[min x, y, z]"):
        read_capture(dnerf, "train")


def test_splits_with_different_bounds_are_refused_unless_configured(dnerf):
    _edit(dnerf / "transforms_val.json", lambda meta: meta.update(far=7.0))
    module = CaptureDataModule(str(dnerf))
    with _raises(
        DataFormatError, dnerf, "val", "far 7.0 differ from the train split's", "scene_box/near/far"
    ):
        module.setup("fit")
    configured = CaptureDataModule(str(dnerf), far=6.5)
    configured.setup("fit")
    assert configured.capture("val").far == configured.capture("train").far == 6.5


# ---------------------------------------------------------------------------------------------- data module
def test_missing_path_names_the_command_that_makes_it(tmp_path):
    missing = tmp_path / "scene"
    with _raises(DatasetNotFoundError, missing, f"python -m sciml.data.dynamic_scenes --out {missing}"):
        CaptureDataModule(str(missing)).prepare_data()
    with _raises(DatasetNotFoundError, missing, "python -m sciml.data.dynamic_scenes"):
        CaptureDataModule(str(missing)).setup("fit")


@pytest.mark.parametrize(
    ("options", "key", "problem"),
    [
        ({"generator": "blender"}, "generator", "unknown generator 'blender'; built-in: dynamic_scene"),
        ({"format": "colmap"}, "format", "must be one of auto, dnerf, nerfstudio"),
        ({"downscale": 0}, "downscale", "expected an integer >= 1, got 0"),
        ({"rays_per_batch": 1.5}, "rays_per_batch", "expected an integer"),
        ({"steps_per_epoch": 0}, "steps_per_epoch", "expected an integer >= 1"),
        ({"val_frames": 0}, "val_frames", "expected an integer >= 1"),
        ({"scene_box": [1, 2, 3]}, "scene_box", "expected [[min x, y, z], [max x, y, z]]"),
        ({"scene_box": [[1, 0, 0], [0, 1, 1]]}, "scene_box", "min coordinate must be below"),
        ({"near": -1.0}, "near", "must be >= 0"),
        ({"near": 4.0, "far": 3.0}, "far", "must be larger than near (4.0)"),
    ],
)
def test_bad_configuration_fails_at_construction(dnerf, options, key, problem):
    with _raises(ConfigError, f"'{key}'", problem):
        CaptureDataModule(str(dnerf), **options)


def test_configured_near_beyond_the_files_far_is_a_config_error(dnerf):
    module = CaptureDataModule(str(dnerf), near=7.0)
    with _raises(ConfigError, "'far'", "must be larger than near (7.0), got 6.0"):
        module.setup("validate")


def test_too_few_steps_for_the_processes_and_too_large_downscale(dnerf):
    from types import SimpleNamespace

    module = CaptureDataModule(str(dnerf), steps_per_epoch=1)
    module.trainer = SimpleNamespace(global_rank=0, world_size=2)
    module.setup("fit")
    with _raises(ConfigError, "'steps_per_epoch'", "1 batches cannot be shared by 2 processes"):
        module.train_dataloader()
    with _raises(ConfigError, "'downscale'", "32 is larger than the 16x16 images"):
        CaptureDataModule(str(dnerf), downscale=32).setup("test")
