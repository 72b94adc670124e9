import pytest

from sciml.core.atomic import atomic_directory, atomic_path, write_text_atomic
from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError


def test_atomic_path_replaces_target_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"], "the temporary file must be cleaned up"
    write_text_atomic(target, "new")
    assert target.read_text() == "new"


def test_atomic_directory_swaps_whole_directories(tmp_path):
    target = tmp_path / "store.zarr"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_directory(target) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError("failed")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_directory(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]


def test_error_messages_name_the_place_at_fault():
    assert str(DataFormatError("/d/f.h5", "t1_fields/velocity", "contains NaN")) == (
        "/d/f.h5: t1_fields/velocity: contains NaN"
    )
    assert "make it with: python -m x" in str(DatasetNotFoundError("/d", "python -m x"))
    assert (
        str(ConfigError("data.init_args.t_in", "must be >= 1"))
        == "config key 'data.init_args.t_in': must be >= 1"
    )


def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
        with atomic_directory(tmp_path / "d") as tmp:
            (tmp / "a").write_text("1")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
