"""Datasets and LightningDataModules; ``formats/`` holds one reader/writer per on-disk format."""

from sciml.data.captures import Capture, CaptureDataModule, read_capture
from sciml.data.fields import FieldDataModule, FieldDataset, RolloutWriter, open_fields
from sciml.data.pointclouds import PointCloudDataModule, PointCloudDataset

__all__ = [
    "Capture",
    "CaptureDataModule",
    "FieldDataModule",
    "FieldDataset",
    "PointCloudDataModule",
    "PointCloudDataset",
    "RolloutWriter",
    "open_fields",
    "read_capture",
]
