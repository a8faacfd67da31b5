"""The sweep store: one zarr store with a ``model`` dim for the per-model variables and a
group ``units/NAME`` per model; each model's row sealed by its own integrity record.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import parameter_error
from directionkit.api import Analysis
from directionkit.errors import (
    StoreError,
)
from directionkit.experiments import BASELINES
from directionkit.population._models import HISTORY_METADATA, _Plan
from directionkit.results import VERSION_ATTR, atomic_directory, open_dataset
from directionkit.results._integrity import per_model_files, read_record, row_files
from directionkit.results._stores import _checksummed_encoding, _write_sealed

SWEEP_KIND = "sweep"


UNITS_GROUP = "units"


def _metadata_columns(
    names: Sequence[str], configs: Mapping[str, dict[str, Any] | None], metadata: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Per-model columns known before any task runs: config fields and user metadata."""
    rows: dict[str, dict[str, Any]] = {name: {} for name in names}
    for name in names:
        config = configs.get(name)
        for key, value in (config or {}).items():
            rows[name][f"config_{key}"] = value
        extra = metadata.get(name, {})
        if not isinstance(extra, Mapping):
            raise parameter_error("metadata", "sweep", "a mapping of name -> dict", metadata)
        rows[name].update(extra)
    keys = sorted({k for row in rows.values() for k in row})
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        values = [rows[name].get(key) for name in names]
        numeric = all(
            v is None or (isinstance(v, int | float | np.number) and not isinstance(v, str))
            for v in values
        )
        if numeric:
            columns[key] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            columns[key] = np.array(
                [v if isinstance(v, str) else json.dumps(v) for v in values], dtype=object
            )
    return columns


def _root_dataset(
    names: Sequence[str], plan: _Plan, columns: Mapping[str, np.ndarray]
) -> xr.Dataset:
    """The root of a fresh store: every per-model variable, unfilled (NaN, done False)."""
    n = len(names)

    def empty(*sizes: int) -> np.ndarray:
        return np.full((n, *sizes), np.nan)

    variables: dict[str, Any] = {
        "done": ("model", np.zeros(n, dtype=bool)),
        "finished_at": ("model", empty()),
        "seconds": ("model", empty()),
        "n_units": ("model", np.zeros(n, dtype=np.int64)),
        "accuracy": ("model", empty()),
        "loss": ("model", empty()),
        "chance_accuracy": ("model", empty()),
        "near_chance": ("model", np.zeros(n, dtype=bool)),
        "selectivity_mean": ("model", empty()),
        "weight_l1_mean": ("model", empty()),
        "epochs_trained": ("model", np.zeros(n, dtype=np.int64)),
        "peak_rss_mb": ("model", empty()),
        **{key: ("model", empty()) for key in HISTORY_METADATA},
    }
    coords: dict[str, Any] = {"model": np.array(list(names), dtype=object)}
    if "ablation" in plan.metrics:
        curve = (len(plan.scopes), plan.orderings, plan.fractions.size)
        variables["ablation_accuracy"] = (("model", "scope", "ordering", "fraction"), empty(*curve))
        variables["ablation_auc"] = (("model", "scope"), empty(len(plan.scopes)))
        variables["ablation_auc_corrected"] = (("model", "scope"), empty(len(plan.scopes)))
        coords |= {
            "scope": np.array(plan.scopes, dtype=object),
            "ordering": np.arange(plan.orderings),
            "fraction": plan.fractions,
        }
    if "baselines" in plan.metrics:
        variables |= {name: ("model", empty()) for name in BASELINES}
    if "noise" in plan.metrics:
        noise = (plan.noise_repeats, plan.noise_scales.size)
        variables["noise_accuracy"] = (("model", "repeat", "noise_scale"), empty(*noise))
        variables["noise_auc"] = ("model", empty())
        coords |= {"repeat": np.arange(plan.noise_repeats), "noise_scale": plan.noise_scales}
    for key, values in columns.items():
        if key in HISTORY_METADATA and values.dtype.kind == "f":
            # e.g. the test accuracy of a model trained elsewhere; a training run's own
            # history replaces it when its task runs
            variables[key] = ("model", values)
            continue
        if key in variables:
            raise parameter_error(
                "metadata", "sweep", f"keys other than the store's own variables ({key!r})", key
            )
        variables[key] = ("model", values)
    return xr.Dataset(variables, coords=coords)


