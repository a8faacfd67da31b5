"""A self-contained demonstration on the embedded digits data, needing no framework.

It trains scikit-learn's ``MLPClassifier`` (one ReLU hidden layer) on the bundled
8x8 digits, reads the hidden layer's activity on the held-out split with a plain
numpy forward pass, and measures every unit's class selectivity, mutual
information and incoming-weight L1 norm.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from directionkit._utils.validation import check_int
from directionkit.api import Analysis
from directionkit.metrics import class_mean, class_selectivity, mutual_information, spearman
from directionkit.results import fingerprint


def digits_demo(hidden: int = 64, seed: int = 0) -> Analysis:
    """Train a small MLP on the digits data and measure its hidden units.

    Parameters
    ----------
    hidden : int
        Width of the single ReLU hidden layer.
    seed : int
        Seed of the train/test split and of the classifier's initialisation.

    Returns
    -------
    Analysis
        Variables ``class_mean (unit, class)``, ``selectivity``, ``mutual_info`` and
        ``weight_l1`` (all ``(unit,)``), and the test ``accuracy``; unit coordinates
        ``site`` (``"hidden"``) and ``unit_index``.

    Examples
    --------
    >>> result = digits_demo(hidden=16, seed=0)
    >>> result["selectivity"].sizes["unit"]
    16
    >>> bool(result["accuracy"] > 0.9)
    True
    """
    hidden = check_int(hidden, "hidden", "digits_demo", minimum=1)
    seed = check_int(seed, "seed", "digits_demo", minimum=0)
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=400, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    weights, bias = clf.coefs_[0], clf.intercepts_[0]
    activity = xr.DataArray(
        np.maximum(x_test @ weights + bias, 0.0),
        dims=("example", "unit"),
        coords={"site": ("unit", ["hidden"] * hidden), "unit_index": ("unit", np.arange(hidden))},
    )
    dataset = xr.Dataset(
        {
            "class_mean": class_mean(activity, y_test),
            "selectivity": class_selectivity(activity, y_test),
            "mutual_info": mutual_information(activity, y_test),
            "weight_l1": activity.isel(example=0, drop=True).copy(data=np.abs(weights).sum(0)),
            "accuracy": float(clf.score(x_test, y_test)),
        },
        attrs={
            "parameters": {"hidden": hidden, "seed": seed, "test_size": 0.25},
            "model": fingerprint(*clf.coefs_, *clf.intercepts_),
            "data": f"digits test split ({len(y_test)} examples), " + fingerprint(x_test, y_test),
        },
    )
    return Analysis(dataset)


def summary(result: Analysis) -> str:
    """A few lines describing a demo result: accuracy and per-unit measures."""
    rho = spearman(result["selectivity"], result["mutual_info"], by=None)
    sel, mi = result["selectivity"].values, result["mutual_info"].values
    return "\n".join(
        [
            f"test accuracy              {float(result['accuracy']):.3f}",
            f"hidden units               {sel.size}",
            f"selectivity  mean [range]  {sel.mean():.3f} [{sel.min():.3f}, {sel.max():.3f}]",
            f"mutual info  mean [range]  {mi.mean():.3f} [{mi.min():.3f}, {mi.max():.3f}] bits",
            f"Spearman(selectivity, MI)  {float(rho['rho'].sel(scope='all')):+.3f}",
        ]
    )
