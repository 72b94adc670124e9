"""The analytic dynamic-scene generator: D-NeRF layout, determinism, held-out splits, exact geometry, CLI."""

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from sciml.core.errors import ConfigError
from sciml.data.dynamic_scenes import (
    AMBIENT,
    CAMERA_ANGLE_X,
    CAMERA_RADIUS,
    ELEVATION_RANGE_DEG,
    LIGHT_DIRECTION,
    OBJECTS,
    SCENE_BOX,
    cast_rays,
    focal_from_angle,
    look_at,
    main,
    make_dynamic_scene,
    pixel_rays,
    plan_frames,
    render_view,
    scene_at,
)

SPLITS = ("train", "val", "test", "video")
BALL, CRATE, BLOB = 0, 1, 2


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _transforms(root, split):
    return json.loads((root / f"transforms_{split}.json").read_text())


def _positions(root, split):
    return np.array([np.asarray(f["transform_matrix"])[:3, 3] for f in _transforms(root, split)["frames"]])


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("dynamic") / "scene"
    make_dynamic_scene(root, height=12, width=16, train=6, val=2, test=3, video=4, seed=0, progress=False)
    return root


def test_layout_and_json_schema_match_dnerf(small_scene):
    root = small_scene
    assert sorted(p.name for p in root.parent.iterdir()) == ["scene"]  # no temporaries left behind
    assert sorted(p.name for p in root.iterdir()) == [
        "ground_truth",
        "test",
        "train",
        "transforms_test.json",
        "transforms_train.json",
        "transforms_val.json",
        "transforms_video.json",
        "val",
        "video",
    ]
    counts = {"train": 6, "val": 2, "test": 3, "video": 4}
    for split in SPLITS:
        transforms = _transforms(root, split)
        assert set(transforms) == {"camera_angle_x", "frames"}
        assert transforms["camera_angle_x"] == CAMERA_ANGLE_X == 0.6911112070083618
        frames = transforms["frames"]
        assert len(frames) == counts[split]
        assert sorted(p.name for p in (root / split).iterdir()) == [
            f"r_{i:03d}.png" for i in range(len(frames))
        ]
        times = [f["time"] for f in frames]
        assert all(0.0 <= t <= 1.0 for t in times) and times == sorted(times)
        for i, frame in enumerate(frames):
            assert set(frame) == {"file_path", "time", "transform_matrix"}
            assert frame["file_path"] == f"./{split}/r_{i:03d}"  # no extension, as in D-NeRF
            assert re.fullmatch(r"\./(train|val|test|video)/r_\d{3}", frame["file_path"])
            image = Image.open(root / f"{frame['file_path']}.png")
            assert image.format == "PNG" and image.mode == "RGBA" and image.size == (16, 12)
            pose = np.asarray(frame["transform_matrix"])
            assert pose.shape == (4, 4)
            np.testing.assert_array_equal(pose[3], [0.0, 0.0, 0.0, 1.0])
            rotation, position = pose[:3, :3], pose[:3, 3]
            np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
            assert np.linalg.det(rotation) == pytest.approx(1.0)
            assert np.linalg.norm(position) == pytest.approx(CAMERA_RADIUS)
            # the camera looks along its -z at the origin, with the image's up on the world's up side
            np.testing.assert_allclose(rotation[:, 2], position / CAMERA_RADIUS, atol=1e-12)
            assert rotation[2, 1] > 0 and abs(rotation[2, 0]) < 1e-12
            elevation = math.degrees(math.asin(position[2] / CAMERA_RADIUS))
            assert ELEVATION_RANGE_DEG[0] <= elevation <= ELEVATION_RANGE_DEG[1]
    assert [f["time"] for f in _transforms(root, "train")["frames"]] == [i / 5 for i in range(6)]


