"""Point-cloud datasets in the ShapeNetCore.v2.PC15k layout (PointFlow; used by DiT-3D, PVD, LION).

Layout: ``<root>/<synset id>/{train,val,test}/<model>.npy``, each a ``(P, 3)`` array of surface points
(``P = 15000`` in PC15k; any ``P > train_points`` works, the same for every file of a dataset). Hidden
files and files not ending in ``.npy`` are ignored; models are read in sorted order, categories in the
configured order. ``categories`` takes names (:data:`CATEGORY_SYNSETS`: PointFlow's names of the 55
ShapeNetCore categories), raw synset ids (any folder name), or ``["all"]`` for every category folder
present (sorted by synset id). The label of a shape is the position of its category in that list.

Samples: ``{"points": (n_points, 3) float32, normalized, "label": int64 class index, "index": int}``,
``index`` being the position of the shape in the dataset.

Conventions, following PointFlow's ``Uniform15KPC`` (which DiT-3D's data code copies):

* Normalization: one global mean per axis and ONE scalar standard deviation over every point of every
  shape of the TRAINING split (all P points, before the train/eval split of the points):
  ``mean = X.reshape(-1, 3).mean(0)``, ``std = X.reshape(-1).std()`` -- the population std of all
  coordinates pooled, i.e. around their pooled scalar mean, exactly PointFlow's formula.
  Validation and test datasets use the training statistics. Points are served as ``(p - mean) / std``;
  statistics are accumulated in float64.
* Points ``[:train_points]`` (10000) of each shape are for training and ``[train_points:]`` (the last 5000)
  for evaluation. The training split serves random draws from the first part; validation and test serve
  draws from the last part. Draws are without replacement (PointFlow's ``np.random.choice`` draws with
  replacement; duplicated points only waste capacity), so ``n_points`` may not exceed the part.
* Training draws are a pure function of ``(seed, epoch, index)``: the training loader's sampler hands the
  dataset ``(epoch, index)`` pairs, so draws are the same in the main process and in any worker
  (persistent or not) and a run resumed from a checkpoint mid-epoch continues with exactly the draws it
  would have made. A plain integer index draws for the epoch last passed to ``set_epoch``.
* Evaluation draws depend on the shape's index only (not on the seed or the epoch), so every run and
  every checkpoint is evaluated on the same points.

Files are validated as they are loaded (all of a split at once; PC15k splits are small): one clear
error naming the file for an unreadable file, a shape other than ``(P, 3)``, non-float or non-finite
values, or a point count different from the other files; an empty or missing split folder names the
folder. A missing root is a DatasetNotFoundError naming the command that makes synthetic data.

The data module shards loaders with :class:`sciml.data.sampling.ShardedSampler` and saves the training
loader's position in checkpoints (see that module). ``prepare_data`` runs the built-in generator
(``generator: shapes``) on global rank 0 when the root or a configured category folder is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from sciml.core.atomic import remove_stale_temporaries
from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from sciml.data.sampling import EpochIndexSampler, ResumableDataLoader, ShardedSampler

#: The 55 ShapeNetCore categories by the names PointFlow (after latent_3d_points) uses in its configs,
#: mapped to their WordNet synset ids (the folder names of ShapeNetCore.v2.PC15k).
CATEGORY_SYNSETS: dict[str, str] = {
    "airplane": "02691156",
    "bag": "02773838",
    "basket": "02801938",
    "bathtub": "02808440",
    "bed": "02818832",
    "bench": "02828884",
    "birdhouse": "02843684",
    "bookshelf": "02871439",
    "bottle": "02876657",
    "bowl": "02880940",
    "bus": "02924116",
    "cabinet": "02933112",
    "can": "02747177",
    "camera": "02942699",
    "cap": "02954340",
    "car": "02958343",
    "cellphone": "02992529",
    "chair": "03001627",
    "clock": "03046257",
    "dishwasher": "03207941",
    "earphone": "03261776",
    "faucet": "03325088",
    "file": "03337140",
    "guitar": "03467517",
    "helmet": "03513137",
    "jar": "03593526",
    "keyboard": "03085013",
    "knife": "03624134",
    "lamp": "03636649",
    "laptop": "03642806",
    "mailbox": "03710193",
    "microphone": "03759954",
    "microwave": "03761084",
    "monitor": "03211117",
    "motorcycle": "03790512",
    "mug": "03797390",
    "piano": "03928116",
    "pillow": "03938244",
    "pistol": "03948459",
    "pot": "03991062",
    "printer": "04004475",
    "remote_control": "04074963",
    "rifle": "04090263",
    "rocket": "04099429",
    "skateboard": "04225987",
    "sofa": "04256520",
    "speaker": "03691459",
    "stove": "04330267",
    "table": "04379243",
    "telephone": "04401088",
    "tin_can": "02946921",
    "tower": "04460130",
    "train": "04468005",
    "vessel": "04530566",
    "washer": "04554684",
}
SYNSET_CATEGORIES: dict[str, str] = {synset: name for name, synset in CATEGORY_SYNSETS.items()}

SPLITS = ("train", "val", "test")
TRAIN_POINTS = 10000
# Seed-sequence tags keep the training, evaluation and generation random streams apart.
_TRAIN, _EVAL, _PREDICT = 0, 1, 2
# Shapes per chunk when accumulating statistics in float64.
_STATS_CHUNK = 64


def make_command(root: str | Path, categories: Sequence[str] | None = None) -> str:
    """The command that makes synthetic shapes at ``root`` (for DatasetNotFoundError)."""
    from sciml.data.shapes import GENERATED_CATEGORIES, generated_category

    command = f"python -m sciml.data.shapes --out {root}"
    if categories and "all" not in categories:
        try:
            names = [generated_category(c) for c in categories]
        except ConfigError:
            return (
                command + " (synthetic shapes), or download ShapeNetCore.v2.PC15k (datasets/shapes/README.md)"
            )
        if list(names) != list(GENERATED_CATEGORIES):
            command += " --categories " + " ".join(names)
    return command


def category_label(synset: str) -> str:
    """``chair (03001627)`` for known synsets, the folder name otherwise."""
    name = SYNSET_CATEGORIES.get(synset)
    return f"{name} ({synset})" if name else synset


def resolve_categories(root: str | Path, categories: str | Sequence[str]) -> list[str]:
    """Synset folders of ``categories`` (names, synset ids, or ``["all"]``) under the existing ``root``."""
    root = Path(root)
    if isinstance(categories, str):
        categories = [categories]
    categories = list(categories)
    if not categories:
        raise ConfigError("categories", "is empty; name at least one category (or 'all')")
    on_disk = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = ", ".join(category_label(s) for s in on_disk) or "no category folders"
    if "all" in categories:
        if len(categories) > 1:
            raise ConfigError("categories", f"'all' cannot be combined with other categories: {categories}")
        if not on_disk:
            raise DataFormatError(
                root, None, "holds no category folders (expected <root>/<synset id>/<split>/)"
            )
        return on_disk
    synsets = []
    for category in categories:
        synset = CATEGORY_SYNSETS.get(category, category)
        if not (root / synset).is_dir():
            known = (
                "" if category in CATEGORY_SYNSETS or category in SYNSET_CATEGORIES else " (not a known name)"
            )
            raise ConfigError(
                "categories",
                f"{category!r}{known} has no folder {root / synset}; {root} holds: {found}",
            )
        if synset in synsets:
            raise ConfigError("categories", f"{category!r} is listed twice")
        synsets.append(synset)
    return synsets


def list_split(root: Path, synsets: Sequence[str], split: str) -> list[tuple[Path, int]]:
    """``(file, label)`` of every shape of ``split``; DataFormatError for a missing or empty folder."""
    files = []
    for label, synset in enumerate(synsets):
        folder = root / synset / split
        names = sorted(p for p in folder.glob("*.npy") if p.is_file() and not p.name.startswith("."))
        if not names:
            raise DataFormatError(
                folder,
                None,
                f"{'missing' if not folder.is_dir() else 'empty'} {split} split: expected <model>.npy point "
                "clouds (the PC15k layout <root>/<synset id>/<split>/<model>.npy)",
            )
        files += [(path, label) for path in names]
    return files


def load_clouds(files: Sequence[Path]) -> np.ndarray:
    """Stack the ``(P, 3)`` arrays of ``files`` into ``(S, P, 3)`` float32, validating each file."""
    clouds = np.empty(0, dtype=np.float32)
    reference: Path | None = None
    for i, path in enumerate(files):
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise DataFormatError(path, None, f"not a readable .npy array ({error})") from error
        if array.ndim != 2 or array.shape[1] != 3:
            raise DataFormatError(path, None, f"expected a (P, 3) array of points, got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise DataFormatError(path, None, f"expected floating-point coordinates, got dtype {array.dtype}")
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise DataFormatError(
                path,
                None,
                f"{int(bad.sum())} of {len(array)} points have NaN or infinite coordinates "
                f"(first: point {int(np.argmax(bad))})",
            )
        if reference is None:
            reference = path
            clouds = np.empty((len(files), *array.shape), dtype=np.float32)  # (S, P, 3)
        elif array.shape[0] != clouds.shape[1]:
            raise DataFormatError(
                path,
                None,
                f"has {array.shape[0]} points but {reference} has {clouds.shape[1]}; every shape of a "
                "dataset must have the same number of points",
            )
        clouds[i] = array
    return clouds


def compute_normalization(clouds: np.ndarray) -> dict[str, Any]:
    """PointFlow's global statistics of ``(S, P, 3)`` clouds: per-axis mean, one pooled scalar std."""
    count = clouds.shape[0] * clouds.shape[1]
    total = np.zeros(3)
    for start in range(0, len(clouds), _STATS_CHUNK):
        total += clouds[start : start + _STATS_CHUNK].astype(np.float64).reshape(-1, 3).sum(axis=0)
    mean = total / count
    pooled = mean.mean()  # the mean of every coordinate, around which the scalar std is taken
    squares = 0.0
    for start in range(0, len(clouds), _STATS_CHUNK):
        squares += float(((clouds[start : start + _STATS_CHUNK].astype(np.float64) - pooled) ** 2).sum())
    return {"mean": mean, "std": float(np.sqrt(squares / (3 * count)))}


