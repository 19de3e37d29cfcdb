"""Dataset loaders: bundled data (scikit-learn's digits) and files in a data directory
(``data_dir`` parameter or the ``HARNESS_DATA`` environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

from harness import vocabulary
from harness.errors import DataError
from harness.params import Param
from harness.plugin import Metric

DATA_ENV = "HARNESS_DATA"


def resolve_data_dir(data_dir: str | None, dataset: str) -> Path:
    """The folder holding ``dataset``'s files: ``data_dir`` if given, else $HARNESS_DATA;
    raises :class:`DataError` naming what is missing."""
    root = data_dir or os.environ.get(DATA_ENV)
    if not root:
        raise DataError(f"dataset {dataset!r} needs its files: give params.data_dir or set "
                        f"{DATA_ENV}")
    path = Path(root).expanduser()
    if not path.is_dir():
        source = "data_dir" if data_dir else DATA_ENV
        raise DataError(f"{source} {str(path)!r} is not a folder")
    return path


def data_dir_param(what: str) -> Param:
    """The ``data_dir`` parameter of a problem reading ``what`` from files: not part of the
    cell's identity (moving the data keeps cell ids)."""
    return Param(str, None, f"folder of {what} (default ${DATA_ENV})", nullable=True,
                 identity=False)


DATA_SOURCE = Metric(str, "which images were used: the set, its source and version, and "
                          "for mnist5k a digest of its pixels", role=vocabulary.DATA_SOURCE)


def describe_images(dataset: str) -> str:
    """The ``data_source`` value of an image set: ``digits``, ``mnist5k`` or ``mnist``."""
    from importlib.metadata import version

    if dataset == "digits":
        return (f"digits: scikit-learn {version('scikit-learn')} load_digits() "
                f"(1797 8×8 images)")
    if dataset == "mnist5k":
        from .mnist5k import describe

        return describe()
    return "mnist: the MNIST IDX files of data_dir"
