"""Data sets of the paper's experiments, loaded as plain numpy arrays, and label corruption.

Every loader returns ``(X, y)``: ``X`` is float32 and ``y`` is int64 class indices of shape
``(N,)``.  Images come in NCHW layout scaled to ``[0, 1]``:

============== ===================== ========== =========================================
name           ``X`` shape           scaling    where the data come from
============== ===================== ========== =========================================
digits         ``(N, 1, 8, 8)``      ``/ 16``   bundled with scikit-learn (offline)
fashion-mnist  ``(N, 1, 28, 28)``    ``/ 255``  IDX files, default root
                                                ``/usr/share/datasets/fashion-mnist``
mnist          ``(N, 1, 28, 28)``    ``/ 255``  IDX files under ``root`` (required)
cifar10        ``(N, 3, 32, 32)``    ``/ 255``  CIFAR-10 batches under ``root`` (required)
``*.npz``      as stored             none       arrays in a ``.npz`` file
============== ===================== ========== =========================================

``flatten=True`` reshapes ``X`` to ``(N, features)``.

Files are only ever parsed, never executed: IDX and CIFAR binary files are read by their
documented layouts, ``.npz`` files with ``allow_pickle=False``, and CIFAR's Python-pickle batches
through an unpickler that refuses every global except the few numpy needs to rebuild an array.

Memory stays bounded by what a file really holds: every size a file declares (an IDX header,
the shape in a ``.npy`` header, a length or a memo index inside a pickle) is checked against the
data actually there before anything of that size is allocated.  A compressed file (a gzipped IDX
file, a ``.npz`` member) may declare at most ``100`` times its compressed size (real data sets
compress about 5x), checked before it is decompressed, and with ``limit=N`` only the first ``N``
examples are decompressed and converted.  A small hostile file gets a clear error, not an
allocation of gigabytes.
"""

from __future__ import annotations

import gzip
import io
import math
import numbers
import os
import pickle
import pickletools
import reprlib
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from directionkit._validation import check_choice, check_int, check_labels, parameter_error
from directionkit.errors import DirectionKitError, InvalidDataError

__all__ = [
    "DATASETS",
    "DEFAULT_FASHION_MNIST_ROOT",
    "DatasetNotFoundError",
    "SplitNotFoundError",
    "corrupt_labels",
    "load",
]

#: Names :func:`load` understands; a path ending in ``.npz`` is accepted as well.
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "mnist", "cifar10")

#: Where the Debian package ``dataset-fashion-mnist`` installs the Fashion-MNIST IDX files.
DEFAULT_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

_SPLITS = ("train", "test")
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801
_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_RECORD = 1 + _CIFAR_PIXELS
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


class DatasetNotFoundError(DirectionKitError, FileNotFoundError):
    """The files of a data set are not where :func:`load` looked for them.

    The message lists every path looked at and says how to get the data.
    """

    def __str__(self) -> str:  # OSError would format (errno, strerror) otherwise
        return str(self.args[0])


class SplitNotFoundError(InvalidDataError):
    """A ``.npz`` data file without the split asked for (e.g. ``x``/``y`` only, no ``train``)."""


# --------------------------------------------------------------------------- public API