def test_images_and_ground_truth_are_the_rendered_views(small_scene):
    root = small_scene
    focal = focal_from_angle(16)
    assert focal == pytest.approx(0.5 * 16 / math.tan(0.5 * 0.6911112070083618))
    description = json.loads((root / "ground_truth" / "scene.json").read_text())
    assert [o["name"] for o in description["objects"]] == [o.name for o in OBJECTS]
    assert description["near"] == 2.0 and description["far"] == 6.0
    for split in SPLITS:
        depth = np.load(root / "ground_truth" / f"{split}_depth.npy")
        objects = np.load(root / "ground_truth" / f"{split}_object.npy")
        frames = _transforms(root, split)["frames"]
        assert depth.dtype == np.float32 and depth.shape == (len(frames), 12, 16)
        assert objects.dtype == np.int8 and objects.shape == depth.shape
        assert set(np.unique(objects)) <= {-1, 0, 1, 2}
        np.testing.assert_array_equal(objects == -1, np.isinf(depth))
        finite = depth[np.isfinite(depth)]
        assert finite.size > 0 and finite.min() > 2.0 and finite.max() < 6.0  # inside D-NeRF's near/far
        for i, frame in enumerate(frames):
            rgba, view_depth = render_view(frame["transform_matrix"], frame["time"], 12, 16, focal, 2)
            png = np.asarray(Image.open(root / f"{frame['file_path']}.png"))
            np.testing.assert_array_equal(png, np.round(rgba * 255).astype(np.uint8))
            np.testing.assert_array_equal(depth[i], view_depth)


def test_same_seed_same_bytes_other_seed_other_cameras(tmp_path):
    args = {"height": 10, "width": 10, "train": 4, "val": 2, "test": 2, "video": 3, "progress": False}
    make_dynamic_scene(tmp_path / "a", seed=3, **args)
    make_dynamic_scene(tmp_path / "b", seed=3, **args)
    make_dynamic_scene(tmp_path / "c", seed=4, **args)
    files = _files(tmp_path / "a")
    # 4 transforms files, 11 images, depth and object ids of 4 splits and scene.json
    assert len(files) == 4 + 11 + 9 and files == _files(tmp_path / "b") == _files(tmp_path / "c")
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    for split in SPLITS:
        assert not np.allclose(_positions(tmp_path / "a", split), _positions(tmp_path / "c", split))
        times = [f["time"] for f in _transforms(tmp_path / "a", split)["frames"]]
        assert times == [
            f["time"] for f in _transforms(tmp_path / "c", split)["frames"]
        ]  # the seed draws cameras
    pngs = [f for f in files if f.suffix == ".png"]
    differing = [f for f in pngs if (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes()]
    assert len(differing) == len(pngs)


def _min_angle_deg(a, b):
    cosines = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)
    ).T
    return math.degrees(math.acos(min(cosines.max(), 1.0)))


@pytest.mark.parametrize("train_cameras", [None, 4])
def test_val_and_test_hold_out_views_and_times(train_cameras):
    frames = plan_frames(train=100, val=10, test=20, train_cameras=train_cameras, seed=0)
    times = {split: np.array([t for t, _ in frames[split]]) for split in SPLITS}
    positions = {split: np.array([pose[:3, 3] for _, pose in frames[split]]) for split in SPLITS}
    np.testing.assert_allclose(times["train"], np.linspace(0.0, 1.0, 100), atol=1e-15)
    spacing = 1 / 99
    for split in ("val", "test"):
        assert len(times[split]) == len(set(times[split].tolist()))
        # between training times: a third (val) or two thirds (test) of a training interval from them
        gaps = np.abs(times[split][:, None] - times["train"][None, :]).min(axis=1)
        np.testing.assert_allclose(gaps, spacing / 3, rtol=1e-9)
        assert times[split].min() < 0.1 and times[split].max() > 0.9  # spread over the whole clip
        assert _min_angle_deg(positions[split], positions["train"]) > 1.0
    assert not set(times["val"].tolist()) & set(times["test"].tolist())
    assert _min_angle_deg(positions["val"], positions["test"]) > 1.0
    # video: one held-out camera, standing still, through evenly spaced times
    np.testing.assert_allclose(times["video"], np.linspace(0.0, 1.0, 24), atol=1e-15)
    assert len(np.unique(np.round(positions["video"], 12), axis=0)) == 1
    others = np.concatenate([positions["train"], positions["val"], positions["test"]])
    assert _min_angle_deg(positions["video"][:1], others) > 1.0


