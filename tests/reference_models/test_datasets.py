"""Tests of the data-set loaders, on small files written here in the real formats."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
import uuid
from pathlib import Path

import numpy as np
import pytest

from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.reference_models.datasets import (
    DEFAULT_FASHION_MNIST_ROOT,
    DatasetNotFoundError,
    SplitNotFoundError,
    corrupt_labels,
    load,
)

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- writers


def write_idx(path: Path, array: np.ndarray, *, magic: int | None = None, gz: bool) -> Path:
    """Write ``array`` (uint8) as an IDX file; ``magic`` overrides the header's magic."""
    if magic is None:
        magic = 0x0800 | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_mnist(root: Path, n_train: int = 5, n_test: int = 3, *, gz: bool) -> dict:
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = RNG.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)
        arrays[prefix] = (images, labels)
    return arrays


def cifar_records(n: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = RNG.integers(0, 10, size=n, dtype=np.uint8)
    return pixels, labels


def write_cifar_bin(path: Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    path.write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())


def write_cifar_pickle(path: Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    batch = {
        b"batch_label": b"x",
        b"labels": [int(v) for v in labels],
        b"data": pixels,
        b"filenames": [b"a.png"] * len(labels),
    }
    with path.open("wb") as fh:
        pickle.dump(batch, fh, protocol=2)


# --------------------------------------------------------------------------- digits


@pytest.mark.parametrize(("split", "n"), [("train", 1347), ("test", 450)])
def test_digits_shapes_dtypes_and_range(split: str, n: int) -> None:
    X, y = load("digits", split)
    assert X.shape == (n, 1, 8, 8) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(y.tolist()) == set(range(10))


def test_digits_split_is_fixed_and_disjoint() -> None:
    X1, y1 = load("digits")
    X2, y2 = load("digits")
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X_test, _ = load("digits", "test")
    train_rows = {row.tobytes() for row in X1.reshape(len(X1), -1)}
    test_rows = [row.tobytes() for row in X_test.reshape(len(X_test), -1)]
    # digits has a few duplicate images; almost none of the test set may be in train
    assert sum(r in train_rows for r in test_rows) < 10


def test_digits_flatten() -> None:
    X, y = load("digits", "test", flatten=True)
    assert X.shape == (450, 64) and y.shape == (450,)


def test_digits_split_is_stratified() -> None:
    _, y_train = load("digits")
    _, y_test = load("digits", "test")
    ratio = np.bincount(y_test, minlength=10) / np.bincount(y_train, minlength=10)
    assert np.all(np.abs(ratio - 1 / 3) < 0.02)


# --------------------------------------------------------------------------- parameters


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(InvalidParameterError, match=r"'digits'.*'cifar10'.*npz"):
        load("imagenet")


def test_unknown_split_lists_the_choices() -> None:
    with pytest.raises(InvalidParameterError, match="'train', 'test'"):
        load("digits", "validation")


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_root_is_required_where_there_is_no_default(name: str) -> None:
    with pytest.raises(InvalidParameterError, match="root"):
        load(name)


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_loads_gzipped_and_raw(tmp_path: Path, gz: bool, name: str) -> None:
    arrays = write_mnist(tmp_path, gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        X, y = load(name, split, root=tmp_path)
        images, labels = arrays[prefix]
        assert X.shape == (len(labels), 1, 28, 28) and X.dtype == np.float32
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, labels)
        np.testing.assert_allclose(X[:, 0], images / 255.0, rtol=1e-6)
        assert X.min() == 0.0 and X.max() == 1.0
    X, _ = load(name, "test", root=str(tmp_path), flatten=True)
    assert X.shape == (3, 784)


def test_idx_wrong_magic_names_the_file(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=False)
    bad = write_idx(
        tmp_path / "train-images-idx3-ubyte",
        np.zeros((5, 28, 28), dtype=np.uint8),
        magic=0x00000903,
        gz=False,
    )
    with pytest.raises(InvalidDataError, match=re.escape(str(bad))) as info:
        load("mnist", root=tmp_path)
    assert "magic" in str(info.value)


def test_idx_labels_file_with_image_magic_is_refused(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=True)
    bad = write_idx(
        tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8), magic=0x00000803, gz=True
    )
    with pytest.raises(InvalidDataError, match="magic"):
        load("mnist", "test", root=tmp_path)
    assert bad.exists()


def test_idx_count_mismatch_is_refused(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8), gz=False)
    with pytest.raises(InvalidDataError, match=r"5 images but .* 4 labels"):
        load("mnist", root=tmp_path)


