"""A sweep described in a TOML file (``directionkit sweep sweep.toml``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from directionkit.errors import (
    InvalidParameterError,
    StoreError,
)
from directionkit.population._models import RUN_SPLITS


def read_sweep_config(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a sweep described in TOML: ``(models, sweep keyword arguments)``.

    The format is :data:`TOML_FORMAT`.  Relative paths are relative to the TOML file.

    Examples
    --------
    >>> import tempfile
    >>> text = '[grid]\\nbase = {hidden = [8]}\\ncorruption = [0.0, 1.0]\\n'
    >>> with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
    ...     _ = f.write(text)
    >>> models, kwargs = read_sweep_config(f.name)
    >>> sorted(models), kwargs["data"]
    (['corruption=0.0', 'corruption=1.0'], 'train')
    >>> os.remove(f.name)
    """
    import itertools

    source = Path(path)
    try:
        config = tomllib.loads(source.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise StoreError(f"Cannot read the sweep config {str(source)!r}: {err}") from err
    here = source.parent
    known = {"sweep", "analyze", "models", "grid"}
    if set(config) - known:
        raise InvalidParameterError(
            f"Unknown tables {sorted(set(config) - known)} in {str(source)!r}; the sweep "
            f"config has {sorted(known)}."
        )

    def local(value: str) -> str:
        return value if os.path.isabs(value) else str(here / value)

    def train_config(fields: Mapping[str, Any]) -> Any:
        from directionkit.reference_models.train import TrainConfig

        fields = dict(fields)
        if isinstance(fields.get("dataset"), str) and fields["dataset"].endswith(".npz"):
            fields["dataset"] = local(fields["dataset"])
        return TrainConfig.from_dict(fields)

    models: dict[str, Any] = {}
    for name, table in config.get("models", {}).items():
        kinds = sorted(set(table) & {"onnx", "run", "train"})
        if len(kinds) != 1 or set(table) - {"onnx", "run", "train"}:
            raise InvalidParameterError(
                f"[models.{name}] in {str(source)!r} must have exactly one of 'onnx', 'run' "
                f"or 'train'. Got keys {sorted(table)} instead."
            )
        kind = kinds[0]
        models[name] = train_config(table[kind]) if kind == "train" else local(table[kind])
    grid = dict(config.get("grid", {}))
    if grid:
        base = dict(grid.pop("base", {}))
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise InvalidParameterError(
                    f"[grid] {key} in {str(source)!r} must be a non-empty list of values. "
                    f"Got {values!r} instead."
                )
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            name = ",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
            models[name.replace(" ", "")] = train_config(base | dict(zip(keys, combo, strict=True)))
    if not models:
        raise InvalidParameterError(
            f"{str(source)!r} names no models: add [models.NAME] tables or a [grid]."
        )
    settings = dict(config.get("sweep", {}))
    allowed = {"data", "split", "limit", "train_data", "runs_dir"}
    if set(settings) - allowed:
        raise InvalidParameterError(
            f"Unknown keys {sorted(set(settings) - allowed)} in [sweep] of {str(source)!r}; "
            f"allowed: {sorted(allowed)}."
        )
    kwargs: dict[str, Any] = dict(config.get("analyze", {}))
    split = settings.get("split", "test")
    limit = settings.get("limit")
    kwargs["data"] = _data_from_name(settings.get("data", "train"), split, limit, local)
    if "train_data" in settings:
        kwargs["train_data"] = _data_from_name(settings["train_data"], "train", limit, local)
    if "runs_dir" in settings:
        kwargs["runs_dir"] = local(settings["runs_dir"])
    return models, kwargs


def _data_from_name(spec: str, split: str, limit: int | None, local: Callable[[str], str]) -> Any:
    from directionkit.preprocessing import load_data

    if spec in RUN_SPLITS:
        if limit is not None:
            raise InvalidParameterError(
                "'limit' applies to a named data set, not to the runs' own splits "
                "(set train_limit / test_limit in the configs instead)."
            )
        return spec
    if spec not in ("digits", "fashion-mnist"):
        spec = local(spec)
    return load_data(spec, split, limit)
