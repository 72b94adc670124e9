"""Fixtures: tiny field datasets made by the seeded generators in tests/data/field_fixtures.py."""

from pathlib import Path

import field_fixtures  # importable through tests/conftest.py, which puts tests/data on sys.path
import pytest


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("field_fixtures")


@pytest.fixture(scope="session")
def well_file(fixture_dir):
    path = fixture_dir / "ours" / "fixture.h5"
    return path, field_fixtures.make_well_fixture(path)


@pytest.fixture(scope="session")
def zarr_store(fixture_dir):
    path = fixture_dir / "ours" / "fixture.zarr"
    return path, field_fixtures.make_zarr_fixture(path)


@pytest.fixture(scope="session")
def foreign_file(fixture_dir):
    path = fixture_dir / "foreign" / "foreign.hdf5"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, field_fixtures.make_foreign_well_fixture(path)