def test_idx_truncated_data_is_refused(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InvalidDataError, match="train-images-idx3-ubyte"):
        load("mnist", root=tmp_path)


def test_idx_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InvalidDataError, match="gzip"):
        load("mnist", root=tmp_path)


def test_fashion_mnist_missing_directory_says_how_to_install(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        load("fashion-mnist", root=missing)
    message = str(info.value)
    assert str(missing) in message and "dataset-fashion-mnist" in message
    assert isinstance(info.value, FileNotFoundError)


def test_mnist_missing_files_lists_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load("mnist", "test", root=tmp_path)
    assert str(tmp_path / "t10k-images-idx3-ubyte") in str(info.value)
    assert "t10k-labels-idx1-ubyte" in str(info.value)


@pytest.mark.skipif(
    not DEFAULT_FASHION_MNIST_ROOT.is_dir(),
    reason=f"{DEFAULT_FASHION_MNIST_ROOT} absent (apt-get install dataset-fashion-mnist)",
)
def test_installed_fashion_mnist_loads() -> None:
    X, y = load("fashion-mnist", "test")
    assert X.shape == (10000, 1, 28, 28) and X.dtype == np.float32
    assert np.bincount(y).tolist() == [1000] * 10
    assert 0.0 <= X.min() and X.max() <= 1.0


# --------------------------------------------------------------------------- CIFAR-10


def _cifar_batches(directory: Path, writer, suffix: str) -> dict:  # type: ignore[no-untyped-def]
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for stem, n in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        pixels, labels = cifar_records(n)
        writer(directory / f"{stem}{suffix}", pixels, labels)
        written[stem] = (pixels, labels)
    return written


def _check_cifar(root: Path, written: dict) -> None:
    X, y = load("cifar10", root=root)
    pixels = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert X.shape == (10, 3, 32, 32) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(X.reshape(10, -1), pixels / 255.0, rtol=1e-6)
    X_test, y_test = load("cifar10", "test", root=root, flatten=True)
    assert X_test.shape == (3, 3072)
    np.testing.assert_array_equal(y_test, written["test_batch"][1])
    # channel-major layout: the first 1024 bytes of a record are the red plane
    np.testing.assert_allclose(
        X_test.reshape(3, 3, 32, 32)[:, 0].reshape(3, -1), written["test_batch"][0][:, :1024] / 255
    )


@pytest.mark.parametrize("subdir", ["", "cifar-10-batches-bin"])
def test_cifar_binary(tmp_path: Path, subdir: str) -> None:
    written = _cifar_batches(tmp_path / subdir, write_cifar_bin, ".bin")
    _check_cifar(tmp_path, written)


@pytest.mark.parametrize("subdir", ["", "cifar-10-batches-py"])
def test_cifar_pickle_through_restricted_unpickler(tmp_path: Path, subdir: str) -> None:
    written = _cifar_batches(tmp_path / subdir, write_cifar_pickle, "")
    _check_cifar(tmp_path, written)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickle_protocols(tmp_path: Path, protocol: int) -> None:
    pixels, labels = cifar_records(3)
    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": pixels, b"labels": labels.tolist()}, fh, protocol=protocol)
    _, y = load("cifar10", "test", root=tmp_path)
    np.testing.assert_array_equal(y, labels)


def test_cifar_binary_with_a_partial_record_is_refused(tmp_path: Path) -> None:
    (tmp_path / "test_batch.bin").write_bytes(b"\x01" * 3074)
    with pytest.raises(InvalidDataError, match=re.escape("test_batch.bin")):
        load("cifar10", "test", root=tmp_path)


def test_cifar_binary_labels_outside_0_9_are_refused(tmp_path: Path) -> None:
    pixels, _ = cifar_records(2)
    write_cifar_bin(tmp_path / "test_batch.bin", pixels, np.array([3, 12], dtype=np.uint8))
    with pytest.raises(InvalidDataError, match=re.escape("0..9")):
        load("cifar10", "test", root=tmp_path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": _Exploit(marker), b"labels": [1]}, fh, protocol=2)
    with pytest.raises(InvalidDataError, match=r"[Rr]efused") as info:
        load("cifar10", "test", root=tmp_path)
    assert "test_batch" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2, 3],
        {b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]},
        {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": np.array([0, 1])},
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]},
        {b"labels": [0]},
    ],
    ids=["list", "float-data", "bad-width", "array-labels", "count-mismatch", "no-data"],
)
def test_pickle_that_is_not_a_cifar_batch_is_refused(tmp_path: Path, payload: object) -> None:
    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump(payload, fh, protocol=2)
    with pytest.raises(InvalidDataError, match="test_batch"):
        load("cifar10", "test", root=tmp_path)


