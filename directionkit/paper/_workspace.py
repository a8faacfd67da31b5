"""What every paper experiment shares: scales, the output folder, cached runs and analyses.

The output folder ``DIR`` holds::

    DIR/runs/<name>/              training runs (directionkit.reference_models.train)
    DIR/analyses/<name>/<key>.zarr  one analysis of one run's checkpoint on one split
    DIR/<experiment>/             the experiment's zarr store, PNG figures, result.json
    DIR/SUMMARY.md, DIR/report.html

Training resumes and returns at once for a finished run; an analysis is reused when its
stored parameters equal the requested ones; an experiment whose ``result.json`` carries
the same parameters (and whose figures exist) is not run again.  Everything is written
under a temporary name and renamed into place.

torch is imported only inside the functions that train or load a model, so importing
this module costs no deep-learning framework.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import xarray as xr
from tqdm.auto import tqdm

from directionkit._utils.choices import MEASURED_DIRECTIONS
from directionkit._utils.validation import check_choice, parameter_error
from directionkit.api import Analysis
from directionkit.api import open as open_store
from directionkit.errors import DirectionKitWarning, StoreError
from directionkit.paper._scale import DATASETS, SCALES, Scale
from directionkit.results import open_dataset
from directionkit.results._ownership import MARKER, mark, marker_id

__all__ = ["Workspace", "digest"]

T = TypeVar("T")


def digest(value: Any) -> str:
    """A short content hash of JSON-ready data (the identity of a run or an analysis)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Workspace:
    """The output folder of one ``reproduce`` call, and how its runs are made.

    Parameters
    ----------
    out : path
        The output folder (created if missing).
    scale : str or Scale
        ``"toy"``, ``"quick"``, ``"full"`` or a :class:`Scale`.
    dataset : {"digits", "fashion-mnist", "cifar10"}
    data_root : str, optional
        Folder of the data set's files (CIFAR-10 needs it).
    device : {"cpu", "cuda", "auto"}
    progress : bool
        Show progress bars.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        scale: str | Scale = "quick",
        *,
        dataset: str = "digits",
        data_root: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        progress: bool = True,
        func: str = "reproduce",
    ) -> None:
        if isinstance(scale, str):
            check_choice(scale, "scale", func, tuple(SCALES))
            scale = SCALES[scale]
        elif not isinstance(scale, Scale):
            raise parameter_error("scale", func, f"one of {tuple(SCALES)} or a Scale", scale)
        check_choice(dataset, "dataset", func, DATASETS)
        check_choice(device, "device", func, ("cpu", "cuda", "auto"))
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise StoreError(f"{str(self.out)!r} exists and is not a folder.")
        self.out.mkdir(parents=True, exist_ok=True)
        if marker_id(self.out) is None:
            if any(self.out.iterdir()):
                raise StoreError(
                    f"{str(self.out)!r} is not empty and carries no directionkit ownership "
                    f"marker ({MARKER}): reproduce writes only into a folder it made (or an "
                    "empty one), and never into a folder of yours. Choose a new or empty "
                    "folder."
                )
            mark(self.out, "reproduce")
        self.scale = scale
        self.dataset = dataset
        self.data_root = None if data_root is None else os.fspath(data_root)
        self.device = device
        self.progress = progress
        #: analyses computed (not reused) by this workspace, for tests and logs
        self.analyses_computed = 0
        #: training runs started (not already finished) by this workspace
        self.runs_trained = 0

    # ------------------------------------------------------------------ identity
    def key(self, experiment: str) -> dict[str, Any]:
        """What decides an experiment's result: its name, the scale, the data."""
        return {
            "experiment": experiment,
            "scale": self.scale.to_dict(),
            "dataset": self.dataset,
            "data_root": self.data_root,
        }

    @property
    def device_used(self) -> str:
        """The device networks are trained and analysed on: ``device``, with ``"auto"``
        resolved (``"cuda"`` when torch sees a GPU, else ``"cpu"``)."""
        if self.device != "auto":
            return self.device
        try:  # the torch extra: its training module resolves "auto"
            from directionkit.reference_models.train import resolve_device
        except ImportError:
            return "cpu"
        return resolve_device(self.device)

    def folder(self, experiment: str) -> Path:
        """The experiment's output folder (created)."""
        path = self.out / experiment
        path.mkdir(parents=True, exist_ok=True)
        return path

    def bar(self, items: Sequence[T], desc: str) -> Iterator[T]:
        """``items`` with a progress bar (when progress is on)."""
        return iter(tqdm(items, desc=desc, disable=not self.progress, leave=False))

    # ------------------------------------------------------------------ training
    def config(self, **fields: Any) -> dict[str, Any]:
        """A training config (as a dict) on this workspace's data, device and limits."""
        base: dict[str, Any] = {
            "dataset": self.dataset,
            "data_root": self.data_root,
            "train_limit": self.scale.train_limit,
            "test_limit": self.scale.test_limit,
            "device": self.device,
            "lr": self.scale.lr,
            "batch_size": self.scale.batch_size,
        }
        if fields.get("model", "mlp") == "mlp":
            base["standardize"] = True  # conditions layer one: memorising takes fewer epochs
        base.update(fields)
        return base

    def train(self, config: Mapping[str, Any], label: str) -> Path:
        """Train (or reuse) the run ``config`` describes; its run directory.

        The directory is ``DIR/runs/<label>-<hash of the config>``, so experiments that
        need the same network share one run.  A finished run (``history.zarr`` written
        and the same ``config.json``) is returned without loading torch's training code.
        """
        name = f"{label}-{digest(dict(config))}"
        run = self.out / "runs" / name
        saved = run / "config.json"
        if (run / "history.zarr").is_dir() and saved.is_file():
            from directionkit.reference_models.train import TrainConfig

            if TrainConfig.from_dict(json.loads(saved.read_text())) == TrainConfig.from_dict(
                dict(config)
            ):
                return run
        from directionkit.reference_models.train import TrainConfig, train

        run.parent.mkdir(parents=True, exist_ok=True)
        self.runs_trained += 1
        with _one_thread(self.device):
            train(TrainConfig.from_dict(dict(config)), run, progress=self.progress, onnx=False)
        return run

    # ------------------------------------------------------------------ analysis
    def analyze(
        self,
        run: Path,
        *,
        split: str,
        metrics: Sequence[str],
        epoch: int | None = None,
        **parameters: Any,
    ) -> xr.Dataset:
        """The analysis of a run's checkpoint on one split, computed once and stored.

        ``split="train"`` evaluates on the labels the network was trained on (corrupted
        ones included), as the paper's ablation and noise curves do; ``"test"`` on the
        true test labels (selectivity, importance).  Noise sd and mean-ablation values
        come from the training split.  ``attrs["run_config"]`` holds the training config
        with the train and test accuracy and loss at that epoch.
        """
        config = json.loads((run / "config.json").read_text())
        history = open_dataset(run / "history.zarr")
        epochs = history["epoch"].values
        chosen = int(epochs[-1]) if epoch is None else int(epoch)
        key = {
            "config": config,
            "epoch": chosen,
            "split": split,
            "metrics": list(metrics),
            "parameters": {
                k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()
            },
        }
        key = json.loads(json.dumps(key, default=str))
        path = self.out / "analyses" / run.name / f"{split}-e{chosen:04d}-{digest(key)}.zarr"
        if path.is_dir():
            try:
                stored = open_store(path).dataset
            except StoreError:
                stored = None
            if stored is not None and stored.attrs.get("reproduce_key") == key:
                return stored
        with _one_thread(self.device):
            dataset = self._measure(run, config, history, chosen, split, metrics, parameters)
        dataset.attrs["reproduce_key"] = key
        path.parent.mkdir(parents=True, exist_ok=True)
        Analysis(dataset).save(path, overwrite=True)
        self.analyses_computed += 1
        return open_store(path).dataset

    def _measure(
        self,
        run: Path,
        config: dict[str, Any],
        history: xr.Dataset,
        epoch: int,
        split: str,
        metrics: Sequence[str],
        parameters: Mapping[str, Any],
    ) -> xr.Dataset:
        from directionkit.api import analyze
        from directionkit.reference_models.runs import split_data
        from directionkit.reference_models.train import load_model

        model = load_model(run, epoch)
        data = split_data(config, split)
        train = data if split == "train" else split_data(config, "train")
        needs_train = (
            "noise" in metrics
            or parameters.get("ablate_to", "zero") != "zero"
            or parameters.get("directions", "units") in MEASURED_DIRECTIONS  # bases from train
        )
        with warnings.catch_warnings():  # near chance, say: stored, and judged by the rules
            warnings.simplefilter("ignore", DirectionKitWarning)
            result = analyze(
                model,
                (data.X, data.y),
                train_data=(train.X, train.y) if needs_train else None,
                metrics=list(metrics),
                device=None if self.device == "auto" else self.device,
                progress=self.progress,
                **{"importance_units": "all", **parameters},  # the paper measures every unit
            )
        dataset = result.dataset.copy()
        run_config = dict(config)
        if epoch in history["epoch"].values:
            row = history.sel(epoch=epoch)
            for name in ("train_accuracy", "test_accuracy", "train_loss", "test_loss"):
                run_config[name] = float(row[name])
        run_config["epoch"] = epoch
        run_config["run"] = run.name
        dataset.attrs["run_config"] = run_config
        dataset.attrs["split"] = split
        return dataset


@contextlib.contextmanager
def _one_thread(device: str) -> Iterator[None]:
    """torch on one CPU thread while the block runs (restored after).

    The reference networks are small: on a shared 2-core machine two torch threads per
    matmul contend with each other and with other processes (an epoch of a 256-256 MLP on
    digits took 6.3 s with two threads and 2.0 s with one under the same load), and one
    thread also makes CPU training bit-reproducible across machines' core counts.
    """
    import directionkit.reference_models.train  # noqa: F401  # loads torch (the torch extra)

    torch = sys.modules["torch"]
    previous = torch.get_num_threads()
    if device != "cuda":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
