"""CIFAR-10: the binary batches, or the Python-pickle ones through the safe unpickler."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from directionkit.errors import InvalidDataError
from directionkit.reference_models.datasets._errors import _not_found
from directionkit.reference_models.datasets._pickle import _ArrayOnlyUnpickler, _check_pickle_sizes

_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_RECORD = 1 + _CIFAR_PIXELS
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}

_CIFAR_HOW = (
    "Download CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar.html and unpack the binary "
    "version (data_batch_1.bin ... data_batch_5.bin, test_batch.bin) or the Python version "
    "(data_batch_1 ... data_batch_5, test_batch) into root, or into root/cifar-10-batches-bin "
    "or root/cifar-10-batches-py."
)


def _cifar_binary(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    size = path.stat().st_size
    if not size or size % _CIFAR_RECORD:
        raise InvalidDataError(
            f"{path} is not a CIFAR-10 binary batch: {size} bytes is not a positive "
            f"multiple of the {_CIFAR_RECORD}-byte record (1 label byte + 3072 pixel bytes)."
        )
    n = size // _CIFAR_RECORD if limit is None else min(limit, size // _CIFAR_RECORD)
    with path.open("rb") as fh:
        data = fh.read(n * _CIFAR_RECORD)
    if len(data) != n * _CIFAR_RECORD:
        raise InvalidDataError(f"{path} holds {len(data)} bytes, not the {size} it had.")
    records = np.frombuffer(data, dtype=np.uint8).reshape(n, _CIFAR_RECORD)
    return records[:, 1:], records[:, 0].astype(np.int64)


def _cifar_pickle(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = path.read_bytes()
        _check_pickle_sizes(data)
        batch = _ArrayOnlyUnpickler(data).load()
    except Exception as err:  # any failure of an untrusted pickle is a refusal
        raise InvalidDataError(
            f"Refused to load {path}: it is not a CIFAR-10 Python batch holding only numpy "
            f"arrays, lists, numbers and strings ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(batch, dict):
        raise InvalidDataError(
            f"Refused {path}: a CIFAR-10 Python batch is a dict, got {type(batch).__name__}."
        )
    pixels = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 2
        or pixels.shape[1] != _CIFAR_PIXELS
        or not pixels.shape[0]
    ):
        raise InvalidDataError(
            f"Refused {path}: its b'data' must be a uint8 array of shape (N, {_CIFAR_PIXELS}) "
            "with N >= 1."
        )
    if not isinstance(labels, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels
    ):
        raise InvalidDataError(f"Refused {path}: its b'labels' must be a list of ints.")
    if len(labels) != pixels.shape[0]:
        raise InvalidDataError(f"{path} holds {pixels.shape[0]} images but {len(labels)} labels.")
    return np.asarray(pixels)[:limit], np.asarray(labels[:limit], dtype=np.int64).reshape(-1)


def _load_cifar10(
    root: Path, split: str, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    stems = _CIFAR_FILES[split]
    layouts = [
        (directory, ".bin", _cifar_binary) for directory in (root, root / "cifar-10-batches-bin")
    ] + [(directory, "", _cifar_pickle) for directory in (root, root / "cifar-10-batches-py")]
    looked: list[Path] = []
    for directory, suffix, reader in layouts:
        paths = [directory / f"{stem}{suffix}" for stem in stems]
        if not all(p.is_file() for p in paths):
            looked.extend(paths)
            continue
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        held = 0
        for path in paths:
            if limit is not None and held >= limit:
                break  # the batches read hold the examples asked for
            pixels, labels = reader(path, None if limit is None else limit - held)
            if labels.size and (labels.min() < 0 or labels.max() > 9):
                raise InvalidDataError(f"{path} has labels outside 0..9.")
            parts.append((pixels, labels))
            held += len(labels)
        pixels = np.concatenate([p for p, _ in parts])
        X = (pixels.astype(np.float32) / np.float32(255.0)).reshape(-1, 3, 32, 32)
        return X, np.concatenate([y for _, y in parts])
    raise _not_found(f"CIFAR-10 {split} batches", looked, _CIFAR_HOW)
