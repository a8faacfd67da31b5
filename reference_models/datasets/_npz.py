"""``.npz`` files: read with ``allow_pickle=False``, every declared size checked first."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from directionkit._utils.validation import check_labels
from directionkit.errors import DirectionKitError, InvalidDataError
from directionkit.reference_models.datasets._errors import SplitNotFoundError, _not_found
from directionkit.reference_models.datasets._inflation import _inflation_bound, _inflation_limits


def _load_npz(path: Path, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise _not_found(
            ".npz file", [path], "Pass the path of a .npz file holding arrays 'x' and 'y'."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                name.removesuffix(".npy"): archive.getinfo(name)
                for name in archive.namelist()
                if name.endswith(".npy")
            }
            keys = _npz_keys(path, split, sorted(members))
            arrays = [_read_npz_member(path, archive, members[key], limit) for key in keys]
    except DirectionKitError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise InvalidDataError(
            f"{path} is not a readable .npz file without pickles: {err}"
        ) from err
    (x_key, y_key), ((x, x_shape), (y, y_shape)) = keys, arrays
    if x.ndim < 1 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InvalidDataError(
            f"{path}: {x_key!r} must be a numeric array with one row per example. "
            f"Got dtype {x.dtype} and shape {x.shape}."
        )
    if len(y_shape) == 1 and x_shape[0] != y_shape[0]:  # checked on the whole file, not the limit
        raise InvalidDataError(
            f"{path}: {x_key!r} holds {x_shape[0]} examples but {y_key!r} holds {y_shape[0]} "
            "labels; there must be one label per example."
        )
    labels, _ = check_labels(y, x.shape[0], "load")
    return x.astype(np.float32), labels


def _npz_keys(path: Path, split: str, keys: list[str]) -> tuple[str, str]:
    """The ``(x, y)`` keys of ``split`` in a .npz file holding arrays ``keys``."""
    if f"x_{split}" in keys and f"y_{split}" in keys:
        return f"x_{split}", f"y_{split}"
    split_keys = [k for k in keys if k.startswith(("x_", "y_"))]
    whole = next((x for x in ("x", "X") if x in keys), None)
    if whole is not None and "y" in keys and not split_keys:
        if split == "test":
            return whole, "y"
        raise SplitNotFoundError(
            f"{path} has no splits: it holds only {whole!r} and 'y', which are the test split "
            f"(the data analysed), so it has no {split!r} split to serve. Store arrays "
            f"'x_{split}' and 'y_{split}' (and 'x_test', 'y_test') to give it one."
        )
    raise InvalidDataError(
        f"{path} must hold arrays 'x_{split}' and 'y_{split}', or 'x' (or 'X') and 'y'. "
        f"It holds {keys}."
    )


def _read_npz_member(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int | None
) -> tuple[np.ndarray, tuple[int, ...]]:
    """One array of a .npz (its first ``limit`` rows) and its whole declared shape.

    Every declared size is checked before anything is allocated: the member's size in the
    zip directory (which caps what zipfile decompresses) against its compressed size, and
    the shape in the ``.npy`` header against that size.  With a ``limit``, only the bytes
    of the first ``limit`` rows are decompressed (all of a Fortran-ordered array).
    """
    key = info.filename.removesuffix(".npy")
    bound = _inflation_bound(info.compress_size)
    if info.file_size > bound:
        raise InvalidDataError(
            f"{path}: array {key!r} would decompress from {info.compress_size:,} to "
            f"{info.file_size:,} bytes, more than the bound of {bound:,} bytes "
            f"({_inflation_limits()}); refused before decompressing it."
        )
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        header = fh.tell()
        if dtype.hasobject:
            raise InvalidDataError(
                f"{path}: array {key!r} holds Python objects (dtype {dtype}); only numeric "
                "arrays are read (no pickles)."
            )
        declared = math.prod(shape) * dtype.itemsize
        if header + declared != info.file_size:
            raise InvalidDataError(
                f"{path}: array {key!r} declares shape {shape} of {dtype} ({declared:,} "
                f"bytes) but stores {max(info.file_size - header, 0):,} bytes; the file is "
                "damaged or forged."
            )
        wanted = shape
        if limit is not None and shape and limit < shape[0] and not (fortran and len(shape) > 1):
            wanted = (limit, *shape[1:])  # C order: the first rows are the first bytes
        size = math.prod(wanted) * dtype.itemsize
        data = fh.read(size + 1 if wanted == shape else size)
    if len(data) != size:
        raise InvalidDataError(
            f"{path}: array {key!r} holds {len(data):,} bytes of data, not the {size:,} its "
            f"header declares for shape {wanted}."
        )
    array = np.frombuffer(data, dtype=dtype).reshape(wanted, order="F" if fortran else "C")
    return (array[:limit] if shape else array), shape
