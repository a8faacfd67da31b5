"""The measures of :func:`directionkit.analyze`, one pass each over the data: the options
checked before any pass (:class:`_Plan`), and each measure run on the adapter with its
own progress bar (:class:`_Measures`)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from directionkit._utils.choices import ABLATE_TO, ALL_METRICS, DEFAULT_NOISE_SCALES, METRICS
from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.adapter import ModelAdapter, SupportsFoldedWeightL1, SupportsWeightL1
from directionkit.directions._choose import check_directions
from directionkit.errors import DirectionKitWarning, UnsupportedModelError
from directionkit.experiments import (
    ablation_curve,
    activation_statistics,
    baseline_measures,
    noise_curve,
    unit_importance,
)
from directionkit.experiments._ablation import check_auc_fractions, check_fractions, clamp_values
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import evaluate, top_k, unit_coords
from directionkit.experiments._progress import ProgressCallback, Tracker
from directionkit.experiments._statistics import check_scales
from directionkit.metrics import ablation_auc, chance_note

#: Default most units whose single-unit importance ``analyze`` measures (one
#: intervention per unit over the data): beyond it a stratified random sample.
IMPORTANCE_UNITS = 1024
#: Named scope presets: ``"paper-conv"`` is the paper's protocol for conv nets (Fig. 1b,c:
#: "only feature maps in the last three layers were ablated"), next to every unit.
SCOPE_PRESETS: dict[str, tuple[str, ...]] = {"paper-conv": ("all", "last:3")}


class _Stages:
    """One progress bar (or callback) per stage of :func:`analyze`, numbered ``[i/n]``."""

    def __init__(self, progress: bool | Callable[[str, int, int | None], None], names: list[str]):
        self.progress = progress
        self.count = len(names)
        self.index = 0

    @contextlib.contextmanager
    def track(self, stage: str) -> Iterator[ProgressCallback | None]:
        self.index += 1
        if callable(self.progress):
            report = self.progress
            yield lambda done, total: report(stage, done, total)
            return
        if not self.progress:
            yield None
            return
        bar = tqdm(
            desc=f"directionkit [{self.index}/{self.count}] {stage}", total=None, leave=False,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        )  # fmt: skip

        def update(done: int, total: int | None) -> None:
            if total != bar.total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            yield update
        finally:
            bar.close()


@dataclass
class _Plan:
    """The options of one :func:`~directionkit.analyze` call, checked."""

    chosen: list[str]
    scopes: Sequence[str]
    orderings: int
    fractions: int | Sequence[float]
    ablate_to: Literal["zero", "mean", "channel-mean"]
    seed: int
    batch_size: int | None
    noise_scales: Sequence[float] | None
    noise_repeats: int
    noise_sd: Literal["map", "spatial-mean"]
    accuracy: Literal["top1", "top5"]
    k: int
    n_bins: int
    binning: Literal["equal-width", "equal-frequency"]
    classes: Literal["present", "all"]
    importance_units: int | Literal["all"]
    train_data: Any
    directions: str = "units"  # the kind of basis ("array": rows given per site)

    @classmethod
    def checked(cls, *, metrics: Sequence[str] | None, train_data: Any, **given: Any) -> _Plan:
        """Every option of ``analyze`` checked, in the order the messages have always come."""
        chosen = list(METRICS) if metrics is None else list(metrics)
        for name in chosen:
            check_choice(name, "metrics", "analyze", ALL_METRICS)
        if "noise" in chosen and train_data is None:
            if metrics is not None:
                raise parameter_error(
                    "train_data", "analyze", "given when 'noise' is among the metrics (unit sd "
                    "comes from the training data)", None,
                )  # fmt: skip
            chosen.remove("noise")
        scopes = given["scopes"]
        if isinstance(scopes, str):
            if scopes not in SCOPE_PRESETS:
                raise parameter_error(
                    "scopes", "analyze", f"a sequence of scopes or a preset name in "
                    f"{sorted(SCOPE_PRESETS)}", scopes,
                )  # fmt: skip
            scopes = SCOPE_PRESETS[scopes]
        ablate_to = given["ablate_to"]
        check_choice(ablate_to, "ablate_to", "analyze", ABLATE_TO)
        k = top_k(given["accuracy"], "analyze")
        n_bins = check_int(given["n_bins"], "n_bins", "analyze", minimum=2)
        check_choice(given["binning"], "binning", "analyze", ("equal-width", "equal-frequency"))
        check_choice(given["noise_sd"], "noise_sd", "analyze", ("map", "spatial-mean"))
        check_choice(given["classes"], "classes", "analyze", ("present", "all"))
        if ablate_to != "zero" and "ablation" in chosen and train_data is None:
            raise parameter_error(
                "train_data", "analyze", f"given when ablate_to={ablate_to!r} (the paper's "
                "means are over the training set; pass train_data=data to use the analysed "
                "data)", None,
            )  # fmt: skip
        importance_units = given["importance_units"]
        if importance_units != "all":
            importance_units = check_int(
                importance_units, "importance_units", "analyze", minimum=1
            )
        orderings = check_int(given["orderings"], "orderings", "analyze", minimum=1)
        if "ablation" in chosen:
            check_auc_fractions(given["fractions"], "analyze")
        else:
            check_fractions(given["fractions"], "analyze")
        seed = check_int(given["seed"], "seed", "analyze", minimum=0)
        noise_repeats = check_int(given["noise_repeats"], "noise_repeats", "analyze", minimum=1)
        if given["noise_scales"] is not None:
            check_scales(given["noise_scales"], "noise_scales", "analyze")
        if given["batch_size"] is not None:
            check_int(given["batch_size"], "batch_size", "analyze", minimum=1)
        directions = check_directions(given["directions"], "analyze", train_data)
        return cls(
            chosen=chosen, scopes=scopes, orderings=orderings, fractions=given["fractions"],
            ablate_to=ablate_to, seed=seed, batch_size=given["batch_size"],
            noise_scales=given["noise_scales"], noise_repeats=noise_repeats,
            noise_sd=given["noise_sd"], accuracy=given["accuracy"], k=k, n_bins=n_bins,
            binning=given["binning"], classes=given["classes"],
            importance_units=importance_units, train_data=train_data, directions=directions,
        )  # fmt: skip

    def parameters(self) -> dict[str, Any]:
        """The options as stored in the result's attrs (``parameters``)."""
        fractions, scales = self.fractions, self.noise_scales
        return {
            "metrics": self.chosen, "scopes": list(self.scopes), "orderings": self.orderings,
            "fractions": fractions if isinstance(fractions, int) else [float(f) for f in fractions],
            "ablate_to": self.ablate_to, "seed": self.seed, "batch_size": self.batch_size,
            "noise_scales": None if scales is None else [float(s) for s in scales],
            "noise_repeats": self.noise_repeats, "noise_sd": self.noise_sd,
            "accuracy": self.accuracy, "n_bins": self.n_bins, "binning": self.binning,
            "classes": self.classes, "importance_units": self.importance_units,
            "directions": self.directions,
        }  # fmt: skip


