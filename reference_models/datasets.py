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
the shape in a ``.npy`` header, a length inside a pickle) is checked against the data actually
there before anything of that size is allocated, and an IDX header is checked before the rest
of a gzipped file is decompressed.  A small hostile file gets a clear error, not an
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
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from directionkit._validation import check_choice, check_labels, parameter_error
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

    Returns
    -------
    X : numpy.ndarray of float32, shape (N, C, H, W) or (N, features)
        The inputs, scaled to ``[0, 1]`` for the named data sets.
    y : numpy.ndarray of int64, shape (N,)
        The class index of each example.

    Raises
    ------
    InvalidParameterError
        ``name`` or ``split`` is not one of the valid choices, or ``root`` is missing where it is
        required.
    DatasetNotFoundError
        The data set's files are not there (a :class:`FileNotFoundError`).
    SplitNotFoundError
        A ``.npz`` file without the requested split (an :class:`InvalidDataError`).
    InvalidDataError
        A file is malformed, or a pickle holds anything other than a CIFAR batch.

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
    """
    func = "load"
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".npz")):
        check_choice(split, "split", func, _SPLITS)
        X, y = _load_npz(Path(name), split)
    else:
        if not isinstance(name, str) or name not in DATASETS:
            listed = ", ".join(repr(d) for d in DATASETS)
            raise parameter_error(
                "name", func, f"one of {{{listed}}} or a path to a .npz file", name
            )
        check_choice(split, "split", func, _SPLITS)
        if name == "digits":
            X, y = _load_digits(split)
        elif name == "fashion-mnist":
            X, y = _load_idx_dataset(
                Path(root) if root is not None else DEFAULT_FASHION_MNIST_ROOT,
                split,
                "Fashion-MNIST",
                "Install it with `apt-get install dataset-fashion-mnist` (files go to "
                f"{DEFAULT_FASHION_MNIST_ROOT}), or pass root= a directory holding the IDX files "
                "from https://github.com/zalandoresearch/fashion-mnist.",
            )
        elif name == "mnist":
            X, y = _load_idx_dataset(
                _require_root(root, name),
                split,
                "MNIST",
                "Put the standard MNIST IDX files (train-images-idx3-ubyte, "
                "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                "gzipped or not) directly in that directory.",
            )
        else:
            X, y = _load_cifar10(_require_root(root, name), split)
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


# --------------------------------------------------------------------------- .npz


def _load_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
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
            arrays = [_read_npz_member(path, archive, members[key]) for key in keys]
    except DirectionKitError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise InvalidDataError(
            f"{path} is not a readable .npz file without pickles: {err}"
        ) from err
    (x_key, _), (x, y) = keys, arrays
    if x.ndim < 1 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InvalidDataError(
            f"{path}: {x_key!r} must be a numeric array with one row per example. "
            f"Got dtype {x.dtype} and shape {x.shape}."
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


#: Beyond this ratio of uncompressed to compressed size a member cannot be zip's deflate
#: (at most about 1032:1): it is a bzip2/lzma bomb, refused before it is decompressed.
_MAX_COMPRESSION_RATIO = 1100


def _read_npz_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One array of a .npz, its declared sizes checked before anything is allocated.

    The shape in the ``.npy`` header must match the member's size in the zip directory
    (which caps what zipfile decompresses), so no array larger than the data is made.
    """
    key = info.filename.removesuffix(".npy")
    if info.compress_size and info.file_size > _MAX_COMPRESSION_RATIO * max(
        info.compress_size, 1024
    ):
        raise InvalidDataError(
            f"{path}: array {key!r} would decompress from {info.compress_size:,} to "
            f"{info.file_size:,} bytes, a ratio no real data set has; refused."
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
        data = fh.read(declared + 1)
    if len(data) != declared:
        raise InvalidDataError(
            f"{path}: array {key!r} holds {len(data):,} bytes of data, not the {declared:,} "
            "its header declares."
        )
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


# --------------------------------------------------------------------------- IDX (MNIST)


def _parse_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes with ``ndim`` dims, checking its header first.

    The header is read and checked before the data: the data are then read up to the
    size the header declares (never more, even from a gzip stream that would inflate to
    gigabytes), and must be exactly that long.
    """
    header_size = 4 + 4 * ndim
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
            expected = math.prod(dims)
            if path.suffix != ".gz":  # the file's size is known: check it before reading
                size = path.stat().st_size - header_size
                if size != expected:
                    raise _idx_size_error(path, dims, expected, size)
            data = _read_at_most(fh, expected + 1)  # one byte more reveals a longer file
    except (OSError, EOFError, zlib.error) as err:
        what = "is not a readable gzip file" if path.suffix == ".gz" else "could not be read"
        raise InvalidDataError(f"{path} {what}: {err}") from err
    if len(data) != expected:
        raise _idx_size_error(path, dims, expected, len(data))
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


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


def _load_idx_dataset(root: Path, split: str, what: str, how: str) -> tuple[np.ndarray, np.ndarray]:
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
    images = _parse_idx(image_path, _IDX_IMAGES_MAGIC, 3)
    labels = _parse_idx(label_path, _IDX_LABELS_MAGIC, 1)
    if images.shape[0] != labels.shape[0]:
        raise InvalidDataError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds "
            f"{labels.shape[0]} labels."
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
# and pickle protocols 2 to 5; nothing else is ever resolved.
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


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays need."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        found = super().find_class(module, name)
        return _empty_reconstruct(found) if name == "_reconstruct" else found


def _empty_reconstruct(reconstruct: Any) -> Any:
    """numpy's ``_reconstruct``, limited to the empty array every pickled ndarray starts as.

    A pickle calls ``_reconstruct(ndarray, (0,), b"b")`` and then fills the array from
    bytes it carries (checked against the shape by numpy); a forged shape would allocate
    that many bytes from a file of a few dozen.
    """

    def checked(subtype: Any, shape: Any, dtype: Any) -> Any:
        if not isinstance(shape, tuple) or math.prod(int(d) for d in shape) != 0:
            raise pickle.UnpicklingError(f"an array is rebuilt with shape {shape!r}, not (0,)")
        return reconstruct(subtype, shape, dtype)

    return checked


def _check_pickle_lengths(data: bytes) -> None:
    """Raise unless every length a pickle declares is backed by bytes in ``data``.

    Python's C unpickler allocates a declared ``bytes``/``bytearray`` length before it
    reads the data, so 15 bytes can ask for gigabytes; :mod:`pickletools` reads the same
    opcodes without allocating ahead and fails on the first length that overruns.
    """
    for _ in pickletools.genops(data):
        pass


def _cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    if not data or len(data) % _CIFAR_RECORD:
        raise InvalidDataError(
            f"{path} is not a CIFAR-10 binary batch: {len(data)} bytes is not a positive "
            f"multiple of the {_CIFAR_RECORD}-byte record (1 label byte + 3072 pixel bytes)."
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    return records[:, 1:], records[:, 0].astype(np.int64)


def _cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = path.read_bytes()
        _check_pickle_lengths(data)
        batch = _ArrayOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # any failure of an untrusted pickle is a refusal
        raise InvalidDataError(
            f"Refused to load {path}: it is not a CIFAR-10 Python batch holding only numpy "
            f"arrays, lists, numbers and strings ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(batch, dict):
        raise InvalidDataError(
            f"Refused {path}: a CIFAR-10 Python batch is a dict, got {type(batch).__name__}."
        )
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _CIFAR_PIXELS
    ):
        raise InvalidDataError(
            f"Refused {path}: its b'data' must be a uint8 array of shape (N, {_CIFAR_PIXELS})."
        )
    if not isinstance(labels, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels
    ):
        raise InvalidDataError(f"Refused {path}: its b'labels' must be a list of ints.")
    if len(labels) != data.shape[0]:
        raise InvalidDataError(f"{path} holds {data.shape[0]} images but {len(labels)} labels.")
    return data, np.asarray(labels, dtype=np.int64).reshape(-1)


def _load_cifar10(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
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
        parts = [(p, *reader(p)) for p in paths]
        for path, _, labels in parts:
            if labels.size and (labels.min() < 0 or labels.max() > 9):
                raise InvalidDataError(f"{path} has labels outside 0..9.")
        pixels = np.concatenate([p[1] for p in parts])
        X = (pixels.astype(np.float32) / np.float32(255.0)).reshape(-1, 3, 32, 32)
        return X, np.concatenate([p[2] for p in parts])
    raise _not_found(f"CIFAR-10 {split} batches", looked, _CIFAR_HOW)
