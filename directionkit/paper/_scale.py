"""How big the paper's experiments are: :class:`Scale` and its presets, :data:`SCALES`;
and the data sets they run on, :data:`DATASETS`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["DATASETS", "SCALES", "Scale"]

#: Data sets the experiments run on (MNIST is replaced by Fashion-MNIST, as the issue asks).
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "cifar10")


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
    # issue 26: the measures grid (architecture x lr x batch size x dropout x seeds, SGD)
    measures_hidden: tuple[tuple[int, ...], ...] = ((64,), (256,), (128, 128))
    measures_lrs: tuple[float, ...] = (0.002, 0.01)
    measures_batch_sizes: tuple[int, ...] = (32, 256)
    measures_dropouts: tuple[float, ...] = (0.0, 0.3)
    measures_seeds: tuple[int, ...] = (0, 1)
    measures_epochs: int = 20
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
        measures_hidden=((8,), (8, 8)),
        measures_lrs=(0.05,),
        measures_batch_sizes=(64,),
        measures_dropouts=(0.0, 0.3),
        measures_seeds=(0, 1),
        measures_epochs=2,
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
        measures_hidden=((128,), (512,), (256, 256)),
        measures_epochs=20,
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
