"""Input preprocessing for third-party models: exact arithmetic and clear disagreements."""

from __future__ import annotations

import numpy as np
import pytest

from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.preprocessing import load_data, prepare_inputs


def test_scale_then_normalise_per_channel_then_lay_out() -> None:
    X = np.random.default_rng(0).random((4, 3, 5, 6)).astype(np.float32)
    mean, std = [1.0, 2.0, 3.0], [0.5, 1.0, 2.0]
    got = prepare_inputs(X, scale=255, mean=mean, std=std, layout="NHWC")
    want = np.empty((4, 5, 6, 3), np.float32)
    for c in range(3):  # by hand, channel by channel
        want[..., c] = (X[:, c] * 255 - mean[c]) / std[c]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    flat = prepare_inputs(X, layout="flat", input_shape=(90,))
    np.testing.assert_array_equal(flat, X.reshape(4, -1))


def test_auto_layout_picks_the_one_that_fits_or_says_why_not() -> None:
    X = np.zeros((2, 1, 8, 8), np.float32)
    assert prepare_inputs(X, input_shape=(None, 1, 8, 8)[1:]).shape == (2, 1, 8, 8)
    assert prepare_inputs(X, input_shape=(8, 8, 1)).shape == (2, 8, 8, 1)
    assert prepare_inputs(X, input_shape=(64,)).shape == (2, 64)
    # images of another size: no layout can help, and the message does not offer one
    with pytest.raises(InvalidDataError, match=r"\(1, 8, 8\) \(64 values\): no layout fits") as err:
        prepare_inputs(X, input_shape=(1, 28, 28))
    assert "--layout" not in str(err.value)
    with pytest.raises(InvalidDataError, match="none fits"):  # the same size, laid out otherwise
        prepare_inputs(X, input_shape=(4, 4, 4))
    with pytest.raises(InvalidDataError, match="all fit"):
        prepare_inputs(X, input_shape=(None, None, None))
    with pytest.raises(InvalidDataError, match="expects"):
        prepare_inputs(X, layout="flat", input_shape=(1, 8, 8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"scale": 0}, "'scale'"), ({"std": [1, 0]}, "'std'"), ({"mean": [1, 2]}, "'mean'"),
     ({"layout": "NWHC"}, "'layout'")],
)  # fmt: skip
def test_bad_preprocessing_values_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        prepare_inputs(np.zeros((1, 3, 2, 2), np.float32), **kwargs)


def test_load_data_understands_the_command_line_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    X, y = load_data("digits", "train", limit=10)
    assert X.shape == (10, 1, 8, 8) and y.shape == (10,)
    npz = tmp_path / "d.npz"
    np.savez(npz, x_test=np.ones((3, 1, 2, 2), np.float32), y_test=np.arange(3))
    X, y = load_data(str(npz), "test")
    assert X.shape == (3, 1, 2, 2) and list(y) == [0, 1, 2]
    with pytest.raises(InvalidParameterError, match="'imagenet'"):
        load_data("imagenet")


def test_flat_feature_rows_are_scaled_normalised_per_feature_and_checked() -> None:
    X = np.random.default_rng(1).random((5, 4)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 4.0, 8.0]
    got = prepare_inputs(X, scale=2, mean=mean, std=std, input_shape=(4,))
    want = np.empty_like(X)
    for f in range(4):  # by hand, feature by feature
        want[:, f] = (X[:, f] * 2 - mean[f]) / std[f]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert prepare_inputs(X, layout="flat", input_shape=(None,)).shape == (5, 4)
    # rows flattened from the model's own shape are laid back out in it (C order)
    laid_out = prepare_inputs(X, scale=2, mean=mean, std=std, input_shape=(1, 2, 2))
    np.testing.assert_array_equal(laid_out, want.reshape(5, 1, 2, 2))
    np.testing.assert_array_equal(laid_out[:, 0, 1, 0], want[:, 2])
    with pytest.raises(InvalidDataError, match=r"flat rows of 4 features.*expects \(1, 3, 2\)"):
        prepare_inputs(X, input_shape=(1, 3, 2))
    with pytest.raises(InvalidDataError, match="cannot be laid out as 'NHWC'"):
        prepare_inputs(X, layout="NHWC")
    with pytest.raises(InvalidParameterError, match="one per feature"):
        prepare_inputs(X, mean=[1.0, 2.0])
    with pytest.raises(InvalidDataError, match=r"\(N, features\)"):
        prepare_inputs(np.zeros((2, 3, 4), np.float32))


def test_load_data_gives_flat_npz_rows_and_no_train_split_from_an_unsplit_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from directionkit.reference_models.datasets import SplitNotFoundError

    npz = tmp_path / "flat.npz"
    np.savez(npz, x=np.arange(12.0).reshape(3, 4), y=[0.0, 1.0, 1.0])
    X, y = load_data(str(npz), "test")
    assert X.shape == (3, 4) and y.tolist() == [0, 1, 1]
    with pytest.raises(SplitNotFoundError, match="no splits"):
        load_data(str(npz), "train")


@pytest.mark.parametrize("kind", ["idx-dir", "npz"])
def test_load_data_reads_only_the_examples_of_its_limit(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    """--limit 100 of 51 MB of images: the loader reads and converts only those 100."""
    import struct
    import tracemalloc

    n = 65_536
    images = np.random.default_rng(2).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    if kind == "npz":
        spec = tmp_path / "d.npz"
        np.savez(spec, x_test=images[:, None], y_test=labels)
    else:
        spec = tmp_path
        (spec / "t10k-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes()
        )
        (spec / "t10k-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x0801, n) + labels.astype(np.uint8).tobytes()
        )
    tracemalloc.start()
    try:
        X, y = load_data(str(spec), "test", limit=100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # the whole file would be 51 MB, 205 MB as float32
    np.testing.assert_allclose(X[:, 0], images[:100] / 255.0 if kind != "npz" else images[:100])
    np.testing.assert_array_equal(y, labels[:100])
    with pytest.raises(InvalidParameterError, match="'limit' parameter of load_data"):
        load_data(str(spec), "test", limit=0)
