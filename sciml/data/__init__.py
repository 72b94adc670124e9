"""Datasets and LightningDataModules; ``formats/`` holds one reader/writer per on-disk format."""

from sciml.data.fields import FieldDataModule, FieldDataset, RolloutWriter, open_fields

__all__ = ["FieldDataModule", "FieldDataset", "RolloutWriter", "open_fields"]