def test_sparse_view_setting_uses_exactly_train_cameras_positions(tmp_path):
    make_dynamic_scene(
        tmp_path / "s", height=8, width=8, train=7, val=1, test=1, train_cameras=3, progress=False
    )
    positions = _positions(tmp_path / "s", "train")
    assert len(np.unique(np.round(positions, 9), axis=0)) == 3
    for i in range(7):
        np.testing.assert_array_equal(positions[i], positions[i % 3])  # cycled over time
    times = [f["time"] for f in _transforms(tmp_path / "s", "train")["frames"]]
    assert times == [i / 6 for i in range(7)]
    # control: without the setting every training frame has its own camera
    dense = np.array([pose[:3, 3] for _, pose in plan_frames(train=7, val=1, test=1)["train"]])
    assert len(np.unique(np.round(dense, 9), axis=0)) == 7


def test_the_same_camera_at_two_times_sees_the_objects_move():
    pose = look_at([2.0, -2.5, 2.2])
    focal = focal_from_angle(32)
    before, _ = render_view(pose, 0.0, 32, 32, focal)
    after, _ = render_view(pose, 0.5, 32, 32, focal)
    again, _ = render_view(pose, 0.0, 32, 32, focal)
    np.testing.assert_array_equal(before, again)
    assert np.abs(before - after).max() > 0.5
    assert (np.abs(before[..., 3] - after[..., 3]) > 0.5).sum() > 10  # silhouettes moved, not just colours
    # every object moves: its world pose at t = 0.5 differs from t = 0
    for p0, p1 in zip(scene_at(0.0), scene_at(0.5)):
        moved = np.abs(p0.center - p1.center).max() + np.abs(p0.rotation - p1.rotation).max()
        assert moved + np.abs(p0.scale - p1.scale).max() > 0.1, p0.name


def _checker(longitude, latitude):
    return int(math.floor(longitude / (math.pi / 4)) + math.floor(latitude / (math.pi / 4))) % 2


@pytest.mark.parametrize("time", [0.13, 0.3, 0.55, 0.8])
def test_closed_form_depth_and_colour_of_the_ball_seen_from_straight_above(time):
    ball = scene_at(time)[BALL]
    radius = OBJECTS[BALL].canonical_extents[0]
    pose = np.eye(4)  # looks down -z, image up = +y, image right = +x
    pose[:3, 3] = [ball.center[0], ball.center[1], 4.0]
    rgba, depth = render_view(pose, time, 33, 33, focal_from_angle(33), supersample=1)
    # the pixel-centre ray of pixel (16, 16) is the optical axis of an odd-sized image
    assert depth[16, 16] == pytest.approx(4.0 - ball.center[2] - radius, rel=1e-6)
    assert rgba[16, 16, 3] == 1.0
    # colour: texture and shading of the canonical point that the top of the ball carries at this time
    q = ball.rotation.T @ np.array([0.0, 0.0, 1.0])  # unit canonical normal = canonical point / radius
    longitude, latitude = math.atan2(q[1], q[0]), math.asin(q[2])
    assert min(abs(x / (math.pi / 4) - round(x / (math.pi / 4))) for x in (longitude, latitude)) > 1e-3
    albedo = np.asarray(OBJECTS[BALL].colours[_checker(longitude, latitude)])
    shading = AMBIENT + (1 - AMBIENT) * max(0.0, float(q @ LIGHT_DIRECTION))
    np.testing.assert_allclose(rgba[16, 16, :3], albedo * shading, atol=1e-6)