def test_truncated_pickle_is_refused(tmp_path: Path) -> None:
    pixels, labels = cifar_records(2)
    path = tmp_path / "test_batch"
    write_cifar_pickle(path, pixels, labels)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InvalidDataError, match="Refused"):
        load("cifar10", "test", root=tmp_path)


def test_cifar_prefers_binary_over_pickle(tmp_path: Path) -> None:
    pixels, labels = cifar_records(2)
    write_cifar_bin(tmp_path / "test_batch.bin", pixels, labels)
    (tmp_path / "test_batch").write_bytes(b"garbage that must not be unpickled")
    _, y = load("cifar10", "test", root=tmp_path)
    np.testing.assert_array_equal(y, labels)


def test_cifar_missing_lists_paths_and_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load("cifar10", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin") in message
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_5") in message
    assert "cifar.html" in message


# --------------------------------------------------------------------------- npz


def test_npz_with_split_keys(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    x_tr, x_te = RNG.random((4, 2, 3)), RNG.random((2, 2, 3))
    np.savez(path, x_train=x_tr, y_train=[0, 1, 2, 1], x_test=x_te, y_test=[1, 0])
    X, y = load(str(path))
    assert X.dtype == np.float32 and y.dtype == np.int64 and X.shape == (4, 2, 3)
    np.testing.assert_allclose(X, x_tr, rtol=1e-6)
    X, y = load(path, "test", flatten=True)
    assert X.shape == (2, 6) and y.tolist() == [1, 0]


@pytest.mark.parametrize("x_key", ["x", "X"])
def test_npz_without_splits_is_the_test_split_and_has_no_train_split(
    tmp_path: Path, x_key: str
) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **{x_key: np.arange(6).reshape(3, 2), "y": np.array([2.0, 0.0, 1.0])})
    X, y = load(path, "test")  # flat (N, features) and integral float labels
    assert X.shape == (3, 2) and y.dtype == np.int64 and y.tolist() == [2, 0, 1]
    with pytest.raises(SplitNotFoundError, match=f"has no splits: it holds only '{x_key}'"):
        load(path, "train")  # never the same data a second time


def test_npz_reads_only_the_arrays_of_the_split(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_test=np.ones((2, 3)), y_test=[0, 1], x_train=np.ones((2, 3)),
             y_train=[0, 1], notes=np.array([{"a": 1}], dtype=object))  # fmt: skip
    X, y = load(path, "test")  # the object array would be refused if it were read
    assert X.shape == (2, 3) and y.tolist() == [0, 1]


def test_npz_bad_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(InvalidDataError, match="'x'"):
        load(path)
    np.savez(path, x=np.zeros((3, 2)), y=np.zeros(2, dtype=int))
    with pytest.raises(InvalidDataError):
        load(path)
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, dtype=int))
    with pytest.raises(InvalidDataError):
        load(path)


