"""What a paper experiment is: :class:`Experiment`, and its protocol beside the paper's.

Each :class:`Experiment` has five parts, kept apart so that the verdict comes from stored
numbers: ``build`` trains (or reuses) and analyses the networks and returns the dataset to
store; ``statistics`` reads the *stored* dataset and returns the numbers the paper reports,
each with its 95% interval (:mod:`._statistics`); the :class:`~._rules.Rule` turns those
intervals into a verdict; ``figures`` draws from the stored dataset; ``protocol`` sets the
paper's protocol beside ours, so that every deviation is stated (generated from the scale,
never hand-written).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xarray as xr

from directionkit.paper._rules import Rule
from directionkit.paper._scale import Scale
from directionkit.paper._shared import estimate_text, size_text
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

__all__ = [
    "CIFAR",
    "MNIST",
    "Experiment",
    "ProtocolRow",
    "claims_text",
    "data_row",
    "protocol_row",
]

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ProtocolRow:
    """One aspect of an experiment's protocol: the paper's and ours, and whether they agree."""

    aspect: str
    paper: str
    ours: str
    same: bool = False

    def deviation(self) -> str:
        """The row as a stated deviation."""
        return f"{self.aspect}: {self.ours} (paper: {self.paper})"


@dataclass(frozen=True)
class Experiment:
    """One experiment of the paper (see the module doc)."""

    name: str
    title: str
    claim: str
    paper: str
    rule: Rule
    build: Callable[[Workspace], tuple[xr.Dataset, str]]
    statistics: Callable[[xr.Dataset], Stats]
    summarize: Callable[[Stats], str]
    figures: Callable[[xr.Dataset, Stats], dict[str, Figure]]
    protocol: Callable[[Scale, str], list[ProtocolRow]]

    def deviations(self, scale: Scale, dataset: str) -> list[str]:
        """Every aspect where our protocol differs from the paper's, as sentences."""
        return [row.deviation() for row in self.protocol(scale, dataset) if not row.same]


def claims_text(rule: Rule, s: Mapping[str, Any]) -> list[str]:
    """One line per sub-claim of ``rule``: the statistic, its interval and its verdict."""
    return [f"{c.what}: {estimate_text(s, c.key)} -> {c(s)}" for c in rule.claims]


# ----------------------------------------------------------------- protocol rows
def data_row(ws_dataset: str, paper: str, train: int | None, test: int | None) -> ProtocolRow:
    """The ``data`` row: our data set and its sizes beside the paper's."""
    return ProtocolRow(
        "data", paper, f"{ws_dataset} ({size_text(train)} training, {size_text(test)} test images)"
    )


def protocol_row(aspect: str, paper: Any, ours: Any) -> ProtocolRow:
    """A row, the same when the paper's and ours read the same."""
    return ProtocolRow(aspect, str(paper), str(ours), str(paper) == str(ours))


MNIST = "MNIST (60,000 training images)"
CIFAR = "CIFAR-10 (50,000 training images)"