def load(
    name: str | os.PathLike[str],
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    flatten: bool = False,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a data set as ``(X, y)`` numpy arrays.

    Parameters
    ----------
    name : {"digits", "fashion-mnist", "mnist", "cifar10"} or path to a ``.npz`` file
        The data set.

        - ``"digits"``: scikit-learn's bundled 8x8 digits (1797 images, no download), split
          once with a fixed seed, stratified by class: 1347 train and 450 test images
          (``train_test_split(test_size=0.25, random_state=0, stratify=y)``).
        - ``"fashion-mnist"`` and ``"mnist"``: the standard IDX files
          ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
          and ``t10k-labels-idx1-ubyte`` (each may be gzipped, ``.gz``; the variant spelling
          ``train-images.idx3-ubyte`` is accepted too) directly under ``root``.
        - ``"cifar10"``: the binary batches ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
          ``test_batch.bin`` under ``root`` or ``root/cifar-10-batches-bin``; failing those, the
          Python-pickle batches ``data_batch_1`` ... ``data_batch_5`` and ``test_batch`` under
          ``root`` or ``root/cifar-10-batches-py``, read through a restricted unpickler that
          refuses anything but plain numpy arrays, lists, dicts, numbers and strings.
        - a path ending in ``.npz``: arrays ``x_{split}`` and ``y_{split}`` (``x_train``,
          ``y_train``, ``x_test``, ``y_test``); a file with only ``x`` (or ``X``) and ``y`` has
          no splits and is the ``"test"`` split, the data analysed (asking it for ``"train"``
          is a :class:`SplitNotFoundError`, never the same data a second time).  ``X`` is
          returned as stored (cast to float32, not rescaled; any shape with examples first,
          e.g. ``(N, features)``), ``y`` holds integer class indices (integral floats such as
          ``1.0`` are accepted).  Read with ``allow_pickle=False``; only the two arrays
          needed are read.
    split : {"train", "test"}, default "train"
        Which part of the data set.
    root : str or path-like, optional
        Directory holding the files.  Required for ``"mnist"`` and ``"cifar10"``; defaults to
        ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``) for
        ``"fashion-mnist"``; ignored for ``"digits"`` and ``.npz`` files.
    flatten : bool, default False
        Return ``X`` with shape ``(N, features)`` instead of ``(N, C, H, W)``.
    limit : int >= 1, optional
        Keep only the first ``limit`` examples.  Only those are decompressed and converted to
        float32 from IDX and ``.npz`` files (a gzipped IDX file is not read past them), and
        only the CIFAR-10 batches holding them are read.

    Returns
    -------
    X : numpy.ndarray of float32, shape (N, C, H, W) or (N, features)
        The inputs, scaled to ``[0, 1]`` for the named data sets.
    y : numpy.ndarray of int64, shape (N,)
        The class index of each example.

    Raises
    ------
    InvalidParameterError
        ``name`` or ``split`` is not one of the valid choices, ``root`` is missing where it is
        required, or ``limit`` is not an int >= 1.
    DatasetNotFoundError
        The data set's files are not there (a :class:`FileNotFoundError`).
    SplitNotFoundError
        A ``.npz`` file without the requested split (an :class:`InvalidDataError`).
    InvalidDataError
        A file is malformed, declares more data than it holds (or, compressed, more than 100
        times its compressed size), or a pickle holds anything other than a CIFAR batch.

    Examples
    --------
    >>> from directionkit.reference_models.datasets import load
    >>> X, y = load("digits")
    >>> X.shape, X.dtype, y.shape, y.dtype
    ((1347, 1, 8, 8), dtype('float32'), (1347,), dtype('int64'))
    >>> float(X.min()), float(X.max())
    (0.0, 1.0)
    >>> X_test, y_test = load("digits", "test", flatten=True)
    >>> X_test.shape, sorted(set(y_test.tolist())) == list(range(10))
    ((450, 64), True)
    >>> load("digits", "test", limit=5)[0].shape
    (5, 1, 8, 8)
    """
    func = "load"
    if limit is not None:
        limit = check_int(limit, "limit", func, minimum=1)
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".npz")):
        check_choice(split, "split", func, _SPLITS)
        X, y = _load_npz(Path(name), split, limit)
    else:
        if not isinstance(name, str) or name not in DATASETS:
            listed = ", ".join(repr(d) for d in DATASETS)
            raise parameter_error(
                "name", func, f"one of {{{listed}}} or a path to a .npz file", name
            )
        check_choice(split, "split", func, _SPLITS)
        if name == "digits":
            X, y = _load_digits(split)
            X, y = X[:limit], y[:limit]
        elif name == "fashion-mnist":
            X, y = _load_idx_dataset(
                Path(root) if root is not None else DEFAULT_FASHION_MNIST_ROOT,
                split,
                "Fashion-MNIST",
                "Install it with `apt-get install dataset-fashion-mnist` (files go to "
                f"{DEFAULT_FASHION_MNIST_ROOT}), or pass root= a directory holding the IDX files "
                "from https://github.com/zalandoresearch/fashion-mnist.",
                limit,
            )
        elif name == "mnist":
            X, y = _load_idx_dataset(
                _require_root(root, name),
                split,
                "MNIST",
                "Put the standard MNIST IDX files (train-images-idx3-ubyte, "
                "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                "gzipped or not) directly in that directory.",
                limit,
            )
        else:
            X, y = _load_cifar10(_require_root(root, name), split, limit)
    if flatten:
        X = X.reshape(X.shape[0], -1)
    return X, y


def corrupt_labels(y: Any, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the labels of a random fraction of the examples among themselves.

    ``round(fraction * n)`` examples are chosen with ``np.random.default_rng(seed)``; their
    labels are permuted among them, so the label histogram is preserved exactly (labels are
    not resampled uniformly).  A shuffled label may equal the original one by chance, so the
    returned mask marks the *eligible* (chosen) examples, not those whose label changed.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        Class indices (non-negative integers).  Not modified.
    fraction : float
        Fraction of examples whose labels are shuffled, in ``[0, 1]``.  ``round`` is Python's
        (half to even).
    seed : int
        Seed of the random generator; the same seed gives the same result.

    Returns
    -------
    labels : numpy.ndarray of int64, shape (n,)
        The corrupted labels (a new array).
    mask : numpy.ndarray of bool, shape (n,)
        True for the ``round(fraction * n)`` examples whose labels took part in the shuffle.

    Raises
    ------
    InvalidParameterError
        ``fraction`` is not a number in ``[0, 1]`` or ``seed`` is not an int >= 0.
    InvalidDataError
        ``y`` is not a non-empty 1-d array of non-negative integers.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.reference_models.datasets import corrupt_labels, load
    >>> _, y = load("digits")
    >>> y_bad, mask = corrupt_labels(y, 0.5, seed=0)
    >>> int(mask.sum()), round(0.5 * len(y))
    (674, 674)
    >>> bool((np.bincount(y_bad) == np.bincount(y)).all())
    True
    >>> bool((y_bad[~mask] == y[~mask]).all())
    True
    """
    func = "corrupt_labels"
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not math.isfinite(float(fraction))
        or not 0.0 <= float(fraction) <= 1.0
    ):
        raise parameter_error("fraction", func, "a float in [0, 1]", fraction)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise parameter_error("seed", func, "an int >= 0", seed)
    array = np.asarray(y)
    labels, _ = check_labels(array, array.shape[0] if array.ndim else 0, func)
    n = labels.shape[0]
    k = round(float(fraction) * n)
    mask = np.zeros(n, dtype=bool)
    if k == 0:
        return labels, mask
    rng = np.random.default_rng(int(seed))
    chosen = rng.choice(n, size=k, replace=False)
    labels[chosen] = labels[rng.permutation(chosen)]
    mask[chosen] = True
    return labels, mask


