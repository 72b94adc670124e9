"""The synthetic shape generator: PC15k layout, determinism, points on the surfaces, uniform sampling, CLI."""

import math
import re

import numpy as np
import pytest

from sciml.core.errors import ConfigError
from sciml.data.shapes import (
    CATEGORY_SYNSETS,
    GENERATED_CATEGORIES,
    SYNSET_CATEGORIES,
    Box,
    Frustum,
    Sphere,
    Torus,
    main,
    make_shape,
    make_shapes,
    surface_distance,
)


def _raises(error_type, *fragments):
    return pytest.raises(error_type, match=".*".join(re.escape(f) for f in fragments))


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_layout_names_dtype_and_contents(tmp_path):
    counts = {"train": 3, "val": 1, "test": 2}
    written = make_shapes(tmp_path, ["chair", "02691156"], counts, points=500, progress=False)
    assert written == {"chair": tmp_path / "03001627", "airplane": tmp_path / "02691156"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["02691156", "03001627"]  # no temporaries left
    for name, folder in written.items():
        assert sorted(p.name for p in folder.iterdir()) == ["test", "train", "val"]
        for split, count in counts.items():
            files = sorted((folder / split).iterdir())
            assert [f.name for f in files] == [f"{name}-{split}-{i:05d}.npy" for i in range(count)]
            for i, file in enumerate(files):
                cloud = np.load(file)
                assert cloud.dtype == np.float32 and cloud.shape == (500, 3)
                np.testing.assert_array_equal(cloud, make_shape(name, split=split, index=i, points=500)[0])
    # a split with count 0 gets no folder
    make_shapes(tmp_path / "b", ["lamp"], {"train": 1, "val": 0}, points=100, progress=False)
    assert sorted(p.name for p in (tmp_path / "b" / "03636649").iterdir()) == ["train"]


def test_same_seed_same_bytes_independent_of_counts_and_other_categories(tmp_path):
    counts = {"train": 2, "test": 1}
    make_shapes(tmp_path / "a", ["chair", "lamp"], counts, points=300, progress=False)
    make_shapes(tmp_path / "b", ["chair", "lamp"], counts, points=300, progress=False)
    make_shapes(tmp_path / "c", ["chair", "lamp"], counts, points=300, seed=1, progress=False)
    files = _files(tmp_path / "a")
    assert len(files) == 6 and files == _files(tmp_path / "b") == _files(tmp_path / "c")
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes()
    # lamp alone, with more shapes: the shapes both runs make are the same bytes
    make_shapes(tmp_path / "d", ["lamp"], {"train": 4}, points=300, progress=False)
    for i in range(2):
        name = f"03636649/train/lamp-train-{i:05d}.npy"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "d" / name).read_bytes()
    # shapes differ from each other
    first, second = (np.load(tmp_path / "a" / f"03636649/train/lamp-train-0000{i}.npy") for i in (0, 1))
    assert not np.allclose(first, second)


@pytest.mark.parametrize("category", GENERATED_CATEGORIES)
def test_points_lie_on_the_part_surfaces_of_a_normalized_shape(category):
    for index in range(5):
        points, parts = make_shape(category, index=index, points=3000)
        assert surface_distance(parts, points).max() < 1e-5
        # control: points moved off the surface are detected as off it
        assert np.median(surface_distance(parts, points + np.float32(0.02))) > 1e-3
        low, high = points.min(axis=0), points.max(axis=0)
        np.testing.assert_allclose((low + high) / 2, 0.0, atol=1e-6)
        assert np.linalg.norm(high - low) == pytest.approx(1.0, abs=1e-5)


def test_training_and_evaluation_parts_both_cover_every_part():
    points, parts = make_shape("chair", index=2, points=15000)
    nearest = np.argmin([p.distance(points) for p in parts], axis=0)
    areas = np.array([p.area() for p in parts])
    for k in np.flatnonzero(areas / areas.sum() > 0.01):
        assert (nearest[:10000] == k).sum() > 0 and (nearest[10000:] == k).sum() > 0
        # each part's share of the evaluation points matches its area share
        assert (nearest[10000:] == k).mean() == pytest.approx(areas[k] / areas.sum(), abs=0.03)