def test_npz_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=re.escape("nothing.npz")):
        load(tmp_path / "nothing.npz")


# --------------------------------------------------------------------------- corrupt_labels


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "half", True])
def test_corrupt_labels_rejects_bad_fractions(fraction: object) -> None:
    with pytest.raises(InvalidParameterError, match="'fraction' parameter of corrupt_labels"):
        corrupt_labels([0, 1, 2], fraction, seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_corrupt_labels_rejects_bad_seeds(seed: object) -> None:
    with pytest.raises(InvalidParameterError, match="'seed'"):
        corrupt_labels([0, 1, 2], 0.5, seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("y", [np.zeros((2, 2), int), [-1, 0], [0.5, 1.0], []])
def test_corrupt_labels_rejects_bad_labels(y: object) -> None:
    with pytest.raises(InvalidDataError):
        corrupt_labels(y, 0.5, seed=0)


def test_corrupt_labels_on_digits() -> None:
    _, y = load("digits")
    y_bad, mask = corrupt_labels(y, 1.0, seed=3)
    assert mask.all()
    np.testing.assert_array_equal(np.bincount(y_bad), np.bincount(y))
    assert (y_bad != y).mean() > 0.8  # about 90% for 10 balanced classes


# --------------------------------------------------------------------------- hostile small files
# Each file is small but declares (or inflates to) hundreds of megabytes or more; loading it
# must fail clearly without allocating that much.  tracemalloc sees numpy's and Python's
# allocations, even those never touched.

PEAK_LIMIT = 32 * 2**20


def peak_while_refused(path: Path, name: str = "cifar10", **kwargs: object) -> tuple[int, str]:
    """Peak traced memory while ``load`` refuses the data, and the error message."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(InvalidDataError) as info:
            load(name, **kwargs)  # type: ignore[arg-type]
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


def test_a_pickle_declaring_gigabytes_is_refused_without_allocating_them(tmp_path: Path) -> None:
    payload = b"\x80\x04\x8e" + struct.pack("<Q", 1_700_000_000) + b"abc."  # BINBYTES8
    assert len(payload) < 60
    for stem in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch"):  # fmt: skip
        (tmp_path / stem).write_bytes(payload)
    peak, message = peak_while_refused(tmp_path, root=tmp_path)
    assert peak < PEAK_LIMIT, peak
    assert "Refused to load" in message and "1700000000" in message


class _ForgedShape:
    """Pickles as numpy's ``_reconstruct`` asked for a 400 MB array instead of an empty one."""

    def __reduce__(self) -> tuple:
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (400_000_000,), b"b")


def test_a_pickle_rebuilding_a_huge_array_is_refused_without_allocating_it(tmp_path: Path) -> None:
    payload = pickle.dumps({b"data": _ForgedShape(), b"labels": [0]}, protocol=2)
    assert len(payload) < 200
    for stem in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch"):  # fmt: skip
        (tmp_path / stem).write_bytes(payload)
    peak, message = peak_while_refused(tmp_path, root=tmp_path, split="test")
    assert peak < PEAK_LIMIT, peak
    assert "400000000" in message


def gzip_of_zeros(path: Path, header: bytes, n_zeros: int) -> Path:
    """A gzip file of ``header`` then ``n_zeros`` zero bytes, written without holding them."""
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunk = bytes(1 << 20)
    with path.open("wb") as fh:
        fh.write(compressor.compress(header))
        for _ in range(n_zeros // len(chunk)):
            fh.write(compressor.compress(chunk))
        fh.write(compressor.flush())
    return path


@pytest.mark.parametrize("header", ["wrong magic", "short dims"])
def test_a_gzipped_idx_is_checked_before_it_is_inflated(tmp_path: Path, header: str) -> None:
    """A 200 kB file inflating to 200 MB: its header is refused after reading a few bytes."""
    magic = 0x0000_0803 if header == "short dims" else 0x0000_0801
    head = struct.pack(">IIII", magic, 2, 28, 28)
    images = gzip_of_zeros(tmp_path / "t10k-images-idx3-ubyte.gz", head, 200 << 20)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8), gz=True)
    assert images.stat().st_size < 400_000
    peak, message = peak_while_refused(tmp_path, name="mnist", root=tmp_path, split="test")
    assert peak < PEAK_LIMIT, peak
    assert str(images) in message
    assert ("magic number" if header == "wrong magic" else "more than 1568 bytes") in message