# --------------------------------------------------------------------------- digits


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    target = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        images, target, test_size=0.25, random_state=0, stratify=target
    )
    if split == "train":
        return np.ascontiguousarray(X_train), np.ascontiguousarray(y_train)
    return np.ascontiguousarray(X_test), np.ascontiguousarray(y_test)


# --------------------------------------------------------------------------- helpers


def _require_root(root: str | os.PathLike[str] | None, name: str) -> Path:
    if root is None:
        raise parameter_error(
            "root", "load", f"a directory holding the {name} files (it has no default)", root
        )
    return Path(root)


def _not_found(what: str, looked: Sequence[Path], how: str) -> DatasetNotFoundError:
    listed = "\n".join(f"  {p}" for p in looked)
    return DatasetNotFoundError(f"{what} not found. Looked at:\n{listed}\n{how}")


def _first_existing(candidates: Sequence[Path]) -> Path | None:
    for path in candidates:
        if path.is_file():
            return path
    return None


#: A compressed file (a gzipped IDX file, a ``.npz`` member) may declare at most this many
#: times its compressed size: real data sets compress about 5x, zip's deflate reaches 1032x
#: and bzip2 far more on the zeros of a compression bomb.
_MAX_INFLATION = 100

#: ... or this many bytes, whichever is more (a small file of zeros is no bomb).
_INFLATION_FLOOR = 1 << 20