def test_orientation_y_up_front_minus_z():
    for index in range(4):
        chair, _ = make_shape("chair", index=index, points=4000)
        top = chair[chair[:, 1] > chair[:, 1].max() - 0.05]
        assert top[:, 2].mean() > 0.05  # the top of the back is behind the seat (front faces -z)
        plane, _ = make_shape("airplane", index=index, points=4000)
        extent = plane.max(axis=0) - plane.min(axis=0)
        assert extent[0] > 2 * extent[1] and extent[2] > 2 * extent[1]  # flat: wings in x, fuselage in z
        nose = plane[np.argmin(plane[:, 2])]
        assert abs(nose[0]) < 0.03  # the nose is the front-most point, on the symmetry plane
        for mirror in (chair, plane):  # the y-z plane is the plane of symmetry
            assert abs(mirror[:, 0].mean()) < 0.02
        lamp, _ = make_shape("lamp", index=index, points=4000)
        assert np.argmax(lamp.max(axis=0) - lamp.min(axis=0)) == 1  # lamps are tall
        table, _ = make_shape("table", index=index, points=4000)
        assert (table[:, 1] > table[:, 1].max() - 0.05).mean() > 0.3  # most of a table is its top


def _chamfer(a, b):
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # (len(a), len(b))
    return squared.min(axis=1).mean() + squared.min(axis=0).mean()


def test_categories_are_distinguishable():
    """Test shapes are on average much closer (Chamfer) to training shapes of their own category."""
    train = [[make_shape(c, index=i, points=256)[0] for i in range(4)] for c in GENERATED_CATEGORIES]
    test = [
        [make_shape(c, split="test", index=i, points=256)[0] for i in range(4)] for c in GENERATED_CATEGORIES
    ]
    distance = np.array(
        [[np.mean([_chamfer(a, b) for a in test_c for b in train_m]) for train_m in train] for test_c in test]
    )  # (category of the test shapes, category of the training shapes)
    for label in range(len(GENERATED_CATEGORIES)):
        assert distance[label, label] < 0.6 * np.delete(distance[label], label).min()


def _binomial_close(observed, expected, n):
    assert abs(observed - expected) < 5 * math.sqrt(expected * (1 - expected) / n) + 1e-12


def test_box_faces_get_points_in_proportion_to_their_area():
    n, half = 200_000, (0.5, 0.2, 0.1)
    points = Box(half).sample(n, np.random.default_rng(0))
    on_face = np.isclose(np.abs(points), half)  # (n, 3): which axis' face each point is on
    assert (on_face.sum(axis=1) >= 1).all()
    face_areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
    for axis in range(3):
        _binomial_close(on_face[:, axis].mean(), face_areas[axis] / face_areas.sum(), n)
        _binomial_close((points[on_face[:, axis], axis] > 0).mean(), 0.5, on_face[:, axis].sum())
    x_faces = points[on_face[:, 0]]  # uniform within the face: variance of U(-h, h) is h^2 / 3
    assert x_faces[:, 1].var() == pytest.approx(half[1] ** 2 / 3, rel=0.02)
    assert Box(half).area() == pytest.approx(2 * face_areas.sum() * 4)
    assert Box(half).distance(np.zeros((1, 3)))[0] == pytest.approx(0.1)
    assert Box(half).distance(np.array([[1.5, 0.0, 0.0]]))[0] == pytest.approx(1.0)


def test_frustum_density_follows_the_radius_and_caps_get_their_area():
    n, rng = 200_000, np.random.default_rng(1)
    cone = Frustum(1.0, 0.0, 2.0, bottom=False)
    points = cone.sample(n, rng)
    assert cone.area() == pytest.approx(math.pi * math.sqrt(5))
    # the lower half of a cone (radii 1 to 1/2) holds 3/4 of its lateral area
    _binomial_close((points[:, 1] < 0).mean(), 0.75, n)
    assert cone.distance(points).max() < 1e-9
    cylinder = Frustum(0.5, 0.5, 1.0)
    points = cylinder.sample(n, rng)
    caps = np.isclose(np.abs(points[:, 1]), 0.5)
    _binomial_close(caps.mean(), (2 * math.pi * 0.25) / (2 * math.pi * 0.25 + math.pi * 1.0), n)
    # uniform on a cap disk: the fraction within half the radius is 1/4
    _binomial_close((np.hypot(points[caps, 0], points[caps, 2]) < 0.25).mean(), 0.25, caps.sum())
    assert cylinder.distance(np.zeros((1, 3)))[0] == pytest.approx(0.5)
    assert Frustum(0.5, 0.5, 1.0, bottom=False, top=False).distance(np.array([[0.0, 2.0, 0.0]]))[0] == (
        pytest.approx(math.hypot(0.5, 1.5))
    )