def test_an_idx_file_declaring_more_than_it_holds_is_refused(tmp_path: Path) -> None:
    head = struct.pack(">IIII", 0x0803, 3_000_000, 28, 28)  # 2.35 GB declared
    for gz in (False, True):
        root = tmp_path / str(gz)
        root.mkdir()
        path = root / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(head + bytes(100)) if gz else head + bytes(100))
        write_idx(root / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8), gz=False)
        peak, message = peak_while_refused(root, name="mnist", root=root, split="test")
        assert peak < PEAK_LIMIT, peak
        assert "declares dims (3000000, 28, 28)" in message
        if gz:  # 2.35 GB from a few dozen gzipped bytes: over the bound, refused unread
            assert "2,352,000,000 bytes" in message and "more than the bound" in message
        else:
            assert "holds 100 bytes" in message


def npz_with_member(path: Path, member: bytes, *, compression: int = 8) -> Path:
    """A .npz whose ``x`` is the raw ``member`` bytes (``y`` a valid label array)."""
    import io
    import zipfile

    labels = io.BytesIO()
    np.save(labels, np.zeros(2, np.int64))
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("x.npy", member)
        archive.writestr("y.npy", labels.getvalue())
    return path


def test_an_npz_array_declaring_gigabytes_is_refused_without_allocating_them(
    tmp_path: Path,
) -> None:
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (650_000_000,)}
    )  # 2.6 GB declared, 8 bytes stored
    path = npz_with_member(tmp_path / "d.npz", header.getvalue() + bytes(8))
    peak, message = peak_while_refused(path, split="test", name=path)  # type: ignore[arg-type]
    assert peak < PEAK_LIMIT, peak
    assert "declares shape (650000000,)" in message and "stores 8 bytes" in message


def test_an_npz_compression_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    import io
    import zipfile

    member = io.BytesIO()
    np.save(member, np.zeros(4 << 20, np.uint8))  # 4 MB of zeros: a few hundred bytes in bzip2
    path = npz_with_member(tmp_path / "d.npz", member.getvalue(), compression=zipfile.ZIP_BZIP2)
    assert path.stat().st_size < 2000
    peak, message = peak_while_refused(path, split="test", name=path)  # type: ignore[arg-type]
    assert peak < 2 << 20, peak
    assert "would decompress" in message


CIFAR_STEMS = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch")  # fmt: skip


def write_cifar_payload(root: Path, payload: bytes) -> Path:
    """Write ``payload`` as every CIFAR-10 Python batch under ``root``."""
    for stem in CIFAR_STEMS:
        (root / stem).write_bytes(payload)
    return root / "test_batch"