def _create_store(path: Path, root: xr.Dataset, attrs: dict[str, Any], overwrite: bool) -> None:
    import zarr

    root = root.copy()
    root.attrs = {**attrs, VERSION_ATTR: _version()}
    # every chunk written and checksummed (as Analysis.save); one model per chunk:
    # concurrent tasks never write the same chunk file
    encoding = _checksummed_encoding(root)
    for name, var in root.data_vars.items():
        if var.dims[:1] == ("model",):
            encoding[str(name)]["chunks"] = (1, *var.shape[1:])
    per_model = {"group": UNITS_GROUP, "variables": sorted(_ROW_VARIABLES)}
    with atomic_directory(path, overwrite=overwrite) as temporary:
        _write_sealed(
            root, temporary, encoding=encoding,
            before_seal=lambda folder: zarr.open_group(
                folder / UNITS_GROUP, mode="w-", zarr_format=3
            ),
            skip=per_model_files(per_model), extra={"per_model": per_model},
        )  # fmt: skip


#: Root variables a sweep's tasks fill in, one chunk per model: outside the root's
#: integrity record, each model's chunks are recorded with its ``units/NAME`` group.
_ROW_VARIABLES = frozenset({
    "done", "finished_at", "seconds", "n_units", "accuracy", "loss", "chance_accuracy",
    "near_chance", "selectivity_mean", "weight_l1_mean", "epochs_trained", "peak_rss_mb",
    "ablation_accuracy", "ablation_auc", "ablation_auc_corrected", "noise_accuracy",
    "noise_auc", *HISTORY_METADATA, *BASELINES,
})  # fmt: skip


def _row_files(path: Path, index: int) -> dict[str, str]:
    """Relative path -> SHA-256 of model ``index``'s chunks of the row variables (but
    ``done``, written last)."""
    return row_files(path, index, _ROW_VARIABLES - {"done"})


def _version() -> str:
    from directionkit._version import __version__

    return __version__


def _remove_stale_temporaries(path: Path) -> None:
    """Half-written model groups of a killed run, and replaced ones not yet removed."""
    units = path / UNITS_GROUP
    for child in units.iterdir() if units.is_dir() else ():
        if child.name.startswith(".") and (".tmp-" in child.name or ".old-" in child.name):
            shutil.rmtree(child, ignore_errors=True)


