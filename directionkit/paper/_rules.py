"""Verdict rules: written before a run, applied by code to the numbers it stored.

A :class:`Rule` pairs the sentence a reader sees with the function that decides.  Every
experiment of :mod:`directionkit.paper` names its rule next to its code; the
rule text is stored with the result, and the verdict is computed from the statistics as
read back from the stored result (never from values held in memory during the run).

Rules decide on **intervals**, not point estimates: each :class:`Claim` reads a
statistic, its 95% interval (``<key>_ci``), its population size (``<key>_n``) and, where
it has one, its p-value (``<key>_p``), and gives one of four verdicts:

- *reproduced*: the whole interval lies on the paper's side;
- *not reproduced*: the whole interval lies beyond a stated margin on the other side (the
  effect is absent, or opposite);
- *inconclusive*: the interval is too wide to tell (it reaches both sides of the margin)
  or the population is smaller than the rule's minimum;
- *partly* (correlations the paper gave a number for): the whole interval is on the
  paper's side but below half the paper's size.

:func:`all_of` combines sub-claims: every one must hold for *reproduced*; *partly* needs
at least two that hold and more that hold than fail, so that no single sub-claim and no
pair split one-one makes a claim "partly" reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INCONCLUSIVE",
    "NEGLIGIBLE_RHO",
    "NOT_REPRODUCED",
    "PARTLY",
    "REPRODUCED",
    "VERDICTS",
    "Claim",
    "Rule",
    "all_of",
]

REPRODUCED = "reproduced"
PARTLY = "partly"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
#: Every verdict a rule can give.
VERDICTS: tuple[str, ...] = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE)
_ALPHA = 0.05
#: A rank correlation smaller than this in size is no relation worth the name.
NEGLIGIBLE_RHO = 0.2


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
    claims : tuple of Claim
        The sub-claims the rule combines (empty for a hand-written rule).

    Examples
    --------
    >>> rule = Rule("reproduced if x > 0, else not", lambda s: REPRODUCED if s["x"] > 0
    ...             else NOT_REPRODUCED)
    >>> rule({"x": 1.0}), rule({"x": -1.0})
    ('reproduced', 'not reproduced')
    """

    text: str
    decide: Callable[[Mapping[str, Any]], str]
    claims: tuple[Claim, ...] = ()

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


def _interval(stats: Mapping[str, Any], key: str) -> tuple[float, float]:
    value = stats.get(f"{key}_ci")
    if isinstance(value, Sequence) and len(value) == 2 and all(_finite(v) for v in value):
        return float(value[0]), float(value[1])
    return math.nan, math.nan