def py2_cifar_pickle(pixels: np.ndarray, labels: np.ndarray) -> bytes:
    """A batch as Python 2's cPickle wrote the real CIFAR-10 files: protocol 2, str as bytes."""

    def short(text: bytes) -> bytes:  # SHORT_BINSTRING, a Python 2 str
        return b"U" + bytes([len(text)]) + text

    rows, width = pixels.shape
    raw = pixels.astype(np.uint8).tobytes()
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + short(b"b")
        + b"\x87R(K\x01" + b"J" + struct.pack("<i", rows) + b"M" + struct.pack("<H", width)
        + b"\x86cnumpy\ndtype\n" + short(b"u1") + b"K\x00K\x01\x87R(K\x03" + short(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + struct.pack("<I", len(raw))
        + raw + b"tb"
    )  # fmt: skip
    items = b"".join(b"K" + bytes([int(v)]) for v in labels)
    return (
        b"\x80\x02}(" + short(b"batch_label") + short(b"testing batch 1 of 1") + short(b"data")
        + array + short(b"labels") + b"](" + items + b"eu."
    )  # fmt: skip


def test_cifar_pickle_in_the_python_2_format_of_the_real_files(tmp_path: Path) -> None:
    pixels, labels = cifar_records(3)
    write_cifar_payload(tmp_path, py2_cifar_pickle(pixels, labels))
    X, y = load("cifar10", "test", root=tmp_path, flatten=True)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(X, pixels / 255.0, rtol=1e-6)


def test_a_pickle_memo_index_beyond_its_opcodes_is_refused_without_allocating(
    tmp_path: Path,
) -> None:
    """LONG_BINPUT 16,777,216: the C unpickler would make a memo table of 268 MB."""
    payload = b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 24) + b"."
    assert len(payload) == 9
    path = write_cifar_payload(tmp_path, payload)
    peak, message = peak_while_refused(tmp_path, root=tmp_path, split="test")
    assert peak < PEAK_LIMIT, peak
    assert f"Refused to load {path}" in message
    assert "memo entry 16,777,216" in message and "after 2 opcodes" in message


class _BuiltFromObjects:
    """Pickles as an empty array filled by a state of 30 million Python objects (a list of 0)."""

    def __reduce__(self) -> tuple[object, ...]:
        from numpy._core.multiarray import _reconstruct

        state: tuple[object, ...] = (1, (30_000_000,), np.dtype("O"), False, [])
        return _reconstruct, (np.ndarray, (0,), b"b"), state


@pytest.mark.parametrize("how", ["ndarray-call", "object-state"])
def test_a_pickle_declaring_an_object_array_is_refused_without_allocating_it(
    tmp_path: Path, how: str
) -> None:
    """numpy.ndarray((30_000_000,), 'O') would allocate 240 MB (and numpy's own __setstate__
    crashes the interpreter on an object array whose list is short)."""
    if how == "ndarray-call":
        payload = b"\x80\x02cnumpy\nndarray\nJ" + struct.pack("<i", 30_000_000)
        payload += b"\x85\x8c\x01O\x86R."
        assert len(payload) < 32
    else:
        payload = pickle.dumps({b"data": _BuiltFromObjects(), b"labels": [0]}, protocol=2)
        assert len(payload) < 300
    path = write_cifar_payload(tmp_path, payload)
    peak, message = peak_while_refused(tmp_path, root=tmp_path, split="test")
    assert peak < PEAK_LIMIT, peak
    assert f"Refused to load {path}" in message
    if how == "ndarray-call":
        assert "numpy.ndarray is called with ((30000000,), 'O')" in message
    else:
        assert "dtype 'O8' is not a plain number type" in message


class _SharedData:
    """An array whose (byte-swapped, so copied) data are the memo's one bytes object."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __reduce__(self) -> tuple[object, ...]:
        from numpy._core.multiarray import _reconstruct

        state = (1, (len(self.raw) // 2,), np.dtype(">u2"), False, self.raw)
        return _reconstruct, (np.ndarray, (0,), b"b"), state


class _Encoded:
    """A string ``_codecs.encode`` makes bytes of, again and again from the memo's one str."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __reduce__(self) -> tuple[object, ...]:
        import codecs

        return codecs.encode, (self.text, "latin1")