@pytest.mark.parametrize("time", [0.1, 0.45, 0.9])
def test_closed_form_depth_and_colour_of_the_deforming_blob(time):
    blob = scene_at(time)[BLOB]
    canonical_radii = np.asarray(OBJECTS[BLOB].canonical_extents)
    radii = canonical_radii * (1 + 0.25 * np.sin(2 * math.pi * time + 2 * math.pi * np.arange(3) / 3))
    np.testing.assert_allclose(blob.extents, radii)
    offset = np.array([0.1, 0.05])  # off the axis, so the hit is off the stripe boundary at x_c = 0
    pose = np.eye(4)
    pose[:3, 3] = [blob.center[0] + offset[0], blob.center[1] + offset[1], 4.0]
    rgba, depth = render_view(pose, time, 33, 33, focal_from_angle(33), supersample=1)
    # the blob turns about z only, so its local z stays vertical: the ellipsoid height above (x_l, y_l)
    angle = 0.5 * math.pi * time
    x_l = math.cos(angle) * offset[0] + math.sin(angle) * offset[1]
    y_l = -math.sin(angle) * offset[0] + math.cos(angle) * offset[1]
    z_l = radii[2] * math.sqrt(1 - (x_l / radii[0]) ** 2 - (y_l / radii[1]) ** 2)
    assert depth[16, 16] == pytest.approx(4.0 - blob.center[2] - z_l, rel=1e-6)
    unit = np.array([x_l, y_l, z_l]) / radii  # the point on the unit sphere; canonical = unit * rest radii
    stripe = math.floor(4 * (unit[0] + 1)) % 2
    normal = unit / canonical_radii
    normal /= np.linalg.norm(normal)
    shading = AMBIENT + (1 - AMBIENT) * max(0.0, float(normal @ LIGHT_DIRECTION))
    np.testing.assert_allclose(
        rgba[16, 16, :3], np.asarray(OBJECTS[BLOB].colours[stripe]) * shading, atol=1e-6
    )


def _expected_texture(name, canonical, extents):
    """Texture index (0/1) and distance to the nearest texture boundary, per the documented textures."""
    if name == "ball":
        q = canonical / extents
        coords = np.stack([np.arctan2(q[:, 1], q[:, 0]), np.arcsin(np.clip(q[:, 2], -1, 1))], 1) / (
            math.pi / 4
        )
    elif name == "crate":
        coords = canonical / 0.14
    else:
        coords = 4 * (canonical[:, :1] / extents[0] + 1)
    index = np.floor(coords).sum(axis=1).astype(int) % 2
    return index, np.abs(coords - np.round(coords)).min(axis=1)


def _expected_normal(kind, canonical, extents):
    if kind == "ellipsoid":
        normal = canonical / extents**2
    else:
        axis = np.argmax(np.abs(canonical) / extents, axis=1)
        normal = np.zeros_like(canonical)
        normal[np.arange(len(axis)), axis] = np.sign(canonical[np.arange(len(axis)), axis])
    return normal / np.linalg.norm(normal, axis=1, keepdims=True)


@pytest.mark.parametrize("time", [0.2, 0.7])
def test_every_pixel_has_the_colour_of_its_canonical_point(time):
    pose = look_at([1.2, -3.2, 2.0])
    focal = focal_from_angle(48)
    rgba, depth = render_view(pose, time, 48, 48, focal, supersample=1)
    origins, directions = pixel_rays(pose, 48, 48, focal)
    _, hit, _ = cast_rays(origins.reshape(-1, 3), directions.reshape(-1, 3), time)
    hit = hit.reshape(48, 48)
    points = origins + depth[..., None].astype(np.float64) * directions  # (H, W, 3) world hit points
    for index, (obj, object_pose) in enumerate(zip(OBJECTS, scene_at(time))):
        mine = hit == index
        assert mine.sum() > 30, obj.name
        extents = np.asarray(obj.canonical_extents)
        canonical = object_pose.to_canonical(points[mine])
        # on the rest shape: |x_c / r| = 1 (ellipsoid) or max |x_c / h| = 1 (box), up to float32 depth
        size = np.linalg.norm(canonical / extents, axis=1) if obj.kind == "ellipsoid" else None
        size = np.abs(canonical / extents).max(axis=1) if size is None else size
        np.testing.assert_allclose(size, 1.0, atol=1e-5)
        texture, boundary = _expected_texture(obj.name, canonical, extents)
        normal = _expected_normal(obj.kind, canonical, extents)
        shading = AMBIENT + (1 - AMBIENT) * np.maximum(normal @ LIGHT_DIRECTION, 0.0)
        expected = np.asarray(obj.colours)[texture] * shading[:, None]
        clear = boundary > 1e-3  # leave out hits within float32 rounding of a texture boundary
        if obj.kind == "box":  # ... and of an edge, where the face (hence the normal) is ambiguous
            ratios = np.sort(np.abs(canonical) / extents, axis=1)
            clear &= ratios[:, -1] - ratios[:, -2] > 1e-4
        assert clear.mean() > 0.9 and set(texture[clear].tolist()) == {0, 1}
        np.testing.assert_allclose(rgba[mine][clear, :3], expected[clear], atol=2e-5)