class _Measures:
    """The measures of one analysis, run in turn on one adapter and data.

    ``notes`` and ``skipped`` collect what the result's attrs say about them; the
    clean accuracy comes first, and its chance level enters the corrected AUC.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        batches: Batches,
        plan: _Plan,
        progress: bool | Callable[[str, int, int | None], None],
    ) -> None:
        self.adapter, self.batches, self.plan = adapter, batches, plan
        self.notes: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.n_examples = 0
        self.chance = float("nan")  # the best constant prediction's accuracy, set by clean()
        stages = [
            n
            for s in ["accuracy", *plan.chosen]
            for n in ([f"ablation [{c}]" for c in plan.scopes] if s == "ablation" else [s])
        ]
        self.stages = _Stages(progress, stages)

    def clean(self) -> xr.Dataset:
        """Accuracy and loss without interventions, and the chance level beside them."""
        with self.stages.track("accuracy") as callback:
            tracker = Tracker(callback)
            tracker.plan(self.batches.n_examples)
            clean = evaluate(self.adapter, self.batches, None, self.plan.k, tracker)
        self.n_examples = clean.n
        assert clean.label_counts is not None
        self.chance, note = chance_note(float(clean.accuracy[0]), clean.label_counts, self.plan.k)
        if note is not None:
            self.notes["near_chance_note"] = (
                f"{note}: a model at chance stays at chance when ablated, so its ablation "
                "AUC says little (near 1); ablation_auc_corrected is NaN or near 0"
            )
        return xr.Dataset({
            "accuracy": float(clean.accuracy[0]), "loss": float(clean.mean_loss[0]),
            "chance_accuracy": self.chance, "near_chance": note is not None,
        })  # fmt: skip

    # One method per entry of METRICS, named after it: ``analyze`` calls each directly,
    # so a warning raised below counts the same frames up to the user as it always has.
    def weight_l1(self) -> xr.Dataset:
        with self.stages.track("weight_l1"):
            weights = _weight_l1(self.adapter, self.notes)
        if not weights.data_vars:
            raise UnsupportedModelError(self.notes.pop("weight_l1_note").removeprefix(
                "weight_l1 left out: "
            ))  # fmt: skip
        return weights

    def statistics(self) -> xr.Dataset:
        plan = self.plan
        with self.stages.track("statistics") as callback:
            statistics = activation_statistics(
                self.adapter, self.batches, n_bins=plan.n_bins, binning=plan.binning,
                classes=plan.classes, progress=callback,
            )  # fmt: skip
        for key in ("n_classes", "classes_present", "classes_missing", "classes_note",
                    "selectivity_note"):  # fmt: skip
            if key in statistics.attrs:
                self.notes[key] = statistics.attrs[key]
        return statistics

    def ablation(self) -> xr.Dataset:
        plan, adapter = self.plan, self.adapter
        means = None
        if plan.ablate_to != "zero":
            means = clamp_values(
                adapter, Batches(plan.train_data, plan.batch_size, "analyze"),
                list(adapter.sites), plan.ablate_to,
            )  # fmt: skip
        curves = []
        for scope in plan.scopes:
            with self.stages.track(f"ablation [{scope}]") as callback:
                curve = ablation_curve(
                    adapter, self.batches, scope, plan.orderings, plan.fractions,
                    plan.ablate_to, plan.seed, means=means, accuracy=plan.accuracy,
                    progress=callback,
                )  # fmt: skip
            curves.append(curve)
        curve = xr.concat(curves, dim="scope", join="outer", fill_value={"ablation_order": -1})
        accuracy = curve["ablation_accuracy"]
        clean = accuracy.sel(fraction=0.0, drop=True)
        # a model that classifies nothing correctly has no accuracy to normalise by: its
        # AUC is NaN (said in the attrs), not an error that loses every other measure
        some = clean != 0
        if not bool(some.all()):
            self.notes["ablation_auc_note"] = (
                "ablation_auc is NaN: the clean accuracy is 0, so there is nothing to "
                "normalise the curve by"
            )
        baseline = clean.where(some, 1.0)
        curve["ablation_auc"] = ablation_auc(accuracy, baseline=baseline).where(some).mean(
            "ordering"
        )
        curve["ablation_auc_corrected"] = ablation_auc(
            accuracy, baseline=baseline, chance=self.chance
        ).where(some).mean("ordering")
        return curve.drop_attrs()

    def importance(self) -> xr.Dataset:
        plan = self.plan
        with self.stages.track("importance") as callback:
            importance = unit_importance(
                self.adapter, self.batches, accuracy=plan.accuracy, progress=callback,
                max_units=plan.importance_units if isinstance(plan.importance_units, int) else None,
                seed=plan.seed,
            )  # fmt: skip
        if "sampled" in importance.attrs:
            self.notes["importance_sampled"] = importance.attrs["sampled"]
        return importance

    def noise(self) -> xr.Dataset:
        plan = self.plan
        scales = DEFAULT_NOISE_SCALES if plan.noise_scales is None else plan.noise_scales
        with self.stages.track("noise") as callback:
            noise = noise_curve(
                self.adapter, self.batches, plan.train_data, scales, plan.noise_repeats,
                plan.seed, accuracy=plan.accuracy, noise_sd=plan.noise_sd, progress=callback,
            )  # fmt: skip
        return noise.to_dataset().drop_attrs()

    def baselines(self) -> xr.Dataset:
        with self.stages.track("baselines"):
            measures = baseline_measures(self.adapter, self.batches, seed=self.plan.seed)
        if "baselines_note" in measures.attrs:
            self.notes["baselines_note"] = measures.attrs["baselines_note"]
        return measures


def _weight_l1(adapter: ModelAdapter, notes: dict[str, str]) -> xr.Dataset:
    """``weight_l1`` (raw filters) and ``weight_l1_folded`` (BatchNorm in), where known.

    A site whose incoming weights the adapter cannot give (no Linear or Conv feeds it,
    an LSTM's output) gets NaN, saying which in ``notes`` (and a warning); a variable no
    site has is left out.  A raw norm the model does not hold (an exporter folded
    BatchNorm into the Conv) leaves ``weight_l1`` out; never is a folded norm stored as
    raw.
    """
    assert isinstance(adapter, SupportsWeightL1)
    names = list(adapter.sites)
    methods: dict[str, Callable[[str], np.ndarray]] = {"weight_l1": adapter.unit_weight_l1}
    if isinstance(adapter, SupportsFoldedWeightL1):
        methods["weight_l1_folded"] = adapter.unit_weight_l1_folded
    values: dict[str, list[np.ndarray]] = {}
    failures: dict[str, dict[str, str]] = {}
    for variable, method in methods.items():
        values[variable], failures[variable] = [], {}
        for name in names:
            try:
                values[variable].append(np.asarray(method(name), np.float64))
            except UnsupportedModelError as err:
                failures[variable][name] = str(err)
                values[variable].append(np.full(adapter.sites[name].n_units, np.nan))
    variables: dict[str, tuple[str, np.ndarray]] = {}
    for variable, failed in failures.items():
        if failed:
            first = next(iter(failed.values()))
            folded_complete = "weight_l1_folded" in failures and not failures["weight_l1_folded"]
            if len(failed) == len(names) or (variable == "weight_l1" and folded_complete):
                # no site has it, or the raw filters are not in the model while every folded
                # one is (an exporter folded BatchNorm in): a partly raw variable next to a
                # folded one would invite mixing them
                notes[f"{variable}_note"] = f"{variable} left out: {first}"
                continue
            notes[f"{variable}_note"] = (
                f"{variable} is NaN at sites {sorted(failed)} ({len(failed)} of {len(names)}): "
                f"{first}"
            )
            warnings.warn(notes[f"{variable}_note"], DirectionKitWarning, stacklevel=3)
        variables[variable] = ("unit", np.concatenate(values[variable]))
    return xr.Dataset(variables, coords=unit_coords(adapter.sites))
