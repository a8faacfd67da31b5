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
import dataclasses
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from directionkit._ownership import MARKER, mark, marker_id
from directionkit._validation import check_choice, parameter_error
from directionkit.errors import DirectionKitWarning, StoreError
from directionkit.store import Analysis, open_dataset
from directionkit.store import open as open_store

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SCALES", "ExperimentResult", "Scale", "Workspace"]

T = TypeVar("T")

#: Data sets the experiments run on (MNIST is replaced by Fashion-MNIST, as the issue asks).
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "cifar10")
_RESULT = "result.json"


@dataclass(frozen=True)
class Scale:
    """How big every experiment is: populations, network sizes, epochs, analysis sizes.

    The presets are :data:`SCALES` (``"toy"`` for tests, ``"quick"`` for a 2-core CPU
    in under 15 minutes on digits, ``"cpu"`` for every experiment on real Fashion-MNIST
    in about 25 minutes on a 2-core CPU, ``"full"`` for the paper's sizes on a GPU).
    ``conv_train_limit`` caps the training images of the ConvNets alone (``None``: the
    same as ``train_limit``): their ablation curves on the training data cost far more
    per image than an MLP's.
    """

    name: str
    # analysis
    orderings: int = 10
    fractions: int = 21
    noise_scales: tuple[float, ...] = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
    noise_repeats: int = 5
    # data
    train_limit: int | None = None
    test_limit: int | None = None
    # Fig. 1 / 2: memorising MLPs
    hidden: tuple[int, ...] = (256, 256)
    corruptions: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    memorize_epochs: int = 150
    memorize_target: float = 0.99
    # Fig. 3: ensemble (true labels, differing only in seed; a small training set so that
    # generalisation varies between seeds, a large test set to measure it)
    ensemble_hidden: tuple[int, ...] = (256, 256)
    ensemble_seeds: tuple[int, ...] = tuple(range(10, 26))
    ensemble_train_limit: int | None = 300
    ensemble_test_limit: int | None = None
    # Fig. 4a-b: early stopping
    early_hidden: tuple[int, ...] = (512, 512)
    early_epochs: int = 60
    early_every: int = 2
    early_seeds: tuple[int, ...] = (0, 1, 2)
    # Fig. 4c: hyperparameter grid (SGD with momentum)
    hp_hidden: tuple[int, ...] = (128, 128)
    hp_lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
    hp_batch_sizes: tuple[int, ...] = (32, 128, 512)
    hp_repeats: int = 2
    hp_epochs: int = 20
    hp_subsets: int = 1000
    # Fig. 5a: dropout
    dropout_hidden: tuple[int, ...] = (256, 256)
    dropouts: tuple[float, ...] = (0.1, 0.2, 0.3)
    dropout_epochs: int = 200
    dropout_seeds: tuple[int, ...] = (0, 1, 2)
    # Fig. 5b / 6 / 7 / A1-A3: ConvNets
    conv_width: float = 0.125
    conv_epochs: int = 30
    conv_lr: float = 2e-3
    conv_instances: int = 3
    conv_orderings: int = 5
    conv_fractions: int = 11
    conv_train_limit: int | None = None
    # Fig. 7: MLP with true labels
    selectivity_hidden: tuple[int, ...] = (128, 128)
    selectivity_epochs: int = 40
    selectivity_seeds: tuple[int, ...] = (0, 1, 2)
    # shared training recipe
    lr: float = 1e-3
    batch_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        """The scale as JSON-ready data (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


#: The scale presets by name.
SCALES: dict[str, Scale] = {
    "toy": Scale(
        name="toy",
        orderings=2,
        fractions=5,
        noise_scales=(0.0, 1.0, 10.0),
        noise_repeats=2,
        train_limit=300,
        test_limit=150,
        hidden=(16,),
        corruptions=(0.0, 0.5, 1.0),
        seeds=(0,),
        memorize_epochs=3,
        ensemble_hidden=(16,),
        ensemble_seeds=(0, 1, 2),
        ensemble_train_limit=100,
        early_hidden=(16,),
        early_epochs=4,
        early_every=1,
        early_seeds=(0,),
        hp_hidden=(16,),
        hp_lrs=(0.01, 0.1),
        hp_batch_sizes=(64,),
        hp_repeats=2,
        hp_epochs=2,
        hp_subsets=50,
        dropout_hidden=(16,),
        dropouts=(0.2,),
        dropout_epochs=2,
        dropout_seeds=(0,),
        conv_width=0.0625,
        conv_epochs=1,
        conv_instances=1,
        conv_orderings=2,
        conv_fractions=5,
        selectivity_hidden=(16,),
        selectivity_epochs=2,
        selectivity_seeds=(0,),
    ),
    "quick": Scale(name="quick"),
    # Every experiment on real Fashion-MNIST on a 2-core CPU in about 25 minutes: 5,000
    # training and 1,000 test images (2,000 training images for the ConvNets; 1,000 and
    # 5,000 for the ensemble), three seeds or instances per population (three corruption
    # levels), MLPs capped at 100 epochs (shuffled labels are memorised with standardised
    # inputs), fewer orderings and noise repeats (docs/results/fashion-mnist/SUMMARY.md).
    "cpu": Scale(
        name="cpu",
        orderings=5,
        fractions=21,
        noise_repeats=3,
        train_limit=5000,
        test_limit=1000,
        hidden=(256, 256),
        corruptions=(0.0, 0.5, 1.0),
        seeds=(0, 1, 2),
        memorize_epochs=100,
        ensemble_hidden=(256, 256),
        ensemble_seeds=tuple(range(10, 30)),
        ensemble_train_limit=1000,
        ensemble_test_limit=5000,
        early_hidden=(256, 256),
        early_epochs=40,
        early_every=2,
        hp_hidden=(128, 128),
        hp_epochs=10,
        dropout_hidden=(256, 256),
        dropout_epochs=100,
        conv_width=0.125,
        conv_epochs=5,
        conv_instances=3,
        conv_orderings=3,
        conv_fractions=11,
        conv_train_limit=2000,
        selectivity_hidden=(128, 128),
        selectivity_epochs=20,
    ),
    "full": Scale(
        name="full",
        orderings=10,
        fractions=21,
        noise_repeats=10,
        hidden=(2048, 2048),
        seeds=(0, 1, 2),
        memorize_epochs=640,
        ensemble_hidden=(512, 512),
        ensemble_seeds=tuple(range(200)),
        ensemble_train_limit=None,
        early_hidden=(2048, 2048),
        early_epochs=640,
        early_every=10,
        hp_hidden=(512, 512),
        hp_lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3),
        hp_batch_sizes=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768),
        hp_epochs=100,
        dropout_hidden=(2048, 2048),
        dropout_epochs=5000,
        conv_width=1.0,
        conv_epochs=100,
        conv_instances=4,
        conv_orderings=10,
        conv_fractions=21,
        selectivity_hidden=(128, 128),
        selectivity_epochs=640,
        batch_size=128,
    ),
}


def digest(value: Any) -> str:
    """A short content hash of JSON-ready data (the identity of a run or an analysis)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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
        from directionkit._api import analyze
        from directionkit.reference_models.runs import split_data
        from directionkit.reference_models.train import load_model

        model = load_model(run, epoch)
        data = split_data(config, split)
        train = data if split == "train" else split_data(config, "train")
        needs_train = "noise" in metrics or parameters.get("ablate_to", "zero") != "zero"
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