def _read_attrs(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{str(path)!r} is not a readable zarr store: {err}") from err
    return dict(meta.get("attributes", {}))


class _FullChunks:
    """A zarr group whose arrays write every chunk, even one equal to the fill value."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def __contains__(self, key: str) -> bool:
        return key in self._group

    def __getitem__(self, key: str) -> Any:
        return self._group[key].with_config({"write_empty_chunks": True})


class SweepResult:
    """A sweep store, read back: the per-model variables and each model's analysis.

    Attributes
    ----------
    path : Path
    dataset : xarray.Dataset
        The root variables (dim ``model`` first; see the module doc), in memory.
    """

    def __init__(self, path: Path, dataset: xr.Dataset) -> None:
        self.path = path
        self.dataset = dataset

    @property
    def models(self) -> list[str]:
        """Every model's name, in the sweep's order."""
        return [str(m) for m in self.dataset["model"].values]

    @property
    def done(self) -> list[str]:
        """The models whose analysis is complete."""
        return [m for m, d in zip(self.models, self.dataset["done"].values, strict=True) if d]

    def __getitem__(self, name: str) -> xr.DataArray:
        return self.dataset[name]

    def __repr__(self) -> str:
        return (
            f"<directionkit.SweepResult> {str(self.path)!r}: {len(self.done)} of "
            f"{len(self.models)} models done; variables {sorted(map(str, self.dataset))}"
        )

    def units(self, name: str) -> Analysis:
        """The complete analysis of model ``name`` (per-unit variables included)."""
        if name not in self.models:
            raise parameter_error(
                "name", "SweepResult.units", f"one of the sweep's models {self.models}", name
            )
        group = self.path / UNITS_GROUP / name
        if name not in self.done or not group.is_dir():
            raise StoreError(f"Model {name!r} of the sweep at {str(self.path)!r} is not done.")
        return Analysis(open_dataset(group))

    def unit_variable(self, variable: str) -> xr.DataArray:
        """A per-unit variable of every finished model, padded with NaN: dims ``(model, unit)``.

        ``unit`` runs to the widest model's unit count; coordinates ``site`` and
        ``unit_index`` are per model, so they are left out (read them from :meth:`units`).
        """
        rows = []
        done = self.done
        for name in done:
            values = self.units(name)[variable]
            if values.dims[:1] != ("unit",):
                raise parameter_error(
                    "variable", "SweepResult.unit_variable", "a variable with a 'unit' dim",
                    variable,
                )  # fmt: skip
            rows.append(np.asarray(values.values, dtype=np.float64))
        width = max((r.shape[0] for r in rows), default=0)
        padded = np.full((len(rows), width, *(rows[0].shape[1:] if rows else ())), np.nan)
        for i, row in enumerate(rows):
            padded[i, : row.shape[0]] = row
        dims = ("model", "unit", *(self.units(done[0])[variable].dims[1:] if done else ()))
        return xr.DataArray(padded, dims=dims, coords={"model": done}, name=variable)


def open_sweep(path: str | os.PathLike[str], *, verify: bool = True) -> SweepResult:
    """Read a sweep store written by :func:`sweep` (finished or not).

    Checked as :func:`directionkit.open` checks an analysis: the root's metadata and
    fixed variables against the integrity record written with the store, and each
    finished model's chunks against the digests its task recorded with its
    ``units/NAME`` group (itself checked when :meth:`SweepResult.units` reads it).
    ``verify=False`` reads a store without checking (with a warning).

    Raises
    ------
    StoreError
        No folder at ``path``, not a sweep store, or a chunk of the root group missing or
        damaged (the error names the variable).

    Examples
    --------
    >>> open_sweep("/nonexistent.zarr")
    Traceback (most recent call last):
    ...
    directionkit.errors.StoreError: No sweep store at '/nonexistent.zarr': no such folder.
    """
    source = Path(path)
    if not source.is_dir():
        raise StoreError(f"No sweep store at {str(source)!r}: no such folder.")
    if SWEEP_KIND not in _read_attrs(source):
        raise StoreError(f"{str(source)!r} is a zarr store but not a directionkit sweep.")
    # the chunks change under a running sweep; the metadata never does
    dataset = open_dataset(source, verify=verify)
    if verify:
        _check_rows(source, dataset)
    return SweepResult(source, dataset)


def _check_rows(source: Path, dataset: xr.Dataset) -> None:
    """Check that each finished model's group recorded its row of the root (the row's
    digests themselves are checked with the store, see :mod:`directionkit.results._integrity`)."""
    names = [str(m) for m in dataset["model"].values]
    for index, (name, done) in enumerate(zip(names, dataset["done"].values, strict=True)):
        if not done:
            continue
        record = read_record(source / UNITS_GROUP / name)
        if record is None or record.get("sweep_index") != index:
            raise StoreError(
                f"The store {str(source)!r} is damaged: model {name!r} is marked done but its "
                f"group {UNITS_GROUP}/{name} has no integrity record of its row. Restore it "
                "from a copy, or rerun the sweep into a new store."
            )
