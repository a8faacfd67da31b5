"""The experiments of Morcos et al. (2018), one function each, and :func:`reproduce`.

Each experiment trains (or reuses) its reference networks in an output folder, analyses
them with :func:`directionkit.analyze`, stores the numbers it needs as a zarr store, draws
its figures as PNG files, computes the statistic the paper reports *from the stored
numbers*, and gives a verdict by a rule stated beside it (and stored with the result):

========================== ================= ===============================================
experiment                 paper             statistic
========================== ================= ===============================================
``corrupted-labels``       Fig. 1            Spearman(corruption, ablation AUC)
``noise``                  Fig. 2            Spearman(corruption, noise robustness)
``ensemble``               Fig. 3            Spearman(generalisation error, AUC) over seeds;
                                             best 5 minus worst 5 AUC
``early-stopping``         Fig. 4a-b         Spearman(AUC, test loss) per seed; AUC-peak lag
``hyperparameters``        Fig. 4c           Spearman(AUC, test accuracy); selection gap
``dropout``                Fig. 5a           loss by the dropout fraction; slope change past
                                             it; AUC past it, true minus shuffled
``batchnorm``              Fig. 5b, 6        AUC, live-unit selectivity and MI, BN minus none
``selectivity-importance`` Fig. 7, A4        within-layer Spearman(selectivity/MI, importance)
``ablation-method``        Fig. A1           AUC of zero minus mean ablation, paired
``depth``                  Fig. A2           Spearman(layer depth, mean selectivity)
``l1``                     Fig. A3           within-layer Spearman(selectivity, filter L1)
========================== ================= ===============================================

Every statistic carries a 95% interval (bootstrap; what it resamples is stored beside it)
and every rule decides on the interval (:mod:`._rules`): *reproduced*, *partly*, *not
reproduced* or *inconclusive* when the interval is too wide or the population too small.
Where our protocol differs from the paper's (data, model, width, epochs, population,
scope), the difference is stated with the result, generated from the scale.

Scales (:data:`SCALES`): ``"quick"`` runs everything on the bundled digits data on a CPU;
``"cpu"`` on 5,000 Fashion-MNIST training images on a CPU in about 25 minutes; ``"full"``
uses the paper's sizes (for a GPU); ``"toy"`` is for tests.  A rerun in the same folder
reuses finished training runs, analyses and experiments (see :class:`Workspace`).
Training needs the torch extra; it is imported only when a network is trained or loaded.
"""

from __future__ import annotations

from directionkit.paper._experiment import Experiment, claims_text
from directionkit.paper._reading import check_verdict, experiment_figures, experiment_rows
from directionkit.paper._registry import EXPERIMENTS
from directionkit.paper._reproduce import (
    ablation_method,
    batchnorm,
    corrupted_labels,
    depth,
    dropout,
    early_stopping,
    ensemble,
    hyperparameters,
    l1,
    noise,
    reproduce,
    run_experiment,
    selectivity_importance,
)
from directionkit.paper._results import ExperimentResult, save_figure
from directionkit.paper._rules import VERDICTS, Rule
from directionkit.paper._scale import DATASETS, SCALES, Scale
from directionkit.paper._summary_page import write_summary
from directionkit.paper._workspace import Workspace

__all__ = [
    "DATASETS",
    "EXPERIMENTS",
    "SCALES",
    "VERDICTS",
    "Experiment",
    "ExperimentResult",
    "Rule",
    "Scale",
    "Workspace",
    "ablation_method",
    "batchnorm",
    "check_verdict",
    "claims_text",
    "corrupted_labels",
    "depth",
    "dropout",
    "early_stopping",
    "ensemble",
    "experiment_rows",
    "experiment_figures",
    "hyperparameters",
    "l1",
    "noise",
    "reproduce",
    "run_experiment",
    "save_figure",
    "selectivity_importance",
    "write_summary",
]
