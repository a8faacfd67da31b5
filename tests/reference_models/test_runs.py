"""A run's data re-created from its config: the same examples and shuffled labels it used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from directionkit.errors import InvalidParameterError, StoreError
from directionkit.preprocessing import load_data
from directionkit.reference_models.datasets import corrupt_labels, load
from directionkit.reference_models.runs import is_run_dir, read_config, run_data, split_data


def write_run(path: Path, config: dict[str, object]) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_train_split_is_the_data_set_cut_and_shuffled_with_the_label_seed() -> None:
    config = {"dataset": "digits", "train_limit": 300, "corruption": 0.5, "seed": 7}
    data = split_data(config, "train")
    X, y = load("digits", "train")
    expected, mask = corrupt_labels(y[:300], 0.5, seed=7)  # label_seed None: the seed
    np.testing.assert_array_equal(data.X, X[:300])
    np.testing.assert_array_equal(data.y, expected)
    np.testing.assert_array_equal(data.y_true, y[:300])
    np.testing.assert_array_equal(data.corrupted, mask)
    assert int(data.corrupted.sum()) == 150

    other = split_data({**config, "label_seed": 8}, "train")
    assert not np.array_equal(other.y, data.y)
    np.testing.assert_array_equal(other.y, corrupt_labels(y[:300], 0.5, seed=8)[0])


def test_test_split_keeps_the_true_labels() -> None:
    data = split_data({"dataset": "digits", "corruption": 1.0, "test_limit": 50}, "test")
    X, y = load("digits", "test")
    np.testing.assert_array_equal(data.X, X[:50])
    np.testing.assert_array_equal(data.y, y[:50])
    assert not data.corrupted.any()


def test_run_directories_feed_the_command_line_data_loader(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"dataset": "digits", "corruption": 1.0, "seed": 1})
    assert is_run_dir(run) and is_run_dir(str(run))
    assert not is_run_dir(tmp_path) and not is_run_dir(run / "config.json")
    X, y = run_data(run, "train")
    X2, y2 = load_data(str(run), "train", limit=40)
    np.testing.assert_array_equal(X2, X[:40])
    np.testing.assert_array_equal(y2, y[:40])
    assert (y != load("digits", "train")[1]).mean() > 0.5


def test_not_a_run_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"'.*nothing' is not a training run directory"):
        read_config(tmp_path / "nothing")
    bad = write_run(tmp_path / "bad", {"model": "mlp"})
    with pytest.raises(StoreError, match="is not a training config \\(no 'dataset' field\\)"):
        run_data(bad)
    with pytest.raises(
        InvalidParameterError, match="'split' parameter of split_data must be one of"
    ):
        split_data({"dataset": "digits"}, "validation")
