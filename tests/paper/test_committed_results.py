"""The committed `reproduce` run re-derives from its own stores.

``docs/results/fashion-mnist`` holds, per experiment, the ``result.json`` the run wrote and
the zarr store its statistics were read from.  Recomputing the statistics from the store
with today's code must give the stored numbers, today's rule must be the stored rule and
give the stored verdict, and SUMMARY.md must say that verdict: a reader can trust that the
committed verdicts follow from the committed numbers.  (No torch needed: only the stores.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import directionkit as dk
from directionkit.paper import EXPERIMENTS, SCALES, ExperimentResult, check_verdict

ROOT = Path(__file__).resolve().parents[2] / "docs" / "results" / "fashion-mnist"


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_each_committed_verdict_follows_from_its_committed_store(name: str) -> None:
    result = ExperimentResult.read(ROOT / name)
    assert result is not None, f"no result.json for {name}"
    assert check_verdict(result)  # today's rule is the stored one and gives the verdict
    stored = dk.open(ROOT / name).dataset
    again = json.loads(json.dumps(EXPERIMENTS[name].statistics(stored)))
    assert json.dumps(again, sort_keys=True) == json.dumps(result.statistics, sort_keys=True)
    assert result.deviations == EXPERIMENTS[name].deviations(SCALES["cpu"], "fashion-mnist")
    summary = (ROOT / "SUMMARY.md").read_text()
    (row,) = [line for line in summary.splitlines() if line.startswith(f"| {name} (")]
    assert f"**{result.verdict}** |" in row
    assert all((ROOT / name / figure).is_file() for figure in result.figures)