def _inflation_bound(compressed: int) -> int:
    """The most bytes a compressed file of ``compressed`` bytes may declare it inflates to."""
    return max(_MAX_INFLATION * compressed, _INFLATION_FLOOR)


def _inflation_limits() -> str:
    return (
        f"{_MAX_INFLATION}x the compressed size, at least {_INFLATION_FLOOR:,} bytes; real data "
        "sets compress about 5x"
    )


# --------------------------------------------------------------------------- .npz


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


# --------------------------------------------------------------------------- IDX (MNIST)


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


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_HOW = (
    "Download CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar.html and unpack the binary "
    "version (data_batch_1.bin ... data_batch_5.bin, test_batch.bin) or the Python version "
    "(data_batch_1 ... data_batch_5, test_batch) into root, or into root/cifar-10-batches-bin "
    "or root/cifar-10-batches-py."
)

# The globals a pickled numpy array needs, across numpy 1.x (numpy.core) and 2.x (numpy._core)
# and pickle protocols 2 to 5; nothing else is ever resolved, and each of these is replaced by
# a checked stand-in (see _ArrayOnlyUnpickler).
_PICKLE_ALLOWED = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)

#: The opcodes that store into the memo at an index of the pickle's choosing.
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays need, each checked.

    - ``numpy.ndarray`` is only a marker passed to ``_reconstruct``; calling it is refused
      (``numpy.ndarray(shape, "O")`` allocates any shape a file names, with no data behind it).
    - ``numpy.dtype`` is :class:`_PickledDtype`: plain number types only, whose state (a byte
      order) is checked here rather than by numpy's ``dtype.__setstate__``.
    - ``_reconstruct`` makes an empty :class:`_CheckedArray`, whose state must carry exactly
      the bytes its shape and dtype need.
    - ``_frombuffer`` gets the real dtype (numpy checks the buffer's size against it).

    Every array rebuilt from a state and every string ``_codecs.encode`` makes takes its size
    from a budget of twice the file's bytes (a protocol-2 array's bytes are encoded once,
    then adopted), so data fetched from the memo again and again are not multiplied.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._backed = 2 * len(data)
        self._left = self._backed

    def spend(self, nbytes: int, what: str) -> None:
        """Take ``nbytes`` from the budget the file's bytes back, or refuse ``what``."""
        if nbytes > self._left:
            raise pickle.UnpicklingError(
                f"{what} takes {nbytes:,} bytes, more than the {self._left:,} left of the "
                f"{self._backed:,} bytes (twice the file's size) its data can back"
            )
        self._left -= nbytes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        if name == "ndarray":
            return _NDARRAY
        if name == "dtype":
            return _PickledDtype
        found = super().find_class(module, name)
        if name == "_reconstruct":
            return self._empty_reconstruct(found)
        if name == "_frombuffer":
            return lambda buf, dtype, *rest: found(buf, _plain_dtype(dtype), *rest)

        def encode(obj: Any, *args: Any) -> Any:  # _codecs.encode
            encoded = found(obj, *args)
            self.spend(len(encoded), "an encoded string")
            return encoded

        return encode

    def _empty_reconstruct(self, reconstruct: Any) -> Any:
        """numpy's ``_reconstruct``, limited to the empty array every pickled ndarray starts as.

        A pickle calls ``_reconstruct(ndarray, (0,), b"b")`` and then fills the array from
        bytes it carries (:meth:`_CheckedArray.__setstate__`); a forged shape would allocate
        that many bytes from a file of a few dozen.
        """

        def checked(subtype: Any, shape: Any, dtype: Any) -> Any:
            if subtype is not _NDARRAY:
                raise pickle.UnpicklingError(
                    f"_reconstruct rebuilds {reprlib.repr(subtype)}, not a numpy.ndarray"
                )
            if not isinstance(shape, tuple) or math.prod(int(d) for d in shape) != 0:
                raise pickle.UnpicklingError(
                    f"an array is rebuilt with shape {reprlib.repr(shape)}, not (0,)"
                )
            array = reconstruct(_CheckedArray, (0,), b"b")
            array.spend = self.spend
            return array

        return checked


