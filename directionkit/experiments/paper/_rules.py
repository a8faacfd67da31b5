"""Verdict rules: written before a run, applied by code to the numbers it stored.

A :class:`Rule` pairs the sentence a reader sees with the function that decides.  Every
experiment of :mod:`directionkit.experiments.paper` names its rule next to its code; the
rule text is stored with the result, and the verdict is computed from the statistics as
read back from the stored result (never from values held in memory during the run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NOT_REPRODUCED",
    "PARTLY",
    "REPRODUCED",
    "VERDICTS",
    "Rule",
    "at_most_rule",
    "correlation_rule",
    "count_rule",
    "ordering_rule",
    "sign_rule",
]

REPRODUCED = "reproduced"
PARTLY = "partly"
NOT_REPRODUCED = "not reproduced"
#: Every verdict a rule can give.
VERDICTS: tuple[str, ...] = (REPRODUCED, PARTLY, NOT_REPRODUCED)
_ALPHA = 0.05


@dataclass(frozen=True)
class Rule:
    """A verdict rule: its statement and the function that applies it.

    Parameters
    ----------
    text : str
        The rule as a reader should see it, stated before the run.
    decide : callable
        ``decide(statistics) -> verdict``, one of :data:`VERDICTS`; ``statistics`` is the
        mapping of numbers the experiment stored.

    Examples
    --------
    >>> rule = Rule("reproduced if x > 0, else not", lambda s: REPRODUCED if s["x"] > 0
    ...             else NOT_REPRODUCED)
    >>> rule({"x": 1.0}), rule({"x": -1.0})
    ('reproduced', 'not reproduced')
    """

    text: str
    decide: Callable[[Mapping[str, Any]], str]

    def __call__(self, statistics: Mapping[str, Any]) -> str:
        verdict = self.decide(statistics)
        if verdict not in VERDICTS:  # a bug in a rule, not bad input
            raise AssertionError(f"rule returned {verdict!r}, not one of {VERDICTS}")
        return verdict


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(stats: Mapping[str, Any], key: str) -> float:
    """``stats[key]`` as a float, NaN when it is missing or not a finite number."""
    value: Any = stats.get(key)
    return float(value) if _finite(value) else math.nan


def correlation_rule(rho_key: str, p_key: str, paper_rho: float, what: str) -> Rule:
    """Sign, significance and size of a Spearman correlation against the paper's value.

    Reproduced: the same sign as the paper, p < 0.05, and at least half the paper's
    magnitude; partly: the same sign; not reproduced: the opposite sign, zero or NaN.

    Examples
    --------
    >>> rule = correlation_rule("rho", "p", -0.728, "AUC vs test loss")
    >>> rule({"rho": -0.6, "p": 0.001}), rule({"rho": -0.2, "p": 0.3})
    ('reproduced', 'partly')
    >>> rule({"rho": 0.4, "p": 0.01}), rule({"rho": float("nan"), "p": 0.01})
    ('not reproduced', 'not reproduced')
    """
    sign = math.copysign(1.0, paper_rho)
    text = (
        f"Spearman rho of {what}: reproduced if it has the paper's sign "
        f"({'negative' if sign < 0 else 'positive'}), p < {_ALPHA} and |rho| >= "
        f"{abs(paper_rho) / 2:.3f} (half the paper's {paper_rho:+.3f}); partly if only the "
        "sign matches; not reproduced otherwise (opposite sign, zero or undefined)."
    )

    def decide(stats: Mapping[str, Any]) -> str:
        rho, p = _number(stats, rho_key), _number(stats, p_key)
        if not rho * sign > 0:  # NaN fails too
            return NOT_REPRODUCED
        if p < _ALPHA and abs(rho) >= abs(paper_rho) / 2:
            return REPRODUCED
        return PARTLY

    return Rule(text, decide)


def ordering_rule(rho_key: str, p_key: str, pairs_key: str, what: str) -> Rule:
    """A measure falls with a factor: a significant negative rho and every pair ordered.

    Reproduced: rho < 0, p < 0.05 and ``pairs_key`` (the fraction of paired comparisons
    that go the paper's way) is 1; partly: rho < 0; not reproduced otherwise.

    Examples
    --------
    >>> rule = ordering_rule("rho", "p", "ordered", "corruption vs AUC")
    >>> rule({"rho": -0.9, "p": 0.0, "ordered": 1.0}), rule({"rho": -0.9, "p": 0.0, "ordered": 0.5})
    ('reproduced', 'partly')
    >>> rule({"rho": 0.1, "p": 0.7, "ordered": 1.0})
    'not reproduced'
    """
    text = (
        f"Spearman rho of {what}: reproduced if rho < 0 with p < {_ALPHA} and every seed "
        "orders its true-label network above its fully corrupted one; partly if rho < 0; "
        "not reproduced otherwise."
    )

    def decide(stats: Mapping[str, Any]) -> str:
        rho, p, ordered = _number(stats, rho_key), _number(stats, p_key), stats.get(pairs_key)
        if not rho < 0:
            return NOT_REPRODUCED
        if p < _ALPHA and ordered == 1.0:
            return REPRODUCED
        return PARTLY

    return Rule(text, decide)


def count_rule(keys: tuple[str, ...], text: str, partly_at: int = 1) -> Rule:
    """Several sub-claims, each stored as 1 (holds) or 0: all hold, some, or none.

    Reproduced when every key is 1; partly when at least ``partly_at`` are; else not.

    Examples
    --------
    >>> rule = count_rule(("a", "b"), "both")
    >>> rule({"a": 1, "b": 1}), rule({"a": 1, "b": 0}), rule({"a": 0, "b": 0})
    ('reproduced', 'partly', 'not reproduced')
    """

    def decide(stats: Mapping[str, Any]) -> str:
        held = sum(1 for key in keys if stats.get(key) == 1)
        if held == len(keys):
            return REPRODUCED
        return PARTLY if held >= partly_at else NOT_REPRODUCED

    return Rule(text, decide)


def at_most_rule(keys: tuple[str, ...], limit: float, what: str) -> Rule:
    """A "no useful positive relation" claim: every correlation at most ``limit``.

    Reproduced when every ``keys`` value is finite and <= ``limit``; partly when at least
    one is; not reproduced when none is.

    Examples
    --------
    >>> rule = at_most_rule(("mlp", "conv"), 0.3, "selectivity vs importance")
    >>> rule({"mlp": 0.1, "conv": -0.4}), rule({"mlp": 0.5, "conv": -0.4})
    ('reproduced', 'partly')
    >>> rule({"mlp": 0.5, "conv": float("nan")})
    'not reproduced'
    """
    text = (
        f"{what}: reproduced if every Spearman rho listed is <= {limit} (no sizeable "
        "positive relation, the paper's reading); partly if some are; not reproduced if none."
    )

    def decide(stats: Mapping[str, Any]) -> str:
        held = sum(1 for key in keys if _finite(stats.get(key)) and stats[key] <= limit)
        if held == len(keys):
            return REPRODUCED
        return PARTLY if held else NOT_REPRODUCED

    return Rule(text, decide)


def sign_rule(rho_key: str, p_key: str, sign: float, what: str) -> Rule:
    """The sign of a correlation the paper shows without a number.

    Reproduced: rho has the sign ``sign`` and p < 0.05; partly: only the sign; not
    reproduced otherwise.

    Examples
    --------
    >>> rule = sign_rule("rho", "p", +1, "depth vs selectivity")
    >>> rule({"rho": 0.8, "p": 0.01}), rule({"rho": 0.2, "p": 0.5}), rule({"rho": -0.2, "p": 0.5})
    ('reproduced', 'partly', 'not reproduced')
    """
    text = (
        f"Spearman rho of {what}: reproduced if rho is {'positive' if sign > 0 else 'negative'}"
        f" with p < {_ALPHA}; partly if only the sign matches; not reproduced otherwise."
    )

    def decide(stats: Mapping[str, Any]) -> str:
        rho, p = _number(stats, rho_key), _number(stats, p_key)
        if not rho * sign > 0:
            return NOT_REPRODUCED
        return REPRODUCED if p < _ALPHA else PARTLY

    return Rule(text, decide)