class PointCloudDataset(Dataset):
    """The shapes of one split of a PC15k-layout tree (see the module docstring for the conventions).

    Args:
        root: dataset root holding ``<synset id>/<split>/<model>.npy``.
        split: ``train`` (random draws from the first ``train_points`` points) or ``val``/``test``
            (deterministic draws from the rest).
        categories: names, synset ids, or ``["all"]``; labels follow this order.
        n_points: points per sample.
        train_points: where each shape's points split into the training and evaluation parts.
        normalization: ``{"mean": (3,), "std": scalar}`` to apply; ``None`` computes the training
            statistics (from this dataset for ``split="train"``, else by reading the training split).
        seed: seed of the training draws.
        max_samples: serve at most this many shapes, evenly spaced over the sorted list (so every
            category keeps its share); ``None`` serves all.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        categories: str | Sequence[str] = ("chair",),
        *,
        n_points: int = 2048,
        train_points: int = TRAIN_POINTS,
        normalization: Mapping[str, Any] | None = None,
        seed: int = 0,
        max_samples: int | None = None,
    ):
        if split not in SPLITS:
            raise ConfigError("split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
        _check_int("n_points", n_points, 1)
        _check_int("train_points", train_points, 1)
        _check_int("seed", seed, 0)
        if max_samples is not None:
            _check_int("max_samples", max_samples, 1)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(self.root, make_command(self.root, categories))
        self.split, self.n_points, self.train_points, self.seed = split, n_points, train_points, seed
        self.training = split == "train"
        self.synsets = resolve_categories(self.root, categories)
        listed = list_split(self.root, self.synsets, split)
        if max_samples is not None and max_samples < len(listed):
            keep = np.unique(np.linspace(0, len(listed) - 1, max_samples).round().astype(int))
            listed = [listed[i] for i in keep]
        self.files = [path for path, _ in listed]
        self.labels = np.array([label for _, label in listed], dtype=np.int64)
        self.clouds = load_clouds(self.files)  # (S, P, 3) float32, raw coordinates
        total = self.clouds.shape[1]
        if total <= train_points:
            raise DataFormatError(
                self.files[0],
                None,
                f"has {total} points, but train_points={train_points} leaves none for evaluation; PC15k "
                f"files hold 15000 (set train_points below {total})",
            )
        part = train_points if self.training else total - train_points
        if n_points > part:
            raise ConfigError(
                "n_points",
                f"{n_points} is more than the {part} {'training' if self.training else 'evaluation'} points "
                f"each shape of {self.root} offers (points {'[:' if self.training else '['}{train_points}"
                f"{']' if self.training else ':]'} of {total})",
            )
        if normalization is None:
            if self.training:
                normalization = compute_normalization(self.clouds)
            else:
                train_files = [path for path, _ in list_split(self.root, self.synsets, "train")]
                normalization = compute_normalization(load_clouds(train_files))
            if normalization["std"] == 0:
                raise DataFormatError(self.root, None, "every training point is the same point (std 0)")
        self.mean = np.asarray(normalization["mean"], dtype=np.float64).reshape(3)
        self.std = float(np.asarray(normalization["std"], dtype=np.float64).reshape(()))
        self.epoch = 0

    @property
    def normalization(self) -> dict[str, torch.Tensor]:
        """``{"mean": (3,), "std": ()}`` float32 tensors (the training statistics)."""
        return {
            "mean": torch.tensor(self.mean, dtype=torch.float32),
            "std": torch.tensor(self.std, dtype=torch.float32),
        }

    @property
    def category_names(self) -> list[str]:
        return [SYNSET_CATEGORIES.get(s, s) for s in self.synsets]

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose draws plain integer indices get (the training loader passes its own)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def point_indices(self, index: int, epoch: int | None = None) -> np.ndarray:
        """Rows of shape ``index`` that its sample holds (training: of epoch ``epoch``)."""
        if self.training:
            epoch = self.epoch if epoch is None else int(epoch)
            rng = np.random.default_rng([self.seed, _TRAIN, epoch, index])
            return rng.choice(self.train_points, self.n_points, replace=False)
        rng = np.random.default_rng([_EVAL, index])
        part = self.clouds.shape[1] - self.train_points
        return self.train_points + rng.choice(part, self.n_points, replace=False)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple | list) else (None, int(key))
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} shapes")
        index %= len(self)
        points = self.clouds[index, self.point_indices(index, epoch)]  # (n_points, 3)
        normalized = ((points - self.mean) / self.std).astype(np.float32)
        return {
            "points": torch.from_numpy(normalized),
            "label": torch.tensor(self.labels[index], dtype=torch.int64),
            "index": index,
        }


class GenerationRequests(Dataset):
    """What to generate in ``predict``: ``{"label", "index", "seed", "n_points"}``, ``per_class`` per
    category, each shape of ``n_points`` points.

    Item ``i`` asks for class ``i // per_class``; its ``seed`` (for the sampler's initial noise) is a
    function of ``(seed, i)`` only.
    """

    def __init__(self, num_classes: int, per_class: int, seed: int = 0, n_points: int = 2048):
        self.num_classes, self.per_class, self.seed = num_classes, per_class, seed
        self.n_points = n_points

    def __len__(self) -> int:
        return self.num_classes * self.per_class

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} requests")
        seed = np.random.SeedSequence([self.seed, _PREDICT, index]).generate_state(1, np.uint32)[0]
        return {
            "label": torch.tensor(index // self.per_class, dtype=torch.int64),
            "index": index,
            "seed": int(seed),
            "n_points": self.n_points,
        }


def _check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(key, f"expected an integer >= {minimum}, got {value!r}")


class PointCloudDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a PC15k-layout tree, and generation requests for ``predict``.

    Args:
        path: dataset root (``<synset id>/{train,val,test}/<model>.npy``).
        categories: names (``chair``), synset ids (``03001627``) or ``["all"]``; labels follow this order.
        n_points: points per sample.
        batch_size, num_workers, persistent_workers, pin_memory: DataLoader settings.
        generator, generator_args: ``"shapes"`` makes synthetic shapes (:func:`sciml.data.shapes.make_shapes`
            with ``generator_args`` such as ``counts``, ``points``, ``seed``; ``categories`` defaults to
            the configured ones) in ``prepare_data`` when ``path`` or a category folder is missing.
        shuffle_seed: seed of the training permutation and of the training point draws.
        eval_samples: cap on the validation/test shapes (evenly spaced over categories); ``None``: all.
        predict_samples_per_class: generation requests per category in ``predict``.
        train_points: points ``[:train_points]`` of each file train, the rest evaluate (10000 in PC15k).
    """

    prepare_data_per_node = False

    def __init__(
        self,
        path: str,
        categories: list[str],
        n_points: int = 2048,
        batch_size: int = 16,
        num_workers: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        generator: str | None = None,
        generator_args: dict[str, Any] | None = None,
        shuffle_seed: int = 0,
        eval_samples: int | None = None,
        predict_samples_per_class: int = 8,
        train_points: int = TRAIN_POINTS,
    ):
        super().__init__()
        if isinstance(categories, str):
            categories = [categories]
        self.save_hyperparameters()
        if not categories:
            raise ConfigError("categories", "is empty; name at least one category (or 'all')")
        for key, value, minimum in (
            ("n_points", n_points, 1),
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("shuffle_seed", shuffle_seed, 0),
            ("predict_samples_per_class", predict_samples_per_class, 1),
            ("train_points", train_points, 1),
        ):
            _check_int(key, value, minimum)
        if eval_samples is not None:
            _check_int("eval_samples", eval_samples, 1)
        if generator is not None:
            if generator != "shapes":
                raise ConfigError("generator", f"unknown generator {generator!r}; built-in: shapes")
            args = dict(generator_args or {})
            unknown = set(args) - {"categories", "counts", "points", "seed"}
            if unknown:
                raise ConfigError(
                    "generator_args",
                    f"unknown keys {sorted(unknown)}; known: categories, counts, points, seed",
                )
            if "all" not in categories:
                from sciml.data.shapes import generated_category

                for category in categories:
                    generated_category(category)
        self.path = Path(path)
        self.categories = list(categories)
        self._synsets: list[str] | None = None
        self._datasets: dict[str, PointCloudDataset] = {}

    # ------------------------------------------------------------------ preparation (rank 0 only)
    def _missing_categories(self) -> list[str]:
        if not self.path.is_dir():
            return list(self.categories)
        if "all" in self.categories:
            # A root without any category folder is a generation killed before its first category
            # (each category folder is written atomically), not a dataset of zero categories.
            empty = not any(p.is_dir() and not p.name.startswith(".") for p in self.path.iterdir())
            return ["all"] if empty else []
        return [c for c in self.categories if not (self.path / CATEGORY_SYNSETS.get(c, c)).is_dir()]

    def prepare_data(self) -> None:
        """Make the missing data with the configured generator; without one, a missing root is an error.

        First removes what killed atomic writes left in the root (see :mod:`sciml.core.atomic`).
        """
        remove_stale_temporaries(self.path)
        missing = self._missing_categories()
        if not missing:
            return
        if self.hparams.generator is None:
            if not self.path.is_dir():
                raise DatasetNotFoundError(self.path, make_command(self.path, self.categories))
            return  # setup() names the missing category and what the folder holds
        from sciml.data.shapes import make_shapes

        args = dict(self.hparams.generator_args or {})
        if "all" not in missing:
            args.setdefault("categories", missing)
        make_shapes(self.path, **args)

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is None and self.hparams.generator is not None:
            self.prepare_data()  # used outside a Trainer: nobody else calls prepare_data
        hp = self.hparams
        if "train" not in self._datasets:
            self._datasets["train"] = PointCloudDataset(
                self.path,
                "train",
                self.categories,
                n_points=hp.n_points,
                train_points=hp.train_points,
                seed=hp.shuffle_seed,
            )
            self._synsets = self._datasets["train"].synsets
        wanted = {"fit": ["val"], "validate": ["val"], "test": ["test"], "predict": []}.get(
            stage, ["val", "test"]
        )
        for split in wanted:
            if split not in self._datasets:
                self._datasets[split] = PointCloudDataset(
                    self.path,
                    split,
                    self._synsets,
                    n_points=hp.n_points,
                    train_points=hp.train_points,
                    normalization={"mean": self._datasets["train"].mean, "std": self._datasets["train"].std},
                    max_samples=hp.eval_samples,
                )

    # ------------------------------------------------------------------ what the task reads
    @property
    def normalization(self) -> dict[str, torch.Tensor] | None:
        """``{"mean": (3,), "std": ()}`` float32 of the training split; ``None`` before setup."""
        return self._datasets["train"].normalization if "train" in self._datasets else None

    @property
    def synsets(self) -> list[str]:
        """Synset ids in label order (known before setup unless ``categories`` is ``["all"]``)."""
        if self._synsets is not None:
            return list(self._synsets)
        if "all" in self.categories:
            if not self.path.is_dir():
                raise RuntimeError(
                    "categories: ['all'] are known once the data exists (after prepare_data/setup)"
                )
            return resolve_categories(self.path, self.categories)
        return [CATEGORY_SYNSETS.get(c, c) for c in self.categories]

    @property
    def num_classes(self) -> int:
        return len(self.synsets)

    @property
    def category_names(self) -> list[str]:
        """Category names in label order (the synset id where the name is unknown)."""
        return [SYNSET_CATEGORIES.get(s, s) for s in self.synsets]

    def dataset(self, split: str) -> PointCloudDataset:
        if split not in self._datasets:
            raise RuntimeError(f"the {split} dataset is not set up; call setup() first")
        return self._datasets[split]

    # ------------------------------------------------------------------ loaders
    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader_options(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "num_workers": hp.num_workers,
            "persistent_workers": hp.persistent_workers and hp.num_workers > 0,
            "pin_memory": hp.pin_memory,
        }

    def _evaluation_loader(self, dataset: Dataset) -> DataLoader:
        """This rank's share in dataset order, padded to equal length (see ShardedSampler)."""
        rank, world_size = self._rank()
        sampler = ShardedSampler(
            len(dataset), rank=rank, world_size=world_size, shuffle=False, drop_tail=False
        )
        return DataLoader(
            dataset, batch_size=self.hparams.batch_size, sampler=sampler, **self._loader_options()
        )

    def train_dataloader(self) -> ResumableDataLoader:
        dataset = self.dataset("train")
        rank, world_size = self._rank()
        sampler = EpochIndexSampler(
            len(dataset), rank=rank, world_size=world_size, shuffle=True, seed=self.hparams.shuffle_seed
        )
        batch_size = self.hparams.batch_size
        if len(sampler) < batch_size:
            raise ConfigError(
                "batch_size",
                f"{batch_size} per process is more than the {len(sampler)} training shapes each of the "
                f"{world_size} process(es) gets from {self.path}; lower it",
            )
        return ResumableDataLoader(dataset, sampler, batch_size=batch_size, **self._loader_options())

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.dataset("test"))

    def predict_dataloader(self) -> DataLoader:
        """Generation requests: ``predict_samples_per_class`` per category, each with its own seed."""
        hp = self.hparams
        requests = GenerationRequests(
            self.num_classes, hp.predict_samples_per_class, hp.shuffle_seed, n_points=hp.n_points
        )
        return self._evaluation_loader(requests)
