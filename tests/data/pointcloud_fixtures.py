"""Seeded generators of tiny point-cloud trees in the ShapeNetCore.v2.PC15k layout (well under 1 MB).

* :func:`make_pc15k_fixture` — synthetic shapes written by sciml's own generator
  (``sciml.data.shapes.make_shapes``): by default chair and airplane, 3 train / 2 val / 2 test shapes each,
  1500 points per shape (14 files, about 250 kB). Real PC15k files hold 15000 points split 10000/5000 into
  training and evaluation parts; fixtures keep the same 2:1 ratio with ``TRAIN_POINTS = 1000`` (the data
  module's ``train_points``).
* :func:`make_split_fixture` — random clouds written with plain ``numpy.save`` whose training part
  (``[:train_points]``) lies in ``x < 0`` and evaluation part in ``x > 0``, so a test can tell from a
  sample's coordinates which part it was drawn from; returns the arrays it wrote.

``python tests/data/pointcloud_fixtures.py OUT_DIR`` writes both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sciml.data.shapes import CATEGORY_SYNSETS, make_shapes

POINTS = 1500
TRAIN_POINTS = 1000
COUNTS = {"train": 3, "val": 2, "test": 2}


def make_pc15k_fixture(
    root: str | Path,
    categories=("chair", "airplane"),
    counts=COUNTS,
    points: int = POINTS,
    seed: int = 0,
) -> dict[str, Path]:
    """Synthetic shapes in the PC15k layout; returns the category folders by name."""
    return make_shapes(root, categories=categories, counts=counts, points=points, seed=seed, progress=False)


def make_split_fixture(
    root: str | Path,
    categories=("chair", "car"),
    counts=COUNTS,
    points: int = 60,
    train_points: int = 40,
    seed: int = 0,
) -> dict[tuple[str, str], list[np.ndarray]]:
    """Clouds whose training part has x < 0 and evaluation part x > 0; ``{(synset, split): arrays}``."""
    rng = np.random.default_rng(seed)
    written: dict[tuple[str, str], list[np.ndarray]] = {}
    for c, name in enumerate(categories):
        synset = CATEGORY_SYNSETS[name]
        for split, count in counts.items():
            folder = Path(root) / synset / split
            folder.mkdir(parents=True, exist_ok=True)
            arrays = []
            for i in range(count):
                cloud = rng.uniform(-1.0, 1.0, size=(points, 3)) + np.array([0.0, c, 2.0 * c])
                cloud[:train_points, 0] = -rng.uniform(0.01, 1.0, train_points)
                cloud[train_points:, 0] = rng.uniform(0.01, 1.0, points - train_points)
                cloud = cloud.astype(np.float32)
                np.save(folder / f"model{i:03d}.npy", cloud)
                arrays.append(cloud)
            written[(synset, split)] = arrays
    return written


def main(out: str) -> None:
    root = Path(out)
    make_pc15k_fixture(root / "pc15k")
    make_split_fixture(root / "split")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
