"""On-disk field formats: The Well's HDF5 schema (``well``) and zarr v3 via xarray (``zarr_store``)."""

from sciml.data.formats.base import Channel, FieldReader, SourceInfo
from sciml.data.formats.well import WellReader, write_well
from sciml.data.formats.zarr_store import ZarrReader, write_zarr

__all__ = ["Channel", "FieldReader", "SourceInfo", "WellReader", "ZarrReader", "write_well", "write_zarr"]