@dataclass(frozen=True)
class Claim:
    """One sub-claim, decided on the 95% interval of one statistic.

    The statistic is ``stats[key]``, its interval ``stats[key + "_ci"]`` (two numbers), its
    population size ``stats[key + "_n"]`` and, when ``needs_p``, its p-value
    ``stats[key + "_p"]``.

    Parameters
    ----------
    key : str
        Name of the statistic.
    what : str
        What the statistic is, for the rule's text.
    direction : {+1, -1}
        The sign of the paper's effect (``kind="effect"``).
    kind : {"effect", "below"}
        ``"effect"``: the paper's claim is an effect of sign ``direction``; reproduced
        when the whole interval has that sign (and p < 0.05 where there is a p), not
        reproduced when the interval excludes any effect of size ``margin`` in that
        direction, inconclusive otherwise.  ``"below"``: the claim is that the statistic
        is below ``margin`` (no sizeable relation, a small gap); reproduced when the whole
        interval is below it, not reproduced when the whole interval is above it,
        inconclusive otherwise.
    margin : float
        The size that separates an effect from none (``"effect"``) or the bound
        (``"below"``), in the statistic's units.
    min_n : int
        Smallest population the claim is decided on (inconclusive below it).
    paper : float, optional
        The paper's value (``"effect"``): an interval wholly on the paper's side but
        wholly below half its size is *partly*.
    needs_p : bool
        Require ``p < 0.05`` for *reproduced* (a p-value is stored).

    Examples
    --------
    >>> claim = Claim("rho", "AUC vs test loss", direction=-1, min_n=5)
    >>> claim({"rho": -0.8, "rho_ci": [-0.95, -0.5], "rho_n": 10, "rho_p": 0.001})
    'reproduced'
    >>> claim({"rho": -0.3, "rho_ci": [-0.8, 0.3], "rho_n": 10, "rho_p": 0.4})
    'inconclusive'
    >>> claim({"rho": 0.3, "rho_ci": [0.1, 0.5], "rho_n": 10, "rho_p": 0.2})
    'not reproduced'
    >>> claim({"rho": -0.8, "rho_ci": [-0.95, -0.5], "rho_n": 3, "rho_p": 0.3})
    'inconclusive'
    """

    key: str
    what: str
    direction: int = +1
    kind: str = "effect"
    margin: float = NEGLIGIBLE_RHO
    min_n: int = 3
    paper: float | None = None
    needs_p: bool = True

    def text(self) -> str:
        """The claim's rule in words."""
        if self.kind == "below":
            return (
                f"{self.what} ({self.key}): reproduced if its whole 95% interval is below "
                f"{self.margin:g}; not reproduced if the whole interval is above it; "
                f"inconclusive if the interval contains {self.margin:g} or n < {self.min_n}."
            )
        side = "positive" if self.direction > 0 else "negative"
        text = (
            f"{self.what} ({self.key}): reproduced if its whole 95% interval is {side}"
            + (f" and p < {_ALPHA}" if self.needs_p else "")
            + f"; not reproduced if the interval excludes every {side} value of size "
            f">= {self.margin:g}; inconclusive otherwise (the interval is wider than that "
            f"allows, or n < {self.min_n})"
        )
        if self.paper is not None:
            text += (
                f"; partly if the interval is {side} but wholly below half the paper's "
                f"size ({abs(self.paper) / 2:.3f})"
            )
        return text + "."

    def __call__(self, stats: Mapping[str, Any]) -> str:
        n = _number(stats, f"{self.key}_n")
        low, high = _interval(stats, self.key)
        if not (n >= self.min_n) or math.isnan(low):
            return INCONCLUSIVE
        if self.kind == "below":
            if high < self.margin:
                return REPRODUCED
            return NOT_REPRODUCED if low > self.margin else INCONCLUSIVE
        s = 1.0 if self.direction > 0 else -1.0
        near, far = sorted((s * low, s * high))
        if near > 0:
            p = _number(stats, f"{self.key}_p")
            if self.needs_p and not p < _ALPHA:
                return INCONCLUSIVE
            if self.paper is not None and far < abs(self.paper) / 2:
                return PARTLY
            return REPRODUCED
        if far < self.margin:
            return NOT_REPRODUCED
        return INCONCLUSIVE


def all_of(claims: Sequence[Claim], lead: str = "") -> Rule:
    """A rule over sub-claims (one claim: that claim's verdict).

    Reproduced when every claim is reproduced; inconclusive when none fails but some are
    inconclusive; partly when at least two hold (reproduced or partly) and more hold than
    fail; not reproduced otherwise.  A claim that is *partly* counts as holding, but makes
    the whole at most *partly*.

    Examples
    --------
    >>> a = Claim("a", "first", min_n=1, needs_p=False)
    >>> b = Claim("b", "second", min_n=1, needs_p=False)
    >>> rule = all_of([a, b])
    >>> yes = {"a_ci": [0.3, 0.5], "a_n": 5, "b_ci": [0.3, 0.5], "b_n": 5}
    >>> rule(yes), rule({**yes, "b_ci": [-0.5, 0.1]}), rule({**yes, "b_ci": [-0.5, 0.5]})
    ('reproduced', 'not reproduced', 'inconclusive')
    """
    claims = tuple(claims)
    parts = [f"({i + 1}) {c.text()}" for i, c in enumerate(claims)]
    if len(claims) == 1:
        text = (lead + " " if lead else "") + claims[0].text()
    else:
        text = (
            (lead + " " if lead else "")
            + " ".join(parts)
            + " Overall: reproduced if every sub-claim is; inconclusive if none is not "
            "reproduced but some are inconclusive; partly if at least two hold and more "
            "hold than fail; not reproduced otherwise."
        )

    def decide(stats: Mapping[str, Any]) -> str:
        verdicts = [c(stats) for c in claims]
        if all(v == REPRODUCED for v in verdicts):
            return REPRODUCED
        held = sum(v in (REPRODUCED, PARTLY) for v in verdicts)
        failed = sum(v == NOT_REPRODUCED for v in verdicts)
        if failed == 0 and INCONCLUSIVE in verdicts:
            return INCONCLUSIVE
        if failed == 0:  # every claim holds, some only partly
            return PARTLY
        if held >= 2 and held > failed:
            return PARTLY
        return NOT_REPRODUCED

    return Rule(text, decide, claims)