class _NdarrayMarker:
    """``numpy.ndarray`` as a pickle sees it: the type ``_reconstruct`` is told to rebuild."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError(
            f"numpy.ndarray is called with {reprlib.repr(args)}: it would allocate that array "
            "with no data in the file behind it; an array is only rebuilt from its bytes"
        )


_NDARRAY = _NdarrayMarker()


class _PickledDtype:
    """A pickled ``numpy.dtype``: a plain number type and a byte order, nothing else.

    numpy's own ``dtype.__setstate__`` takes whatever fields and flags a state claims,
    objects included; this stand-in keeps what an array of numbers needs and is turned
    into a real dtype by the array that uses it (:func:`_plain_dtype`).
    """

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if isinstance(spec, bytes):  # a Python 2 pickle's str, read with encoding="bytes"
            spec = spec.decode("latin-1")
        dtype = np.dtype(spec) if isinstance(spec, str) else None
        if dtype is None or dtype.kind not in "biufc" or dtype.fields or dtype.subdtype:
            raise pickle.UnpicklingError(
                f"dtype {reprlib.repr(spec)} is not a plain number type (arrays of objects, "
                "strings and records are refused)"
            )
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if isinstance(order, bytes):
            order = order.decode("latin-1")
        if order not in ("<", ">", "=", "|") or any(v is not None for v in state[2:5]):
            raise pickle.UnpicklingError(
                f"a dtype has the state {reprlib.repr(state)}, not a byte order without "
                "fields or sub-arrays"
            )
        self.dtype = np.dtype(order + self.dtype.str[1:])


def _plain_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, _PickledDtype):
        raise pickle.UnpicklingError(
            f"an array's dtype is {reprlib.repr(dtype)}, not a pickled numpy.dtype"
        )
    return dtype.dtype


class _CheckedArray(np.ndarray):
    """An array a pickle rebuilds: its state is checked before numpy's ``__setstate__`` sees it.

    numpy would allocate the declared shape of an object dtype whatever the data (and
    crash on a short list); here the state must hold exactly the bytes of its shape.
    """

    spend: Any  # _ArrayOnlyUnpickler.spend of the unpickler that made it

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError(
                f"an array has the state {reprlib.repr(state)}, not numpy's "
                "(version, shape, dtype, is_fortran, data)"
            )
        shape, dtype, fortran, raw = state[-4:]
        dtype = _plain_dtype(dtype)
        if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise pickle.UnpicklingError(
                f"an array has shape {reprlib.repr(shape)}, not a tuple of ints >= 0"
            )
        if not isinstance(raw, bytes):
            raise pickle.UnpicklingError(
                f"an array's data are a {type(raw).__name__}, not bytes (arrays of Python "
                "objects are refused)"
            )
        declared = math.prod(shape) * dtype.itemsize
        if declared != len(raw):
            raise pickle.UnpicklingError(
                f"an array declares shape {reprlib.repr(shape)} of {dtype} ({declared:,} "
                f"bytes) but carries {len(raw):,} bytes of data"
            )
        self.spend(declared, f"an array of shape {reprlib.repr(shape)}")
        checked: Any = (1, shape, dtype, bool(fortran), raw)
        super().__setstate__(checked)


def _check_pickle_sizes(data: bytes) -> None:
    """Raise unless every size a pickle declares is backed by what is in ``data``.

    Python's C unpickler allocates ahead of reading: a declared ``bytes``/``bytearray``
    length before the data, and a memo table of twice the largest index stored (8 bytes
    an entry), so 9 or 15 bytes can ask for gigabytes.  :mod:`pickletools` reads the same
    opcodes without allocating ahead and fails on the first length that overruns; a memo
    index may not exceed the number of opcodes before it (a pickler numbers its memo
    entries 0, 1, 2, ... as it writes them).
    """
    for count, (opcode, arg, pos) in enumerate(pickletools.genops(data)):
        if opcode.name in _MEMO_PUTS and isinstance(arg, int) and arg > count:
            raise pickle.UnpicklingError(
                f"{opcode.name} at byte {pos} stores memo entry {arg:,} (a memo table of "
                f"{16 * arg:,} bytes) after {count} opcodes; a memo index may be at most the "
                "number of opcodes before it"
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
