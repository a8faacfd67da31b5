"""scikit-learn's bundled 8x8 digits, split once with a fixed seed."""

from __future__ import annotations

import numpy as np


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
