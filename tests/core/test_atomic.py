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


def test_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    import os
    import time

    from field_fixtures import make_killed_atomic_write

    from sciml.core.atomic import STALE_AFTER_S, is_temporary, remove_stale_temporaries

    killed_file = make_killed_atomic_write(tmp_path / "out.h5")
    killed_store = make_killed_atomic_write(tmp_path / "out.zarr", directory=True)
    killed_other = make_killed_atomic_write(tmp_path / "other.h5")
    assert killed_file.name.startswith(".out.h5.") and killed_file.name.endswith(".tmp")
    assert (killed_store / "part").read_text() == "half-written"
    # A write of this (live) process, one from another machine, one of an older sciml (no pid), and
    # files of the user's that merely look similar.
    live = tmp_path / f".out.h5.{os.getpid()}@{killed_file.name.split('@')[1]}"
    elsewhere = tmp_path / ".out.h5.1234@other-node.abcd1234.tmp"
    legacy = tmp_path / ".out.h5.k3j9x_2a.tmp"
    users = ["notes.tmp", ".out.h5.backup", ".out.h5.1234@other-node.tmp", "out.h5.abcd1234.tmp"]
    for path in (live, elsewhere, legacy, *(tmp_path / name for name in users)):
        path.write_text("x")
    assert all(is_temporary(p.name) for p in (killed_file, killed_store, live, elsewhere, legacy))
    assert not any(is_temporary(name) for name in users)

    # The next write of a target removes its own abandoned temporaries only.
    write_text_atomic(tmp_path / "out.h5", "complete")
    left = {p.name for p in tmp_path.iterdir()}
    assert killed_file.name not in left and killed_store.name in left and killed_other.name in left
    # A data folder's cleanup removes every abandoned one; a live write and a recent one from another
    # machine stay, as do the user's files.
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([killed_store, killed_other])
    assert {p.name for p in tmp_path.iterdir()} == {"out.h5", live.name, elsewhere.name, legacy.name, *users}
    # Unchanged for longer than STALE_AFTER_S, a temporary nobody can vouch for is abandoned.
    old = time.time() - STALE_AFTER_S - 60
    for path in (tmp_path / name for name in [elsewhere.name, legacy.name, live.name, *users]):
        os.utime(path, (old, old))
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([elsewhere, legacy, live])
    assert {p.name for p in tmp_path.iterdir()} == {"out.h5", *users}


def test_a_temporary_directory_is_as_recent_as_its_newest_file(tmp_path):
    import os
    import time

    from sciml.core.atomic import STALE_AFTER_S, remove_stale_temporaries

    store = tmp_path / ".run.zarr.1234@other-node.abcd1234.tmp"
    (store / "chunks").mkdir(parents=True)
    (store / "chunks" / "0").write_text("written just now")
    old = time.time() - STALE_AFTER_S - 60
    os.utime(store, (old, old))
    os.utime(store / "chunks", (old, old))
    assert remove_stale_temporaries(tmp_path) == []
    os.utime(store / "chunks" / "0", (old, old))
    assert remove_stale_temporaries(tmp_path) == [store] and not store.exists()
