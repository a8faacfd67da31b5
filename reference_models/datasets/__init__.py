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

from directionkit.reference_models.datasets._corruption import corrupt_labels
from directionkit.reference_models.datasets._errors import DatasetNotFoundError, SplitNotFoundError
from directionkit.reference_models.datasets._load import DATASETS, DEFAULT_FASHION_MNIST_ROOT, load

__all__ = [
    "DATASETS",
    "DEFAULT_FASHION_MNIST_ROOT",
    "DatasetNotFoundError",
    "SplitNotFoundError",
    "corrupt_labels",
    "load",
]