@pytest.mark.parametrize("how", ["array-state", "encode"])
def test_data_fetched_from_the_memo_again_and_again_are_not_multiplied(
    tmp_path: Path, how: str
) -> None:
    """A 1 MB pickle rebuilding its one megabyte 300 times would take 300 MB."""
    copies: list[object]
    if how == "array-state":
        raw = bytes(1 << 20)
        copies = [_SharedData(raw) for _ in range(300)]
    else:
        text = "a" * (1 << 20)
        copies = [_Encoded(text) for _ in range(300)]
    payload = pickle.dumps({b"data": copies, b"labels": []}, protocol=2 if how == "encode" else 4)
    assert len(payload) < 1_100_000
    path = write_cifar_payload(tmp_path, payload)
    peak, message = peak_while_refused(tmp_path, root=tmp_path, split="test")
    assert peak < PEAK_LIMIT, peak
    assert f"Refused to load {path}" in message
    assert "bytes (twice the file's size) its data can back" in message


def peak_while_loaded(
    name: str | Path, **kwargs: object
) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
    """Peak traced memory while ``load`` loads the data, and the data."""
    import tracemalloc

    tracemalloc.start()
    try:
        loaded = load(name, **kwargs)
        return tracemalloc.get_traced_memory()[1], loaded
    finally:
        tracemalloc.stop()


def _sparse_megabyte() -> bytes:
    """A megabyte of zeros with a random byte every 40th: deflate shrinks it about 13x."""
    block = np.zeros(1 << 20, np.uint8)
    block[::40] = np.random.default_rng(1).integers(1, 256, block[::40].size, dtype=np.uint8)
    return block.tobytes()


SPARSE_MB = _sparse_megabyte()
N_BIG = 65_536  # images of 28 x 28: 49 MiB, a whole number of megabytes


def gzip_of_sparse(path: Path, header: bytes, n_megabytes: int) -> Path:
    """A gzip file of ``header`` then ``n_megabytes`` copies of :data:`SPARSE_MB`."""
    import zlib

    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip container
    with path.open("wb") as fh:
        fh.write(compressor.compress(header))
        for _ in range(n_megabytes):
            fh.write(compressor.compress(SPARSE_MB))
        fh.write(compressor.flush())
    return path


@pytest.mark.parametrize("honest", [False, True], ids=["lying", "honest"])
def test_a_gzipped_idx_declaring_over_100x_its_size_is_refused_before_it_is_inflated(
    tmp_path: Path, honest: bool
) -> None:
    """A 50 kB gzip of 51 MB of zeros whose header declares those 51 MB, or twice that."""
    declared = N_BIG if honest else 2 * N_BIG
    head = struct.pack(">IIII", 0x0803, declared, 28, 28)
    images = gzip_of_zeros(tmp_path / "t10k-images-idx3-ubyte.gz", head, N_BIG * 784)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(declared, np.uint8), gz=True)
    compressed = images.stat().st_size
    assert compressed < 100_000
    peak, message = peak_while_refused(tmp_path, name="mnist", root=tmp_path, split="test")
    assert peak < PEAK_LIMIT, peak
    assert f"{images} declares dims ({declared}, 28, 28) ({declared * 784:,} bytes)" in message
    assert f"from {compressed:,} gzipped bytes" in message
    assert f"bound of {100 * compressed:,} bytes (100x the compressed size" in message


@pytest.mark.parametrize("gz", [False, True])
def test_a_limit_reads_only_the_first_images_of_an_idx_file(tmp_path: Path, gz: bool) -> None:
    """51 MB of images (gzipped 13:1, within the bound): limit=100 reads and converts 78 kB."""
    head = struct.pack(">IIII", 0x0803, N_BIG, 28, 28)
    if gz:
        gzip_of_sparse(tmp_path / "t10k-images-idx3-ubyte.gz", head, 49)
    else:
        (tmp_path / "t10k-images-idx3-ubyte").write_bytes(head + SPARSE_MB * 49)
    labels = RNG.integers(0, 10, N_BIG, dtype=np.uint8)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, gz=gz)
    peak, (X, y) = peak_while_loaded("mnist", root=tmp_path, split="test", limit=100)
    assert peak < PEAK_LIMIT, peak
    want = np.frombuffer(SPARSE_MB[: 100 * 784], np.uint8).reshape(100, 1, 28, 28)
    assert X.shape == (100, 1, 28, 28) and X.dtype == np.float32
    np.testing.assert_allclose(X, want / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels[:100])


