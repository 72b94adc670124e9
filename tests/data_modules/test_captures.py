"""Capture readers (D-NeRF, nerfstudio), downscaling, pinhole rays, and the CaptureDataModule's seeded,
resumable, sharded ray batches and whole-image evaluation items."""

import json
import math
import sys
import types
from types import SimpleNamespace

import capture_fixtures  # importable through tests/conftest.py, which puts tests/data on sys.path
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from sciml.data import Capture, CaptureDataModule, read_capture
from sciml.data.captures import camera_rays
from sciml.data.formats.dnerf import read_dnerf
from sciml.data.formats.nerfstudio import read_nerfstudio


@pytest.fixture(scope="module")
def dnerf(tmp_path_factory):
    root = tmp_path_factory.mktemp("captures") / "dnerf"
    return root, capture_fixtures.make_dnerf_fixture(root)


@pytest.fixture(scope="module")
def nerfstudio(tmp_path_factory):
    root = tmp_path_factory.mktemp("captures") / "nerfstudio"
    return root, capture_fixtures.make_nerfstudio_fixture(root)


def _module(root, **overrides):
    options = {"rays_per_batch": 256, "steps_per_epoch": 4}
    return CaptureDataModule(str(root), **{**options, **overrides})


def _composite(rgba, background):
    """The composited colour of uint8 RGBA pixels, by hand."""
    alpha = rgba[..., 3:] / 255.0
    return rgba[..., :3] / 255.0 * alpha + background * (1.0 - alpha)


