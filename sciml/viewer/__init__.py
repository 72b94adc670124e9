"""nerfstudio integration (the only package that imports nerfstudio): the ``shade`` method for ``ns-train``
and the viewer (:mod:`sciml.viewer.method`), and the export of a Lightning checkpoint to a nerfstudio run
directory (:mod:`sciml.viewer.export`). Needs the ``viewer`` extra (``pip install "sciml[viewer]"``, in an
environment whose torchvision matches torch: see the README)."""
