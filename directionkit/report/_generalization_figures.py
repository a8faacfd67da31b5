"""Figures of generalization measures over a population: each measure against the gap."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np
from matplotlib.figure import Figure

from directionkit.errors import InvalidDataError

__all__ = ["measures_against_gap"]


def measures_against_gap(
    measures: Mapping[str, np.ndarray],
    gap: np.ndarray,
    *,
    taus: Mapping[str, float] | None = None,
    highlight: Collection[str] = (),
    columns: int = 4,
) -> Figure:
    """One scatter per measure: its value (as computed) against the generalization gap.

    Parameters
    ----------
    measures : mapping of str to array
        One value per model for each measure (NaN: a model without it, not drawn).
    gap : array
        Each model's generalization gap (train minus test accuracy).
    taus : mapping of str to float, optional
        A Kendall tau per measure for its panel's title, of the measure turned to grow with
        the gap (a measure where higher is better falls with the gap and has a positive
        tau when it predicts it).
    highlight : collection of str
        Measures drawn in red (the paper's), the others in blue.
    columns : int
        Panels per row.

    Examples
    --------
    >>> gap = np.array([0.1, 0.2, 0.3])
    >>> figure = measures_against_gap({"a": gap, "b": -gap}, gap, highlight={"a"})
    >>> [ax.get_title() for ax in figure.axes]
    ['a', 'b']
    """
    gap = np.asarray(gap, np.float64)
    if not measures:
        raise InvalidDataError("measures_against_gap needs at least one measure.")
    names = list(measures)
    rows = max(1, math.ceil(len(names) / columns))
    figure = Figure(figsize=(2.4 * min(columns, len(names)) + 0.4, 2.1 * rows + 0.5),
                    layout="constrained")  # fmt: skip
    for index, name in enumerate(names):
        ax = figure.add_subplot(rows, min(columns, len(names)), index + 1)
        values = np.asarray(measures[name], np.float64)
        if values.shape != gap.shape:
            raise InvalidDataError(
                f"measures_against_gap: {name!r} has {values.size} values for "
                f"{gap.size} models."
            )
        ax.scatter(values, gap, s=8, color="C3" if name in highlight else "C0")
        title = (name if taus is None or name not in taus
                 else f"{name}\noriented tau {taus[name]:.2f}")  # fmt: skip
        ax.set_title(title, fontsize=7)
        ax.tick_params(labelsize=6)
        if index % columns == 0:
            ax.set_ylabel("train - test accuracy", fontsize=7)
    figure.suptitle("Each measure (as computed) against the generalization gap; oriented tau: "
                    "Kendall's tau of the measure turned so that a better value predicts a "
                    "smaller gap", fontsize=9)  # fmt: skip
    return figure