# ---------------------------------------------------------------------------------------------- readers
def test_dnerf_reader_gives_intrinsics_poses_times_and_composited_colours(dnerf):
    root, scene = dnerf
    for split, frames in scene["splits"].items():
        capture = read_dnerf(root, split)
        assert isinstance(capture, Capture) and capture.split == split and len(capture) == len(frames)
        assert (capture.height, capture.width) == (16, 16)
        focal = 0.5 * 16 / math.tan(0.5 * capture_fixtures.CAMERA_ANGLE_X)
        np.testing.assert_allclose(capture.intrinsics, [[focal, focal, 8.0, 8.0]] * len(frames), rtol=1e-6)
        expected_poses = np.stack([f["transform_matrix"] for f in frames])
        np.testing.assert_allclose(capture.camera_to_world, expected_poses, atol=1e-6)
        np.testing.assert_allclose(capture.times, [f["time"] for f in frames], atol=1e-7)
        assert capture.frame_names == [str(f["file"]) for f in frames]
        # D-NeRF's defaults: the JSON has no near/far/box
        assert (capture.near, capture.far) == (2.0, 6.0)
        np.testing.assert_array_equal(capture.scene_box, [[-1.5] * 3, [1.5] * 3])
        for name in ("images", "masks", "intrinsics", "camera_to_world", "times", "scene_box", "background"):
            assert getattr(capture, name).dtype == np.float32, name
    train = read_dnerf(root, "train")
    rgba = scene["splits"]["train"][2]["rgba"]
    # one pixel of each alpha level, by hand: opaque (centre), half (ring), transparent (corner)
    assert rgba[8, 8, 3] == 255 and rgba[8, 4, 3] == 128 and rgba[0, 0, 3] == 0
    np.testing.assert_allclose(train.images[2, 8, 8], rgba[8, 8, :3] / 255.0, atol=1e-6)
    half = 128 / 255.0
    np.testing.assert_allclose(train.images[2, 8, 4], rgba[8, 4, :3] / 255.0 * half + (1 - half), atol=1e-6)
    np.testing.assert_allclose(train.images[2, 0, 0], [1.0, 1.0, 1.0], atol=0)
    np.testing.assert_allclose(train.masks[2], rgba[..., 3] / 255.0, atol=1e-7)
    np.testing.assert_allclose(train.images[2], _composite(rgba, 1.0), atol=1e-6)
    black = read_dnerf(root, "train", white_background=False)
    np.testing.assert_array_equal(black.background, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(black.images[2, 8, 4], rgba[8, 4, :3] / 255.0 * half, atol=1e-6)
    np.testing.assert_allclose(black.images[2, 0, 0], [0.0, 0.0, 0.0], atol=0)


def test_both_formats_give_the_same_capture_of_the_same_scene(dnerf, nerfstudio):
    (dnerf_root, _), (ns_root, _) = dnerf, nerfstudio
    for split in ("train", "val", "test"):
        a, b = read_capture(dnerf_root, split), read_capture(ns_root, split)
        assert read_capture(dnerf_root, split, format="dnerf").frame_names == a.frame_names
        assert read_capture(ns_root / "transforms.json", split).frame_names == b.frame_names
        for name in ("images", "masks", "intrinsics", "camera_to_world", "times", "scene_box", "background"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{split}: {name}")
        assert (a.near, a.far, a.split) == (b.near, b.far, b.split)
        relative = [[str(p).split("/")[-2:] for p in c.frame_names] for c in (a, b)]
        assert relative[0] == relative[1]


def _rewrite(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_nerfstudio_holds_out_every_eighth_frame_and_derives_bounds_from_the_cameras(tmp_path):
    counts = {"train": 10, "val": 3}
    scene = capture_fixtures.make_nerfstudio_fixture(tmp_path, counts=counts, bounds=False)

    def drop_split_lists(meta):
        for key in ("train_filenames", "val_filenames"):
            del meta[key]

    _rewrite(tmp_path / "transforms.json", drop_split_lists)
    frames = scene["splits"]["train"] + scene["splits"]["val"]  # file order
    train, val, test = (read_nerfstudio(tmp_path, split) for split in ("train", "val", "test"))
    assert val.frame_names == test.frame_names == [str(frames[i]["file"]) for i in (0, 8)]
    assert train.frame_names == [str(frames[i]["file"]) for i in range(13) if i not in (0, 8)]
    np.testing.assert_allclose(val.times, [frames[0]["time"], frames[8]["time"]], atol=1e-7)
    # every camera sits at distance 4: box [-4, 4]^3, near 0.05 * 4, far 2 sqrt(3) * 4
    np.testing.assert_allclose(train.scene_box, [[-4.0] * 3, [4.0] * 3], rtol=1e-6)
    assert train.near == pytest.approx(0.2, rel=1e-6) and train.far == pytest.approx(
        8 * math.sqrt(3), rel=1e-6
    )
    assert (val.near, val.far) == (train.near, train.far)


def test_nerfstudio_per_frame_intrinsics_override_the_global_ones(nerfstudio, tmp_path):
    root, _ = nerfstudio
    copy = tmp_path / "copy"
    capture_fixtures.make_nerfstudio_fixture(copy)

    def override(meta):
        meta["frames"][1].update(fl_x=30.0, cy=7.0)

    _rewrite(copy / "transforms.json", override)
    capture = read_nerfstudio(copy, "train")
    focal = capture_fixtures.make_scene()["focal"]
    np.testing.assert_allclose(capture.intrinsics[1], [30.0, focal, 8.0, 7.0], rtol=1e-6)
    np.testing.assert_allclose(capture.intrinsics[0], [focal, focal, 8.0, 8.0], rtol=1e-6)


# ---------------------------------------------------------------------------------------------- downscale
def test_downscale_averages_pixel_blocks_and_divides_the_intrinsics(dnerf):
    capture = read_dnerf(dnerf[0], "train")
    half = capture.downscale(2)
    assert (half.height, half.width, len(half)) == (8, 8, 6) and half.split == "train"
    np.testing.assert_allclose(
        half.images[3, 2, 5], capture.images[3, 4:6, 10:12].mean(axis=(0, 1)), atol=1e-6
    )
    np.testing.assert_allclose(half.masks[3, 2, 5], capture.masks[3, 4:6, 10:12].mean(), atol=1e-6)
    np.testing.assert_allclose(half.intrinsics, capture.intrinsics / 2, rtol=1e-7)
    for name in ("camera_to_world", "times", "scene_box", "background"):
        np.testing.assert_array_equal(getattr(half, name), getattr(capture, name))
    assert half.images is not capture.images and capture.height == 16  # the original is untouched
    # 16 is not a multiple of 3: the last row and column are cropped, cx and cy only divided
    third = capture.downscale(3)
    assert (third.height, third.width) == (5, 5)
    np.testing.assert_allclose(
        third.images[0, 4, 4], capture.images[0, 12:15, 12:15].mean(axis=(0, 1)), atol=1e-6
    )
    np.testing.assert_allclose(third.intrinsics[0], capture.intrinsics[0] / 3, rtol=1e-7)
    # each small pixel's ray is the mean of its block's rays (before normalization; exact with pixel centres)
    identity = np.eye(4, dtype=np.float32)
    small = camera_rays(half.intrinsics[0], identity, 8, 8)[1]
    large = camera_rays(capture.intrinsics[0], identity, 16, 16)[1]
    small, large = small / -small[..., 2:], large / -large[..., 2:]  # z = -1 in camera space
    block_means = large.reshape(8, 2, 8, 2, 3).mean(dim=(1, 3))
    torch.testing.assert_close(small, block_means, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------- rays
def test_rays_follow_the_opengl_pinhole_convention():
    pose = capture_fixtures.look_at([0.0, 0.0, 4.0])  # looking at the origin along -z; x right, y up
    np.testing.assert_allclose(pose[:3, :3], np.eye(3), atol=1e-12)
    focal = 10.0
    origins, directions = camera_rays([focal, focal, 7.5, 7.5], pose, 15, 15)
    assert origins.shape == directions.shape == (15, 15, 3)
    torch.testing.assert_close(directions[7, 7], torch.tensor([0.0, 0.0, -1.0]))  # the image centre
    torch.testing.assert_close(origins, torch.tensor([0.0, 0.0, 4.0]).expand(15, 15, 3))
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(15, 15))
    # pixel (u=14, v=7), right of centre: +x; pixel (u=7, v=0), top row: +y; by hand
    right = np.array([(14.5 - 7.5) / focal, 0.0, -1.0])
    top = np.array([0.0, -(0.5 - 7.5) / focal, -1.0])
    torch.testing.assert_close(
        directions[7, 14], torch.tensor(right / np.linalg.norm(right), dtype=torch.float32)
    )
    torch.testing.assert_close(directions[0, 7], torch.tensor(top / np.linalg.norm(top), dtype=torch.float32))
    # a rotated camera: rays are R d_camera; batched cameras give the same rays as one at a time
    rotated = capture_fixtures.look_at([4.0, 0.0, 0.0])  # looks along -x
    _, side = camera_rays([focal, focal, 7.5, 7.5], rotated, 15, 15)
    torch.testing.assert_close(side[7, 7], torch.tensor([-1.0, 0.0, 0.0]))
    d = rotated[:3, :3] @ np.array([(3.5 - 7.5) / focal, -(12.5 - 7.5) / focal, -1.0])
    torch.testing.assert_close(side[12, 3], torch.tensor(d / np.linalg.norm(d), dtype=torch.float32))
    both = camera_rays(np.array([[focal, focal, 7.5, 7.5]] * 2), np.stack([pose, rotated]), 15, 15)[1]
    torch.testing.assert_close(both, torch.stack([directions, side]))


def test_fixture_cameras_look_at_the_origin(dnerf):
    capture = read_dnerf(dnerf[0], "train")
    origins, directions = camera_rays(capture.intrinsics, capture.camera_to_world, 16, 16)  # (F, 16, 16, 3)
    # the principal point (8, 8) lies between the four central pixels: the mean of their rays
    centre = directions[:, 7:9, 7:9].mean(dim=(1, 2))
    centre = centre / centre.norm(dim=-1, keepdim=True)
    target = -origins[:, 0, 0] / origins[:, 0, 0].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(centre, target, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- training
def test_every_training_ray_carries_its_own_pixel(dnerf):
    module = _module(dnerf[0], rays_per_batch=512)
    module.setup("fit")
    capture = module.capture("train")
    batch = module.dataset("train")[(1, 3)]
    assert set(batch) == {"origins", "directions", "rgb", "time", "frame", "pixel", "index"}
    assert batch["index"] == 3
    for key, shape in {"origins": (512, 3), "directions": (512, 3), "rgb": (512, 3), "time": (512,)}.items():
        assert batch[key].shape == shape and batch[key].dtype == torch.float32, key
    assert batch["frame"].shape == (512,) and batch["pixel"].shape == (512, 2)
    assert batch["frame"].dtype == batch["pixel"].dtype == torch.int64
    frame, u, v = batch["frame"].numpy(), batch["pixel"][:, 0].numpy(), batch["pixel"][:, 1].numpy()
    np.testing.assert_array_equal(batch["rgb"].numpy(), capture.images[frame, v, u])
    np.testing.assert_array_equal(batch["origins"].numpy(), capture.camera_to_world[frame, :3, 3])
    np.testing.assert_array_equal(batch["time"].numpy(), capture.times[frame])
    directions = camera_rays(capture.intrinsics, capture.camera_to_world, 16, 16)[1]  # (F, H, W, 3)
    torch.testing.assert_close(batch["directions"], directions[frame, v, u], rtol=0, atol=1e-6)


def test_draws_are_seeded_by_seed_epoch_and_batch_and_cover_all_pixels_and_times(dnerf):
    module = _module(dnerf[0], rays_per_batch=4096, steps_per_epoch=30)
    module.setup("fit")
    train = module.dataset("train")
    first = train[(0, 5)]
    again = _module(dnerf[0], rays_per_batch=4096, steps_per_epoch=30)
    again.setup("fit")
    for key in ("frame", "pixel", "rgb", "directions"):
        torch.testing.assert_close(again.dataset("train")[(0, 5)][key], first[key], rtol=0, atol=0)
    assert not torch.equal(train[(1, 5)]["pixel"], first["pixel"])  # another epoch
    assert not torch.equal(train[(0, 6)]["pixel"], first["pixel"])  # another batch
    other = _module(dnerf[0], rays_per_batch=4096, steps_per_epoch=30, shuffle_seed=1)
    other.setup("fit")
    assert not torch.equal(other.dataset("train")[(0, 5)]["pixel"], first["pixel"])  # another seed
    train.set_epoch(4)
    torch.testing.assert_close(train[5]["pixel"], train[(4, 5)]["pixel"], rtol=0, atol=0)
    # uniform over every pixel of every frame: 30 batches of 4096 rays over 6 frames of 16 x 16
    frames = torch.cat([train[(0, i)]["frame"] for i in range(30)])
    pixels = torch.cat([train[(0, i)]["pixel"] for i in range(30)])
    counts = torch.bincount(frames, minlength=6).double()
    assert ((counts - 20480).abs() < 1000).all(), counts  # sd 129
    for axis in (0, 1):
        per_value = torch.bincount(pixels[:, axis], minlength=16).double()
        assert ((per_value - 7680).abs() < 500).all(), per_value  # sd 85
    assert len(torch.unique(frames * 256 + pixels[:, 1] * 16 + pixels[:, 0])) == 6 * 256


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_a_resumed_training_loader_continues_with_the_same_batches(dnerf):
    module = _module(dnerf[0])
    module.setup("fit")
    loader = module.train_dataloader()
    assert len(loader) == 4
    epoch1 = _epoch(loader, 1)
    assert [b["index"] for b in epoch1] == [0, 1, 2, 3]
    assert not torch.equal(epoch1[0]["pixel"], _epoch(loader, 0)[0]["pixel"])
    loader.sampler.set_epoch(1)
    iterator = iter(loader)
    next(iterator)
    next(iterator)
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["consumed"] == 2
    restarted = _module(dnerf[0])
    restarted.setup("fit")
    resumed = restarted.train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert [b["index"] for b in rest] == [2, 3]
    for got, expected in zip(rest, epoch1[2:]):
        for key in ("origins", "directions", "rgb", "time", "frame", "pixel"):
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


def test_two_ranks_draw_disjoint_batches_and_share_the_evaluation_frames(dnerf):
    shards = {"train": [], "val": [], "test": []}
    pixels = []
    for rank in (0, 1):
        module = _module(dnerf[0], steps_per_epoch=6)
        module.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        module.setup(None)
        batches = _epoch(module.train_dataloader(), 2)
        shards["train"].append([b["index"] for b in batches])
        pixels.append(batches[0]["pixel"])
        shards["val"].append([i for b in module.val_dataloader() for i in b["index"].tolist()])
        shards["test"].append([i for b in module.test_dataloader() for i in b["index"].tolist()])
    assert shards["train"] == [[0, 2, 4], [1, 3, 5]]
    assert not torch.equal(pixels[0], pixels[1])
    for split in ("val", "test"):
        assert shards[split] == [[0], [1]]


class _Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch["index"], batch["pixel"].clone()))
        return (batch["rgb"] * self.weight).sum() ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no `validation_step`")
def test_a_trainer_keeps_the_sampler_and_draws_new_rays_each_epoch(dnerf):
    module = _module(dnerf[0], steps_per_epoch=3, rays_per_batch=64)
    recorder = _Recorder()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(recorder, datamodule=module)
    assert [(epoch, index) for epoch, index, _ in recorder.seen] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    train = module.dataset("train")
    for epoch, index, pixel in recorder.seen:
        torch.testing.assert_close(pixel, train[(epoch, index)]["pixel"], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- evaluation
def test_validation_and_test_serve_whole_images_of_rays(dnerf):
    root, scene = dnerf
    module = _module(root)
    module.setup("validate")
    module.setup("test")
    capture = module.capture("test")
    item = module.dataset("test")[1]
    assert set(item) == {"origins", "directions", "rgb", "time", "index", "frame"}
    assert item["origins"].shape == item["directions"].shape == item["rgb"].shape == (16, 16, 3)
    assert item["time"].shape == () and item["time"].item() == pytest.approx(
        scene["splits"]["test"][1]["time"]
    )
    assert item["index"] == 1 and item["frame"] == str(scene["splits"]["test"][1]["file"])
    np.testing.assert_array_equal(item["rgb"].numpy(), capture.images[1])
    origins, directions = camera_rays(capture.intrinsics[1], capture.camera_to_world[1], 16, 16)
    torch.testing.assert_close(item["directions"], directions, rtol=0, atol=0)
    torch.testing.assert_close(item["origins"], origins, rtol=0, atol=0)
    batch = next(iter(module.val_dataloader()))
    assert batch["rgb"].shape == (1, 16, 16, 3) and batch["time"].shape == (1,)
    assert batch["frame"] == [str(scene["splits"]["val"][0]["file"])] and batch["index"].tolist() == [0]
    capped = _module(root, val_frames=1)
    capped.setup("validate")
    assert capped.capture("val").frame_names == [str(scene["splits"]["val"][0]["file"])]
    assert len(list(capped.val_dataloader())) == 1


def test_data_module_downscales_overrides_bounds_and_reports_the_scene(dnerf):
    root, scene = dnerf
    module = _module(
        root, downscale=2, white_background=False, near=1.0, far=8.0, scene_box=[-1, -2, -3, 1, 2, 3]
    )
    with pytest.raises(RuntimeError, match="setup"):
        module.capture("train")
    # configured bounds are known before setup
    assert (module.near, module.far) == (1.0, 8.0)
    torch.testing.assert_close(module.scene_box, torch.tensor([[-1.0, -2.0, -3.0], [1.0, 2.0, 3.0]]))
    module.setup("fit")
    for split in ("train", "val"):
        capture = module.capture(split)
        assert (capture.height, capture.width) == (8, 8)
        assert (capture.near, capture.far) == (1.0, 8.0)
        np.testing.assert_array_equal(capture.scene_box, [[-1, -2, -3], [1, 2, 3]])
    full = read_dnerf(root, "train", white_background=False)
    np.testing.assert_allclose(module.capture("train").intrinsics, full.intrinsics / 2)
    np.testing.assert_allclose(module.capture("train").images, full.downscale(2).images)
    torch.testing.assert_close(module.background, torch.zeros(3))
    assert module.dataset("train")[0]["rgb"].shape == (256, 3)
    plain = _module(root)
    with pytest.raises(RuntimeError, match="after setup"):
        _ = plain.near
    plain.setup("test")
    assert (plain.near, plain.far) == (2.0, 6.0)
    torch.testing.assert_close(plain.scene_box, torch.tensor([[-1.5] * 3, [1.5] * 3]))
    torch.testing.assert_close(plain.background, torch.ones(3))


def test_prepare_data_runs_the_generator_only_when_the_path_is_missing(tmp_path, monkeypatch):
    calls = []

    def make_dynamic_scene(root, **kwargs):
        calls.append((root, kwargs))
        capture_fixtures.make_dnerf_fixture(root, seed=kwargs["seed"])

    fake = types.ModuleType("sciml.data.dynamic_scenes")
    fake.make_dynamic_scene = make_dynamic_scene
    monkeypatch.setitem(sys.modules, "sciml.data.dynamic_scenes", fake)
    root = tmp_path / "scene"
    module = _module(root, generator="dynamic_scene", generator_args={"seed": 3})
    module.setup("fit")  # outside a Trainer, setup prepares the data itself
    assert calls == [(root, {"seed": 3})]
    assert len(module.capture("train")) == 6
    module.prepare_data()  # the data exists now: nothing is generated again
    assert len(calls) == 1


def test_orbit_path_circles_the_scene_upright_through_time(tmp_path):
    from sciml.data.captures import orbit_path
    from sciml.data.dynamic_scenes import make_dynamic_scene

    make_dynamic_scene(tmp_path / "scene", height=16, width=16, train=6, val=2, test=2, progress=False)
    module = CaptureDataModule(str(tmp_path / "scene"))
    module.setup("predict")
    capture = module.capture("test")
    matrices, times = orbit_path(capture, 8, 30.0)
    assert matrices.shape == (8, 4, 4) and times.tolist() == pytest.approx(np.linspace(0, 1, 8).tolist())
    radius = np.linalg.norm(capture.camera_to_world[:, :3, 3], axis=1).mean()
    np.testing.assert_allclose(np.linalg.norm(matrices[:, :3, 3], axis=1), radius, rtol=1e-5)
    # each camera looks at the box centre (-z towards it) and the scene's z axis is up in its image
    towards = -matrices[:, :3, 2]
    np.testing.assert_allclose(towards, -matrices[:, :3, 3] / radius, atol=1e-5)
    assert (matrices[:, 2, 1] > 0.5).all()
    batch = next(iter(module.predict_dataloader()))
    assert batch["origins"].shape == (1, 16, 16, 3) and float(batch["time"][0]) == 0.0


def test_the_video_split_is_read_when_the_capture_has_one(tmp_path, dnerf):
    from sciml.data.dynamic_scenes import make_dynamic_scene

    make_dynamic_scene(tmp_path / "scene", height=8, width=8, train=4, val=1, test=1, video=3, progress=False)
    module = CaptureDataModule(str(tmp_path / "scene"), downscale=2)
    module.setup("fit")
    assert module.has_capture("video")
    video = module.capture("video")
    assert video.times.tolist() == pytest.approx([0.0, 0.5, 1.0]) and video.height == 4  # downscaled too
    assert len(np.unique(video.camera_to_world.round(6), axis=0)) == 1  # one camera standing still
    orbit = module.orbit("val", 5)
    assert len(orbit) == 5 and orbit[0]["origins"].shape == (4, 4, 3)
    without = _module(dnerf[0])
    without.setup("fit")
    assert not without.has_capture("video")


def test_camera_path_json_with_render_times(tmp_path):
    from sciml.core.errors import DataFormatError
    from sciml.data.captures import read_camera_path

    eye = np.eye(4)
    eye[2, 3] = 4.0
    path = tmp_path / "camera_path.json"
    keyframes = [
        {"camera_to_world": eye.reshape(-1).tolist(), "fov": 50.0, "render_time": t} for t in (0.0, 0.7)
    ]
    path.write_text(json.dumps({"render_height": 10, "render_width": 20, "camera_path": keyframes}))
    matrices, times, intrinsics, height, width = read_camera_path(
        path, np.array([30.0, 30.0, 8.0, 8.0]), 16, 16
    )
    assert (height, width) == (10, 20) and times.tolist() == pytest.approx([0.0, 0.7])
    np.testing.assert_allclose(intrinsics[0], [5 / np.tan(np.deg2rad(25)), 5 / np.tan(np.deg2rad(25)), 10, 5])
    np.testing.assert_allclose(matrices[1], eye)
    del keyframes[1]["render_time"]
    path.write_text(json.dumps({"camera_path": keyframes}))
    with pytest.raises(DataFormatError, match=r"camera_path\[1\].*time"):
        read_camera_path(path, np.array([30.0, 30.0, 8.0, 8.0]), 16, 16)
