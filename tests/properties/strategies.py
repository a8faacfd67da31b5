"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


@st.composite
def labelled_activity(
    draw: st.DrawFn, non_negative: bool = True, max_units: int = 5
) -> tuple[np.ndarray, np.ndarray, int]:
    """Activity (example, unit) and labels in which every class occurs."""
    n_classes = draw(st.integers(2, 5))
    per_class = draw(st.integers(1, 6))
    extra = draw(st.integers(0, 10))
    n = n_classes * per_class + extra
    labels = np.concatenate(
        [
            np.repeat(np.arange(n_classes), per_class),
            draw(hnp.arrays(np.int64, extra, elements=st.integers(0, n_classes - 1))),
        ]
    )
    labels = draw(st.permutations(labels.tolist()))
    low = 0.0 if non_negative else -100.0
    acts = draw(
        hnp.arrays(
            np.float64,
            (n, draw(st.integers(1, max_units))),
            elements=st.floats(low, 100.0, allow_nan=False, allow_subnormal=False),
        )
    )
    return acts, np.asarray(labels, dtype=np.int64), n_classes