def test_torus_and_sphere_are_sampled_uniformly():
    n, rng = 200_000, np.random.default_rng(2)
    torus = Torus(1.0, 0.4)
    points = torus.sample(n, rng)
    rho = np.hypot(points[:, 0], points[:, 2])
    # the outer half of the tube (cos(phi) > 0) holds 1/2 + r / (pi R) of the area
    _binomial_close((rho > 1.0).mean(), 0.5 + 0.4 / (math.pi * 1.0), n)
    assert torus.distance(points).max() < 1e-9
    assert torus.distance(np.zeros((1, 3)))[0] == pytest.approx(0.6)
    points = Sphere(2.0).sample(n, rng)
    # Archimedes: the height of a uniform point on a sphere is uniform
    _binomial_close((np.abs(points[:, 1]) < 1.0).mean(), 0.5, n)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 2.0)


def test_cli_writes_prints_a_summary_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "shapes"
    args = f"--out {out} --categories chair 02691156 --train 2 --val 1 --test 0 --points 200 --quiet".split()
    main(args)
    summary = capsys.readouterr().out
    assert "wrote 6 shapes of 200 points" in summary and str(out) in summary
    assert (
        "chair" in summary and "03001627" in summary and "airplane" in summary and "train 2, val 1" in summary
    )
    assert len(_files(out)) == 6 and all(f.suffix == ".npy" for f in _files(out))
    assert not (out / "03001627" / "test").exists()  # --test 0 makes no folder
    before = (out / "03001627/train/chair-train-00000.npy").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    assert str(out / "03001627") in capsys.readouterr().err
    main([*args, "--force", "--seed", "3"])
    assert (out / "03001627/train/chair-train-00000.npy").read_bytes() != before
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(out), "--categories", "sofa"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--categories" in err and "'sofa'" in err and "chair (03001627)" in err


def test_bad_arguments_are_config_errors_and_write_nothing(tmp_path):
    with _raises(ConfigError, "'categories'", "cannot make 'sofa'", "chair (03001627)", "car (02958343)"):
        make_shapes(tmp_path, ["chair", "sofa"], progress=False)
    with _raises(ConfigError, "'counts'", "unknown split 'training'"):
        make_shapes(tmp_path, ["chair"], {"training": 2}, progress=False)
    with _raises(ConfigError, "'counts'", "train: expected a count >= 0, got -1"):
        make_shapes(tmp_path, ["chair"], {"train": -1}, progress=False)
    with _raises(ConfigError, "'counts'", "no shapes"):
        make_shapes(tmp_path, ["chair"], {"train": 0}, progress=False)
    with _raises(ConfigError, "'points'", "got 0"):
        make_shapes(tmp_path, ["chair"], points=0, progress=False)
    with _raises(ConfigError, "'seed'", "got -1"):
        make_shapes(tmp_path, ["chair"], seed=-1, progress=False)
    with _raises(ConfigError, "'categories'", "is empty"):
        make_shapes(tmp_path, [], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_category_synsets_are_shapenets():
    shapenet13 = {
        "airplane": "02691156",
        "bench": "02828884",
        "cabinet": "02933112",
        "car": "02958343",
        "chair": "03001627",
        "monitor": "03211117",
        "lamp": "03636649",
        "speaker": "03691459",
        "rifle": "04090263",
        "sofa": "04256520",
        "table": "04379243",
        "telephone": "04401088",
        "vessel": "04530566",
    }
    assert shapenet13.items() <= CATEGORY_SYNSETS.items()
    assert len(CATEGORY_SYNSETS) == 55 and len(SYNSET_CATEGORIES) == 55
    assert all(re.fullmatch(r"\d{8}", synset) for synset in CATEGORY_SYNSETS.values())
    assert set(GENERATED_CATEGORIES) <= set(CATEGORY_SYNSETS)
