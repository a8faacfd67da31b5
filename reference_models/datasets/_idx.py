"""MNIST-format IDX files (plain or gzipped), read by their documented layout."""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from directionkit.errors import InvalidDataError
from directionkit.reference_models.datasets._errors import _not_found
from directionkit.reference_models.datasets._inflation import _inflation_bound, _inflation_limits

_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801


def _first_existing(candidates: Sequence[Path]) -> Path | None:
    for path in candidates:
        if path.is_file():
            return path
    return None


def _parse_idx(
    path: Path, magic: int, ndim: int, limit: int | None = None
) -> tuple[np.ndarray, int]:
    """The first ``limit`` items of an IDX file of unsigned bytes, and how many it declares.

    The header is read and checked before the data: no dimension may be 0; a plain file
    must be exactly as long as the header says, and a gzipped one may declare at most
    ``_MAX_INFLATION`` times its compressed size.  The data are then read up to what is
    needed (the first ``limit`` items, or all and one byte more to reveal a longer file),
    never more, so a gzip stream that would inflate to gigabytes is not inflated.
    """
    header_size = 4 + 4 * ndim
    gzipped = path.suffix == ".gz"
    try:
        with _open_idx(path) as fh:
            header = fh.read(header_size)
            if len(header) < header_size:
                raise InvalidDataError(
                    f"{path} is not an IDX file: {len(header)} bytes, shorter than its "
                    f"{header_size}-byte header."
                )
            got = int.from_bytes(header[:4], "big")
            if got != magic:
                raise InvalidDataError(
                    f"{path} has IDX magic number 0x{got:08x}; expected 0x{magic:08x} "
                    f"(unsigned-byte data with {ndim} dims)."
                )
            dims = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            if 0 in dims:
                raise InvalidDataError(
                    f"{path} declares dims {dims}, an empty data set: an IDX file must hold at "
                    "least one item and no dimension may be 0."
                )
            expected = math.prod(dims)
            if gzipped:  # only the compressed size is known: bound the declared size by it
                compressed = path.stat().st_size
                bound = _inflation_bound(compressed)
                if expected > bound:
                    raise InvalidDataError(
                        f"{path} declares dims {dims} ({expected:,} bytes), which would "
                        f"decompress from {compressed:,} gzipped bytes: more than the bound of "
                        f"{bound:,} bytes ({_inflation_limits()}). Refused before "
                        "decompressing it."
                    )
            else:  # the file's size is known: check it before reading
                size = path.stat().st_size - header_size
                if size != expected:
                    raise _idx_size_error(path, dims, expected, size)
            items = dims[0] if limit is None else min(limit, dims[0])
            wanted = items * (expected // dims[0])
            # all of it and one byte more reveal a longer file; a part is read exactly
            data = _read_at_most(fh, wanted + 1 if items == dims[0] else wanted)
    except (OSError, EOFError, zlib.error) as err:
        what = "is not a readable gzip file" if gzipped else "could not be read"
        raise InvalidDataError(f"{path} {what}: {err}") from err
    if len(data) != wanted:
        raise _idx_size_error(path, dims, expected, len(data))
    return np.frombuffer(data, dtype=np.uint8).reshape(items, *dims[1:]), dims[0]


def _open_idx(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _read_at_most(fh: Any, n: int, chunk: int = 1 << 24) -> bytearray:
    """Up to ``n`` bytes of ``fh``, grown chunk by chunk (never ``n`` allocated up front)."""
    data = bytearray()
    while len(data) < n:
        piece = fh.read(min(chunk, n - len(data)))
        if not piece:
            break
        data += piece
    return data


def _idx_size_error(path: Path, dims: tuple[int, ...], expected: int, got: int) -> InvalidDataError:
    holds = f"more than {expected}" if got > expected else str(got)
    return InvalidDataError(
        f"{path} declares dims {dims} ({expected} values) but holds {holds} bytes of data."
    )


def _idx_candidates(root: Path, prefix: str, kind: str) -> list[Path]:
    names = [f"{prefix}-{kind}", f"{prefix}-{kind.replace('-', '.', 1)}"]
    return [root / f"{n}{gz}" for n in names for gz in ("", ".gz")]


def _load_idx_dataset(
    root: Path, split: str, what: str, how: str, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    image_candidates = _idx_candidates(root, prefix, "images-idx3-ubyte")
    label_candidates = _idx_candidates(root, prefix, "labels-idx1-ubyte")
    image_path = _first_existing(image_candidates)
    label_path = _first_existing(label_candidates)
    if image_path is None or label_path is None:
        looked = (image_candidates if image_path is None else []) + (
            label_candidates if label_path is None else []
        )
        raise _not_found(f"{what} {split} files", looked, how)
    images, n_images = _parse_idx(image_path, _IDX_IMAGES_MAGIC, 3, limit)
    labels, n_labels = _parse_idx(label_path, _IDX_LABELS_MAGIC, 1, limit)
    if n_images != n_labels:  # the counts the headers declare, whatever the limit
        raise InvalidDataError(
            f"{image_path} holds {n_images} images but {label_path} holds {n_labels} labels."
        )
    X = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return X, labels.astype(np.int64)