def test_a_limit_still_checks_the_counts_the_idx_headers_declare(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_test=3, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), gz=True)
    with pytest.raises(InvalidDataError, match=r"3 images but .* 4 labels"):
        load("mnist", "test", root=tmp_path, limit=1)  # only one item of each is read


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dims", [(0, 28, 28), (3, 0, 28)])
def test_an_idx_file_declaring_no_data_is_refused(
    tmp_path: Path, gz: bool, dims: tuple[int, ...]
) -> None:
    head = struct.pack(">IIII", 0x0803, *dims)
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(head) if gz else head)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(dims[0], np.uint8), gz=gz)
    with pytest.raises(InvalidDataError) as info:
        load("mnist", "test", root=tmp_path, flatten=True)
    assert f"{path} declares dims {dims}, an empty data set" in str(info.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_an_empty_idx_file_is_refused(tmp_path: Path, suffix: str) -> None:
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / f"{stem}{suffix}").write_bytes(b"")
    with pytest.raises(InvalidDataError, match="0 bytes, shorter than its 16-byte header"):
        load("mnist", "test", root=tmp_path)


def test_an_npz_deflate_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    """51 MB of zeros deflate 1000:1 (deflate's most is 1032:1): over the 100x bound."""
    import io
    import zipfile

    member = io.BytesIO()
    np.save(member, np.zeros((N_BIG, 1, 28, 28), np.uint8))
    path = npz_with_member(tmp_path / "d.npz", member.getvalue())
    del member
    info = zipfile.ZipFile(path).getinfo("x.npy")
    assert info.compress_size < 100_000
    peak, message = peak_while_refused(path, split="test", name=path)  # type: ignore[arg-type]
    assert peak < PEAK_LIMIT, peak
    assert f"{path}: array 'x' would decompress from {info.compress_size:,} to " in message
    assert f"{info.file_size:,} bytes, more than the bound of " in message
    assert f"{100 * info.compress_size:,} bytes (100x the compressed size" in message


def test_a_limit_reads_only_the_first_rows_of_an_npz(tmp_path: Path) -> None:
    """51 MB of images deflated 13:1 (within the bound): limit=100 reads and converts 78 kB."""
    path = tmp_path / "d.npz"
    x = np.frombuffer(SPARSE_MB * 49, np.uint8).reshape(N_BIG, 1, 28, 28)
    labels = RNG.integers(0, 10, N_BIG)
    np.savez_compressed(path, x_test=x, y_test=labels)
    peak, (X, y) = peak_while_loaded(path, split="test", limit=100)
    assert peak < PEAK_LIMIT, peak
    assert X.shape == (100, 1, 28, 28) and X.dtype == np.float32
    np.testing.assert_array_equal(X, x[:100])
    np.testing.assert_array_equal(y, labels[:100])


def test_an_npz_limit_on_fortran_order_and_the_declared_lengths(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    x = np.asfortranarray(RNG.random((5, 3)))
    np.savez(path, x=x, y=[0, 1, 2, 1, 0])
    X, y = load(path, "test", limit=2)
    np.testing.assert_allclose(X, x[:2], rtol=1e-6)
    assert y.tolist() == [0, 1]
    np.savez(path, x=x, y=[0, 1, 2, 1])  # one label short, past the limit
    with pytest.raises(InvalidDataError, match="'x' holds 5 examples but 'y' holds 4 labels"):
        load(path, "test", limit=2)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_a_bad_limit_is_refused(limit: object) -> None:
    with pytest.raises(InvalidParameterError, match="'limit' parameter of load"):
        load("digits", limit=limit)
