"""The data sets :func:`load` knows, and :func:`load` itself (see the package doc)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.reference_models.datasets._cifar import _load_cifar10
from directionkit.reference_models.datasets._digits import _load_digits
from directionkit.reference_models.datasets._idx import _load_idx_dataset
from directionkit.reference_models.datasets._npz import _load_npz

#: Names :func:`load` understands; a path ending in ``.npz`` is accepted as well.
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "mnist", "cifar10")

#: Where the Debian package ``dataset-fashion-mnist`` installs the Fashion-MNIST IDX files.
DEFAULT_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

_SPLITS = ("train", "test")


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


def _require_root(root: str | os.PathLike[str] | None, name: str) -> Path:
    if root is None:
        raise parameter_error(
            "root", "load", f"a directory holding the {name} files (it has no default)", root
        )
    return Path(root)