def stack_models(
    datasets: Mapping[str, xr.Dataset], variables: Iterable[str], by: Sequence[str] = ()
) -> xr.Dataset:
    """Variables of several analyses along a new ``model`` dim (same shapes required).

    The ``by`` keys of each analysis's ``attrs["run_config"]`` become coordinates along
    ``model``.  (``directionkit.compare`` does the same for whole analyses.)
    """
    names = list(datasets)
    chosen = list(variables)
    if "accuracy" in chosen:  # chance beside it, so that a model at chance is flagged
        chosen += [
            v for v in ("chance_accuracy", "near_chance")
            if v not in chosen and all(v in datasets[n] for n in names)
        ]  # fmt: skip
    parts = [datasets[n][chosen].drop_attrs().reset_coords(drop=True) for n in names]
    stacked = xr.concat(parts, dim="model", join="outer", coords="minimal", compat="override")
    coords: dict[str, Any] = {"model": names}
    for key in by:
        coords[key] = ("model", [datasets[n].attrs["run_config"].get(key) for n in names])
    splits = {datasets[n].attrs.get("split") for n in names}
    if len(splits) == 1 and None not in splits:  # which labels `accuracy` was measured on
        stacked.attrs["split"] = splits.pop()
    return stacked.assign_coords(coords)


def stack_units(datasets: Mapping[str, xr.Dataset], variables: Iterable[str]) -> xr.Dataset:
    """Per-unit variables of several analyses, their units laid end to end along ``unit``.

    Coordinates along ``unit``: ``unit_model`` (the analysis's key), ``site``, ``unit_index``
    and ``depth`` (the position of the unit's site among its analysis's sites).
    """
    chosen = list(variables)
    parts = []
    for name, ds in datasets.items():
        part = ds[chosen].drop_attrs()
        sites = np.asarray(part["site"].values).astype(str)
        order = {site: i for i, site in enumerate(dict.fromkeys(sites.tolist()))}
        part = part.assign_coords(
            unit_model=("unit", np.full(sites.size, name, dtype=object)),
            depth=("unit", np.array([order[s] for s in sites], dtype=np.int64)),
            site=("unit", sites.astype(object)),
        )
        parts.append(part)
    return xr.concat(parts, dim="unit", coords="different", compat="equals")


def timed(func: Any) -> tuple[Any, float]:
    """``(func(), seconds)``."""
    began = time.perf_counter()
    value = func()
    return value, time.perf_counter() - began
