"""What one experiment leaves in its folder: :class:`ExperimentResult` (``result.json``) and
its figures, each written under a temporary name and renamed into place."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ExperimentResult", "json_ready", "save_figure", "write_text"]

_RESULT = "result.json"


def json_ready(value: Any) -> Any:
    """Statistics as JSON gives them back (numpy scalars to Python, tuples to lists)."""
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name, then rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_figure(figure: Figure, path: Path, dpi: int | None = None) -> None:
    """Save ``figure`` as PNG at ``path``, atomically, at ``dpi`` (default: the dpi of
    :func:`directionkit.report.write_report`, :data:`directionkit.report.PRINT_DPI`)."""
    if dpi is None:
        from directionkit.report import PRINT_DPI

        dpi = PRINT_DPI
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    try:
        figure.savefig(temporary, format="png", dpi=dpi)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@dataclass
class ExperimentResult:
    """What one experiment found, as stored in ``DIR/<experiment>/result.json``.

    Attributes
    ----------
    name, title : str
        The experiment's CLI name and the paper figure it reproduces.
    claim : str
        The paper's claim in one sentence.
    paper : str
        The paper's statistic, as text.
    statistics : dict
        The numbers the verdict is computed from (read back from the store): each
        statistic with its 95% interval (``<key>_ci``), population size (``<key>_n``) and
        p-value where it has one (``<key>_p``).
    summary : str
        Our statistic, as text beside the paper's.
    rule : str
        The verdict rule, stated before the run.
    verdict : str
        ``"reproduced"``, ``"partly"``, ``"not reproduced"`` or ``"inconclusive"``.
    figures : list of str
        PNG file names in the experiment's folder.
    population : str
        How the models were made (what varies, how many).
    seconds : float
        Wall time of the run that produced the result.
    key : dict
        The parameters the result was computed with (a rerun with others redoes it).
    deviations : list of str
        Where our protocol differs from the paper's, generated from the scale.
    claims : list of str
        Each sub-claim of the rule: its statistic, interval and verdict.
    """

    name: str
    title: str
    claim: str
    paper: str
    statistics: dict[str, Any]
    summary: str
    rule: str
    verdict: str
    figures: list[str]
    population: str
    seconds: float
    key: dict[str, Any] = field(default_factory=dict)
    deviations: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (``reused`` is not stored)."""
        data = dataclasses.asdict(self)
        data.pop("reused")
        return data

    @classmethod
    def read(cls, folder: Path) -> ExperimentResult | None:
        """The result stored in ``folder``, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads((folder / _RESULT).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def write(self, folder: Path) -> None:
        """Store the result as ``folder/result.json``, atomically."""
        write_text(folder / _RESULT, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