def _ray_distance_to(points, origin, directions):
    """Distance from ``points`` (K, 3) to rays (..., 3) from ``origin``: (..., K)."""
    along = np.einsum("...i,ki->...k", directions, points - origin)
    closest = origin + along[..., None] * directions[..., None, :]
    distance = np.linalg.norm(closest - points, axis=-1)
    return np.where(along > 0, distance, np.inf)


def test_alpha_is_zero_exactly_where_rays_miss_and_one_where_they_surely_hit():
    time, pose = 0.35, look_at([-1.0, -3.0, 2.4])
    poses = scene_at(time)
    centers = np.array([p.center for p in poses])
    bounds = np.array([p.bounding_radius for p in poses])
    inner = np.array([p.extents.min() for p in poses])  # a ball inside each object
    focal = focal_from_angle(40)
    rgba, depth = render_view(pose, time, 40, 40, focal, supersample=1)
    origins, directions = pixel_rays(pose, 40, 40, focal)
    distance = _ray_distance_to(centers, origins[0, 0], directions)  # (H, W, 3)
    surely_missed = (distance > bounds).all(axis=-1)
    surely_hit = (distance < inner).any(axis=-1)
    assert surely_missed.sum() > 200 and surely_hit.sum() > 50
    assert (rgba[surely_missed] == 0).all() and np.isinf(depth[surely_missed]).all()
    assert (rgba[surely_hit, 3] == 1).all() and np.isfinite(depth[surely_hit]).all()
    np.testing.assert_array_equal(rgba[..., 3] == 0, np.isinf(depth))  # one ray per pixel
    assert (rgba[rgba[..., 3] == 0] == 0).all()
    # with 2 x 2 supersampling alpha is the covered fraction: quarter steps, fractional on edges only
    smooth, _ = render_view(pose, time, 40, 40, focal, supersample=2)
    alpha = smooth[..., 3]
    np.testing.assert_array_equal(alpha * 4, np.round(alpha * 4))
    fractional = (alpha > 0) & (alpha < 1)
    # the sub-pixel rays lie within 0.71 pixel of the centre ray: less than 6 * 0.75 / focal away at the scene
    margin = 6.0 * 0.75 / focal
    all_missed = (distance > bounds + margin).all(axis=-1)
    all_hit = (distance < inner - margin).any(axis=-1)
    assert all_missed.sum() > 200 and all_hit.sum() > 20
    assert fractional.sum() > 20 and (alpha[all_missed] == 0).all() and (alpha[all_hit] == 1).all()
    assert fractional.sum() < (alpha == 1).sum()


def test_pinhole_convention_projects_a_known_point_to_its_pixel():
    time = 0.125
    ball = scene_at(time)[BALL]
    radius = OBJECTS[BALL].canonical_extents[0]
    camera = CAMERA_RADIUS * np.array([3.5, 1.0, 1.0]) / np.linalg.norm([3.5, 1.0, 1.0])
    pose = look_at(camera)
    height, width = 48, 64  # not square, so swapped rows and columns would show
    focal = focal_from_angle(width)
    point = ball.center + radius * (camera - ball.center) / np.linalg.norm(camera - ball.center)
    # projection with the intrinsics, written out independently of pixel_rays
    x, y, z = pose[:3, :3].T @ (point - camera)  # camera coordinates; the camera looks along -z
    assert z < 0
    u = focal * x / -z + width / 2 - 0.5  # column whose centre (u + 0.5) the point falls on
    v = height / 2 - focal * y / -z - 0.5  # row
    column, row = round(u), round(v)
    # the ball (at +y, high) is well off-centre: right of the optical axis (the camera's right, up x back,
    # points to +y) and above it
    assert column - width / 2 > 5 and height / 2 - row > 5
    _, depth = render_view(pose, time, height, width, focal, supersample=1)
    origins, directions = pixel_rays(pose, height, width, focal)
    distance, hit, _ = cast_rays(origins[row, column][None], directions[row, column][None], time)
    assert hit[0] == BALL and depth[row, column] == pytest.approx(distance[0], rel=1e-6)
    hit_point = camera + float(depth[row, column]) * directions[row, column]
    assert np.linalg.norm(hit_point - ball.center) == pytest.approx(radius, abs=1e-5)
    # within half a pixel of the point's ray the surface is within a small distance of the point
    assert np.linalg.norm(hit_point - point) < 2.0 / focal * np.linalg.norm(point - camera)
    # the mirrored conventions (flipped rows or columns) land on the background or elsewhere
    for r, c in ((height - 1 - row, column), (row, width - 1 - column)):
        assert not np.isfinite(depth[r, c]) or abs(depth[r, c] - depth[row, column]) > 0.05


