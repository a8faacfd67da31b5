"""Reading activations in blocks of examples, in memory or from a lazily opened store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import as_labelled, check_labels
from directionkit.errors import InvalidDataError

#: Values per block (float64): about 32 MB.
BLOCK_VALUES = 1 << 22


class ExampleBlocks:
    """Validated ``(example, unit)`` activity and labels, served block by block.

    In-memory input is validated once and served as a single block.  A DataArray
    (e.g. from :func:`directionkit.results.open_activations`, which reads nothing until
    asked) is served in blocks of whole chunks along ``example``, each validated as it
    is read, so a store larger than memory can be measured.  ``labels=None`` takes the
    DataArray's ``label`` coordinate.
    """

    def __init__(
        self,
        activations: Any,
        labels: Any,
        func: str,
        n_classes: int | None,
        *,
        need_labels: bool = True,
    ) -> None:
        self.func = func
        if isinstance(activations, xr.DataArray):
            if set(activations.dims) != {"example", "unit"}:
                raise InvalidDataError(
                    f"'activations' of {func} must have dims ('example', 'unit'). "
                    f"Got dims {activations.dims} instead."
                )
            self._array: xr.DataArray | np.ndarray = activations.transpose("example", "unit")
            if labels is None and "label" in activations.coords:
                labels = activations.coords["label"].values
            self.coords = {str(k): v for k, v in activations.coords.items() if v.dims == ("unit",)}
        else:
            self._array = as_labelled(activations, ("example", "unit"), "activations", func).values
            self.coords = {}
        self.n_examples, self.n_units = (int(n) for n in self._array.shape)
        if self.n_examples == 0 or self.n_units == 0:
            raise InvalidDataError(
                f"'activations' of {func} is empty (shape {self._array.shape}); it needs at "
                "least one example and one unit."
            )
        if labels is None and need_labels:
            raise InvalidDataError(
                f"{func} needs labels: pass labels=..., or activations with a 'label' coordinate."
            )
        if labels is None:
            self.labels, self.n_classes = np.zeros(self.n_examples, np.int64), 1
        else:
            self.labels, self.n_classes = check_labels(labels, self.n_examples, func, n_classes)
        chunk = 1
        if isinstance(self._array, xr.DataArray):
            chunk = int((self._array.encoding.get("chunks") or (1,))[0])
        self.rows = max(chunk, (BLOCK_VALUES // self.n_units) // chunk * chunk)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(activity (rows, n_units) float64, labels (rows,))`` blocks, validated."""
        if isinstance(self._array, np.ndarray):
            yield self._array.astype(np.float64, copy=False), self.labels
            return
        for start in range(0, self.n_examples, self.rows):
            stop = min(start + self.rows, self.n_examples)
            block = as_labelled(
                self._array.isel(example=slice(start, stop)).values,
                ("example", "unit"), "activations", self.func,
            )  # fmt: skip
            yield block.values.astype(np.float64, copy=False), self.labels[start:stop]

    def columns(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first unit, activity (n_examples, width))``: whole columns, for order statistics."""
        for start in range(0, self.n_units, width):
            if isinstance(self._array, np.ndarray):
                values = self._array[:, start : start + width]
            else:
                values = self._array.isel(unit=slice(start, start + width)).values
            yield start, np.asarray(values, dtype=np.float64)