def test_the_scene_stays_in_its_box_and_in_view_and_objects_never_overlap():
    view_radius = CAMERA_RADIUS * math.sin(0.5 * CAMERA_ANGLE_X)
    for time in np.linspace(0.0, 1.0, 201):
        poses = scene_at(time)
        for pose in poses:
            assert (np.abs(pose.center) + pose.bounding_radius < SCENE_BOX[1]).all()
            assert np.linalg.norm(pose.center) + pose.bounding_radius < view_radius
            canonical = np.random.default_rng(0).normal(size=(5, 3))
            np.testing.assert_allclose(pose.to_canonical(pose.to_world(canonical)), canonical, atol=1e-12)
        for i in range(3):
            for j in range(i + 1, 3):
                gap = np.linalg.norm(poses[i].center - poses[j].center)
                assert gap > poses[i].bounding_radius + poses[j].bounding_radius


def test_every_dataset_frame_shows_whole_objects():
    frames = plan_frames(train=100, val=10, test=20, seed=0)
    focal = focal_from_angle(16)
    for split in SPLITS:
        for time, pose in frames[split]:
            rgba, _ = render_view(pose, time, 16, 16, focal, supersample=1)
            alpha = rgba[..., 3]
            border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
            assert border.max() == 0 and alpha.sum() > 0


def test_cli_writes_prints_a_summary_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "scene"
    args = f"--out {out} --height 8 --width 8 --train 4 --val 1 --test 2 --video 2 --train-cameras 2".split()
    args.append("--quiet")
    main(args)
    summary = capsys.readouterr().out
    assert "wrote 9 frames of 8x8 RGBA" in summary and str(out) in summary
    assert "train 4 (2 cameras), val 1, test 2" in summary
    assert len(list((out / "train").iterdir())) == 4
    before = (out / "transforms_train.json").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1 and "--force" in capsys.readouterr().err
    main([*args, "--force", "--seed", "5"])
    assert (out / "transforms_train.json").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "other"), "--train", "3", "--train-cameras", "5", "--quiet"])
    assert exit_info.value.code == 2
    assert "option '--train-cameras'" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_bad_arguments_are_clear_errors_and_write_nothing(tmp_path):
    with pytest.raises(ConfigError, match="'train'.*>= 2, got 1"):
        make_dynamic_scene(tmp_path / "x", train=1, progress=False)
    with pytest.raises(ConfigError, match="'train_cameras'.*5 cameras for 4 training frames"):
        make_dynamic_scene(tmp_path / "x", train=4, train_cameras=5, progress=False)
    with pytest.raises(ConfigError, match="'supersample'.*>= 1, got 0"):
        make_dynamic_scene(tmp_path / "x", supersample=0, progress=False)
    with pytest.raises(ConfigError, match="'height'"):
        make_dynamic_scene(tmp_path / "x", height=0, progress=False)
    with pytest.raises(ConfigError, match="'val'"):
        plan_frames(val=0)
    assert not (tmp_path / "x").exists()
    (tmp_path / "x").mkdir()
    with pytest.raises(FileExistsError, match="force=True"):
        make_dynamic_scene(tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        render_view(np.eye(3), 0.0, 4, 4, 5.0)


def test_a_killed_run_leaves_no_scene_and_its_leftover_goes_with_the_next_one(tmp_path):
    from field_fixtures import make_killed_atomic_write

    killed = make_killed_atomic_write(tmp_path / "scene", directory=True)
    assert not (tmp_path / "scene").exists()
    make_dynamic_scene(tmp_path / "scene", height=8, width=8, train=2, val=1, test=1, video=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"] and not killed.exists()
